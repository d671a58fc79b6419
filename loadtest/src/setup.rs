//! The fixture a scenario bids into: dealers (with tokens) and live auctions.
//!
//! `api` creates them through the public HTTP API (an admin token makes one seller and N
//! dealers; the seller lists M cars). `none` is for servers without the admin API (the
//! baseline and echo servers): tokens `t0..`, auctions `A1..AM`, which those servers accept
//! or seed themselves.

use crate::http::Http;
use anyhow::{bail, Context};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How the fixture is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SetupMode {
    /// Through the HTTP admin and seller API.
    Api,
    /// Made-up tokens and auction ids `A1..AM` (baseline and echo servers).
    None,
}

/// One dealer.
#[derive(Clone, Debug, Serialize)]
pub struct Dealer {
    /// Server's id, when the API made it (`D..`); used to read `replay` digests.
    pub id: Option<String>,
    /// Bearer token.
    #[serde(skip)]
    pub token: String,
    /// Where this dealer's WebSocket goes (`ws://host:port`), when not the run's `--url`:
    /// in a cluster, its home market's server.
    #[serde(skip)]
    pub ws_base: Option<String>,
    /// The auction-id namespace it bids in: each market of a cluster numbers its auctions
    /// from A1, so an id means something only within one market (0: the one server).
    #[serde(skip)]
    pub scope: u16,
}

/// One auction.
#[derive(Clone, Debug, Serialize)]
pub struct Auction {
    /// Server's id.
    pub id: String,
    /// Start price, fen.
    pub start: u64,
    /// Reserve, fen (the seller's; needed to apply the rules).
    pub reserve: u64,
    /// Close time the listing got, ms.
    pub ends_at: u64,
    /// `host:port` of the server that holds it, when not the run's `--url` (a cluster's
    /// market server).
    #[serde(skip)]
    pub authority: Option<String>,
    /// Its namespace (see [`Dealer::scope`]).
    #[serde(skip)]
    pub scope: u16,
    /// The cluster market it was listed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<String>,
}

/// What to make.
#[derive(Clone, Debug)]
pub struct SetupOpts {
    /// api or none.
    pub mode: SetupMode,
    /// `host:port` of the HTTP API.
    pub authority: String,
    /// Admin token (api mode).
    pub admin_token: String,
    /// Dealers to create.
    pub dealers: usize,
    /// Auctions to list.
    pub auctions: usize,
    /// Start price, fen.
    pub start_price: u64,
    /// Reserve, fen.
    pub reserve: u64,
    /// Listing duration, s.
    pub duration_s: u64,
    /// Deposit per dealer, fen (buying power = deposit × leverage).
    pub deposit: u64,
}

/// The dealers and auctions of one run.
pub struct Fixture {
    /// Dealers, index = harness dealer number.
    pub dealers: Vec<Dealer>,
    /// Auctions.
    pub auctions: Vec<Auction>,
    /// A token that may read auctions (admin in api mode).
    pub reader_token: String,
}

/// Makes the fixture.
pub async fn make(o: &SetupOpts) -> anyhow::Result<Fixture> {
    match o.mode {
        SetupMode::None => Ok(Fixture {
            dealers: (0..o.dealers)
                .map(|i| Dealer {
                    id: None,
                    token: format!("t{i}"),
                    ws_base: None,
                    scope: 0,
                })
                .collect(),
            auctions: (1..=o.auctions)
                .map(|i| Auction {
                    id: format!("A{i}"),
                    start: o.start_price,
                    reserve: 0,
                    ends_at: 0,
                    authority: None,
                    scope: 0,
                    market: None,
                })
                .collect(),
            reader_token: "t0".into(),
        }),
        SetupMode::Api => make_api(o).await,
    }
}

/// `201 {id, token}` of an account made through the API.
#[derive(Deserialize)]
pub struct Created {
    /// The account's id.
    pub id: String,
    /// Its bearer token.
    pub token: String,
}

/// `201 {auction, ends_at, ..}` of a listing.
#[derive(Deserialize)]
pub struct Listed {
    /// The auction's id.
    pub auction: String,
    /// Its close time, ms.
    pub ends_at: u64,
}

