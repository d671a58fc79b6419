//! Recovery benchmark: how fast a restart gets the book back from a file journal of
//! 1,000,000 commands.
//!
//! ```text
//! cargo bench --bench recovery
//! GAVEL_RECOVERY_COMMANDS=200000 cargo bench --bench recovery   # a smaller log
//! ```
//!
//! Builds the log first (not measured): sellers and dealers registering, cars listed for
//! 20 minutes each with about 2,000 lots live at a time, bids from 3,000 dealers on them
//! (at or just above the minimum, one in eight overtaken and refused below it, a quarter
//! with a proxy maximum), and the ticks that
//! close lots, all decided by a real `Market` so the replay does the same work the engine
//! did. Batches are 1 to 64 commands, like group commits under varying load, and carry
//! the outcomes they produced. A snapshot is saved at the batch boundary nearest 99% of
//! the log. Then, three times each:
//!
//! - replay from the log alone: `recover(&mut journal, false, &mut ())` (what
//!   `gavel replay --verify` does), in commands per second (target: 1,000,000/s);
//! - recovery: `FileJournal::open` (lock, scan and CRC-check every frame) and
//!   `recover(&mut journal, true, &mut ())` (newest snapshot + the tail) (target: < 2 s).
//!
//! - what a periodic snapshot of the final market costs each party: `Market::clone` (the
//!   engine's sequencer), `rmp_serde::to_vec` (the snapshot thread) and
//!   `FileJournal::save_snapshot` of the bytes (the journal writer, between appends;
//!   default config: fsync of the file and the directory).
//!
//! The files were just written, so they are read from the page cache: these are warm
//! figures; a cold start adds the time to read the log from disk once.
//!
//! The log goes under `$GAVEL_BENCH_DIR` if set, else under cargo's `CARGO_TARGET_TMPDIR`.

use gavel::auction::{Command, Event as AuctionEvent, LotStatus};
use gavel::engine::recover;
use gavel::market::{Event, Market, Rules};
use gavel::store::file::{FileJournal, FileJournalConfig, FsyncPolicy};
use gavel::store::{Batch, Entry, Journal, JournalRead, OutcomeRecord, Snapshot};
use gavel::vocab::LotId;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SELLERS: u32 = 200;
const DEALERS: u32 = 3_000;
/// Lots kept live at once: a new car is listed whenever fewer are live.
const LIVE_LOTS: usize = 2_000;
/// Simulated time between two commands (about 330 commands/s, a busy market).
const STEP_MS: u64 = 3;
const REPEATS: usize = 3;

/// The generated journals' listings and fixed generator, shared with the audit's tests.
#[path = "../tests/support/population.rs"]
#[allow(dead_code)]
mod population;
use population::{listing, Rng};

/// What went into the log.
#[derive(Default, Debug)]
struct Mix {
    registrations: u64,
    listings: u64,
    bids: u64,
    accepted: u64,
    ticks: u64,
    closed: u64,
    batches: u64,
}

