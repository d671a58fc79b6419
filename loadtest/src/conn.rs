//! One dealer connection of the generator: a writer task that sends on a schedule fixed in
//! advance (open loop) and a reader task that matches replies to what was sent.
//!
//! Open loop: a phase gives each connection a start time and a spacing, so bid `i` is due
//! at `start + offset + i × spacing` whatever the server does. A late send is sent as soon
//! as it can be, and its latency is counted from when it was due, so a server that stalls
//! cannot hide its queue behind a generator that politely waits (coordinated omission).
//!
//! The two tasks share the connection's [`ConnBook`] behind a mutex that only they (and
//! the controller between phases) take, so it is almost never contended.

use crate::model::increment;
use crate::proto::{ClientMsg, Format, Frame, Kind, ServerMsg};
use crate::stats::{new_hist, record};
use anyhow::Context;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every connection shares: the clock, the auctions, the generator's pricing state.
pub struct World {
    /// Zero of every `*_ns` time in the run.
    pub epoch: Instant,
    /// The auctions bid on.
    pub auctions: Vec<AuctionState>,
    /// Per scope (see `setup::Dealer::scope`: a cluster market, or 0 for the one
    /// server), auction id → index. A connection reads ids in its own scope only.
    pub index: Vec<HashMap<String, u32>>,
    /// Keep every `update`'s arrival (hot-lot's fan-out measure).
    pub track_updates: bool,
    /// Share of bids sent with a proxy `max`.
    pub proxy_ratio: f64,
    /// Encoding.
    pub format: Format,
}

/// The generator's view of one auction's price, shared by all connections. It is only a
/// way to choose amounts that are likely to be accepted; the server's answers are the
/// record, and the model checks them.
pub struct AuctionState {
    /// Id.
    pub id: String,
    /// Highest `min_next` seen in any reply.
    pub floor: AtomicU64,
    /// Highest amount offered so far.
    pub offered: AtomicU64,
}

impl World {
    /// The index of auction `id` in `scope`.
    pub fn auction(&self, scope: u16, id: &str) -> Option<u32> {
        self.index.get(usize::from(scope))?.get(id).copied()
    }

    /// Nanoseconds since the run's epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Raises an auction's known minimum.
    pub fn saw_min_next(&self, a: u32, min_next: u64) {
        if let Some(s) = self.auctions.get(a as usize) {
            s.floor.fetch_max(min_next, Ordering::Relaxed);
        }
    }

    /// The next amount to offer on auction `a`: one increment over the last offer, and
    /// never under the highest minimum seen.
    pub fn next_amount(&self, a: u32) -> u64 {
        let s = &self.auctions[a as usize];
        let floor = s.floor.load(Ordering::Relaxed);
        let mut off = s.offered.load(Ordering::Relaxed);
        loop {
            let cand = if off == 0 {
                floor
            } else {
                floor.max(off + increment(off))
            };
            match s
                .offered
                .compare_exchange_weak(off, cand, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return cand,
                Err(v) => off = v,
            }
        }
    }
}

/// A bid as sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When it was due, ns since the epoch.
    pub sched_ns: u64,
    /// When it was handed to the socket.
    pub sent_ns: u64,
    /// Auction index.
    pub auction: u32,
    /// Amount.
    pub amount: u64,
    /// Proxy max.
    pub max: Option<u64>,
}

/// The server's answer to a bid.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When it arrived, ns since the epoch.
    pub at_ns: u64,
    /// Accepted?
    pub accepted: bool,
    /// Price (accepted).
    pub price: u64,
    /// Leading (accepted).
    pub leading: bool,
    /// Sequence number (accepted).
    pub seq: u64,
    /// Close time (accepted).
    pub ends_at: u64,
    /// Reason (refused).
    pub reason: Option<String>,
}

