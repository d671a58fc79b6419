//! Load and bookkeeping for the cluster tests (tests/cluster.rs, tests/cluster_redis.rs):
//! accounts and lots made through front doors, bidders that follow their market across
//! moves, the [`Ledger`] of what each bid was answered, and the check of every lot's final
//! state against that ledger (see tests/cluster.rs's module doc for the argument).

use super::cluster_nodes::{read_map, ClusterMap, ClusterNodes, ClusterSpec, Fronts, SharedRedis};
use super::gavel::{BidReply, WsClient, ADMIN};
use super::http;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Deposits large enough that no bid here meets `exposure_limit`.
pub const DEPOSIT: u64 = 100_000_000_000;
pub const START_PRICE: u64 = 100_000;
pub const QUICK: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Accounts and lots through the front door

/// An account made through a front door.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub token: String,
}

/// A dealer bidding in its home market (where its deposit is).
#[derive(Clone, Debug)]
pub struct Dealer {
    pub account: Account,
    pub market: String,
}

/// A lot in a market (lot ids repeat across markets: each market numbers its own).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lot {
    pub market: String,
    pub id: String,
}

pub async fn front_call(
    c: &ClusterNodes,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let r = http::request(c.front(front_index(c)), method, path, Some(token), body).await;
    (r.status, r.body)
}

/// A running, not stopped node's index.
pub fn front_index(c: &ClusterNodes) -> usize {
    let id = c.live_ids().into_iter().next().expect("a live node");
    c.index(&id)
}

pub async fn create(c: &ClusterNodes, path: &str, body: Value) -> Account {
    let (status, reply) = front_call(c, "POST", path, ADMIN, Some(&body)).await;
    assert_eq!(status, 201, "POST {path} {body}: {reply}");
    Account {
        id: reply["id"].as_str().expect("id").to_owned(),
        token: reply["token"].as_str().expect("token").to_owned(),
    }
}

pub async fn seller(c: &ClusterNodes) -> Account {
    create(c, "/v1/sellers", json!({"name": "cluster seller"})).await
}

pub async fn dealer(c: &ClusterNodes, name: &str, home: &str) -> Dealer {
    dealer_with(c, name, home, DEPOSIT).await
}

/// A dealer at home in `home` with `deposit` there.
pub async fn dealer_with(c: &ClusterNodes, name: &str, home: &str, deposit: u64) -> Dealer {
    let account = create(
        c,
        "/v1/dealers",
        json!({"name": name, "deposit": deposit, "home_market": home}),
    )
    .await;
    Dealer {
        account,
        market: home.to_owned(),
    }
}

/// Asks any front door and follows its `307` (to whichever market's server the route
/// belongs) until `done` accepts the answer; the accepted body. Fails after 20 s.
pub async fn via_front(
    c: &ClusterNodes,
    (method, path, token, body): (&str, &str, &str, Option<&Value>),
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let what = format!("{what}: {method} {path} via a front door");
    until_done(c, &what, || async {
        let front = c.front(front_index(c));
        let r = http::try_request(front, method, path, Some(token), body, QUICK).await?;
        if r.status != 307 {
            return judged(r, &done);
        }
        let to = r.location.as_deref().and_then(|l| {
            let rest = l.strip_prefix("http://")?;
            let (host, path) = rest.split_at(rest.find('/')?);
            Some((host.parse::<SocketAddr>().ok()?, path.to_owned()))
        });
        let (addr, path) = to.ok_or_else(|| format!("307 to {:?}", r.location))?;
        judged(
            http::try_request(addr, method, &path, Some(token), body, QUICK).await?,
            &done,
        )
    })
    .await
}

/// The body of an answer `done` accepts, else the answer as a reason to ask again.
fn judged(r: http::Response, done: impl Fn(u16, &Value) -> bool) -> Result<Value, String> {
    if done(r.status, &r.body) {
        Ok(r.body)
    } else {
        Err(format!("{} {}", r.status, r.body))
    }
}