/// Writes `commands` commands to `journal`, decided by a real book, with a snapshot at the
/// batch boundary nearest `snapshot_at`. Returns the book at the end and the mix.
async fn build(journal: &mut FileJournal, commands: u64, snapshot_at: u64) -> (Market, Mix) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut market = Market::new(Rules::default());
    let mut mix = Mix::default();
    let mut now = 1_760_000_000_000u64;
    let mut live: Vec<LotId> = Vec::new();
    let mut batch = Batch::default();
    let mut batch_len = 1 + rng.below(64) as usize;
    let mut snapshot_saved = false;
    let mut events = Vec::new();
    let mut seq = 0u64;
    while seq < commands {
        now += STEP_MS;
        let book = market.book();
        let command = if market.next_deadline().is_some_and(|t| t <= now) {
            mix.ticks += 1;
            Command::Tick
        } else if seq < u64::from(SELLERS) {
            mix.registrations += 1;
            Command::RegisterSeller {
                name: format!("seller-{seq}"),
                token_hash: [seq as u8; 32],
            }
        } else if seq < u64::from(SELLERS + DEALERS) {
            mix.registrations += 1;
            Command::RegisterDealer {
                name: format!("dealer-{seq}"),
                deposit: 1_000_000_000,
                linked_sellers: Vec::new(),
                token_hash: [(seq >> 8) as u8; 32],
            }
        } else if live.len() < LIVE_LOTS {
            mix.listings += 1;
            Command::ListCar {
                seller: gavel::vocab::SellerId(1 + rng.below(u64::from(SELLERS)) as u32),
                listing: Box::new(listing(&mut rng)),
            }
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let lot = book.lot(live[i]).expect("listed lot");
            if lot.status != LotStatus::Live {
                live.swap_remove(i);
                continue;
            }
            let increments = &book.rules().increments;
            let step = increments.increment(lot.price.unwrap_or(lot.listing.start_price));
            // One bid in eight was overtaken by another on its way and arrives below the
            // minimum: rejected, journaled like any other.
            let amount = match rng.below(8) {
                0 => lot.min_next(increments) - step.min(lot.min_next(increments) - 1),
                _ => lot.min_next(increments) + rng.below(3) * step,
            };
            let leader = lot.lead.map(|l| l.dealer.0);
            let mut dealer = 1 + rng.below(u64::from(DEALERS)) as u32;
            if Some(dealer) == leader {
                dealer = dealer % DEALERS + 1;
            }
            let max = (rng.below(4) == 0).then(|| amount + (1 + rng.below(10)) * step);
            mix.bids += 1;
            Command::PlaceBid {
                dealer: gavel::vocab::DealerId(dealer),
                lot: lot.id,
                amount,
                max,
                bid_id: Arc::from(format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    rng.next() >> 32,
                    rng.below(0x1_0000),
                    rng.below(0x1000),
                    rng.below(0x1000),
                    rng.next() & 0xffff_ffff_ffff
                )),
            }
        };
        seq += 1;
        events.clear();
        market.apply_into(seq, now, command.clone().into(), &mut events);
        for e in &events {
            match *e {
                Event::Auction(AuctionEvent::Listed { lot, .. }) => live.push(lot),
                Event::Auction(AuctionEvent::Bid {
                    outcome: gavel::auction::BidOutcome::Accepted { .. },
                    ..
                }) => mix.accepted += 1,
                Event::Auction(AuctionEvent::Closed {
                    lot,
                    outcome,
                    price,
                    leader,
                    seller,
                }) => {
                    mix.closed += 1;
                    batch.outcomes.push(OutcomeRecord {
                        seq,
                        lot,
                        outcome,
                        price,
                        dealer: leader,
                        seller,
                    });
                }
                _ => {}
            }
        }
        batch.entries.push(Entry {
            seq,
            now_ms: now,
            command: command.into(),
        });
        if batch.entries.len() >= batch_len || seq == commands {
            journal.append(&batch).await.expect("append");
            mix.batches += 1;
            batch = Batch::default();
            batch_len = 1 + rng.below(64) as usize;
            if !snapshot_saved && seq >= snapshot_at {
                let bytes = rmp_serde::to_vec(&market).expect("serialize the market");
                journal
                    .save_snapshot(&Snapshot { seq, bytes })
                    .await
                    .expect("save snapshot");
                snapshot_saved = true;
            }
        }
    }
    (market, mix)
}