/// Counters for the current phase.
pub struct PhaseStats {
    /// Ack latency from the due time, µs.
    pub ack: Histogram<u64>,
    /// Ack latency from the actual send, µs (without the generator's own lateness).
    pub wire: Histogram<u64>,
    /// Due time to the actual send, µs: how far behind the generator itself ran.
    pub send_lag: Histogram<u64>,
    /// Bids sent.
    pub sent: u64,
    /// Bid results received.
    pub acks: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Refusals by reason.
    pub reasons: BTreeMap<String, u64>,
    /// Errors by kind (error messages by code, closed connections, undecodable frames).
    pub errors: BTreeMap<String, u64>,
    /// Other messages received (updates, outbids, …).
    pub other_msgs: u64,
    /// Last bid result's arrival.
    pub last_ack_ns: u64,
}

impl PhaseStats {
    fn new() -> Self {
        Self {
            ack: new_hist(),
            wire: new_hist(),
            send_lag: new_hist(),
            sent: 0,
            acks: 0,
            accepted: 0,
            reasons: BTreeMap::new(),
            errors: BTreeMap::new(),
            other_msgs: 0,
            last_ack_ns: 0,
        }
    }

    /// Adds another connection's counters into this one.
    pub fn merge(&mut self, o: &PhaseStats) {
        let _ = self.ack.add(&o.ack);
        let _ = self.wire.add(&o.wire);
        let _ = self.send_lag.add(&o.send_lag);
        self.sent += o.sent;
        self.acks += o.acks;
        self.accepted += o.accepted;
        for (k, v) in &o.reasons {
            *self.reasons.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.other_msgs += o.other_msgs;
        self.last_ack_ns = self.last_ack_ns.max(o.last_ack_ns);
    }
}

impl Default for PhaseStats {
    fn default() -> Self {
        Self::new()
    }
}

/// What a `closed` said.
#[derive(Debug, Clone)]
pub struct ClosedMsg {
    /// Auction index.
    pub auction: u32,
    /// sold / no_sale / pending_seller.
    pub outcome: String,
    /// Price.
    pub price: Option<u64>,
    /// Won.
    pub won: bool,
    /// Arrival, ns.
    pub at_ns: u64,
}

/// Everything a connection knows, shared by its reader and writer.
pub struct ConnBook {
    /// Bids sent, index = the `k` in the bid id.
    pub sent: Vec<Sent>,
    /// Answers, same index.
    pub answers: Vec<Option<Answer>>,
    /// Answers received in all.
    pub answered: u64,
    /// This phase's counters.
    pub stats: PhaseStats,
    /// Per auction: the newest `update` seen (seq, leading).
    pub lead: HashMap<u32, (u64, bool)>,
    /// Per auction: the highest `max` this dealer sent (a raise must exceed it).
    pub my_max: HashMap<u32, u64>,
    /// Per auction: bids sent and not yet answered.
    pub inflight: HashMap<u32, u32>,
    /// Every update's (seq, arrival ns), when the world tracks them.
    pub updates: Vec<(u64, u64)>,
    /// `closed` messages.
    pub closed: Vec<ClosedMsg>,
    /// Snapshots received (replies to subscribe).
    pub snapshots: u64,
    /// False once the socket closed or failed.
    pub open: bool,
}

impl ConnBook {
    fn new() -> Self {
        Self {
            sent: Vec::new(),
            answers: Vec::new(),
            answered: 0,
            stats: PhaseStats::new(),
            lead: HashMap::new(),
            my_max: HashMap::new(),
            inflight: HashMap::new(),
            updates: Vec::new(),
            closed: Vec::new(),
            snapshots: 0,
            open: true,
        }
    }

    /// Bids sent and not answered.
    pub fn outstanding(&self) -> u64 {
        self.sent.len() as u64 - self.answered
    }
}

/// A schedule for one phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// First bid due, ns since the epoch.
    pub start_ns: u64,
    /// Spacing, ns.
    pub interval_ns: u64,
    /// Bids to send.
    pub count: u64,
    /// Auctions this dealer bids on.
    pub auctions: Arc<Vec<u32>>,
}