/// Runs `attempt` every 50 ms until it succeeds; fails after 20 s with its last error and
/// the nodes' output.
async fn until_done<F, Fut>(c: &ClusterNodes, what: &str, mut attempt: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = match attempt().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: last {last}\n{}",
            c.outputs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where `market` is served now, by the map of any answering front door.
pub async fn resolve(fronts: &Fronts, market: &str) -> Option<(String, SocketAddr)> {
    let map = read_map(fronts, Duration::from_secs(1)).await?;
    let route = map.markets.get(market)?;
    Some((route.node.clone()?, route.addr()?))
}

/// Asks `market`'s server (wherever it is served now) until `done` accepts the answer;
/// the accepted body. Fails after 20 s with the last answer and the nodes' output.
pub async fn on_market(
    c: &ClusterNodes,
    market: &str,
    (method, path, token, body): (&str, &str, &str, Option<&Value>),
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let what = format!("{market}: {what}: {method} {path}");
    until_done(c, &what, || async {
        let (_, addr) = resolve(&c.fronts(), market).await.ok_or("not served")?;
        judged(
            http::try_request(addr, method, path, Some(token), body, QUICK).await?,
            &done,
        )
    })
    .await
}

/// Lists `n` cars in each market on its own server, retrying while the market has not yet
/// applied the seller's registration from the control stream (401/403) or changes hands.
pub async fn list_lots(c: &ClusterNodes, seller: &Account, n: usize) -> Vec<Lot> {
    list_lots_lasting(c, seller, n, 600).await
}

/// [`list_lots`], each auction lasting `duration_s`.
pub async fn list_lots_lasting(
    c: &ClusterNodes,
    seller: &Account,
    n: usize,
    duration_s: u64,
) -> Vec<Lot> {
    let mut lots = Vec::new();
    for market in c.spec.market_names() {
        for _ in 0..n {
            let mut body = super::gavel::listing(duration_s, START_PRICE);
            body["vehicle"]["city"] = json!(c.spec.city(&market));
            let deadline = Instant::now() + Duration::from_secs(15);
            let id = loop {
                let last = match resolve(&c.fronts(), &market).await {
                    Some((_, addr)) => {
                        match http::try_request(
                            addr,
                            "POST",
                            "/v1/listings",
                            Some(&seller.token),
                            Some(&body),
                            QUICK,
                        )
                        .await
                        {
                            Ok(r) if r.status == 201 => {
                                break r.body["auction"].as_str().expect("auction").to_owned()
                            }
                            other => format!("{other:?}"),
                        }
                    }
                    None => "not served".to_owned(),
                };
                assert!(
                    Instant::now() < deadline,
                    "listing in {market}: {last}\n{}",
                    c.outputs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            lots.push(Lot {
                market: market.clone(),
                id,
            });
        }
    }
    lots
}

// ---------------------------------------------------------------------------------------
// The ledger and the bidders

/// A bid acknowledged `accepted`.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub lot: Lot,
    pub amount: u64,
    pub dealer: String,
    /// The node serving the market when the bidder connected.
    pub node: String,
    pub at: Instant,
}

/// A bid sent and never answered (or answered `unavailable`): it may have happened.
#[derive(Clone, Debug)]
pub struct Unknown {
    pub lot: Lot,
    pub amount: u64,
    pub dealer: String,
    /// Its id, under which it is sent again.
    pub bid_id: String,
}

#[derive(Clone, Default)]
pub struct Ledger {
    pub accepted: Vec<Accepted>,
    pub unknown: Vec<Unknown>,
    /// Unknown bids that a retry with the same `bid_id` settled.
    pub settled_by_retry: usize,
    /// Refusals no bidder here should ever get.
    pub errors: Vec<String>,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

impl Ledger {
    pub fn accepted_in(&self, market: &str, after: Instant) -> Vec<Accepted> {
        self.accepted
            .iter()
            .filter(|a| a.lot.market == market && a.at > after)
            .cloned()
            .collect()
    }
}

/// Waits (polling the ledger) until `market` has an accepted bid after `after`, answered
/// by a server `on` accepts; the first such bid.
pub async fn first_accepted_after(
    ledger: &SharedLedger,
    market: &str,
    after: Instant,
    on: impl Fn(&str) -> bool,
    within: Duration,
    c: &ClusterNodes,
) -> Accepted {
    let deadline = Instant::now() + within;
    loop {
        let got = ledger
            .lock()
            .unwrap()
            .accepted_in(market, after)
            .into_iter()
            .filter(|a| on(&a.node))
            .min_by_key(|a| a.at);
        if let Some(a) = got {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no accepted bid in {market} within {within:?}; errors: {:?}\n{}",
            ledger.lock().unwrap().errors,
            c.outputs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every market has at least `n` accepted bids.
pub async fn warm_up(ledger: &SharedLedger, markets: &[String], n: usize, c: &ClusterNodes) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(20);
    loop {
        let counts: BTreeMap<&String, usize> = {
            let l = ledger.lock().unwrap();
            markets
                .iter()
                .map(|m| (m, l.accepted.iter().filter(|a| &a.lot.market == m).count()))
                .collect()
        };
        if counts.values().all(|k| *k >= n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bidding did not get going: {counts:?}; errors: {:?}\n{}",
            ledger.lock().unwrap().errors,
            c.outputs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects to `market`'s server as it is now and subscribes to `lots`: the node serving
/// it and the connection, or `None` if any step failed (the caller waits and tries again).
pub async fn connect_subscribed(
    fronts: &Fronts,
    market: &str,
    token: &str,
    lots: &[Lot],
) -> Option<(String, WsClient)> {
    let (node, addr) = resolve(fronts, market).await?;
    let client = tokio::time::timeout(QUICK, WsClient::connect(addr, token))
        .await
        .ok()?
        .ok()?;
    for lot in lots {
        tokio::time::timeout(QUICK, client.subscribe(&lot.id))
            .await
            .ok()??;
    }
    Some((node, client))
}

/// Bids for `dealer` on its market's `lots` until `stop`, pausing `pace` between bids. A
/// bid answered `unavailable` or not at all goes into the ledger as unknown and is sent
/// again, with the same `bid_id`, first thing on the next connection (the protocol's
/// rule after a move); its definite answer then settles it either way: the first result
/// if it had been made durable, else a decision now.
pub fn spawn_bidder(
    fronts: Fronts,
    dealer: Dealer,
    lots: Vec<Lot>,
    ledger: SharedLedger,
    pace: Duration,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        let name = dealer.account.id.clone();
        // The bid to send again: (lot, amount, bid_id).
        let mut retry: Option<(Lot, u64, String)> = None;
        'connect: while !*stop.borrow() {
            let Some((node, client)) =
                connect_subscribed(&fronts, &dealer.market, &dealer.account.token, &lots).await
            else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            loop {
                for next in &lots {
                    if *stop.borrow() {
                        break 'connect;
                    }
                    let again = retry.is_some();
                    let (lot, amount, bid_id) = match retry.take() {
                        Some(r) => r,
                        None => {
                            let Some(amount) =
                                client.min_next.lock().unwrap().get(&next.id).copied()
                            else {
                                continue 'connect;
                            };
                            n += 1;
                            (next.clone(), amount, format!("{name}-{n}"))
                        }
                    };
                    let reply =
                        tokio::time::timeout(QUICK, client.bid(&lot.id, amount, None, &bid_id))
                            .await
                            .unwrap_or(BidReply::Unanswered);
                    let undecided = matches!(&reply, BidReply::Unanswered)
                        || matches!(&reply, BidReply::Answered(v) if v["reason"] == "unavailable");
                    let leading = {
                        let mut book = ledger.lock().unwrap();
                        if undecided {
                            // "Nothing happened", says the protocol of `unavailable`; the
                            // ledger does not take its word for it until the retry's answer.
                            if !again {
                                book.unknown.push(Unknown {
                                    lot: lot.clone(),
                                    amount,
                                    dealer: name.clone(),
                                    bid_id: bid_id.clone(),
                                });
                            }
                            retry = Some((lot, amount, bid_id));
                            continue 'connect;
                        }
                        if again {
                            book.unknown.retain(|u| u.bid_id != bid_id);
                            book.settled_by_retry += 1;
                        }
                        let BidReply::Answered(v) = reply else {
                            unreachable!("an unanswered bid is undecided")
                        };
                        let leading = v["reason"] == "already_leading";
                        if v["accepted"] == true {
                            book.accepted.push(Accepted {
                                lot: lot.clone(),
                                amount,
                                dealer: name.clone(),
                                node: node.clone(),
                                at: Instant::now(),
                            });
                        } else if !leading && v["reason"] != "below_minimum" {
                            book.errors.push(format!("{name} on {lot:?}: {v}"));
                        }
                        leading
                    };
                    if leading {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    tokio::time::sleep(pace).await;
                }
            }
        }
    })
}

/// Bidders running beside a test.
pub struct Bidding {
    pub ledger: SharedLedger,
    pub stop: watch::Sender<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Bidding {
    /// One bidder per dealer, on the lots of its market.
    pub fn start(c: &ClusterNodes, dealers: &[Dealer], lots: &[Lot], pace: Duration) -> Self {
        let ledger = SharedLedger::default();
        let (stop, rx) = watch::channel(false);
        let tasks = dealers
            .iter()
            .map(|d| {
                let mine: Vec<Lot> = lots
                    .iter()
                    .filter(|l| l.market == d.market)
                    .cloned()
                    .collect();
                spawn_bidder(
                    c.fronts(),
                    d.clone(),
                    mine,
                    ledger.clone(),
                    pace,
                    rx.clone(),
                )
            })
            .collect();
        Self {
            ledger,
            stop,
            tasks,
        }
    }

    /// Stops every bidder and waits for it; what they recorded.
    pub async fn finish(self) -> Ledger {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.expect("bidder task");
        }
        let ledger = self.ledger.lock().unwrap().clone();
        ledger
    }
}

/// Reads every lot from its market's server and checks it against the ledger (see the
/// module doc); panics naming the lot on any mismatch.
pub async fn check_final_state(
    c: &ClusterNodes,
    lots: &[Lot],
    dealers: &[Dealer],
    ledger: &Ledger,
) {
    assert!(
        ledger.errors.is_empty(),
        "bids refused for no good reason: {:#?}",
        ledger.errors
    );
    let token_of: BTreeMap<&str, &str> = dealers
        .iter()
        .map(|d| (d.account.id.as_str(), d.account.token.as_str()))
        .collect();
    for lot in lots {
        let path = format!("/v1/auctions/{}", lot.id);
        let read = |token: String| {
            let fronts = c.fronts();
            let market = lot.market.clone();
            let path = path.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    if let Some((_, addr)) = resolve(&fronts, &market).await {
                        if let Ok(r) =
                            http::try_request(addr, "GET", &path, Some(&token), None, QUICK).await
                        {
                            if r.status == 200 {
                                return r.body;
                            }
                        }
                    }
                    assert!(Instant::now() < deadline, "cannot read {market} {path}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let view = read(ADMIN.to_owned()).await;
        let accepted: Vec<&Accepted> = ledger.accepted.iter().filter(|a| a.lot == *lot).collect();
        let unknown: Vec<&Unknown> = ledger.unknown.iter().filter(|u| u.lot == *lot).collect();
        let price = view["price"].as_u64().unwrap_or(0);
        let bids = view["bids"].as_u64().expect("bids") as usize;
        let top = accepted.iter().max_by_key(|a| a.amount);
        let what = format!(
            "{lot:?}: view {view}; {} accepted (top {:?}), {} unknown",
            accepted.len(),
            top.map(|a| (a.amount, &a.dealer)),
            unknown.len()
        );
        assert!(
            bids >= accepted.len() && bids <= accepted.len() + unknown.len(),
            "an acknowledged bid is missing or a bid nobody sent counted: {what}"
        );
        let Some(top) = top else {
            assert!(
                price == 0 || unknown.iter().any(|u| u.amount == price),
                "{what}"
            );
            continue;
        };
        assert!(
            price >= top.amount,
            "the price fell below an acknowledged bid: {what}"
        );
        let leaders: Vec<&str> = if price == top.amount {
            vec![top.dealer.as_str()]
        } else {
            unknown
                .iter()
                .filter(|u| u.amount == price)
                .map(|u| u.dealer.as_str())
                .collect()
        };
        assert!(
            !leaders.is_empty(),
            "a price no bid explains (a fenced write got through?): {what}"
        );
        let mut led = false;
        for d in &leaders {
            let as_dealer = read(token_of[d].to_owned()).await;
            led |= as_dealer["leading"] == true;
        }
        assert!(led, "none of {leaders:?} leads: {what}");
    }
}

pub fn assert_replay_verifies(c: &ClusterNodes) {
    let t = Instant::now();
    let (status, out) = c.replay_verify_all();
    assert!(
        status.success(),
        "gavel replay --verify --all-markets failed:\n{out}"
    );
    for m in c.spec.market_names() {
        assert!(
            out.contains(&format!("market {m}:")),
            "{m} not verified:\n{out}"
        );
    }
    eprintln!("replay --verify --all-markets: ok in {:?}", t.elapsed());
}

/// The node serving the most markets (ties: the smallest id).
pub fn busiest(map: &ClusterMap) -> String {
    let mut ids: Vec<&String> = map.nodes.keys().collect();
    ids.sort_by_key(|id| (std::cmp::Reverse(map.served_by(id).len()), (*id).clone()));
    ids[0].clone()
}

/// Connects to a market server, retrying while the market has not applied the account
/// from the control stream yet (the upgrade is refused until then).
pub async fn connect_known(addr: SocketAddr, token: &str) -> WsClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(QUICK, WsClient::connect(addr, token)).await {
            Ok(Ok(c)) => return c,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to {addr}: {other:?}",
                    other = other.map(|r| r.err())
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `n` nodes on `redis` with the four markets, every market served; a seller, `per_market`
/// dealers at home in each market, `lots` lots in each.
pub async fn cluster_with_lots(
    redis: &SharedRedis,
    n: usize,
    per_market: usize,
    lots: usize,
) -> (ClusterNodes, Vec<Dealer>, Vec<Lot>) {
    super::init_tracing();
    let c = ClusterNodes::start(redis, ClusterSpec::four_markets(), n).await;
    c.wait_until_all_served(Duration::from_secs(20)).await;
    let s = seller(&c).await;
    let mut dealers = Vec::new();
    for market in c.spec.market_names() {
        for k in 0..per_market {
            dealers.push(dealer(&c, &format!("{market} dealer {k}"), &market).await);
        }
    }
    let lots = list_lots(&c, &s, lots).await;
    (c, dealers, lots)
}
