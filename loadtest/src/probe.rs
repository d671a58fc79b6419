//! The failover prober: bids continuously in every market of a cluster and logs when each
//! bid's answer came and from which node, so a script that kills nodes can read, for each
//! kill, when the killed node's market first accepted a bid again elsewhere.
//!
//! Per market: two dealers whose home it is, one lot; one bid at a time every `interval`,
//! from the dealer that does not lead, at the minimum the last answer implies. On a closed
//! socket, an `unavailable` or any other answer that is not a bidding refusal, the market
//! is resolved again through the front doors (each in turn: the one last used may be the
//! node just killed) and both sockets reopen on the market's current server.
//!
//! The log: one line per event, `<unix ms> <market> <node> <event> [detail]`, where node is
//! the market's owner in the map the connection was made from, and event is `accepted`,
//! `refused:<reason>`, `error:<code>`, `closed`, `timeout`, `connect_failed` or
//! `resolved` (detail: the server's URL).

use crate::bidder::{next_amount, Bidder, Outcome};
use crate::cluster::{self, ClusterMap};
use crate::http::Http;
use crate::setup::{listing_body, SetupMode, SetupOpts};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{LineWriter, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The prober's settings.
#[derive(Clone, Debug)]
pub struct ProbeOpts {
    /// Every node's front door, `host:port`.
    pub fronts: Vec<String>,
    /// Admin token.
    pub admin_token: String,
    /// Time between one bid's answer and the next bid in a market.
    pub interval: Duration,
    /// How long to probe.
    pub duration: Duration,
    /// How long a bid may wait for its answer before the market is resolved again.
    pub answer_wait: Duration,
    /// Where the event log goes.
    pub log: std::path::PathBuf,
    /// Start price, fen.
    pub start_price: u64,
    /// Each dealer's deposit, fen.
    pub deposit: u64,
}

/// Counts per market, for the summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MarketCounts {
    /// Bids accepted.
    pub accepted: u64,
    /// Other answers and events by word.
    pub other: BTreeMap<String, u64>,
    /// Times the market was resolved again.
    pub resolves: u64,
}

type Log = Arc<Mutex<LineWriter<std::fs::File>>>;

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn write(log: &Log, market: &str, node: &str, event: &str, detail: &str) {
    let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(w, "{:.3} {market} {node} {event} {detail}", unix_ms());
}

/// The map from the first front door that answers, starting at `*next`; `*next` is left
/// at the one that answered.
async fn resolve(fronts: &[String], next: &mut usize) -> Option<ClusterMap> {
    for i in 0..fronts.len() {
        let k = (*next + i) % fronts.len();
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            let mut h = Http::connect(&fronts[k]).await?;
            cluster::fetch_map_on(&mut h).await
        })
        .await;
        if let Ok(Ok(m)) = got {
            *next = k;
            return Some(m);
        }
    }
    None
}

/// One market's lot and its two dealers' tokens.
struct MarketFixture {
    market: String,
    auction: String,
    tokens: [String; 2],
}

async fn make_fixture(o: &ProbeOpts, map: &ClusterMap) -> anyhow::Result<Vec<MarketFixture>> {
    let front = &o.fronts[0];
    let mut h = Http::connect(front).await?;
    let seller = cluster::register(
        &mut h,
        &o.admin_token,
        "/v1/sellers",
        &json!({"name": "failover prober"}),
    )
    .await?;
    let setup = SetupOpts {
        mode: SetupMode::Api,
        authority: front.clone(),
        admin_token: o.admin_token.clone(),
        dealers: 0,
        auctions: 1,
        start_price: o.start_price,
        reserve: o.start_price,
        duration_s: 3600 * 6,
        deposit: o.deposit,
    };
    let mut out = Vec::new();
    for (i, m) in map.markets.iter().enumerate() {
        let mut tokens = Vec::new();
        for d in 0..2 {
            let c = cluster::register(
                &mut h,
                &o.admin_token,
                "/v1/dealers",
                &json!({"name": format!("prober {} {d}", m.market), "deposit": o.deposit,
                        "home_market": m.market}),
            )
            .await?;
            tokens.push(c.token);
        }
        let url = m.url.as_deref().context("a market without a server")?;
        let mut server = Http::connect(&cluster::authority(url)).await?;
        let city = m.cities.first().map_or("Hangzhou", String::as_str);
        let listed: crate::setup::Listed = cluster::post_retrying(
            &mut server,
            "/v1/listings",
            &seller.token,
            &listing_body(&setup, i, city),
        )
        .await?
        .json(201)
        .with_context(|| format!("listing in {}", m.market))?;
        let [a, b]: [String; 2] = tokens
            .try_into()
            .map_err(|_| anyhow::anyhow!("two dealers"))?;
        out.push(MarketFixture {
            market: m.market.clone(),
            auction: listed.auction,
            tokens: [a, b],
        });
    }
    Ok(out)
}

