//! Durability against real processes: a `gavel serve` child killed with SIGKILL at random
//! points and restarted on the same journal (file and Redis), Redis restarted under load,
//! the journal's single-owner lease, and outage grace on restart. No mocks: real
//! `redis-server`, real sockets, the real binary.
//!
//! What is checked in the end is always the journal itself, read with the library's own
//! journal types after the server stopped: every bid the client saw decided is in it with
//! the seq and result the client was told, and the state rebuilt from the newest snapshot
//! plus the tail equals the state replayed from the log alone (and `gavel replay --verify`
//! agrees).
//!
//! `GAVEL_CRASH_SEED=N` repeats a run's kill schedule and bid amounts (the timing of a
//! real process still varies); the seed in use is printed.

mod support;

use gavel::auction::{BidOutcome, Command as AuctionCommand, Event as AuctionEvent};
use gavel::market::{Command, Event};

use gavel::engine::{digests, recover, ReplayObserver};
use gavel::gateway::wire::BidResult;
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::{Entry, Journal, RedisJournal, RedisJournalConfig};
use gavel::vocab::{DealerId, LotId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::gavel::{
    data_dir, replay_verify, BidReply, Gavel, GavelOpts, JournalArg, WsClient, ADMIN,
};
use support::redis_server::{RedisOpts, RedisServer};

/// Dealers bidding at once (each on its own connection).
const DEALERS: usize = 4;
/// Lots they bid on.
const LOTS: usize = 6;
/// Start price of every lot (10,000 yuan in fen).
const START_PRICE: u64 = 1_000_000;
/// Bids one dealer keeps in flight (new bids: at most one per lot; the rest are retries).
const IN_FLIGHT: usize = 8;
/// SIGKILLs in the crash test of the file journal (a restart costs a process start) ...
const FILE_KILLS: u32 = 40;
/// ... and of the Redis journal (a restart also waits for the killed server's lease).
const REDIS_KILLS: u32 = 24;
/// How long a Redis lease outlives a killed server in these tests (short, so a restart
/// does not wait 10 s; long enough that a busy machine still renews it in time).
const LEASE_TTL_MS: u64 = 1_000;

fn seed() -> u64 {
    let seed = std::env::var("GAVEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("GAVEL_CRASH_SEED={seed}");
    seed
}

// ---------------------------------------------------------------------------------------
// The client's ledger: every bid it sent and what it was told.

/// One bid id and what the client knows about it.
#[derive(Debug)]
struct Sent {
    dealer: usize,
    auction: String,
    amount: u64,
    max: Option<u64>,
    /// The first result the engine decided (accepted, or refused for a reason other than
    /// `unavailable` / `rate_limited`): every later answer for this bid id must equal it.
    decided: Option<Value>,
    /// Times it was sent.
    attempts: u32,
    /// Decided answers received (the first and its repeats).
    answers: u32,
}

/// A bid id waiting to be sent again, and not before when.
struct Retry {
    bid_id: String,
    not_before: Instant,
}

#[derive(Default)]
struct Ledger {
    bids: BTreeMap<String, Sent>,
    /// Per dealer: bid ids to send again (unanswered, `unavailable`, or a check of a
    /// decided one).
    retry: Vec<VecDeque<Retry>>,
    /// Per dealer: the next bid number.
    next: Vec<u64>,
    /// Broken promises, collected here (a panic inside a spawned task would be lost).
    violations: Vec<String>,
    accepted: u64,
    rejected: u64,
    /// Refusals by reason.
    reasons: BTreeMap<String, u64>,
    unavailable: u64,
    unanswered: u64,
    rate_limited: u64,
    /// Repeats of a decided bid id answered with the same result.
    repeats_checked: u64,
    /// Time of the latest accepted bid.
    last_accepted: Option<Instant>,
}

impl Ledger {
    fn new() -> Self {
        Self {
            retry: (0..DEALERS).map(|_| VecDeque::new()).collect(),
            next: vec![1; DEALERS],
            ..Self::default()
        }
    }

    fn record(&mut self, bid_id: &str, reply: BidReply) {
        let dealer = self.bids[bid_id].dealer;
        let v = match reply {
            BidReply::Unanswered => {
                self.unanswered += 1;
                self.retry_later(dealer, bid_id, Duration::ZERO);
                return;
            }
            BidReply::Answered(v) => v,
        };
        let accepted = v["accepted"].as_bool() == Some(true);
        match v["reason"].as_str() {
            Some("unavailable") if !accepted => {
                self.unavailable += 1;
                // The contract: retry with the same bid id.
                self.retry_later(dealer, bid_id, Duration::from_millis(100));
                return;
            }
            Some("rate_limited") if !accepted => {
                self.rate_limited += 1;
                self.retry_later(dealer, bid_id, Duration::from_millis(100));
                return;
            }
            _ => {}
        }
        let sent = self.bids.get_mut(bid_id).expect("known bid");
        sent.answers += 1;
        match &sent.decided {
            Some(first) => {
                if same_result(first, &v) {
                    self.repeats_checked += 1;
                } else {
                    self.violations.push(format!(
                        "bid {bid_id}: first answered {first}, a repeat answered {v}"
                    ));
                }
            }
            None => {
                sent.decided = Some(v);
                if accepted {
                    self.accepted += 1;
                    self.last_accepted = Some(Instant::now());
                } else {
                    self.rejected += 1;
                    let reason = sent.decided.as_ref().expect("just set")["reason"].to_string();
                    *self.reasons.entry(reason).or_default() += 1;
                }
            }
        }
    }

    fn retry_later(&mut self, dealer: usize, bid_id: &str, after: Duration) {
        self.retry[dealer].push_back(Retry {
            bid_id: bid_id.to_owned(),
            not_before: Instant::now() + after,
        });
    }

    /// Queues up to `n` random decided bids of every dealer to be sent again: the answer
    /// must repeat the first one (across restarts too).
    fn queue_repeat_checks(&mut self, rng: &mut StdRng, n: usize) {
        let decided: Vec<(usize, String)> = self
            .bids
            .iter()
            .filter(|(_, s)| s.decided.is_some())
            .map(|(id, s)| (s.dealer, id.clone()))
            .collect();
        if decided.is_empty() {
            return;
        }
        for _ in 0..n * DEALERS {
            let (dealer, id) = &decided[rng.gen_range(0..decided.len())];
            self.retry_later(*dealer, id, Duration::ZERO);
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} bid ids: {} accepted, {} refused {:?}, {} unavailable answers, {} unanswered, \
             {} rate_limited, {} repeats answered identically",
            self.bids.len(),
            self.accepted,
            self.rejected,
            self.reasons,
            self.unavailable,
            self.unanswered,
            self.rate_limited,
            self.repeats_checked
        )
    }
}

/// Two `bid_result`s say the same thing (the `req` echo aside).
fn same_result(a: &Value, b: &Value) -> bool {
    [
        "bid_id", "accepted", "price", "leading", "ends_at", "seq", "reason", "min_next",
    ]
    .iter()
    .all(|k| a[k] == b[k])
}

// ---------------------------------------------------------------------------------------
// The bidding client.

/// Everything a round of bidding needs.
struct Market {
    dealer_tokens: Vec<String>,
    dealer_ids: Vec<DealerId>,
    auctions: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    /// Set to stop new bids: the loops only send retries, and end once none is left.
    drain: Arc<AtomicBool>,
}

impl Market {
    /// A seller, `DEALERS` dealers with ample buying power, and `LOTS` lots of `duration_s`.
    async fn set_up(g: &Gavel, duration_s: u64) -> Self {
        let (_, seller) = g.seller("seller").await;
        let mut dealer_tokens = Vec::new();
        let mut dealer_ids = Vec::new();
        for d in 0..DEALERS {
            let (id, token) = g.dealer(&format!("dealer-{d}"), 10_000_000_000).await;
            dealer_ids.push(id.parse().expect("dealer id"));
            dealer_tokens.push(token);
        }
        let mut auctions = Vec::new();
        for _ in 0..LOTS {
            auctions.push(g.list(&seller, duration_s, START_PRICE).await.0);
        }
        Self {
            dealer_tokens,
            dealer_ids,
            auctions,
            ledger: Arc::new(Mutex::new(Ledger::new())),
            drain: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Connects every dealer and subscribes it to every lot (for `min_next`); `None` if the
    /// server went away meanwhile.
    async fn connect(&self, g: &Gavel) -> Option<Vec<Arc<WsClient>>> {
        let mut clients = Vec::new();
        for token in &self.dealer_tokens {
            let c = WsClient::connect(g.addr, token).await.ok()?;
            for a in &self.auctions {
                c.subscribe(a).await?;
            }
            clients.push(Arc::new(c));
        }
        Some(clients)
    }

    /// Bids from every dealer until `until`, the connection ends, or (once `drain`
    /// is set) nothing is left to retry; then waits for every answer still due.
    async fn bid(&self, clients: &[Arc<WsClient>], seed: u64, until: Instant) {
        let mut dealers = Vec::new();
        for (d, client) in clients.iter().enumerate() {
            let client = client.clone();
            let ledger = self.ledger.clone();
            let auctions = self.auctions.clone();
            let draining = self.drain.clone();
            let mut rng = StdRng::seed_from_u64(seed ^ ((d as u64 + 1) << 32));
            dealers.push(tokio::spawn(async move {
                let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
                let mut answers = Vec::new();
                let mut last: HashMap<String, u64> = HashMap::new();
                // Lots with a new bid of this dealer in flight: it waits for the answer
                // before bidding there again, as a person would.
                let busy: Arc<Mutex<HashSet<String>>> = Default::default();
                loop {
                    let permit = permits.clone().acquire_owned().await.expect("semaphore");
                    if client.closed() || Instant::now() >= until {
                        break;
                    }
                    let drain = draining.load(Ordering::Relaxed);
                    let next = {
                        let mut l = ledger.lock().unwrap();
                        let ready = l.retry[d]
                            .front()
                            .is_some_and(|r| r.not_before <= Instant::now());
                        if ready {
                            let id = l.retry[d].pop_front().expect("front").bid_id;
                            let s = l.bids.get_mut(&id).expect("known bid");
                            s.attempts += 1;
                            Some((id, s.auction.clone(), s.amount, s.max))
                        } else if drain {
                            // Done once nothing waits for a retry or an answer (that
                            // could still ask for a retry); this loop holds one permit.
                            if l.retry[d].is_empty() && permits.available_permits() + 1 == IN_FLIGHT
                            {
                                break;
                            }
                            None
                        } else {
                            // A lot without a bid of ours in flight, mostly one this
                            // dealer does not lead (a bid where it leads is a max raise),
                            // at or a little above what it last bid there and what the
                            // server last said is the minimum.
                            let leading = client.leading.lock().unwrap().clone();
                            let mut busy_now = busy.lock().unwrap();
                            let free: Vec<&String> =
                                auctions.iter().filter(|a| !busy_now.contains(*a)).collect();
                            let open: Vec<&String> = free
                                .iter()
                                .copied()
                                .filter(|a| leading.get(*a) != Some(&true))
                                .collect();
                            let pick = if open.is_empty() || rng.gen_ratio(1, 10) {
                                &free
                            } else {
                                &open
                            };
                            if pick.is_empty() {
                                None
                            } else {
                                let auction = pick[rng.gen_range(0..pick.len())].clone();
                                busy_now.insert(auction.clone());
                                drop(busy_now);
                                let known = client
                                    .min_next
                                    .lock()
                                    .unwrap()
                                    .get(&auction)
                                    .copied()
                                    .unwrap_or(START_PRICE);
                                let floor = known.max(last.get(&auction).map_or(0, |a| a + 10_000));
                                let amount = floor + rng.gen_range(0..2u64) * 10_000;
                                last.insert(auction.clone(), amount);
                                let max = rng
                                    .gen_bool(0.3)
                                    .then(|| amount + rng.gen_range(1..=10u64) * 10_000);
                                let n = l.next[d];
                                l.next[d] += 1;
                                let id = format!("d{d}-{n}");
                                l.bids.insert(
                                    id.clone(),
                                    Sent {
                                        dealer: d,
                                        auction: auction.clone(),
                                        amount,
                                        max,
                                        decided: None,
                                        attempts: 1,
                                        answers: 0,
                                    },
                                );
                                Some((id, auction, amount, max))
                            }
                        }
                    };
                    let Some((bid_id, auction, amount, max)) = next else {
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(if drain { 20 } else { 2 })).await;
                        continue;
                    };
                    let answer = client.bid(&auction, amount, max, &bid_id);
                    let (ledger, busy) = (ledger.clone(), busy.clone());
                    answers.push(tokio::spawn(async move {
                        let reply = answer.await;
                        ledger.lock().unwrap().record(&bid_id, reply);
                        busy.lock().unwrap().remove(&auction);
                        drop(permit);
                    }));
                    if answers.len() > 256 {
                        answers.retain(|h| !h.is_finished());
                    }
                }
                for a in answers {
                    let _ = a.await;
                }
            }));
        }
        for d in dealers {
            d.await.expect("dealer task");
        }
    }

    /// Checks what a restarted server shows: no lot has fewer accepted bids or a lower
    /// price than the client was told (acknowledged bids survived into the live state).
    async fn check_live_state(&self, g: &Gavel) {
        let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
        for s in self.ledger.lock().unwrap().bids.values() {
            if let Some(v) = s.decided.as_ref().filter(|v| v["accepted"] == true) {
                let e = seen.entry(s.auction.clone()).or_default();
                e.0 += 1;
                e.1 = e.1.max(v["price"].as_u64().unwrap_or(0));
            }
        }
        for (auction, (accepted, price)) in seen {
            let view = g.auction(&auction).await;
            let bids = view["bids"].as_u64().unwrap_or(0);
            let live_price = view["price"].as_u64().unwrap_or(0);
            assert!(
                bids >= accepted && live_price >= price,
                "after a restart {auction} shows {bids} bids at {live_price}, but the client \
                 saw {accepted} accepted and a price of {price}: {view}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the journal back.

/// Collects the direct answer of every replayed `PlaceBid`, by seq.
#[derive(Default)]
struct BidOutcomes(HashMap<u64, (LotId, DealerId, BidOutcome, bool)>);

impl ReplayObserver for BidOutcomes {
    fn entry(&mut self, seq: u64, events: &[Event]) {
        for e in events {
            if let Event::Auction(AuctionEvent::Bid {
                lot,
                dealer,
                outcome,
                duplicate,
                ..
            }) = *e
            {
                self.0.insert(seq, (lot, dealer, outcome, duplicate));
            }
        }
    }
}

/// The two ways to rebuild the book, and what the log-only replay answered each bid.
struct Replays {
    full: gavel::market::Market,
    from_snapshot: gavel::market::Market,
    snapshot_seq: u64,
    replayed_after_snapshot: u64,
    outcomes: BidOutcomes,
}

/// Opens the journal of a stopped server and reads everything back: the entries, and
/// both replays. A graceful shutdown (and `gavel replay`) released the journal, so it
/// must open at once.
async fn read_back(journal: &JournalArg) -> (Vec<Entry>, Replays) {
    match journal {
        JournalArg::File(dir) => {
            let mut j = FileJournal::open(dir, FileJournalConfig::default())
                .await
                .expect("open the file journal after the server stopped");
            let out = read_all(&mut j).await;
            j.close().await.expect("close the file journal");
            out
        }
        JournalArg::Config(_) => unreachable!("the durability tests name their journal directly"),
        JournalArg::Redis { url, prefix } => {
            let config = RedisJournalConfig {
                url: url.clone(),
                prefix: prefix.clone(),
                lease_ttl_ms: LEASE_TTL_MS,
                op_timeout_ms: 5_000,
                require_fsync: false,
                retain_commands_behind_snapshot: None,
                ..RedisJournalConfig::default()
            };
            let mut j = RedisJournal::open(&config)
                .await
                .expect("open the Redis journal after the server stopped");
            let out = read_all(&mut j).await;
            j.close().await.expect("close the Redis journal");
            out
        }
    }
}

async fn read_all<J: Journal>(j: &mut J) -> (Vec<Entry>, Replays) {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let after = entries.last().map_or(0, |e| e.seq);
        let page = j.read_after(after, 256).await.expect("read the journal");
        if page.is_empty() {
            break;
        }
        for b in page {
            entries.extend(b.entries.into_iter().filter(|e| e.seq > after));
        }
    }
    let mut outcomes = BidOutcomes::default();
    let full = recover(j, false, &mut outcomes)
        .await
        .expect("replay the log alone");
    let snap = recover(j, true, &mut ())
        .await
        .expect("recover from the snapshot and the tail");
    let replays = Replays {
        full: full.market,
        from_snapshot: snap.market,
        snapshot_seq: snap.snapshot_seq,
        replayed_after_snapshot: snap.replayed,
        outcomes,
    };
    (entries, replays)
}

/// `gavel replay --verify` on a stopped server's journal. Panics with the output unless
/// it exits 0; returns the output.
fn replay_ok(journal: &JournalArg) -> String {
    let (status, out) = replay_verify(journal);
    assert!(
        status.success(),
        "gavel replay --verify failed ({status}):\n{out}"
    );
    out
}

/// The end-of-test checks on a stopped server's journal. Returns a one-line report.
async fn check_journal(journal: &JournalArg, market: &Market, expect_snapshot: bool) -> String {
    let replay_out = replay_ok(journal);
    let (entries, replays) = read_back(journal).await;

    // (b) the state rebuilt from snapshot + tail is the state replayed from the log alone,
    // and both are what `gavel replay` printed.
    assert!(
        replays.full == replays.from_snapshot,
        "snapshot ({}) + tail ({} commands) differs from the full replay",
        replays.snapshot_seq,
        replays.replayed_after_snapshot
    );
    let digest = digests(&replays.full);
    assert_eq!(digest, digests(&replays.from_snapshot));
    let printed: Vec<&str> = replay_out
        .lines()
        .filter(|l| l.starts_with('A') && l.contains("sha256="))
        .collect();
    assert_eq!(
        printed, digest,
        "gavel replay --verify printed other digests than the in-process replay"
    );
    if expect_snapshot {
        assert!(
            replays.snapshot_seq > 0,
            "no snapshot was taken, so snapshot + tail recovery was not exercised"
        );
    }

    // (a) every decided bid is in the journal, at the seq and with the result the client
    // was told.
    let mut first_seq: HashMap<(DealerId, &str), u64> = HashMap::new();
    let mut journaled: HashMap<(DealerId, &str), u32> = HashMap::new();
    for e in &entries {
        if let Command::Auction(AuctionCommand::PlaceBid { dealer, bid_id, .. }) = &e.command {
            first_seq.entry((*dealer, bid_id)).or_insert(e.seq);
            *journaled.entry((*dealer, bid_id)).or_default() += 1;
        }
    }
    let ledger = market.ledger.lock().unwrap();
    assert!(
        ledger.violations.is_empty(),
        "repeats of a bid id answered differently:\n{}",
        ledger.violations.join("\n")
    );
    let (mut checked, mut undecided, mut lost_answers) = (0u64, Vec::new(), 0u64);
    for (bid_id, sent) in &ledger.bids {
        let dealer = market.dealer_ids[sent.dealer];
        let key = (dealer, bid_id.as_str());
        let seq = first_seq.get(&key).copied();
        // Attempts the engine made durable but whose answer never reached the client
        // (lost with a killed server, or `unavailable` after an uncertain write).
        let times = journaled.get(&key).copied().unwrap_or(0);
        lost_answers += u64::from(times.saturating_sub(sent.answers));
        let Some(told) = &sent.decided else {
            undecided.push(bid_id.as_str());
            continue;
        };
        let seq = seq.unwrap_or_else(|| {
            panic!("bid {bid_id} was answered {told} but is not in the journal")
        });
        if told["accepted"] == true {
            assert_eq!(
                told["seq"].as_u64(),
                Some(seq),
                "bid {bid_id}: acknowledged at {told} but journaled at seq {seq}"
            );
        }
        let (lot, _, outcome, duplicate) = replays.outcomes.0[&seq];
        assert!(
            !duplicate,
            "first journal entry of {bid_id} replays as a duplicate"
        );
        let replayed = serde_json::to_value(BidResult::from_outcome(
            None,
            bid_id.as_str().into(),
            lot.into(),
            &outcome,
        ))
        .expect("encode");
        for k in [
            "accepted", "price", "leading", "ends_at", "seq", "reason", "min_next",
        ] {
            assert_eq!(
                told[k], replayed[k],
                "bid {bid_id}: the client was told {told}, the replay gives {replayed}"
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no decided bid to check");
    // The tests end by sending every bid id without a decided answer again until the
    // engine decides it, so none is left.
    assert!(
        undecided.is_empty(),
        "bid ids never decided despite retries: {undecided:?}"
    );
    format!(
        "{} entries; {checked} decided bids found at their seq with their result; \
         {lost_answers} attempts durable although their answer was lost or `unavailable` \
         (their retries returned the first result); snapshot at seq {} + {} \
         tail commands == full replay; {} auctions agree with gavel replay --verify",
        entries.len(),
        replays.snapshot_seq,
        replays.replayed_after_snapshot,
        digest.len()
    )
}

// ---------------------------------------------------------------------------------------
// 1. Crash test.

/// Settings for a server in the crash and restart tests: frequent snapshots, so a
/// restart recovers from a snapshot plus a tail, and a short Redis lease.
fn crash_opts(journal: JournalArg) -> GavelOpts {
    GavelOpts::new(journal)
        .env("GAVEL_ENGINE__SNAPSHOT_EVERY_COMMANDS", 150)
        .env("GAVEL_STORE__LEASE_TTL_MS", LEASE_TTL_MS)
        .env("GAVEL_STORE__REQUIRE_FSYNC", "true")
}

async fn crash_test(journal: JournalArg) {
    support::init_tracing();
    let started = Instant::now();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let opts = crash_opts(journal.clone());

    let (g, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    let market = Market::set_up(&g, 3_600).await;
    let mut server = Some(g);
    let (mut kills, mut startup_kills, mut lease_waits, mut rounds) = (0u32, 0u32, 0u32, 0u32);
    let mut last_kill = Instant::now();
    let target = match journal {
        JournalArg::File(_) => FILE_KILLS,
        JournalArg::Redis { .. } | JournalArg::Config(_) => REDIS_KILLS,
    };
    while kills < target {
        rounds += 1;
        let g = match server.take() {
            Some(g) => g,
            None => {
                // One restart in six is killed during its own start (recovery included).
                if rng.gen_ratio(1, 6) {
                    if matches!(journal, JournalArg::Redis { .. }) {
                        // Let the killed server's lease run out, or this start is
                        // refused before it recovers anything.
                        let free = last_kill + Duration::from_millis(LEASE_TTL_MS + 100);
                        tokio::time::sleep_until(free.into()).await;
                    }
                    let mut child = Gavel::spawn_unwatched(&opts);
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(5..80))).await;
                    if child.try_wait().expect("try_wait").is_none() {
                        kills += 1;
                        startup_kills += 1;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    last_kill = Instant::now();
                    continue;
                }
                let (g, refused) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
                lease_waits += refused;
                market.check_live_state(&g).await;
                g
            }
        };
        market
            .ledger
            .lock()
            .unwrap()
            .queue_repeat_checks(&mut rng, 2);
        let mut g = g;
        let kill_after = Duration::from_millis(rng.gen_range(30..450));
        let clients = market
            .connect(&g)
            .await
            .unwrap_or_else(|| panic!("cannot connect to a running server:\n{}", g.output()));
        let until = Instant::now() + Duration::from_secs(60);
        let bidding = market.bid(&clients, rng.gen(), until);
        tokio::pin!(bidding);
        let killed = tokio::select! {
            () = tokio::time::sleep(kill_after) => true,
            () = &mut bidding => false,
        };
        assert!(
            killed,
            "bidding stopped before the kill; server output:\n{}",
            g.output()
        );
        // SIGKILL while bids are in flight, then let the client see its connections die.
        g.kill();
        last_kill = Instant::now();
        bidding.await;
        kills += 1;
    }

    // The last restart: every bid id not yet decided is sent again and settled.
    let (mut g, refused) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    lease_waits += refused;
    market.check_live_state(&g).await;
    market
        .ledger
        .lock()
        .unwrap()
        .queue_repeat_checks(&mut rng, 5);
    let clients = market.connect(&g).await.unwrap_or_else(|| {
        panic!(
            "cannot connect after the last restart; output:\n{}",
            g.output()
        )
    });
    market.drain.store(true, Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(20);
    market.bid(&clients, rng.gen(), until).await;
    drop(clients);
    let stopping = Instant::now();
    let status = g.terminate();
    let stopped_in = stopping.elapsed();
    assert!(
        status.success(),
        "gavel serve exited with {status} after SIGTERM; output:\n{}",
        g.output()
    );

    let report = check_journal(&journal, &market, true).await;
    eprintln!(
        "crash test ({}): {kills} SIGKILLs ({startup_kills} during start-up) in {rounds} \
         rounds, {lease_waits} starts refused while the lease ran out; SIGTERM to exit \
         {stopped_in:.0?}; {}; {report}; {:.1?}",
        journal.kind(),
        market.ledger.lock().unwrap().summary(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_file_journal() {
    let dir = data_dir();
    crash_test(JournalArg::File(dir.path().to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_redis_journal() {
    let redis = RedisServer::start(RedisOpts::always());
    crash_test(JournalArg::Redis {
        url: redis.url(),
        prefix: "crash".into(),
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 2. Redis restarted under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_load() {
    support::init_tracing();
    let started = Instant::now();
    let seed = seed();
    let mut redis = RedisServer::start(RedisOpts::always());
    let journal = JournalArg::Redis {
        url: redis.url(),
        prefix: "restart".into(),
    };
    let opts = crash_opts(journal.clone()).env("GAVEL_STORE__REDIS_TIMEOUT_MS", 500);
    let (mut g, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    let market = Arc::new(Market::set_up(&g, 3_600).await);
    let clients = market
        .connect(&g)
        .await
        .unwrap_or_else(|| panic!("connect; output:\n{}", g.output()));

    // One client session bids through everything; Redis is killed and started again twice:
    // once at once (a crash and a quick restart), once after 1.5 s down (longer than the
    // journal's op timeout, so waiting bids must be answered `unavailable`).
    let until = Instant::now() + Duration::from_secs(60);
    let bidding = {
        let (market, clients) = (market.clone(), clients.clone());
        tokio::spawn(async move { market.bid(&clients, seed, until).await })
    };
    let accepted = || market.ledger.lock().unwrap().accepted;
    let unavailable = || market.ledger.lock().unwrap().unavailable;
    let mut resumed_after = Vec::new();
    for down in [Duration::ZERO, Duration::from_millis(1_500)] {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let before = accepted();
        assert!(
            before > 0,
            "no bid accepted before the restart; output:\n{}",
            g.output()
        );
        let unavailable_before = unavailable();
        redis.kill();
        tokio::time::sleep(down).await;
        tokio::task::block_in_place(|| redis.start_again());
        let back = Instant::now();
        // The engine must resume on its own: new bids accepted within a few seconds.
        let resume_deadline = back + Duration::from_secs(15);
        let mark = accepted();
        while accepted() == mark {
            assert!(
                Instant::now() < resume_deadline,
                "no bid accepted within 15 s of Redis coming back; gavel output:\n{}",
                g.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        resumed_after.push(back.elapsed());
        if !down.is_zero() {
            assert!(
                unavailable() > unavailable_before,
                "bids waiting through a 1.5 s Redis outage were not answered unavailable"
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Settle: every bid id answered `unavailable` is sent again until the engine decides
    // it (a repeat of one that was durable after all must return its first result).
    market.drain.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), bidding)
        .await
        .expect("retries settle within 30 s")
        .expect("bidding");
    drop(clients);
    let (status, ready) = g.http("GET", "/readyz", Some(ADMIN), None).await;
    assert_eq!(status, 200, "not ready after the restarts: {ready}");
    let stopping = Instant::now();
    let status = g.terminate();
    let stopped_in = stopping.elapsed();
    assert!(
        status.success(),
        "gavel exited with {status}:\n{}",
        g.output()
    );
    let report = check_journal(&journal, &market, false).await;
    eprintln!(
        "redis restart under load: resumed {resumed_after:?} after Redis came back; SIGTERM \
         to exit {stopped_in:.0?}; {}; {report}; {:.1?}",
        market.ledger.lock().unwrap().summary(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Lease: one engine per journal.

async fn second_engine_refused(journal: JournalArg, other: Option<JournalArg>) {
    support::init_tracing();
    let opts = crash_opts(journal.clone());
    let (mut first, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    let (_, seller) = first.seller("s").await;

    let refused = Instant::now();
    let failure = match Gavel::start(&opts).await {
        Ok(mut second) => {
            second.kill();
            panic!(
                "a second gavel serve started on the {} journal the first one owns:\n{}",
                journal.kind(),
                second.output()
            );
        }
        Err(f) => f,
    };
    let status = failure.status.expect("the second engine exited by itself");
    assert!(
        !status.success(),
        "refused, but exited 0:\n{}",
        failure.output
    );
    assert!(
        failure.output.contains("owned by another engine"),
        "the refusal does not say why:\n{}",
        failure.output
    );
    eprintln!(
        "{} journal: second engine refused in {:.0?}: {}",
        journal.kind(),
        refused.elapsed(),
        failure.output.trim()
    );

    // The first engine is untouched and still writes.
    first.list(&seller, 600, START_PRICE).await;

    if let Some(other) = other {
        // Same Redis, another prefix: another journal, which may run beside it.
        let mut beside = Gavel::start(&crash_opts(other))
            .await
            .unwrap_or_else(|f| panic!("{f}"));
        beside.seller("s").await;
        assert!(beside.terminate().success());
    }

    // A graceful shutdown hands the journal over at once (a rolling restart must not wait
    // for a lease to run out) ...
    assert!(first.terminate().success(), "{}", first.output());
    let mut next = Gavel::start(&opts).await.unwrap_or_else(|f| {
        panic!("the journal was not free right after a graceful shutdown: {f}")
    });
    next.seller("s2").await;
    // ... and a crashed owner's journal can be taken over (once its Redis lease ran out).
    next.kill();
    let (mut last, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    last.seller("s3").await;
    assert!(last.terminate().success(), "{}", last.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_file_journal() {
    let dir = data_dir();
    second_engine_refused(JournalArg::File(dir.path().to_owned()), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_redis_journal() {
    let redis = RedisServer::start(RedisOpts::always());
    let j = |prefix: &str| JournalArg::Redis {
        url: redis.url(),
        prefix: prefix.into(),
    };
    second_engine_refused(j("lease"), Some(j("other"))).await;
}

// ---------------------------------------------------------------------------------------
// 4. Outage fairness.

async fn outage_grace(journal: JournalArg) {
    support::init_tracing();
    const GRACE_S: u64 = 4;
    // No soft close: the lot lasts 2 s, and a bid in the window would move its close.
    let opts = crash_opts(journal.clone())
        .env("GAVEL_AUCTION__OUTAGE_GRACE_S", GRACE_S)
        .env("GAVEL_AUCTION__EXTEND_WINDOW_S", 0);
    let (mut g, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    let (_, seller) = g.seller("s").await;
    let (_, dealer) = g.dealer("d", 10_000_000).await;
    let (_, rival) = g.dealer("r", 10_000_000).await;
    let (lot, listed) = g.list(&seller, 2, START_PRICE).await;
    let ends_at = listed["ends_at"].as_u64().expect("ends_at");
    let c = WsClient::connect(g.addr, &dealer).await.expect("connect");
    let BidReply::Answered(r) = c.bid(&lot, START_PRICE, None, "b1").await else {
        panic!("bid unanswered; output:\n{}", g.output());
    };
    assert_eq!(r["accepted"], true, "{r}");
    assert_eq!(
        r["ends_at"].as_u64(),
        Some(ends_at),
        "the bid moved the close: {r}"
    );
    drop(c);

    // Crash before the close, stay down past it.
    g.kill();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    tokio::time::sleep(Duration::from_millis(ends_at.saturating_sub(now()) + 800)).await;
    let restart = now();
    let (mut g, _) = Gavel::start_taking_over(&opts, Duration::from_secs(30)).await;
    let up = now();
    // Read at once: the server announces itself only with the Resume durable.
    let view = g.auction(&lot).await;
    let new_end = view["ends_at"].as_u64().expect("ends_at");
    assert_eq!(
        view["status"], "live",
        "closed unseen instead of extended: {view}"
    );
    assert!(
        new_end >= restart + GRACE_S * 1000 && new_end <= up + GRACE_S * 1000,
        "ends_at {new_end} is not restart ({restart}..{up}) + {GRACE_S} s: {view}"
    );
    // The grace is real: another dealer can still bid.
    let c = WsClient::connect(g.addr, &rival).await.expect("connect");
    let min_next = view["min_next"].as_u64().expect("min_next");
    let BidReply::Answered(r) = c.bid(&lot, min_next, None, "b2").await else {
        panic!("bid unanswered; output:\n{}", g.output());
    };
    assert_eq!(r["accepted"], true, "a bid in the outage grace: {r}");
    drop(c);
    assert!(g.terminate().success(), "{}", g.output());

    let replay_out = replay_ok(&journal);
    let (entries, _) = read_back(&journal).await;
    let resume = entries
        .iter()
        .find(|e| e.command == Command::Auction(AuctionCommand::Resume))
        .unwrap_or_else(|| panic!("no Resume in the journal: {entries:#?}"));
    assert!(resume.now_ms >= restart && resume.now_ms > ends_at);
    let closed_before = entries.iter().any(|e| {
        e.seq < resume.seq
            && matches!(e.command, Command::Auction(AuctionCommand::Tick))
            && e.now_ms >= ends_at
    });
    assert!(
        !closed_before,
        "a tick past ends_at before the Resume: {entries:#?}"
    );
    let report = replay_out.lines().last().unwrap_or_default().to_owned();
    eprintln!(
        "outage grace ({}): ends_at {ends_at} -> {new_end} (restart at {restart}); Resume at \
         seq {}; {report}",
        journal.kind(),
        resume.seq
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_grace_file_journal() {
    let dir = data_dir();
    outage_grace(JournalArg::File(dir.path().to_owned())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_grace_redis_journal() {
    let redis = RedisServer::start(RedisOpts::always());
    outage_grace(JournalArg::Redis {
        url: redis.url(),
        prefix: "outage".into(),
    })
    .await;
}
