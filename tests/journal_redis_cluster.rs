//! The Redis journal on a real Redis Cluster (three masters, one replica each, started by
//! each test): markets in different slots on different masters, the lease, a manual
//! failover and a master crash under appends, and `gavel replay --verify`.
//!
//! Each test starts its own cluster and drops (kills) it at its end. The cluster's admin
//! calls block, so the tests run on a multi-threaded runtime and call them through
//! `spawn_blocking` while journal tasks run.

mod support;

use gavel::auction::Command as AuctionCommand;
use gavel::market::Command;
use gavel::store::{
    Batch, Entry, Journal, JournalRead, RedisJournal, RedisJournalConfig, RedisLog, Snapshot,
    StoreError,
};
use gavel::vocab::{DealerId, LotId};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::gavel::{gavel_bin, Gavel, GavelOpts, JournalArg};
use support::redis_cluster::RedisCluster;
use support::redis_server::Aof;

async fn start_cluster(aof: Aof) -> Arc<RedisCluster> {
    support::init_tracing();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start(aof))
        .await
        .expect("start the cluster");
    eprintln!("cluster of six nodes up in {:.1?}", started.elapsed());
    Arc::new(cluster)
}

fn config(cluster: &RedisCluster, prefix: &str) -> RedisJournalConfig {
    RedisJournalConfig {
        url: String::new(),
        cluster_urls: cluster.seeds(),
        prefix: prefix.into(),
        lease_ttl_ms: 10_000,
        op_timeout_ms: 2_000,
        ..RedisJournalConfig::default()
    }
}

fn bid(seq: u64) -> Entry {
    Entry {
        seq,
        now_ms: 1_700_000_000_000 + seq * 7,
        command: Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1 + (seq % 50) as u32),
            lot: LotId(1 + (seq % 20) as u32),
            amount: 8_500_000 + seq * 10_000,
            max: None,
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

/// Reads the whole log, as recovery and replay do.
async fn read_all(journal: &mut impl JournalRead) -> Vec<Batch> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let batches = journal.read_after(after, 64).await.expect("read_after");
        let Some(last) = batches.last() else {
            return all;
        };
        after = last.last_seq();
        all.extend(batches);
    }
}

/// A raw connection to one node, for looking behind the journal's back.
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to node")
}