/// What the controller asks a connection's writer to do.
pub enum Cmd {
    /// Send a phase's bids on schedule.
    Run(Phase),
    /// Send one bid now.
    Bid {
        /// Auction index.
        auction: u32,
        /// Amount.
        amount: u64,
        /// Proxy max.
        max: Option<u64>,
    },
    /// Subscribe to an auction.
    Subscribe(u32),
    /// Close the socket.
    Close,
}

/// A live connection.
pub struct Conn {
    /// Harness dealer index.
    pub dealer: u32,
    /// The namespace of the auction ids it reads (its market).
    pub scope: u16,
    /// Shared state.
    pub book: Mutex<ConnBook>,
    /// The writer's orders.
    pub cmd: mpsc::UnboundedSender<Cmd>,
}

impl Conn {
    /// Locks the book (a poisoned lock still holds usable counters).
    pub fn book(&self) -> MutexGuard<'_, ConnBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The generator's WebSocket settings, for every connection it opens (and for readers
/// that must read as it does, such as `gavel-fanout-floor client --parse`).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
        // Small buffers: a run opens 10,000 connections from one process, and tungstenite
        // zero-fills its read buffer, so a large one costs every read (see gavel's
        // `gateway.read_buffer_bytes` in config/default.toml).
        .read_buffer_size(4096)
        .write_buffer_size(4096)
}

/// Opens a WebSocket to `ws_base` (`ws://host:port`) with `token` and starts its tasks;
/// the auction ids it reads are those of `scope`.
pub async fn connect(
    world: Arc<World>,
    ws_base: &str,
    token: &str,
    dealer: u32,
    scope: u16,
) -> anyhow::Result<Arc<Conn>> {
    let url = format!(
        "{ws_base}/v1/ws?token={token}&format={}",
        world.format.query()
    );
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
            .await
            .with_context(|| format!("connecting dealer {dealer}"))?;
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        dealer,
        scope,
        book: Mutex::new(ConnBook::new()),
        cmd: tx,
    });
    tokio::spawn(writer(world.clone(), conn.clone(), sink, rx));
    tokio::spawn(reader(world, conn.clone(), stream));
    Ok(conn)
}

fn to_message(f: Frame) -> Message {
    match f {
        Frame::Text(t) => Message::Text(t.into()),
        Frame::Binary(b) => Message::Binary(b.into()),
    }
}

async fn writer(
    world: Arc<World>,
    conn: Arc<Conn>,
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut rng = rand::rngs::SmallRng::from_entropy();
    let mut bid_id = String::new();
    let mut req = 0u64;
    while let Some(cmd) = rx.recv().await {
        let ok = match cmd {
            Cmd::Close => {
                let _ = sink.close().await;
                return;
            }
            Cmd::Subscribe(a) => {
                req += 1;
                let m = ClientMsg::Subscribe {
                    req,
                    auction: &world.auctions[a as usize].id,
                };
                sink.send(to_message(m.encode(world.format))).await.is_ok()
            }
            Cmd::Bid {
                auction,
                amount,
                max,
            } => {
                let now = world.now_ns();
                let m = prepare(&world, &conn, &mut bid_id, now, auction, amount, max);
                sink.send(to_message(m)).await.is_ok()
            }
            Cmd::Run(p) => run_phase(&world, &conn, &mut sink, &mut rng, &mut bid_id, &p).await,
        };
        if !ok {
            let mut b = conn.book();
            *b.stats.errors.entry("send_failed".into()).or_default() += 1;
            b.open = false;
            return;
        }
    }
}

