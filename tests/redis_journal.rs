//! The Redis journal against real `redis-server` processes started by the tests.

mod support;

use gavel::auction::{Command as AuctionCommand, Outcome};
use gavel::market::Command;

use gavel::store::{
    Batch, Durability, Entry, Journal, JournalRead, OutcomeRecord, RedisJournal,
    RedisJournalConfig, Snapshot, StoreError,
};
use gavel::vocab::{DealerId, LotId, SellerId};
use redis::aio::MultiplexedConnection;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::{RedisOpts, RedisServer};

fn config(server: &RedisServer) -> RedisJournalConfig {
    RedisJournalConfig {
        url: server.url(),
        prefix: "test".into(),
        lease_ttl_ms: 10_000,
        op_timeout_ms: 1_000,
        require_fsync: false,
        retain_commands_behind_snapshot: None,
        ..RedisJournalConfig::default()
    }
}

async fn open(server: &RedisServer) -> RedisJournal {
    support::init_tracing();
    RedisJournal::open(&config(server))
        .await
        .expect("open the journal")
}

/// A raw connection for looking behind the journal's back.
async fn raw(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

async fn xlen(con: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(con)
        .await
        .expect("XLEN")
}

async fn get(con: &mut MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(con)
        .await
        .expect("GET")
}

fn bid(seq: u64) -> Entry {
    Entry {
        seq,
        now_ms: 1_700_000_000_000 + seq * 7,
        command: Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1 + (seq % 50) as u32),
            lot: LotId(1 + (seq % 20) as u32),
            amount: 8_500_000 + seq * 10_000,
            max: seq.is_multiple_of(3).then_some(9_900_000),
            bid_id: Arc::from(format!("bid-{seq}")),
        }),
    }
}

fn batch(seqs: RangeInclusive<u64>) -> Batch {
    Batch {
        entries: seqs.map(bid).collect(),
        outcomes: Vec::new(),
    }
}

fn sold(seq: u64, lot: u32) -> OutcomeRecord {
    OutcomeRecord {
        seq,
        lot: LotId(lot),
        outcome: Outcome::Sold,
        price: Some(9_000_000),
        dealer: Some(DealerId(3)),
        seller: SellerId(2),
    }
}

/// Reads the whole log in pages of `page` batches, as recovery would.
async fn read_all(journal: &mut RedisJournal, page: usize) -> Vec<Batch> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let batches = journal.read_after(after, page).await.expect("read_after");
        let Some(last) = batches.last() else {
            return all;
        };
        after = last.last_seq();
        all.extend(batches);
    }
}

#[tokio::test]
async fn append_and_read_back() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let describe = journal.describe();
    assert!(describe.contains(&server.url()), "{describe}");
    assert!(describe.contains("appendfsync=always"), "{describe}");

    let mut with_outcome = batch(2..=5);
    with_outcome.outcomes = vec![sold(4, 7), sold(5, 8)];
    let written = vec![batch(1..=1), with_outcome, batch(6..=10)];
    for b in &written {
        journal.append(b).await.expect("append");
    }
    assert_eq!(journal.last_seq().await.expect("last_seq"), 10);

    assert_eq!(journal.read_after(0, 10).await.expect("read"), written);
    // A batch straddling `after` comes back whole.
    assert_eq!(journal.read_after(3, 10).await.expect("read"), written[1..]);
    assert_eq!(journal.read_after(1, 10).await.expect("read"), written[1..]);
    assert_eq!(journal.read_after(5, 10).await.expect("read"), written[2..]);
    assert_eq!(journal.read_after(9, 1).await.expect("read"), written[2..]);
    assert!(journal.read_after(10, 10).await.expect("read").is_empty());
    assert!(journal
        .read_after(u64::MAX, 10)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(journal.read_after(0, 2).await.expect("read"), written[..2]);
    assert_eq!(journal.read_after(3, 1).await.expect("read"), written[1..2]);
    assert_eq!(read_all(&mut journal, 1).await, written);

    // The outcomes went to their own stream, in order, as MessagePack.
    let mut con = raw(&server).await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("test:outcomes")
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE outcomes");
    let outcomes: Vec<OutcomeRecord> = reply
        .ids
        .iter()
        .map(|entry| match entry.map.get("o") {
            Some(redis::Value::BulkString(bytes)) => {
                rmp_serde::from_slice(bytes).expect("decode outcome")
            }
            other => panic!("outcome entry without field o: {other:?}"),
        })
        .collect();
    assert_eq!(outcomes, vec![sold(4, 7), sold(5, 8)]);
    assert_eq!(
        reply
            .ids
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
            .len(),
        2
    );

    // Log stream ids are the seq ranges.
    let ids: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("test:log")
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .expect("XRANGE log");
    let ids: Vec<_> = ids.ids.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["1-1", "2-5", "6-10"]);
}

