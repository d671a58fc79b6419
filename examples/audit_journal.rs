//! Writes a generated journal for measuring `gavel audit` on a long log:
//!
//! ```text
//! cargo run --example audit_journal -- DIR 1000000 [SEED]
//! time target/release/gavel audit shill --data DIR --to <printed last_at + 1> --window 60d
//! time target/release/gavel audit auction A1 --data DIR
//! ```
//!
//! The population of tests/audit_shill.rs (20 sellers, 300 honest dealers with varied
//! random behaviour, a shill, a prober, an honest heavy bidder) with ten times the lots
//! live at once, every command decided by a real market and written to a real file
//! journal. It prints who is who and the journal's last time.

#[path = "../tests/support/population.rs"]
#[allow(dead_code)]
mod population;

use population::{generate, Population};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(commands)) = (args.get(1), args.get(2).and_then(|c| c.parse().ok()))
    else {
        eprintln!("usage: audit_journal DIR COMMANDS [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    std::fs::create_dir_all(dir).expect("create the directory");
    let started = std::time::Instant::now();
    let planted = generate(
        std::path::Path::new(dir),
        Population {
            sellers: 20,
            honest: 300,
            live_lots: 600,
            bids_per_step: 30,
            commands,
            seed,
        },
    )
    .await;
    println!(
        "{} commands ({} bids, {} accepted, {} closes) in {:.1?}; shill {} on {}, prober {}, heavy {}; first_at {} last_at {}",
        planted.commands,
        planted.bids,
        planted.accepted,
        planted.closed,
        started.elapsed(),
        planted.shill,
        planted.shill_seller,
        planted.prober,
        planted.heavy,
        population::START_MS,
        planted.last_at
    );
}