/// Records a bid in the book and encodes it.
fn prepare(
    world: &World,
    conn: &Conn,
    bid_id: &mut String,
    sched_ns: u64,
    auction: u32,
    amount: u64,
    max: Option<u64>,
) -> Frame {
    let now = world.now_ns();
    let k = {
        let mut b = conn.book();
        let k = b.sent.len();
        b.sent.push(Sent {
            sched_ns,
            sent_ns: now,
            auction,
            amount,
            max,
        });
        b.answers.push(None);
        b.stats.sent += 1;
        record(&mut b.stats.send_lag, now.saturating_sub(sched_ns) / 1000);
        *b.inflight.entry(auction).or_default() += 1;
        if let Some(m) = max {
            let e = b.my_max.entry(auction).or_default();
            *e = (*e).max(m);
        }
        k
    };
    bid_id.clear();
    use std::fmt::Write;
    let _ = write!(bid_id, "c{}-{k}", conn.dealer);
    ClientMsg::Bid {
        auction: &world.auctions[auction as usize].id,
        amount,
        max,
        bid_id,
    }
    .encode(world.format)
}

async fn run_phase(
    world: &World,
    conn: &Conn,
    sink: &mut SplitSink<Ws, Message>,
    rng: &mut rand::rngs::SmallRng,
    bid_id: &mut String,
    p: &Phase,
) -> bool {
    if p.auctions.is_empty() {
        return true;
    }
    for i in 0..p.count {
        let due = p.start_ns + i * p.interval_ns;
        let now = world.now_ns();
        if due > now {
            // Everything due so far is written; push it out before sleeping.
            if sink.flush().await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        let a = p.auctions[rng.gen_range(0..p.auctions.len())];
        let amount = world.next_amount(a);
        // A dealer that leads (or may, with a bid in flight) sends a max raise: the
        // contract makes any bid from the leader a raise, which needs a higher max.
        let (leads, mine) = {
            let b = conn.book();
            let leads =
                b.lead.get(&a).is_some_and(|l| l.1) || b.inflight.get(&a).copied().unwrap_or(0) > 0;
            (leads, b.my_max.get(&a).copied().unwrap_or(0))
        };
        let max = if leads {
            let base = mine.max(amount);
            Some(base + increment(base))
        } else if rng.gen_bool(world.proxy_ratio.clamp(0.0, 1.0)) {
            Some(amount + rng.gen_range(1..=4u64) * increment(amount))
        } else {
            None
        };
        let m = prepare(world, conn, bid_id, due, a, amount, max);
        if sink.feed(to_message(m)).await.is_err() {
            return false;
        }
    }
    sink.flush().await.is_ok()
}

async fn reader(world: Arc<World>, conn: Arc<Conn>, mut stream: SplitStream<Ws>) {
    while let Some(msg) = stream.next().await {
        let decoded = match msg {
            Ok(Message::Text(t)) => ServerMsg::from_json(&t),
            Ok(Message::Binary(b)) => ServerMsg::from_msgpack(&b),
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(_) => break,
        };
        let now = world.now_ns();
        match decoded {
            Ok(m) => handle(&world, &conn, m, now),
            Err(_) => {
                *conn
                    .book()
                    .stats
                    .errors
                    .entry("undecodable".into())
                    .or_default() += 1;
            }
        }
    }
    let mut b = conn.book();
    if b.open {
        *b.stats
            .errors
            .entry("connection_closed".into())
            .or_default() += 1;
    }
    b.open = false;
}

fn auction_index(world: &World, conn: &Conn, m: &ServerMsg) -> Option<u32> {
    world.auction(conn.scope, m.auction_id()?)
}

fn handle(world: &World, conn: &Conn, m: ServerMsg, now: u64) {
    match m.kind {
        Kind::BidResult => {
            let k = m
                .bid_id
                .as_deref()
                .and_then(|s| s.rsplit_once('-'))
                .and_then(|(_, k)| k.parse::<usize>().ok());
            let accepted = m.accepted.unwrap_or(false);
            let mut b = conn.book();
            let Some(k) = k.filter(|&k| k < b.sent.len()) else {
                *b.stats
                    .errors
                    .entry("unmatched_bid_result".into())
                    .or_default() += 1;
                return;
            };
            if b.answers[k].is_some() {
                *b.stats
                    .errors
                    .entry("duplicate_bid_result".into())
                    .or_default() += 1;
                return;
            }
            let sent = b.sent[k].clone();
            record(&mut b.stats.ack, now.saturating_sub(sent.sched_ns) / 1000);
            record(&mut b.stats.wire, now.saturating_sub(sent.sent_ns) / 1000);
            b.stats.acks += 1;
            b.stats.last_ack_ns = now;
            b.answered += 1;
            if let Some(n) = b.inflight.get_mut(&sent.auction) {
                *n = n.saturating_sub(1);
            }
            let ans = Answer {
                at_ns: now,
                accepted,
                price: m.price.unwrap_or(0),
                leading: m.leading.unwrap_or(false),
                seq: m.seq.unwrap_or(0),
                ends_at: m.ends_at.unwrap_or(0),
                reason: m.reason.clone(),
            };
            if accepted {
                b.stats.accepted += 1;
                let e = b.lead.entry(sent.auction).or_insert((0, false));
                if ans.seq >= e.0 {
                    *e = (ans.seq, ans.leading);
                }
                drop(b);
                if let Some(p) = m.price {
                    world.saw_min_next(sent.auction, p + increment(p));
                }
                b = conn.book();
            } else {
                let r = m.reason.clone().unwrap_or_else(|| "none".into());
                *b.stats.reasons.entry(r).or_default() += 1;
                if let Some(mn) = m.min_next {
                    world.saw_min_next(sent.auction, mn);
                }
            }
            b.answers[k] = Some(ans);
        }
        Kind::Update => {
            let Some(a) = auction_index(world, conn, &m) else {
                return;
            };
            if let Some(mn) = m.min_next {
                world.saw_min_next(a, mn);
            }
            let seq = m.seq.unwrap_or(0);
            let mut b = conn.book();
            b.stats.other_msgs += 1;
            let e = b.lead.entry(a).or_insert((0, false));
            if seq >= e.0 {
                *e = (seq, m.leading.unwrap_or(false));
            }
            if world.track_updates {
                b.updates.push((seq, now));
            }
        }
        Kind::Outbid => {
            if let (Some(a), Some(mn)) = (auction_index(world, conn, &m), m.min_next) {
                world.saw_min_next(a, mn);
            }
            conn.book().stats.other_msgs += 1;
        }
        Kind::Snapshot => {
            if let Some(crate::proto::AuctionField::Obj(o)) = &m.auction {
                if let Some(a) = world.auction(conn.scope, &o.id) {
                    world.saw_min_next(a, o.min_next);
                }
            }
            conn.book().snapshots += 1;
        }
        Kind::Closed => {
            let mut b = conn.book();
            b.stats.other_msgs += 1;
            if let Some(a) = auction_index(world, conn, &m) {
                b.closed.push(ClosedMsg {
                    auction: a,
                    outcome: m.outcome.clone().unwrap_or_default(),
                    price: m.price,
                    won: m.won.unwrap_or(false),
                    at_ns: now,
                });
            }
        }
        Kind::Error => {
            let code = format!("error:{}", m.code.as_deref().unwrap_or("?"));
            *conn.book().stats.errors.entry(code).or_default() += 1;
        }
        Kind::Pong | Kind::Unsubscribed | Kind::Other => {
            conn.book().stats.other_msgs += 1;
        }
    }
}

/// Takes every connection's phase counters (resetting them) and merges them.
pub fn take_stats(conns: &[Arc<Conn>]) -> PhaseStats {
    let mut all = PhaseStats::new();
    for c in conns {
        let s = std::mem::take(&mut c.book().stats);
        all.merge(&s);
    }
    all
}

/// Bids sent and not answered, over all connections.
pub fn outstanding(conns: &[Arc<Conn>]) -> u64 {
    conns.iter().map(|c| c.book().outstanding()).sum()
}

/// Connections still open.
pub fn open_count(conns: &[Arc<Conn>]) -> usize {
    conns.iter().filter(|c| c.book().open).count()
}
