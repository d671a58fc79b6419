//! How long do bid acks stall around a periodic snapshot of a book of ~1M receipts?
//!
//! ```text
//! cargo run --release --example snapstall -- file DIR
//! cargo run --release --example snapstall -- redis redis://127.0.0.1:PORT/   # an empty Redis
//! FILL=1000000 TRICKLE_TASKS=8 ...                                           # the defaults
//! ```
//!
//! Fills an engine with FILL bids (3,000 dealers, 2,000 lots, a unique bid id each, so one
//! receipt each), with `snapshot_every_commands` set so that the one snapshot falls 2,000
//! commands into an 8 s open-loop trickle of TRICKLE_TASKS bids per 2 ms (one spawned
//! submit per due time, so a stall shows as the latency of the bids due during it, not as
//! a backlog after it). Prints the trickle's ack latency and every 100 ms window (by due
//! time) where an ack took more than 20 ms; the engine logs `snapshot saved` with the
//! serialize and save times.
use gavel::auction::{Command as AuctionCommand, Listing};
use gavel::engine::{spawn, EngineConfig, EngineHandle};
use gavel::market::{Command, Rules};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::{Journal, RedisJournal, RedisJournalConfig};
use gavel::vocab::{DealerId, Inspection, LotId, SellerId, Vehicle};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEALERS: u32 = 3_000;
const LOTS: u32 = 2_000;

fn listing() -> Box<Listing> {
    Box::new(Listing {
        vehicle: Vehicle {
            vin: "1M8GDM9AXKP042788".into(),
            make: "Volkswagen".into(),
            model: "Sagitar".into(),
            year: 2019,
            mileage_km: 60_000,
            city: None,
        },
        inspection: Inspection {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 4,
            notes: String::new(),
        },
        start_price: 1_000_000,
        reserve: 2_000_000,
        buy_now: None,
        starts_at: None,
        duration_ms: Some(3_600_000),
    })
}

fn bid(i: u64) -> Command {
    let lot = (i % u64::from(LOTS)) as u32 + 1;
    let round = i / u64::from(LOTS);
    Command::Auction(AuctionCommand::PlaceBid {
        dealer: DealerId((i % u64::from(DEALERS)) as u32 + 1),
        lot: LotId(lot),
        amount: 1_000_000 + (round + 1) * 1_000_000,
        max: None,
        bid_id: Arc::from(format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            i.wrapping_mul(0x9E37_79B9) as u32,
            i % 0xffff,
            i % 0xfff,
            (i >> 12) % 0xfff,
            i
        )),
    })
}

async fn run<J: Journal>(journal: J) {
    let fill: u64 = std::env::var("FILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tasks: u64 = std::env::var("TRICKLE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(1);
    let setup = 1 + u64::from(DEALERS) + u64::from(LOTS);
    let config = EngineConfig {
        snapshot_every_commands: setup + fill + 2_000,
        snapshot_every: Duration::from_secs(3_600),
        max_wait: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let (h, task) = spawn(journal, Rules::default(), (), config)
        .await
        .expect("engine");
    h.submit(Command::Auction(AuctionCommand::RegisterSeller {
        name: "s".into(),
        token_hash: [1; 32],
    }))
    .await
    .expect("seller");
    let t = Instant::now();
    parallel(&h, 512, u64::from(DEALERS), |i| {
        Command::Auction(AuctionCommand::RegisterDealer {
            name: format!("d{i}"),
            deposit: 100_000_000_000,
            linked_sellers: vec![],
            token_hash: [(i % 200) as u8; 32],
        })
    })
    .await;
    parallel(&h, 512, u64::from(LOTS), |_| {
        Command::Auction(AuctionCommand::ListCar {
            seller: SellerId(1),
            listing: listing(),
        })
    })
    .await;
    parallel(&h, 512, fill, bid).await;
    println!("filled {fill} bids in {:.1?}", t.elapsed());

    // The trickle: open loop, one spawned submit per due time (every 2 ms / tasks), so a
    // stall shows as latency of the bids due during it, not as a backlog after it.
    let start = Instant::now() + Duration::from_millis(50);
    let run_for = Duration::from_secs(8);
    let every = Duration::from_micros(2_000 / tasks);
    let mut joins = Vec::new();
    let mut n = 0u64;
    loop {
        let due = start + every * n as u32;
        if due > start + run_for {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let h = h.clone();
        joins.push(tokio::spawn(async move {
            let r = h.submit(bid(10_000_000 + n)).await;
            (due - start, due.elapsed(), r.is_ok())
        }));
        n += 1;
    }
    let mut all = Vec::new();
    for j in joins {
        all.push(j.await.expect("join"));
    }
    let failed = all.iter().filter(|x| !x.2).count();
    let mut lat: Vec<Duration> = all.iter().map(|x| x.1).collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "trickle: {} bids ({failed} failed); ack latency p50 {:.1?} p99 {:.1?} p99.9 {:.1?} max {:.1?}",
        lat.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat[lat.len() - 1]
    );
    // 100 ms windows (by due time) where some ack took > 20 ms.
    let mut windows = std::collections::BTreeMap::<u128, (usize, Duration)>::new();
    for (due, l, _) in &all {
        let w = windows.entry(due.as_millis() / 100).or_default();
        w.0 += 1;
        w.1 = w.1.max(*l);
    }
    let slow: Vec<String> = windows
        .iter()
        .filter(|(_, (_, m))| *m > Duration::from_millis(20))
        .map(|(w, (n, m))| format!("{}ms:{n}x max {}ms", w * 100, m.as_millis()))
        .collect();
    println!(
        "windows with an ack > 20 ms: {}",
        if slow.is_empty() {
            "none".into()
        } else {
            slow.join(", ")
        }
    );
    h.close();
    drop(h);
    let _ = task.await;
}

async fn parallel(
    h: &EngineHandle,
    width: u64,
    n: u64,
    make: impl Fn(u64) -> Command + Send + Sync + 'static,
) {
    let make = Arc::new(make);
    let mut joins = Vec::new();
    for k in 0..width.min(n) {
        let h = h.clone();
        let make = make.clone();
        joins.push(tokio::spawn(async move {
            let mut i = k;
            while i < n {
                h.submit(make(i)).await.expect("durable");
                i += width;
            }
        }));
    }
    for j in joins {
        j.await.expect("join");
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,gavel::engine=info",
        ))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("file"), Some(dir)) => {
            run(FileJournal::open(dir, FileJournalConfig::default())
                .await
                .expect("open"))
            .await
        }
        (Some("redis"), Some(url)) => {
            let config = RedisJournalConfig {
                url: url.clone(),
                ..RedisJournalConfig::default()
            };
            run(RedisJournal::open(&config).await.expect("open")).await
        }
        _ => eprintln!("usage: snapstall file DIR | snapstall redis URL"),
    }
}