#[tokio::test]
async fn out_of_order_and_duplicate_appends_write_nothing() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let mut first = batch(1..=3);
    first.outcomes = vec![sold(3, 1)];
    journal.append(&first).await.expect("append 1..=3");

    let mut con = raw(&server).await;
    let before = (
        xlen(&mut con, "test:log").await,
        xlen(&mut con, "test:outcomes").await,
    );

    // A gap.
    let mut gap = batch(5..=6);
    gap.outcomes = vec![sold(6, 2)];
    match journal.append(&gap).await {
        Err(StoreError::OutOfOrder {
            expected: 4,
            got: 5,
        }) => {}
        other => panic!("gap: {other:?}"),
    }
    // The same batch again (no failure in between: a true duplicate).
    match journal.append(&first).await {
        Err(StoreError::OutOfOrder {
            expected: 4,
            got: 1,
        }) => {}
        other => panic!("duplicate: {other:?}"),
    }
    // Overlapping.
    match journal.append(&batch(3..=4)).await {
        Err(StoreError::OutOfOrder {
            expected: 4,
            got: 3,
        }) => {}
        other => panic!("overlap: {other:?}"),
    }
    // Seqs not consecutive inside the batch.
    let mut holes = batch(4..=6);
    holes.entries.remove(1);
    match journal.append(&holes).await {
        Err(StoreError::OutOfOrder {
            expected: 5,
            got: 6,
        }) => {}
        other => panic!("holes: {other:?}"),
    }
    let after = (
        xlen(&mut con, "test:log").await,
        xlen(&mut con, "test:outcomes").await,
    );
    assert_eq!(before, after, "a refused append wrote something");
    assert_eq!(get(&mut con, "test:last_seq").await.as_deref(), Some("3"));

    // An empty batch is a no-op; the right next batch still goes in.
    let empty = Batch {
        entries: Vec::new(),
        outcomes: Vec::new(),
    };
    journal.append(&empty).await.expect("empty batch");
    journal.append(&batch(4..=4)).await.expect("append 4");
    assert_eq!(read_all(&mut journal, 10).await, vec![first, batch(4..=4)]);
}

#[tokio::test]
async fn second_engine_is_refused_while_the_lease_is_held() {
    let server = RedisServer::start(RedisOpts::always());
    let short = RedisJournalConfig {
        lease_ttl_ms: 600,
        ..config(&server)
    };
    let first = RedisJournal::open(&short).await.expect("first engine");
    match RedisJournal::open(&short).await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("held"), "{why}"),
        other => panic!("second engine: {other:?}"),
    }
    // Renewal keeps the lease past its TTL while the owner lives.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        matches!(RedisJournal::open(&short).await, Err(StoreError::Fenced(_))),
        "the lease lapsed while its owner was alive"
    );

    let first_epoch = first.epoch();
    drop(first);
    // Until the TTL runs out the journal is still taken ...
    assert!(matches!(
        RedisJournal::open(&short).await,
        Err(StoreError::Fenced(_))
    ));
    // ... then the next engine gets it, with a higher fencing token.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = RedisJournal::open(&short)
        .await
        .expect("takeover after ttl");
    assert!(second.epoch() > first_epoch);

    // A closed journal releases the lease at once.
    second.close().await.expect("close");
    let third = RedisJournal::open(&short).await.expect("open after close");
    drop(third);
}

#[tokio::test]
async fn stale_owner_is_fenced_and_writes_nothing() {
    let server = RedisServer::start(RedisOpts::always());
    let mut old = open(&server).await;
    old.append(&batch(1..=2)).await.expect("append");

    // Simulate the old owner's lease expiring (a long pause) and a new engine taking over.
    let mut con = raw(&server).await;
    let _: () = redis::cmd("DEL")
        .arg("test:lease")
        .query_async(&mut con)
        .await
        .expect("DEL lease");
    let mut new = open(&server).await;
    assert_eq!(new.epoch(), old.epoch() + 1);

    let mut late = batch(3..=3);
    late.outcomes = vec![sold(3, 1)];
    match old.append(&late).await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("epoch=2"), "{why}"),
        other => panic!("stale append: {other:?}"),
    }
    match old
        .save_snapshot(&Snapshot {
            seq: 2,
            bytes: b"stale".to_vec(),
        })
        .await
    {
        Err(StoreError::Fenced(_)) => {}
        other => panic!("stale snapshot: {other:?}"),
    }
    // Nor can it stage the first part of one.
    match old.save_snapshot_part(&parted(2, 3 * PART), 0).await {
        Err(StoreError::Fenced(_)) => {}
        other => panic!("stale snapshot part: {other:?}"),
    }
    assert!(!exists(&mut con, "test:snapshot:staging").await);
    assert_eq!(xlen(&mut con, "test:log").await, 1);
    assert_eq!(xlen(&mut con, "test:outcomes").await, 0);
    assert_eq!(get(&mut con, "test:last_seq").await.as_deref(), Some("2"));
    assert!(new.load_snapshot().await.expect("load").is_none());

    // The new owner carries on from the log.
    new.append(&late).await.expect("new owner appends");
    assert_eq!(new.read_after(2, 10).await.expect("read"), vec![late]);
}

