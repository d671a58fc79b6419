//! `gavel serve --demo`: sellers, dealers and live auctions to look at at once, a sign-in
//! link per account for the web console, and (demo only) two bidders of the server's own
//! that bid slowly on the demo lots so the board moves on first look.

use crate::auction::{BidOutcome, Command, Event, Listing, LotStatus};
use crate::directory::token::new_token;
use crate::engine::EngineHandle;
use crate::market;
use crate::views::{Lots, Viewer};
use crate::vocab::{vin_check_digit, DealerId, Inspection, LotId, SellerId, Vehicle, FEN_PER_YUAN};
use rand::Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long the demo lots run: long enough to be looked at.
const DEMO_DURATION_MS: u64 = 2 * 3_600_000;

/// What seeding made: the bidders of the server's own and the lots they bid on.
pub struct Seeded {
    bots: Vec<DealerId>,
    lots: Vec<LotId>,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
#[error("demo seeding failed: {0}")]
pub struct DemoError(String);

async fn run(engine: &EngineHandle, command: Command) -> Result<Vec<Event>, DemoError> {
    let applied = engine
        .submit(command)
        .await
        .map_err(|e| DemoError(e.to_string()))?;
    let events: Vec<Event> = applied
        .events
        .into_iter()
        .filter_map(market::Event::into_auction)
        .collect();
    if let Some(Event::Refused(r)) = events.first() {
        return Err(DemoError(format!("refused: {r:?}")));
    }
    Ok(events)
}

/// `base` (17 characters) with its check digit (position 9) made correct.
fn vin(base: &str) -> String {
    let mut v: Vec<char> = base.chars().collect();
    if let Some(check) = vin_check_digit(base) {
        v[8] = check;
    }
    v.into_iter().collect()
}

/// A console sign-in link: the token rides in the fragment, which a browser never sends
/// to the server; the page takes it and clears it from the address bar at once.
fn link(addr: SocketAddr, token: &str) -> String {
    format!("http://{addr}/#token={token}")
}

/// Seeds two sellers, three dealers, two demo bidders and three live auctions; prints
/// every token and a console sign-in link for each account (and the operator's, when
/// `admin` is the demo's own admin token).
pub async fn seed(
    engine: &EngineHandle,
    addr: SocketAddr,
    admin: Option<&str>,
) -> Result<Seeded, DemoError> {
    let y = FEN_PER_YUAN;
    let mut sellers = Vec::new();
    println!("web console: http://{addr}/  (certified cars need no sign-in)");
    if let Some(token) = admin {
        println!("  alliance operator: {}", link(addr, token));
    }
    println!("demo accounts (tokens are shown once; each link signs the console in):");
    for name in ["Wang Fang (private seller)", "Li Wei (private seller)"] {
        let (token, token_hash) = new_token();
        let events = run(
            engine,
            Command::RegisterSeller {
                name: name.into(),
                token_hash,
            },
        )
        .await?;
        if let Some(Event::SellerRegistered { seller }) = events.first() {
            println!("  seller {seller} {name}: {token}");
            println!("      {}", link(addr, &token));
            sellers.push(*seller);
        }
    }
    let mut bots = Vec::new();
    for (name, deposit, bot) in [
        ("Beijing Auto Trust", 200_000, false),
        ("Shanghai Good Cars", 100_000, false),
        ("Chengdu Honest Motors", 50_000, false),
        ("Demo bidder Hangzhou (automatic)", 100_000, true),
        ("Demo bidder Wuhan (automatic)", 100_000, true),
    ] {
        let (token, token_hash) = new_token();
        let events = run(
            engine,
            Command::RegisterDealer {
                name: name.into(),
                deposit: deposit * y,
                linked_sellers: vec![],
                token_hash,
            },
        )
        .await?;
        if let Some(Event::DealerRegistered { dealer }) = events.first() {
            if bot {
                bots.push(*dealer);
                println!("  dealer {dealer} {name}: bids by itself, every few seconds");
            } else {
                println!("  dealer {dealer} {name} (deposit {deposit} yuan): {token}");
                println!("      {}", link(addr, &token));
            }
        }
    }
    let cars = [
        (
            "LSVAU2A37N",
            "2123456",
            "Volkswagen",
            "Lavida",
            2021,
            48_000,
            60_000,
            75_000,
        ),
        (
            "LFV2A21K5L",
            "3456789",
            "Toyota",
            "Corolla",
            2020,
            62_000,
            55_000,
            68_000,
        ),
        (
            "LGBH52E09M",
            "4567890",
            "BYD",
            "Han EV",
            2022,
            21_000,
            150_000,
            180_000,
        ),
    ];
    let seller = sellers.first().copied().unwrap_or(SellerId(1));
    let mut lots = Vec::new();
    for (i, (a, b, make, model, year, km, start, reserve)) in cars.into_iter().enumerate() {
        let vin = vin(&format!("{a}{b}"));
        let listing = Listing {
            vehicle: Vehicle {
                vin: vin.clone(),
                make: make.into(),
                model: model.into(),
                year,
                mileage_km: km,
                city: Some(["Beijing", "Shanghai", "Shenzhen"][i].into()),
            },
            inspection: Inspection {
                structural_damage: false,
                fire: false,
                flood: false,
                odometer_tampered: false,
                title_transferable: true,
                grade: 4,
                notes: "demo car: clean history, minor scratches on the rear bumper".into(),
            },
            start_price: start * y,
            reserve: reserve * y,
            buy_now: None,
            starts_at: None,
            duration_ms: Some(DEMO_DURATION_MS),
        };
        let events = run(
            engine,
            Command::ListCar {
                seller,
                listing: Box::new(listing),
            },
        )
        .await?;
        if let Some(Event::Listed { lot, ends_at, .. }) = events.first() {
            println!("  auction {lot}: {year} {make} {model}, VIN {vin}, start {start} yuan, ends_at {ends_at}");
            lots.push(*lot);
        }
    }
    println!(
        "or a client of your own: websocat 'ws://{addr}/v1/ws?token=DEALER_TOKEN' then {{\"type\":\"subscribe\",\"auction\":\"A1\"}}"
    );
    println!("DEMO: the two demo bidders bid slowly on the demo lots (serve --demo only)");
    Ok(Seeded { bots, lots })
}

/// Demo only: the server's own bidders take turns on the demo lots, one bid every 4 to
/// 9 seconds, at the lowest next bid, through the engine like any dealer, and stop
/// raising a lot at 120% of its reserve (or when their buying power says no). Ends
/// when the engine stops taking commands.
pub async fn bid_slowly(engine: EngineHandle, lots: Arc<Lots>, seeded: Seeded) {
    let mut n: u64 = 0;
    loop {
        let wait = rand::thread_rng().gen_range(4_000..9_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let pick = rand::thread_rng().gen_range(0..seeded.lots.len().max(1));
        let Some(&lot) = seeded.lots.get(pick) else {
            return;
        };
        let Some(view) = lots.view(lot, Viewer::Other) else {
            continue;
        };
        let Some(listing) = lots.listing(lot) else {
            continue;
        };
        let cap = listing.reserve.saturating_mul(6) / 5;
        if crate::views::Status::from(LotStatus::Live) != view.status || view.min_next > cap {
            continue;
        }
        // The bidder who does not lead: each answers the other (and any human).
        for &dealer in &seeded.bots {
            if lots
                .view(lot, Viewer::Dealer(dealer))
                .is_some_and(|v| v.leading)
            {
                continue;
            }
            n += 1;
            let command = Command::PlaceBid {
                dealer,
                lot,
                amount: view.min_next,
                max: None,
                bid_id: format!("demo-{n}").into(),
            };
            match engine.submit(command).await {
                Ok(applied) => {
                    let accepted = applied.events.iter().any(|e| {
                        matches!(
                            e,
                            market::Event::Auction(Event::Bid {
                                outcome: BidOutcome::Accepted { .. },
                                ..
                            })
                        )
                    });
                    if accepted {
                        break;
                    }
                }
                Err(_) => return, // the engine is shutting down
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_vins_have_valid_check_digits() {
        for base in [
            "LSVAU2A37N2123456",
            "LFV2A21K5L3456789",
            "LGBH52E09M4567890",
        ] {
            let v = vin(base);
            assert_eq!(v.len(), 17, "{v}");
            assert_eq!(vin_check_digit(&v), v.chars().nth(8), "{v}");
        }
    }
}
