//! `gavel serve --demo`: sellers, dealers and live auctions to connect a client to at once.

use crate::auction::{Command, Event, Listing};
use crate::directory::token::new_token;
use crate::engine::EngineHandle;
use crate::market;
use crate::vocab::{vin_check_digit, Inspection, SellerId, Vehicle, FEN_PER_YUAN};
use std::net::SocketAddr;

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

/// Seeds two sellers, three dealers and three live auctions; prints every token.
pub async fn seed(engine: &EngineHandle, addr: SocketAddr) -> Result<(), DemoError> {
    let y = FEN_PER_YUAN;
    let mut sellers = Vec::new();
    println!("demo accounts (tokens are shown once):");
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
            sellers.push(*seller);
        }
    }
    for (name, deposit) in [
        ("Beijing Auto Trust", 200_000),
        ("Shanghai Good Cars", 100_000),
        ("Chengdu Honest Motors", 50_000),
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
            println!("  dealer {dealer} {name} (deposit {deposit} yuan): {token}");
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
            duration_ms: None,
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
        }
    }
    println!(
        "try: websocat 'ws://{addr}/v1/ws?token=DEALER_TOKEN' then {{\"type\":\"subscribe\",\"auction\":\"A1\"}}"
    );
    Ok(())
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