/// Appends `b` the way the engine does: after `Unavailable` (outcome unknown) the same
/// batch is sent again until Redis answers definitely; `Ok` from a retry means an earlier
/// attempt or this one is durable. Returns how many attempts failed `Unavailable`.
async fn append_until_settled(journal: &mut RedisJournal, b: &Batch, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    let mut unavailable = 0;
    loop {
        match journal.append(b).await {
            Ok(()) => return unavailable,
            Err(StoreError::Unavailable(why)) => {
                unavailable += 1;
                assert!(
                    Instant::now() < deadline,
                    "batch {}-{} still unavailable after {within:?}: {why}",
                    b.first_seq(),
                    b.last_seq()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!(
                "batch {}-{}: {other:?} (only Unavailable may happen)",
                b.first_seq(),
                b.last_seq()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_markets_on_two_masters_append_snapshot_and_recover() {
    let cluster = start_cluster(Aof::Off).await;
    let north_master = cluster.master_for_key("{m:north}:log");
    let south_master = cluster.master_for_key("{m:south}:log");
    assert_ne!(
        north_master, south_master,
        "the two markets' slots should be served by different masters"
    );

    let market = |prefix: &'static str| {
        let config = config(&cluster, prefix);
        async move {
            let mut journal = RedisJournal::open(&config).await.expect("open");
            let describe = journal.describe();
            assert!(describe.contains("cluster ["), "{describe}");
            assert!(describe.contains(prefix), "{describe}");
            let written: Vec<Batch> = (0..40).map(|i| batch(i * 5 + 1..=i * 5 + 5)).collect();
            for b in &written[..20] {
                journal.append(b).await.expect("append");
            }
            // A snapshot larger than one part (1 MiB), so it goes in several calls.
            let snapshot = Snapshot {
                seq: 100,
                bytes: (0..2_500_000u32).map(|i| (i % 251) as u8).collect(),
            };
            journal.save_snapshot(&snapshot).await.expect("snapshot");
            for b in &written[20..] {
                journal.append(b).await.expect("append");
            }
            assert_eq!(journal.last_seq().await.expect("last_seq"), 200);
            assert_eq!(read_all(&mut journal).await, written);
            journal.close().await.expect("close");

            // Recovery: a new engine takes the lease, loads the snapshot and the log
            // after it.
            let mut again = RedisJournal::open(&config).await.expect("reopen");
            let loaded = again
                .load_snapshot()
                .await
                .expect("load")
                .expect("a snapshot");
            assert_eq!(loaded, snapshot);
            assert_eq!(
                again.read_after(100, 64).await.expect("read"),
                written[20..]
            );
            again
                .append(&batch(201..=201))
                .await
                .expect("append after recovery");
            again.close().await.expect("close");
            written
        }
    };
    let (north, south) = tokio::join!(market("{m:north}"), market("{m:south}"));
    assert_eq!(north, south, "both markets wrote the same batches");

    // Each market's keys are where its slot is: on its own master, and only there.
    let xlen = |port: u16, key: &str| -> Option<u64> {
        redis::cmd("XLEN").arg(key).query(&mut node(port)).ok()
    };
    assert_eq!(xlen(north_master, "{m:north}:log"), Some(41));
    assert_eq!(xlen(south_master, "{m:south}:log"), Some(41));
    // Asked of the other master, a key is MOVED (an error), never an empty stream.
    assert_eq!(xlen(south_master, "{m:north}:log"), None);

    // A read-only view (replay, audit) reads it back without the lease.
    let mut log = RedisLog::open(&config(&cluster, "{m:north}"))
        .await
        .expect("read-only view");
    assert_eq!(read_all(&mut log).await.len(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_fences_a_second_engine_on_the_cluster() {
    let cluster = start_cluster(Aof::Off).await;
    let short = RedisJournalConfig {
        lease_ttl_ms: 600,
        ..config(&cluster, "{m:west}")
    };
    let mut first = RedisJournal::open(&short).await.expect("first engine");
    first.append(&batch(1..=2)).await.expect("append");
    match RedisJournal::open(&short).await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("held"), "{why}"),
        other => panic!("second engine: {other:?}"),
    }
    // Renewal keeps the lease past its TTL while the owner lives.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        matches!(RedisJournal::open(&short).await, Err(StoreError::Fenced(_))),
        "the lease lapsed while its owner was alive"
    );

    // The owner stalls past its TTL (simulated: the lease key vanishes, as it would
    // expire) and another engine takes over: the first's writes are then fenced.
    let master = cluster.master_for_key("{m:west}:lease");
    let _: i64 = redis::cmd("DEL")
        .arg("{m:west}:lease")
        .query(&mut node(master))
        .expect("DEL lease");
    let mut second = RedisJournal::open(&short).await.expect("takeover");
    assert_eq!(second.epoch(), first.epoch() + 1);
    match first.append(&batch(3..=3)).await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("epoch=2"), "{why}"),
        other => panic!("stale append: {other:?}"),
    }
    second
        .append(&batch(3..=4))
        .await
        .expect("new owner appends");
    assert_eq!(
        read_all(&mut second).await,
        vec![batch(1..=2), batch(3..=4)]
    );

    // A dropped owner is taken over once its TTL runs out, with a higher epoch.
    let second_epoch = second.epoch();
    drop(second);
    drop(first);
    assert!(matches!(
        RedisJournal::open(&short).await,
        Err(StoreError::Fenced(_))
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let third = RedisJournal::open(&short)
        .await
        .expect("takeover after ttl");
    assert!(third.epoch() > second_epoch);
    third.close().await.expect("close");
}

/// A manual `CLUSTER FAILOVER` of the master holding `{m:north}`, while one engine appends
/// in a loop with `appendfsync always` and `replicas_to_wait = 1`: every append that
/// returned `Ok` is read back from the new master, and appends resume after the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_under_appends_loses_nothing_acknowledged() {
    let cluster = start_cluster(Aof::Always).await;
    let waited = RedisJournalConfig {
        replicas_to_wait: 1,
        replica_wait_timeout_ms: 500,
        ..config(&cluster, "{m:north}")
    };
    let mut journal = RedisJournal::open(&waited).await.expect("open");
    let describe = journal.describe();
    assert!(describe.contains("appendfsync=always"), "{describe}");
    assert!(describe.contains("replicas_to_wait=1"), "{describe}");

    let failed_over = Arc::new(AtomicBool::new(false));
    let switch = {
        let (cluster, failed_over) = (cluster.clone(), failed_over.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let masters = tokio::task::spawn_blocking(move || cluster.failover("{m:north}:log"))
                .await
                .expect("failover");
            failed_over.store(true, Ordering::SeqCst);
            (masters, started.elapsed())
        })
    };

    let mut acked: Vec<Batch> = Vec::new();
    let (mut unavailable, mut after_switch) = (0, 0);
    let mut seq = 1;
    while after_switch < 50 {
        let b = batch(seq..=seq + 1);
        unavailable += append_until_settled(&mut journal, &b, Duration::from_secs(20)).await;
        acked.push(b);
        seq += 2;
        if failed_over.load(Ordering::SeqCst) {
            after_switch += 1;
        }
    }
    let ((old, new), took) = switch.await.expect("switch task");
    eprintln!(
        "failover {old} -> {new} in {took:.1?}; {} appends acknowledged, {unavailable} \
         attempts unavailable during the switch",
        acked.len()
    );
    assert_ne!(old, new);
    assert_eq!(cluster.master_for_key("{m:north}:log"), new);
    // The scripts were loaded on the old master only (Redis does not replicate its script
    // cache): on the new one the journal met NOSCRIPT and sent them as EVAL.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node(new))
        .expect("INFO");
    assert!(stats.contains("cmdstat_eval:calls="), "{stats}");

    // Everything acknowledged is on the new master, in order, and nothing else is.
    let mut log = RedisLog::open(&waited).await.expect("read-only view");
    assert_eq!(read_all(&mut log).await, acked);
    assert_eq!(
        journal.last_seq().await.expect("last_seq"),
        acked.last().expect("acked").last_seq()
    );
    journal.close().await.expect("close");
}

/// A master killed (SIGKILL) after appends with `replicas_to_wait = 1`: its replica takes
/// over on its own, and holds every acknowledged append. The new master has no replica
/// left, so a further append cannot be acknowledged as durable: `Unavailable`, not `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_loses_nothing_acknowledged_with_replicas_to_wait() {
    let cluster = start_cluster(Aof::Always).await;
    let waited = RedisJournalConfig {
        replicas_to_wait: 1,
        replica_wait_timeout_ms: 300,
        ..config(&cluster, "{m:south}")
    };
    let mut journal = RedisJournal::open(&waited).await.expect("open");
    let acked: Vec<Batch> = (0..30).map(|i| batch(i * 3 + 1..=i * 3 + 3)).collect();
    for b in &acked {
        journal.append(b).await.expect("append");
    }
    let mut cluster = Arc::try_unwrap(cluster).unwrap_or_else(|_| panic!("one owner"));
    let started = Instant::now();
    let (cluster, (killed, new)) = tokio::task::spawn_blocking(move || {
        let masters = cluster.kill_master_for("{m:south}:log");
        (cluster, masters)
    })
    .await
    .expect("kill");
    eprintln!(
        "master {killed} killed; {new} took over in {:.1?}",
        started.elapsed()
    );
    let mut log = RedisLog::open(&waited).await.expect("read-only view");
    assert_eq!(read_all(&mut log).await, acked);

    let next = batch(91..=91);
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = loop {
        match journal.append(&next).await {
            Err(StoreError::Unavailable(why)) if why.contains("replicas") => break why,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                // Still reconnecting to the new master.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("append without a replica: {other:?}"),
        }
    };
    assert!(why.contains("0 of 1"), "{why}");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_verify_reads_a_market_on_the_cluster() {
    let cluster = start_cluster(Aof::Off).await;
    let seeds = cluster.seeds().join(",");
    // `--redis ""`: the cluster seeds (from the environment) select the journal.
    let journal = JournalArg::Redis {
        url: String::new(),
        prefix: "{m:east}".into(),
    };
    let server =
        Gavel::start(&GavelOpts::new(journal.clone()).env("GAVEL_REDIS_CLUSTER_URLS", &seeds))
            .await
            .expect("gavel serves on the cluster");
    server.seller("Wang Fang").await;
    server.seller("Li Wei").await;

    // Beside the running engine, read-only, with the seeds given on the command line.
    let out = std::process::Command::new(gavel_bin())
        .args(["replay", "--verify", "--redis-cluster-urls", &seeds])
        .env_remove("GAVEL_REDIS_URL")
        .env_remove("GAVEL_REDIS_CLUSTER_URLS")
        .env("GAVEL_STORE__REDIS_PREFIX", "{m:east}")
        .env("GAVEL_LOG__FILTER", "warn")
        .output()
        .expect("run gavel replay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "replay failed:\n{text}");
    assert!(text.contains("all agree"), "{text}");

    // The alliance's consumer follows the engine onto the cluster: its group is on the
    // outcomes stream, on the master of the market's slot.
    let master = cluster.master_for_key("{m:east}:outcomes");
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("{m:east}:outcomes")
        .query(&mut node(master))
        .expect("XINFO GROUPS");
    assert!(format!("{groups:?}").contains("alliance"), "{groups:?}");

    // A prefix without a hash tag is refused before anything connects.
    let out = std::process::Command::new(gavel_bin())
        .args(["replay", "--verify"])
        .env_remove("GAVEL_REDIS_URL")
        .env("GAVEL_REDIS_CLUSTER_URLS", &seeds)
        .env("GAVEL_STORE__REDIS_PREFIX", "east")
        .output()
        .expect("run gavel replay");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("hash tag"), "{text}");
    drop(server);
}