#[tokio::test]
async fn lapsed_lease_is_taken_back_when_nobody_else_took_over() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let mut con = raw(&server).await;
    let lease = get(&mut con, "test:lease").await.expect("lease set");
    assert!(
        lease.starts_with(&format!("{}:", journal.epoch())),
        "{lease}"
    );

    // The lease expired (say Redis was down longer than the TTL), but the epoch is still
    // ours: nobody else wrote, so the next append re-lets the lease and goes through.
    let _: () = redis::cmd("DEL")
        .arg("test:lease")
        .query_async(&mut con)
        .await
        .expect("DEL lease");
    journal.append(&batch(1..=1)).await.expect("append re-lets");
    assert_eq!(get(&mut con, "test:lease").await, Some(lease));
    assert!(matches!(
        RedisJournal::open(&config(&server)).await,
        Err(StoreError::Fenced(_))
    ));
}

#[tokio::test]
async fn require_fsync_refuses_everysec_and_accepts_always() {
    let everysec = RedisServer::start(RedisOpts::everysec());
    let strict = RedisJournalConfig {
        require_fsync: true,
        ..config(&everysec)
    };
    match RedisJournal::open(&strict).await {
        Err(StoreError::Misconfigured(why)) => {
            assert!(why.contains("appendfsync=everysec"), "{why}")
        }
        other => panic!("require_fsync on everysec: {other:?}"),
    }
    // The refused engine took no lease and did not move the epoch.
    let mut con = raw(&everysec).await;
    assert_eq!(get(&mut con, "test:lease").await, None);
    assert_eq!(get(&mut con, "test:epoch").await, None);
    // Without the requirement it starts and says what it gets.
    let lax = open(&everysec).await;
    assert_eq!(lax.persistence().durability, Durability::AboutOneSecond);
    assert!(lax.describe().contains("~1 s"), "{}", lax.describe());

    let always = RedisServer::start(RedisOpts::always());
    let strict = RedisJournalConfig {
        require_fsync: true,
        ..config(&always)
    };
    let journal = RedisJournal::open(&strict).await.expect("always is enough");
    assert_eq!(journal.persistence().durability, Durability::EveryBatch);

    let none = RedisServer::start(RedisOpts::no_aof());
    let journal = open(&none).await;
    assert_eq!(journal.persistence().durability, Durability::WhileRunning);
    assert!(matches!(
        RedisJournal::open(&RedisJournalConfig {
            require_fsync: true,
            prefix: "other".into(),
            ..config(&none)
        })
        .await,
        Err(StoreError::Misconfigured(_))
    ));
}

#[tokio::test]
async fn snapshot_round_trip() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    assert_eq!(journal.load_snapshot().await.expect("load"), None);
    journal.append(&batch(1..=5)).await.expect("append");

    let snapshot = Snapshot {
        seq: 5,
        bytes: (0..=255u8).cycle().take(100_000).collect(),
    };
    journal.save_snapshot(&snapshot).await.expect("save");
    assert_eq!(
        journal.load_snapshot().await.expect("load"),
        Some(snapshot.clone())
    );

    // A snapshot claiming entries the log does not hold is refused and changes nothing.
    match journal
        .save_snapshot(&Snapshot {
            seq: 9,
            bytes: vec![1],
        })
        .await
    {
        Err(StoreError::OutOfOrder {
            expected: 5,
            got: 9,
        }) => {}
        other => panic!("snapshot ahead of the log: {other:?}"),
    }
    assert_eq!(journal.load_snapshot().await.expect("load"), Some(snapshot));
}

/// The Redis journal's part size (`SNAPSHOT_PART_BYTES`).
const PART: usize = 1 << 20;

