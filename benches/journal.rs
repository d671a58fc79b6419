//! Journal benchmarks: durable commands per second at write batches of 1, 16 and 256
//! `PlaceBid`s, and replay speed (read + decode, commands per second).
//!
//! ```text
//! cargo bench --bench journal                 # everything
//! cargo bench --bench journal -- file_journal # one backend
//! ```
//!
//! The file journal writes under `$GAVEL_BENCH_DIR` if set, else under cargo's
//! `CARGO_TARGET_TMPDIR` (inside the target directory, on the same disk as the project —
//! not `/tmp`, which may be a tmpfs where fdatasync costs nothing and proves nothing).
//!
//! Each backend is a function that opens its journal and calls the generic
//! [`durable_appends`] and [`replay`] with it, so the figures of different backends
//! measure the same thing; a new backend (Redis) is one more such function and one more
//! name in `criterion_group!`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gavel::auction::Command as AuctionCommand;
use gavel::market::Command;
use gavel::store::file::{FileJournal, FileJournalConfig, FsyncPolicy};
use gavel::store::{Batch, Entry, Journal};
use gavel::vocab::{DealerId, LotId};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Write batch sizes: one bid per fsync (an idle market), a typical group commit under
/// load, and a burst in the last seconds of a popular lot.
const BATCH_SIZES: [u64; 3] = [1, 16, 256];
/// Commands in the log that the replay benchmarks read back.
const REPLAY_COMMANDS: u64 = 1_000_000;
/// Batch size of that log: a typical group commit.
const REPLAY_BATCH: u64 = 16;

/// A realistic bid: one of a few thousand dealers on one of several hundred lots, an
/// amount around 123,000 yuan in fen, a proxy ceiling on a quarter of them, and a
/// client-chosen UUID bid id (36 characters, what the reference client sends).
fn bid(seq: u64) -> Entry {
    // A fixed LCG, so every run writes the same bytes.
    let r = seq
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let amount = 12_000_000 + (r >> 40) % 1_000 * 50_000;
    Entry {
        seq,
        now_ms: 1_760_000_000_000 + seq / 4,
        command: Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1 + (r % 3_000) as u32),
            lot: LotId(1 + ((r >> 16) % 800) as u32),
            amount,
            max: r.is_multiple_of(4).then_some(amount + 2_000_000),
            bid_id: format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                r >> 32,
                (r >> 16) & 0xffff,
                r & 0xfff,
                (r >> 12) & 0xfff,
                r.rotate_left(17) & 0xffff_ffff_ffff
            )
            .into(),
        }),
    }
}

fn batch(first_seq: u64, n: u64) -> Batch {
    Batch {
        entries: (first_seq..first_seq + n).map(bid).collect(),
        outcomes: Vec::new(),
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_dir() -> PathBuf {
    std::env::var_os("GAVEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// Durable appends through `open()`'s journal, one fresh journal per batch size.
/// Throughput is in commands (`PlaceBid`s), each counted once its batch is durable.
fn durable_appends<J: Journal>(
    c: &mut Criterion,
    group_name: &str,
    rt: &Runtime,
    mut open: impl FnMut() -> J,
) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for n in BATCH_SIZES {
        let mut journal = open();
        let mut template = batch(1, n);
        let mut next_seq = 1u64;
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("durable_batch", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        // Renumbering in place keeps allocation out of the measurement.
                        for (i, e) in template.entries.iter_mut().enumerate() {
                            e.seq = next_seq + i as u64;
                        }
                        journal.append(&template).await.expect("append");
                        next_seq += n;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// Appends `commands` bids in batches of `batch_size` (setup for [`replay`]).
fn fill<J: Journal>(rt: &Runtime, journal: &mut J, commands: u64, batch_size: u64) {
    rt.block_on(async {
        let mut seq = 1;
        while seq <= commands {
            let n = batch_size.min(commands - seq + 1);
            journal.append(&batch(seq, n)).await.expect("fill");
            seq += n;
        }
    })
}

/// Reads the whole log back and decodes it, as recovery does; throughput in commands.
fn replay<J: Journal>(
    c: &mut Criterion,
    group_name: &str,
    rt: &Runtime,
    journal: &mut J,
    commands: u64,
) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.throughput(Throughput::Elements(commands));
    group.bench_function(BenchmarkId::new("replay", commands), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut after = 0;
                    let mut seen = 0u64;
                    loop {
                        let page = journal.read_after(after, 1024).await.expect("read");
                        let Some(last) = page.last() else { break };
                        after = last.last_seq();
                        for b in &page {
                            for e in &b.entries {
                                seen += black_box(e).seq & 1;
                            }
                        }
                    }
                    assert_eq!(after, commands);
                    black_box(seen);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn file_journal(c: &mut Criterion) {
    let rt = runtime();
    let root = bench_dir();
    std::fs::create_dir_all(&root).expect("bench dir");
    let payload = rmp_serde::to_vec_named(&batch(1, 256))
        .expect("encode")
        .len();
    eprintln!(
        "file journal under {}: {:.0} bytes per PlaceBid in a 256-bid frame",
        root.display(),
        payload as f64 / 256.0
    );

    let mut dirs = Vec::new();
    durable_appends(c, "file_journal", &rt, || {
        let dir = tempfile::tempdir_in(&root).expect("tempdir");
        let journal = rt
            .block_on(FileJournal::open(dir.path(), FileJournalConfig::default()))
            .expect("open");
        dirs.push(dir);
        journal
    });
    drop(dirs);

    // The replay log is written without per-batch fsync (it is setup, not measurement).
    let dir = tempfile::tempdir_in(&root).expect("tempdir");
    let fast = FileJournalConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        ..FileJournalConfig::default()
    };
    let mut journal = rt
        .block_on(FileJournal::open(dir.path(), fast))
        .expect("open");
    fill(&rt, &mut journal, REPLAY_COMMANDS, REPLAY_BATCH);
    rt.block_on(journal.close()).expect("close");

    let mut journal = rt
        .block_on(FileJournal::open(dir.path(), FileJournalConfig::default()))
        .expect("open");
    replay(c, "file_journal", &rt, &mut journal, REPLAY_COMMANDS);
    drop(journal);

    // Opening the log: lock, scan and verify every frame (CRC and seq continuity). This is
    // paid at every start before the snapshot and the tail are read.
    let mut group = c.benchmark_group("file_journal");
    group.sample_size(10);
    group.throughput(Throughput::Elements(REPLAY_COMMANDS));
    group.bench_function(BenchmarkId::new("open_verify", REPLAY_COMMANDS), |b| {
        b.iter(|| {
            let journal = rt
                .block_on(FileJournal::open(dir.path(), FileJournalConfig::default()))
                .expect("open");
            assert_eq!(journal.last_seq(), REPLAY_COMMANDS);
        })
    });
    group.finish();
}

criterion_group!(benches, file_journal);
criterion_main!(benches);