/// Runs the prober; returns each market's counts.
pub async fn probe(o: &ProbeOpts) -> anyhow::Result<BTreeMap<String, MarketCounts>> {
    if o.fronts.is_empty() {
        bail!("the prober needs at least one --front");
    }
    let map = cluster::wait_served(&o.fronts[0], Duration::from_secs(30)).await?;
    let fixture = make_fixture(o, &map).await?;
    let file =
        std::fs::File::create(&o.log).with_context(|| format!("creating {}", o.log.display()))?;
    let log: Log = Arc::new(Mutex::new(LineWriter::new(file)));
    let deadline = Instant::now() + o.duration;
    let mut tasks = Vec::new();
    for (i, f) in fixture.into_iter().enumerate() {
        let (o, log) = (o.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let counts = market_loop(&o, &log, &f, i, deadline).await;
            (f.market, counts)
        }));
    }
    let mut out = BTreeMap::new();
    for t in tasks {
        let (m, c) = t.await?;
        out.insert(m, c);
    }
    Ok(out)
}

async fn market_loop(
    o: &ProbeOpts,
    log: &Log,
    f: &MarketFixture,
    index: usize,
    deadline: Instant,
) -> MarketCounts {
    let mut counts = MarketCounts::default();
    let mut front = index % o.fronts.len();
    let mut amount = o.start_price;
    let mut turn = 0usize;
    let mut generation = 0u64;
    let count = |c: &mut MarketCounts, w: &str| *c.other.entry(w.to_owned()).or_default() += 1;
    'resolve: while Instant::now() < deadline {
        let Some(map) = resolve(&o.fronts, &mut front).await else {
            count(&mut counts, "no_front");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let route = map.market(&f.market).cloned();
        let (Some(ws), node) = (
            route.as_ref().and_then(|r| r.ws.clone()),
            route
                .as_ref()
                .and_then(|r| r.node.clone())
                .unwrap_or_else(|| "-".into()),
        ) else {
            count(&mut counts, "unserved");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counts.resolves += 1;
        write(log, &f.market, &node, "resolved", &ws);
        generation += 1;
        let mut bidders = Vec::with_capacity(2);
        for (d, token) in f.tokens.iter().enumerate() {
            let tag = format!("p{index}-{d}-{generation}");
            match Bidder::connect(&ws, token, &tag, Duration::from_millis(500)).await {
                Ok(b) => bidders.push(b),
                Err(_) => {
                    write(log, &f.market, &node, "connect_failed", &ws);
                    count(&mut counts, "connect_failed");
                    for b in bidders {
                        b.close().await;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue 'resolve;
                }
            }
        }
        while Instant::now() < deadline {
            let outcome = bidders[turn].bid(&f.auction, amount, o.answer_wait).await;
            let word = outcome.word();
            write(log, &f.market, &node, &word, &amount.to_string());
            if let Some(next) = next_amount(&outcome) {
                amount = next;
            }
            match &outcome {
                Outcome::Accepted { .. } => {
                    counts.accepted += 1;
                    turn ^= 1;
                }
                Outcome::Refused { reason, .. }
                    if reason == "below_minimum" || reason == "already_leading" =>
                {
                    count(&mut counts, &word);
                    if reason == "already_leading" {
                        turn ^= 1;
                    }
                }
                _ => {
                    // unavailable, not_live, an error, a closed socket, no answer: ask
                    // where the market is now.
                    count(&mut counts, &word);
                    for b in bidders {
                        b.close().await;
                    }
                    continue 'resolve;
                }
            }
            tokio::time::sleep(o.interval).await;
        }
        for b in bidders {
            b.close().await;
        }
    }
    counts
}