async fn make_api(o: &SetupOpts) -> anyhow::Result<Fixture> {
    if o.admin_token.is_empty() {
        bail!("setup=api needs an admin token (--admin-token or GAVEL_ADMIN_TOKEN)");
    }
    let admin = o.admin_token.clone();
    let mut h = Http::connect(&o.authority).await?;
    let seller: Created = h
        .post("/v1/sellers", &admin, &json!({"name": "loadtest seller"}))
        .await?
        .json(201)
        .context("creating the seller")?;

    let deposit = o.deposit;
    let dealers = register_dealers(
        &o.authority,
        &admin,
        o.dealers,
        move |i| json!({"name": format!("loadtest dealer {i}"), "deposit": deposit}),
        |_, d| Dealer {
            id: Some(d.id),
            token: d.token,
            ws_base: None,
            scope: 0,
        },
    )
    .await?;

    let mut auctions = Vec::with_capacity(o.auctions);
    for i in 0..o.auctions {
        let body = listing_body(o, i, "Hangzhou");
        let l: Listed = h
            .post("/v1/listings", &seller.token, &body)
            .await?
            .json(201)
            .context("listing a car")?;
        auctions.push(Auction {
            id: l.auction,
            start: o.start_price,
            reserve: o.reserve,
            ends_at: l.ends_at,
            authority: None,
            scope: 0,
            market: None,
        });
    }
    let _ = seller.id;
    Ok(Fixture {
        dealers,
        auctions,
        reader_token: admin,
    })
}

/// The body of `POST /v1/listings` for lot `i`, a car in `city`.
/// Registers dealers `0..n` through `authority` (`POST /v1/dealers`, admin) in parallel
/// over a few keep-alive connections; `body(i)` is dealer `i`'s registration, `keep(i,
/// created)` what the run keeps of it. In index order.
pub(crate) async fn register_dealers(
    authority: &str,
    admin: &str,
    n: usize,
    body: impl Fn(usize) -> serde_json::Value + Send + Sync + 'static,
    keep: impl Fn(usize, Created) -> Dealer + Send + Sync + 'static,
) -> anyhow::Result<Vec<Dealer>> {
    const LANES: usize = 8;
    let (body, keep) = (std::sync::Arc::new(body), std::sync::Arc::new(keep));
    let mut tasks = Vec::new();
    for lane in 0..LANES {
        let (authority, admin) = (authority.to_owned(), admin.to_owned());
        let (body, keep) = (body.clone(), keep.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Http::connect(&authority).await?;
            let mut out = Vec::new();
            for i in (lane..n).step_by(LANES) {
                let d: Created = h
                    .post("/v1/dealers", &admin, &body(i))
                    .await?
                    .json(201)
                    .context("creating a dealer")?;
                out.push((i, keep(i, d)));
            }
            anyhow::Ok(out)
        }));
    }
    let mut dealers: Vec<Option<Dealer>> = vec![None; n];
    for t in tasks {
        for (i, d) in t.await?? {
            dealers[i] = Some(d);
        }
    }
    Ok(dealers.into_iter().flatten().collect())
}

pub(crate) fn listing_body(o: &SetupOpts, i: usize, city: &str) -> serde_json::Value {
    json!({
        "vehicle": {"vin": random_vin(), "make": "Loadtest", "model": format!("Lot {i}"),
                    "year": 2020, "mileage_km": 50_000, "city": city},
        "inspection": {"structural_damage": false, "fire": false, "flood": false,
                       "odometer_tampered": false, "title_transferable": true, "grade": 4,
                       "notes": "generated by gavel-loadtest"},
        "start_price": o.start_price,
        "reserve": o.reserve,
        "duration_s": o.duration_s,
    })
}

/// A random VIN with a correct check digit (ISO 3779 / GB 16735).
pub fn random_vin() -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let mut v: Vec<u8> = (0..17)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())])
        .collect();
    v[8] = check_digit(&v);
    String::from_utf8(v).unwrap_or_default()
}

fn check_digit(v: &[u8]) -> u8 {
    const W: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: u8| -> u32 {
        match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'H' => u32::from(c - b'A' + 1),
            b'J'..=b'N' => u32::from(c - b'J' + 1),
            b'P' => 7,
            b'R' => 9,
            b'S'..=b'Z' => u32::from(c - b'S' + 2),
            _ => 0,
        }
    };
    let sum: u32 = v.iter().zip(W).map(|(&c, w)| value(c) * w).sum();
    match sum % 11 {
        10 => b'X',
        r => b'0' + r as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_the_contract_examples() {
        assert_eq!(check_digit(b"1M8GDM9AXKP042788"), b'X');
        assert_eq!(check_digit(b"11111111111111111"), b'1');
        let v = random_vin();
        assert_eq!(check_digit(v.as_bytes()), v.as_bytes()[8]);
    }
}