fn bench_dir() -> PathBuf {
    std::env::var_os("GAVEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

fn dir_bytes(dir: &std::path::Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// CPU time this process has used so far (user + system, all threads), from
/// `/proc/self/stat` in clock ticks (100 per second on Linux): the machine may be shared,
/// and CPU time says what the work costs whatever else runs beside it.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a smoke
    // run on a small log. A filter argument that does not name this bench skips it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"recovery".contains(a.as_str()))
    {
        return;
    }
    let commands: u64 = std::env::var("GAVEL_RECOVERY_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 20_000 });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let root = bench_dir();
    std::fs::create_dir_all(&root).expect("bench dir");
    let dir = tempfile::tempdir_in(&root).expect("tempdir");

    // Setup: the log, written without per-batch fsync (the bytes are the same).
    let started = Instant::now();
    let fast = FileJournalConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(100)),
        ..FileJournalConfig::default()
    };
    let (built, mix) = rt.block_on(async {
        let mut j = FileJournal::open(dir.path(), fast).await.expect("open");
        let out = build(&mut j, commands, commands - commands / 100).await;
        j.close().await.expect("close");
        out
    });
    println!(
        "built {commands} commands in {:.1?} under {}: {mix:?}",
        started.elapsed(),
        dir.path().display()
    );
    println!(
        "  log {:.1} MiB in segments, snapshot {:.1} MiB; {} lots, {} dealers",
        dir_bytes(dir.path(), "journal-") as f64 / (1 << 20) as f64,
        dir_bytes(dir.path(), "snapshot-") as f64 / (1 << 20) as f64,
        built.book().lots().len(),
        built.book().dealers().len()
    );

    // (a) Replay from the log alone; first how much of it is reading and decoding.
    let mut replays = Vec::new();
    let mut replay_cpu = Vec::new();
    let mut reads = Vec::new();
    rt.block_on(async {
        let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
            .await
            .expect("open");
        for _ in 0..REPEATS {
            let t = Instant::now();
            let (mut after, mut seen) = (0, 0u64);
            loop {
                let page = j.read_after(after, 256).await.expect("read");
                let Some(last) = page.last() else { break };
                after = last.last_seq();
                seen += page.iter().map(|b| b.entries.len() as u64).sum::<u64>();
            }
            reads.push(t.elapsed());
            assert_eq!(seen, commands);
        }
        for _ in 0..REPEATS {
            let (t, cpu) = (Instant::now(), cpu_time());
            let r = recover(&mut j, false, &mut ()).await.expect("replay");
            replays.push(t.elapsed());
            replay_cpu.push(cpu_time() - cpu);
            assert_eq!(r.replayed, commands);
            assert!(
                r.market == built,
                "the replayed book differs from the built one"
            );
        }
    });
    let best = *replays.iter().min().expect("runs");
    println!(
        "(a) replay from the log alone, {commands} commands: best {best:.2?} ({:.2} M commands/s), \
         median {:.2?}; runs {replays:.2?}; CPU time median {:.2?}; reading and decoding \
         alone: median {:.2?}",
        commands as f64 / best.as_secs_f64() / 1e6,
        median(replays.clone()),
        median(replay_cpu),
        median(reads)
    );

    // (b) Recovery: open (scan + CRC of every frame), then snapshot + tail.
    let mut opens = Vec::new();
    let mut recovers = Vec::new();
    let mut totals = Vec::new();
    let mut total_cpu = Vec::new();
    let mut tail = 0;
    let mut snapshot_seq = 0;
    for _ in 0..REPEATS {
        rt.block_on(async {
            let (t, cpu) = (Instant::now(), cpu_time());
            let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
                .await
                .expect("open");
            let opened = t.elapsed();
            let r = recover(&mut j, true, &mut ()).await.expect("recover");
            let total = t.elapsed();
            total_cpu.push(cpu_time() - cpu);
            assert!(
                r.market == built,
                "the recovered book differs from the built one"
            );
            tail = r.replayed;
            snapshot_seq = r.snapshot_seq;
            opens.push(opened);
            recovers.push(total - opened);
            totals.push(total);
            drop(j);
        });
    }
    println!(
        "(b) recovery = open + snapshot (seq {snapshot_seq}) + tail ({tail} commands): total \
         median {:.2?} (open {:.2?}, snapshot + tail {:.2?}); totals {totals:.2?}; CPU time \
         median {:.2?}",
        median(totals.clone()),
        median(opens),
        median(recovers),
        median(total_cpu)
    );

    // (c) A periodic snapshot of this book: what the sequencer pays (a clone), what the
    // snapshot thread pays (the sorted serialization), and what the writer's save costs.
    let mut clones = Vec::new();
    let mut serializations = Vec::new();
    let mut saves = Vec::new();
    let mut size = 0;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let copy = built.clone();
        clones.push(t.elapsed());
        let t = Instant::now();
        let bytes = rmp_serde::to_vec(&copy).expect("serialize the book");
        serializations.push(t.elapsed());
        size = bytes.len();
        drop(copy);
        rt.block_on(async {
            let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
                .await
                .expect("open");
            let seq = built.last_seq();
            let t = Instant::now();
            j.save_snapshot(&Snapshot { seq, bytes })
                .await
                .expect("save snapshot");
            saves.push(t.elapsed());
            j.close().await.expect("close");
        });
    }
    println!(
        "(c) snapshot of the final book ({:.1} MiB): clone median {:.2?} (runs {clones:.2?}); \
         rmp_serde::to_vec median {:.2?} (runs {serializations:.2?}); FileJournal::save_snapshot \
         median {:.2?} (runs {saves:.2?})",
        size as f64 / (1 << 20) as f64,
        median(clones.clone()),
        median(serializations.clone()),
        median(saves.clone()),
    );
}