/// A snapshot of `len` bytes that differ from part to part.
fn parted(seq: u64, len: usize) -> Snapshot {
    Snapshot {
        seq,
        bytes: (0..len)
            .map(|i| (i % 251) as u8 ^ (i / PART) as u8)
            .collect(),
    }
}

async fn exists(con: &mut MultiplexedConnection, key: &str) -> bool {
    let n: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(con)
        .await
        .expect("EXISTS");
    n == 1
}

async fn llen(con: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(con)
        .await
        .expect("LLEN")
}

#[tokio::test]
async fn a_snapshot_is_saved_a_part_at_a_time_and_stored_by_its_last_step() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let mut con = raw(&server).await;
    journal.append(&batch(1..=5)).await.expect("append");
    let first = parted(3, 2 * PART + 10);
    journal.save_snapshot(&first).await.expect("save");
    assert_eq!(llen(&mut con, "test:snapshot:parts").await, 3);
    assert!(!exists(&mut con, "test:snapshot:staging").await);

    // The next one, part by part: until its last step the first is what loads.
    let second = parted(5, 3 * PART + PART / 2);
    let mut from = 0;
    let mut steps = Vec::new();
    while from < second.bytes.len() {
        from = journal
            .save_snapshot_part(&second, from)
            .await
            .expect("part");
        steps.push(from);
        if from < second.bytes.len() {
            assert_eq!(
                journal.load_snapshot().await.expect("load"),
                Some(first.clone()),
                "a snapshot half saved replaced the previous one"
            );
        }
    }
    assert_eq!(steps, vec![PART, 2 * PART, 3 * PART, second.bytes.len()]);
    assert_eq!(
        journal.load_snapshot().await.expect("load"),
        Some(second.clone())
    );
    assert_eq!(llen(&mut con, "test:snapshot:parts").await, 4);

    // Parts must follow one another: one past the staged ones writes nothing.
    journal
        .save_snapshot_part(&first, 0)
        .await
        .expect("first part");
    assert!(journal.save_snapshot_part(&first, 2 * PART).await.is_err());
    assert_eq!(llen(&mut con, "test:snapshot:staging").await, 1);
    // An unfinished save is simply left behind, and the next one starts over.
    drop(journal);
    let _: () = redis::cmd("DEL")
        .arg("test:lease")
        .query_async(&mut con)
        .await
        .expect("DEL lease");
    let mut next = open(&server).await;
    assert_eq!(next.load_snapshot().await.expect("load"), Some(second));
    let empty = Snapshot {
        seq: 5,
        bytes: Vec::new(),
    };
    next.save_snapshot(&empty).await.expect("an empty snapshot");
    assert_eq!(next.load_snapshot().await.expect("load"), Some(empty));
    assert!(!exists(&mut con, "test:snapshot:parts").await);
}

