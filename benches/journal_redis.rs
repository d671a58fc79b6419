//! Durable commands per second through `RedisJournal`, against a redis-server this bench
//! starts itself (AOF `appendfsync always`, then `everysec`), at write batches of 1, 16,
//! 256 and 1024 `PlaceBid` entries.
//!
//! One append in flight at a time, as the engine does: a batch must be durable before the
//! next one (whose first seq follows it) is sent. Each append is one `EVALSHA` round trip
//! and, under `always`, one AOF write + fsync in Redis. Throughput is in commands
//! (entries), not appends.
//!
//! Run: `cargo bench --bench journal_redis`. The server's temp dir follows `TMPDIR`, so
//! `TMPDIR=/some/disk cargo bench ...` measures that disk's fsync.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gavel::auction::Command as AuctionCommand;
use gavel::market::Command;
use gavel::store::{Batch, Entry, Journal, JournalRead, RedisJournal, RedisJournalConfig};
use gavel::vocab::{DealerId, LotId};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use redis_server::{RedisOpts, RedisServer};

/// A bid as the gateway produces it: a dealer among a few thousand, a lot among a couple
/// of thousand, a price around 100,000 yuan in fen, a proxy ceiling on every fourth bid, and
/// a client-chosen bid id of the length a UUID-ish client id has.
fn bid(seq: u64) -> Entry {
    Entry {
        seq,
        now_ms: 1_700_000_000_000 + seq / 20,
        command: Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1 + (seq * 7919 % 3000) as u32),
            lot: LotId(1 + (seq * 104_729 % 2000) as u32),
            amount: 10_000_000 + (seq % 500) * 50_000,
            max: seq.is_multiple_of(4).then_some(12_000_000),
            bid_id: Arc::from(format!(
                "c-{:016x}-{:06}",
                seq.wrapping_mul(0x9e37_79b9),
                seq
            )),
        }),
    }
}

/// Appends `iters` batches of `size` bids with consecutive seqs from `*next`.
async fn run(journal: &mut RedisJournal, next: &mut u64, size: u64, iters: u64) -> Duration {
    let mut batch = Batch {
        entries: (0..size).map(|i| bid(*next + i)).collect(),
        outcomes: Vec::new(),
    };
    let started = Instant::now();
    for _ in 0..iters {
        for (i, entry) in batch.entries.iter_mut().enumerate() {
            entry.seq = *next + i as u64;
        }
        journal.append(&batch).await.expect("append");
        *next += size;
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for (name, opts) in [
        ("always", RedisOpts::always()),
        ("everysec", RedisOpts::everysec()),
    ] {
        let server = RedisServer::start(opts);
        let mut journal = rt
            .block_on(RedisJournal::open(&RedisJournalConfig {
                url: server.url(),
                prefix: "bench".into(),
                ..RedisJournalConfig::default()
            }))
            .expect("open journal");
        eprintln!("journal: {}", journal.describe());
        let mut next = 1;
        let mut group = c.benchmark_group(format!("journal_redis/{name}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(5));
        // 1024 is beyond the three sizes: it is the batch group commit reaches by
        // itself when ~300k bids/s arrive and each fsync takes ~3 ms.
        for size in [1u64, 16, 256, 1024] {
            group.throughput(Throughput::Elements(size));
            group.bench_function(BenchmarkId::new("place_bid_batch", size), |b| {
                b.iter_custom(|iters| rt.block_on(run(&mut journal, &mut next, size, iters)))
            });
        }
        group.finish();
        // Redis's own view of the cost of an append (Lua + XADDs, not the AOF fsync, which
        // happens after the command), to tell client and network time from server time.
        let stats: String = rt.block_on(async {
            let mut con = redis::Client::open(server.url())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut con)
                .await
                .expect("INFO commandstats")
        });
        for line in stats.lines().filter(|l| l.starts_with("cmdstat_evalsha")) {
            eprintln!("redis for journal_redis/{name}: {line}");
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