#[tokio::test]
async fn a_snapshot_written_whole_by_an_older_gavel_still_loads() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let mut con = raw(&server).await;
    journal.append(&batch(1..=5)).await.expect("append");
    // The layout before parts: the bytes in the hash.
    let _: () = redis::cmd("HSET")
        .arg("test:snapshot")
        .arg("seq")
        .arg("4")
        .arg("bytes")
        .arg(b"old book".as_slice())
        .query_async(&mut con)
        .await
        .expect("HSET");
    assert_eq!(
        journal.load_snapshot().await.expect("load"),
        Some(Snapshot {
            seq: 4,
            bytes: b"old book".to_vec()
        })
    );
    // The next save replaces it in the new layout, bytes field and all.
    let new = parted(5, PART + 1);
    journal.save_snapshot(&new).await.expect("save");
    let old_field: bool = redis::cmd("HEXISTS")
        .arg("test:snapshot")
        .arg("bytes")
        .query_async(&mut con)
        .await
        .expect("HEXISTS");
    assert!(!old_field);
    assert_eq!(journal.load_snapshot().await.expect("load"), Some(new));

    // A hash whose parts went missing is corrupt, not an empty journal.
    let _: () = redis::cmd("DEL")
        .arg("test:snapshot:parts")
        .query_async(&mut con)
        .await
        .expect("DEL");
    assert!(matches!(
        journal.load_snapshot().await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn everything_acknowledged_survives_a_redis_crash() {
    let mut server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    let mut written = Vec::new();
    for n in 0..20u64 {
        let b = batch(n * 10 + 1..=n * 10 + 10);
        journal.append(&b).await.expect("append");
        written.push(b);
    }
    journal
        .save_snapshot(&Snapshot {
            seq: 100,
            bytes: b"book".to_vec(),
        })
        .await
        .expect("snapshot");

    // SIGKILL: no shutdown, no final fsync. appendfsync always must have it all on disk.
    server.restart();

    // The journal's connection died with the server; the next call reconnects by itself.
    let b = batch(201..=210);
    journal.append(&b).await.expect("append after restart");
    written.push(b);
    assert_eq!(read_all(&mut journal, 7).await, written);
    assert_eq!(
        journal.load_snapshot().await.expect("load").map(|s| s.seq),
        Some(100)
    );
    // The lease survived the restart too.
    assert!(matches!(
        RedisJournal::open(&config(&server)).await,
        Err(StoreError::Fenced(_))
    ));
}

#[tokio::test]
async fn appends_fail_fast_while_redis_is_down_and_resume_after() {
    let mut server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    journal.append(&batch(1..=1)).await.expect("append");

    server.kill();
    let started = Instant::now();
    for b in [batch(2..=2), batch(2..=2)] {
        match journal.append(&b).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("append with redis down: {other:?}"),
        }
    }
    assert!(matches!(
        journal.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_millis(3_000));

    server.start_again();
    journal.ping().await.expect("ping after redis is back");
    journal.append(&batch(2..=2)).await.expect("append after");
    assert_eq!(
        read_all(&mut journal, 10).await,
        vec![batch(1..=1), batch(2..=2)]
    );
}

#[tokio::test]
async fn a_stalled_redis_times_out_and_the_retry_settles_the_append() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await; // op timeout 1 s
    journal.append(&batch(1..=1)).await.expect("append");

    // A frozen Redis accepts bytes but answers nothing.
    server.pause();
    let started = Instant::now();
    let stalled = batch(2..=3);
    match journal.append(&stalled).await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("1000 ms"), "{why}"),
        other => panic!("append to a stalled redis: {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2_000),
        "{waited:?}"
    );
    server.resume();

    // The frozen Redis had the request queued and applies it on waking, though nobody
    // waits for the reply any more: the journal could not know. Sending the same batch
    // again settles it.
    let mut con = raw(&server).await;
    assert_eq!(
        get(&mut con, "test:last_seq").await.as_deref(),
        Some("3"),
        "the timed-out append did not land after all; this test no longer covers the \
         settling path"
    );
    journal.append(&stalled).await.expect("retry settles");
    assert_eq!(journal.last_seq().await.expect("last_seq"), 3);
    // Only once in the log.
    assert_eq!(
        read_all(&mut journal, 10).await,
        vec![batch(1..=1), stalled.clone()]
    );
    // And a different batch over the same seqs is still refused.
    assert!(matches!(
        journal.append(&batch(3..=4)).await,
        Err(StoreError::OutOfOrder { expected: 4, .. })
    ));
}

#[tokio::test]
async fn script_cache_flush_is_survived() {
    let server = RedisServer::start(RedisOpts::always());
    let mut journal = open(&server).await;
    journal.append(&batch(1..=1)).await.expect("append");
    let mut con = raw(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .expect("SCRIPT FLUSH");
    journal
        .append(&batch(2..=2))
        .await
        .expect("append reloads script");
}

#[tokio::test]
async fn retention_trims_only_entries_the_snapshot_covers() {
    let server = RedisServer::start(RedisOpts::always());
    let mut con = raw(&server).await;
    // Default: the whole log is kept after a snapshot.
    let mut journal = open(&server).await;
    for range in [1..=5, 6..=10, 11..=15] {
        journal.append(&batch(range)).await.expect("append");
    }
    let at10 = Snapshot {
        seq: 10,
        bytes: vec![7; 16],
    };
    journal.save_snapshot(&at10).await.expect("save");
    assert_eq!(xlen(&mut con, "test:log").await, 3);
    journal.close().await.expect("close");

    // Keeping 5 commands behind the snapshot at seq 15: entries starting at 11 or later stay.
    let mut journal = RedisJournal::open(&RedisJournalConfig {
        retain_commands_behind_snapshot: Some(5),
        ..config(&server)
    })
    .await
    .expect("open with retention");
    journal.append(&batch(16..=20)).await.expect("append");
    let at15 = Snapshot {
        seq: 15,
        bytes: vec![8; 16],
    };
    journal.save_snapshot(&at15).await.expect("save");
    assert_eq!(
        xlen(&mut con, "test:log").await,
        2,
        "entries 1-5 and 6-10 trimmed"
    );
    // Recovery's reads are unaffected: everything after the snapshot is there.
    let tail = journal.read_after(15, 10).await.expect("read");
    let seqs: Vec<u64> = tail
        .iter()
        .flat_map(|b| b.entries.iter().map(|e| e.seq))
        .collect();
    assert_eq!(seqs, (16..=20).collect::<Vec<_>>());
}
