//! One dealer's (or seller's, or operator's) WebSocket connection.
//!
//! A reader loop decodes frames (tungstenite) and answers them; a writer task drains the
//! session's bounded outbound queue into the socket and pings the client. What the engine
//! sends (updates, results) is mostly written by the hub at the end of the engine's pass
//! instead, straight into the socket ([`super::socket`]); the writer takes what the socket
//! did not. Bids are handed to the engine with a callback (`submit_then`), so a connection
//! keeps reading while its bids wait to become durable; the engine queues each result as a
//! reply, never dropped, in the same pass that publishes the bid's `update`.

use super::codec::{self, Format, Frame};
use super::hub::{Hub, SessionLink};
use super::limits::{
    BadFrames, BidRate, TokenBucket, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION,
};
use super::outbound::{CloseReason, Kind, Outbound};
use super::socket::{self, SessionIo, Socket};
use super::wire::{
    BidRequest, BidResult, ClientMessage, ErrorCode, ErrorReply, RejectReason, Reply, Req, Request,
    ServerMessage, Snapshot,
};
use crate::auction::{Command, Event};
use crate::config::GatewayConfig;
use crate::directory::{Directory, Principal};
use crate::engine::{Applied, EngineHandle, Unavailable};
use crate::market;
use crate::metrics::{Counter, Gauge};
use crate::views::{AllianceBoard, Lots};
use crate::vocab::{DealerId, LotId};
use dashmap::DashMap;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::AsyncRead;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Everything sessions share.
pub struct SessionCtx {
    /// Subscriptions and fan-out.
    pub hub: Arc<Hub>,
    /// The durable public state a `subscribe` snapshots.
    pub lots: Arc<Lots>,
    /// Who is in good standing (who sees lots in their preview).
    pub alliance: Arc<AllianceBoard>,
    /// Who a token is (the upgrade authenticates).
    pub directory: Arc<Directory>,
    /// Where bids go.
    pub engine: EngineHandle,
    /// Limits.
    pub config: GatewayConfig,
    /// One token bucket per dealer, shared by all of that dealer's connections.
    pub rates: DashMap<DealerId, Mutex<TokenBucket>>,
    /// The process's monotonic zero, for the limiters' millisecond clocks.
    pub epoch: Instant,
    /// Flips to true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Measurements.
    pub metrics: SessionMetrics,
}

/// Gateway measurements.
#[derive(Debug)]
pub struct SessionMetrics {
    /// Open WebSocket sessions.
    pub sessions: Gauge,
    /// Bids answered, by result: accepted (`None`), and each rejection reason. An array,
    /// not a map keyed by label: every bid counts here, and an array index needs neither a
    /// lock nor a hash.
    bids: [Counter; 1 + RejectReason::ALL.len()],
    /// Acknowledgement latency: from the bid frame's arrival to its result being queued (µs).
    pub ack_latency_us: crate::metrics::Histogram,
    /// Undecodable frames.
    pub bad_frames: Counter,
    /// Sessions closed for too many bad frames, an oversized frame, or not reading.
    pub policy_closes: Counter,
}

impl Default for SessionMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionMetrics {
    /// Empty measurements.
    pub fn new() -> Self {
        Self {
            sessions: Gauge::default(),
            bids: Default::default(),
            ack_latency_us: crate::metrics::Histogram::new(crate::metrics::LATENCY_US),
            bad_frames: Counter::default(),
            policy_closes: Counter::default(),
        }
    }

    fn count_bid(&self, rejected: Option<RejectReason>) {
        self.bids[rejected.map_or(0, |r| 1 + r as usize)].inc();
    }

    /// Bids answered so far, by result label (`accepted` or the rejection reason), in
    /// label order; results not seen yet are left out.
    pub fn bids(&self) -> Vec<(&'static str, u64)> {
        let labels = std::iter::once("accepted").chain(RejectReason::ALL.map(RejectReason::as_str));
        let mut rows: Vec<_> = labels
            .zip(&self.bids)
            .map(|(label, n)| (label, n.get()))
            .filter(|&(_, n)| n > 0)
            .collect();
        rows.sort_unstable();
        rows
    }
}

impl SessionCtx {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` on the limiters' millisecond clock.
    fn ms_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Whether `dealer` may bid at `now` (from [`SessionCtx::ms_at`]) under its rate limit.
    fn allow_bid(&self, dealer: DealerId, now: u64) -> bool {
        let rate = BidRate {
            burst: self.config.bid_burst,
            per_second: self.config.bid_rate_per_s,
        };
        let bucket = self
            .rates
            .entry(dealer)
            .or_insert_with(|| Mutex::new(TokenBucket::new(rate, now)));
        let allowed = bucket.lock().try_take(now);
        allowed
    }
}

/// Why a session ends, which decides the close frame and how it is counted.
enum End {
    /// The client closed or the socket failed: nothing more to send.
    Gone,
    /// The server closes with this code and reason.
    Close(u16, &'static str),
}

/// The writer's end for a client that does not take what is queued for it.
const SLOW_CONSUMER: End = End::Close(CLOSE_POLICY_VIOLATION, "slow consumer");

/// tungstenite's settings for a session's reader, from the gateway's configuration.
fn ws_config(cfg: &GatewayConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.write_buffer_bytes)
        .max_write_buffer_size(cfg.max_write_buffer_bytes)
        .max_message_size(Some(cfg.max_message_bytes))
        .max_frame_size(Some(cfg.max_message_bytes))
}

/// Runs a session until the client leaves, misbehaves, or the server shuts down. `read`
/// is the upgraded connection, `socket` the same connection for writing.
pub async fn run<R>(
    read: R,
    socket: Socket,
    ctx: Arc<SessionCtx>,
    principal: Principal,
    format: Format,
) where
    R: AsyncRead + Unpin + Send + 'static,
{
    let cfg = &ctx.config;
    let out = Outbound::writing_to(
        cfg.outbound_queue,
        Duration::from_millis(cfg.slow_consumer_timeout_ms),
        Box::new(socket.clone()),
    );
    let link = ctx.hub.connect(principal, format, out.clone());
    ctx.metrics.sessions.inc();
    tracing::debug!(session = link.id, "connected");
    let io = SessionIo {
        read,
        out: out.clone(),
    };
    let mut stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config(cfg))).await;
    let mut writer = tokio::spawn(write_loop(
        socket,
        out.clone(),
        Duration::from_secs(cfg.ping_interval_s),
        Duration::from_millis(cfg.slow_consumer_timeout_ms),
    ));
    let mut session = Session {
        ctx: ctx.clone(),
        link: link.clone(),
        subscribed: HashSet::new(),
        bad: BadFrames::new(cfg.bad_frames_limit, cfg.bad_frames_window_s * 1000),
        inflight: Arc::new(AtomicUsize::new(0)),
    };
    let idle = Duration::from_secs(cfg.idle_timeout_s);
    // One idle timer for the session, re-armed only when it fires: a frame just records
    // when it came, so reading costs no timer-wheel insert and remove per frame.
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let mut heard = Instant::now();
    let mut shutdown = ctx.shutdown.clone();
    let mut writer_done = false;
    let end = loop {
        if *shutdown.borrow() {
            break End::Close(1001, "server shutting down");
        }
        // Backpressure: while the client is not taking what is queued for it, read no
        // more of its requests (each would queue a reply that is never dropped); the
        // writer's send timeout ends a client that stays stuck.
        if !out.has_room() {
            tokio::select! {
                _ = out.room() => {}
                _ = shutdown.changed() => continue,
                ended = &mut writer => {
                    writer_done = true;
                    break ended.unwrap_or(End::Gone);
                }
            }
            // The wait was ours, not the client's silence.
            heard = Instant::now();
        }
        let next = tokio::select! {
            next = stream.next() => Ok(next),
            () = &mut idle_timer => {
                let quiet_until = heard + idle;
                if Instant::now() >= quiet_until {
                    Err(())
                } else {
                    idle_timer.as_mut().reset(quiet_until.into());
                    continue;
                }
            }
            _ = shutdown.changed() => continue,
            // The writer gave up on the client (slow consumer, dead socket): stop reading.
            ended = &mut writer => {
                writer_done = true;
                break ended.unwrap_or(End::Gone);
            }
        };
        let msg = match next {
            Err(()) => break End::Close(1001, "idle timeout"),
            Ok(None) => break End::Gone,
            Ok(Some(Err(e))) => break read_error(e),
            Ok(Some(Ok(m))) => m,
        };
        heard = Instant::now();
        let (bytes, text) = match &msg {
            Message::Text(t) => (t.as_bytes(), true),
            Message::Binary(b) => (&b[..], false),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(_) => break End::Gone,
        };
        // Boxed: handling a frame may wait (a full engine queue), and that state would
        // otherwise sit inline in every session's task, idle or not.
        if let Some(end) = Box::pin(session.frame(bytes, text)).await {
            break end;
        }
    };
    match end {
        End::Close(code, reason) => {
            if code == CLOSE_POLICY_VIOLATION || code == CLOSE_MESSAGE_TOO_BIG {
                ctx.metrics.policy_closes.inc();
            }
            tracing::info!(session = link.id, code, reason, "closing");
        }
        End::Gone => tracing::debug!(session = link.id, "client left"),
    }
    out.close(match end {
        End::Close(code, reason) => CloseReason::Ended(code, reason),
        End::Gone => CloseReason::Ended(1000, ""),
    });
    ctx.hub
        .disconnect(&link, session.subscribed.iter().copied());
    ctx.metrics.sessions.dec();
    // The writer sends what is queued and the close frame, within its own timeouts.
    if !writer_done {
        let _ = writer.await;
    }
    if let End::Close(..) = end {
        // Our close frame is out and our side shut down. Read on, discarding, until the
        // client closes too: a socket closed with unread input is reset, and the reset
        // would take the close frame (code and reason) from a client that was still
        // sending. Bounded, so a client that never closes cannot hold the session.
        drain(stream.get_mut(), Duration::from_millis(cfg.close_drain_ms)).await;
    }
}

/// Reads and discards until the peer closes its side, the connection fails, or `within`
/// has passed.
async fn drain(read: &mut (impl AsyncRead + Unpin), within: Duration) {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(within, async {
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Maps a read error to a close: an oversized frame is 1009, anything else ends quietly.
fn read_error(e: tokio_tungstenite::tungstenite::Error) -> End {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            End::Close(CLOSE_MESSAGE_TOO_BIG, "message too big")
        }
        _ => End::Gone,
    }
}

struct Session {
    ctx: Arc<SessionCtx>,
    link: Arc<SessionLink>,
    subscribed: HashSet<LotId>,
    bad: BadFrames,
    inflight: Arc<AtomicUsize>,
}

impl Session {
    fn reply(&self, msg: &ServerMessage) {
        let frame = codec::encode(self.link.format, msg);
        self.link.out.push(Kind::Reply, frame, Instant::now());
    }

    /// Handles one data frame; `Some` ends the session.
    async fn frame(&mut self, bytes: &[u8], text: bool) -> Option<End> {
        let format = self.link.format;
        let decoded = if text != (format == Format::Json) {
            Err(ServerMessage::Error(ErrorReply {
                code: ErrorCode::BadMessage,
                message: format!(
                    "this connection speaks {}: send {} frames",
                    format.as_str(),
                    if format == Format::Json {
                        "text"
                    } else {
                        "binary"
                    }
                ),
                req: None,
            }))
        } else {
            codec::decode(format, bytes).map_err(|e| e.into_message())
        };
        match decoded {
            Ok(msg) => {
                self.request(msg).await;
                None
            }
            Err(error) => {
                self.ctx.metrics.bad_frames.inc();
                self.reply(&error);
                self.bad
                    .record(self.ctx.now_ms())
                    .then_some(End::Close(CLOSE_POLICY_VIOLATION, "too many bad frames"))
            }
        }
    }

    async fn request(&mut self, ClientMessage { req, request }: ClientMessage) {
        match request {
            Request::Ping => self.reply(&ServerMessage::Pong(Reply { req })),
            Request::Subscribe { auction } => {
                let lot = auction.lot();
                // A lot in its preview is shown only to those who may see it (its seller,
                // operators, dealers in good standing); to anyone else it is unknown, and
                // is not watched, until it goes live.
                let viewer = self.link.principal.into();
                let previews = self.ctx.alliance.sees_previews(viewer);
                let known = lot
                    .is_some_and(|l| self.ctx.lots.visible(l, viewer, previews) && self.watch(l));
                let view = lot
                    .filter(|_| known)
                    .and_then(|l| self.ctx.lots.view_for(l, viewer, previews));
                match view {
                    Some(auction) => {
                        self.reply(&ServerMessage::Snapshot(Snapshot { req, auction }))
                    }
                    None => self.reply(&ServerMessage::Error(ErrorReply {
                        code: ErrorCode::UnknownAuction,
                        message: format!("no auction {auction}"),
                        req,
                    })),
                }
            }
            Request::Unsubscribe { auction } => {
                if let Some(lot) = auction.lot() {
                    self.ctx.hub.unsubscribe(&self.link, lot);
                    self.subscribed.remove(&lot);
                }
                self.reply(&ServerMessage::Unsubscribed(Reply { req }));
            }
            Request::Bid(bid) => self.bid(req, bid).await,
        }
    }

    /// Subscribes to a lot if the session has room; false if unknown or over the cap.
    fn watch(&mut self, lot: LotId) -> bool {
        if self.subscribed.contains(&lot) {
            return true;
        }
        if self.subscribed.len() >= self.ctx.config.max_subscriptions {
            return false;
        }
        // Subscribed before the view is read: the views are published before the hub
        // fans out, so the snapshot read after this is at least as new as every update
        // this session misses (it may get one twice, never miss one).
        if !self.ctx.lots.contains(lot) {
            return false;
        }
        self.ctx.hub.subscribe(&self.link, lot);
        self.subscribed.insert(lot);
        true
    }

    async fn bid(&mut self, req: Option<Req>, bid: BidRequest) {
        let arrived = Instant::now();
        let refuse = |reason| {
            BidResult::refused(req.clone(), bid.bid_id.clone(), bid.auction.clone(), reason)
        };
        let Some(dealer) = self.link.principal.dealer() else {
            self.ctx.metrics.count_bid(Some(RejectReason::NotEligible));
            self.reply(&ServerMessage::BidResult(refuse(RejectReason::NotEligible)));
            return;
        };
        if self.inflight.load(Ordering::Relaxed) >= self.ctx.config.max_inflight_bids
            || !self.ctx.allow_bid(dealer, self.ctx.ms_at(arrived))
        {
            self.ctx.metrics.count_bid(Some(RejectReason::RateLimited));
            self.reply(&ServerMessage::BidResult(refuse(RejectReason::RateLimited)));
            return;
        }
        // An id that is not an auction id at all (not of the form the server gives out)
        // names no lot that could ever exist: it is answered here, like `rate_limited`,
        // and not remembered, so its `bid_id` stays free. A well-formed id goes to the
        // engine, which answers (and journals) `unknown_auction` for a lot it does not
        // know, and remembers that first answer.
        let Some(lot) = bid.auction.lot() else {
            self.ctx
                .metrics
                .count_bid(Some(RejectReason::UnknownAuction));
            self.reply(&ServerMessage::BidResult(refuse(
                RejectReason::UnknownAuction,
            )));
            return;
        };
        // A dealer who bids watches the auction from then on.
        self.watch(lot);
        let command = Command::PlaceBid {
            dealer,
            lot,
            amount: bid.amount,
            max: bid.max,
            bid_id: bid.bid_id.clone(),
        };
        let ctx = self.ctx.clone();
        let link = self.link.clone();
        let inflight = self.inflight.clone();
        inflight.fetch_add(1, Ordering::Relaxed);
        // The result is queued from the engine's task as soon as the bid is durable, right
        // after the `update` it caused: both leave in one socket write, with no task or
        // wake-up per bid in between.
        let answer = move |applied: Result<Applied, Unavailable>| {
            let durable = applied.is_ok();
            let outcome = applied.ok().and_then(|applied| {
                applied.events.iter().find_map(|e| match e {
                    market::Event::Auction(Event::Bid {
                        outcome,
                        lot,
                        duplicate,
                        ..
                    }) => Some((*outcome, *lot, *duplicate)),
                    _ => None,
                })
            });
            // The auction is echoed as the client named it; a repeated `bid_id` gets its
            // first result whole, the auction that first bid named included.
            let result = match outcome {
                Some((outcome, lot, duplicate)) => {
                    let auction = if duplicate { lot.into() } else { bid.auction };
                    BidResult::from_outcome(req, bid.bid_id, auction, &outcome)
                }
                None => BidResult::refused(req, bid.bid_id, bid.auction, RejectReason::Unavailable),
            };
            // A refusal always has a reason; `invalid` stands in should one ever lack it.
            ctx.metrics.count_bid(
                (!result.accepted).then(|| result.reason.unwrap_or(RejectReason::Invalid)),
            );
            let frame = codec::encode(link.format, &ServerMessage::BidResult(result));
            // One clock read serves the latency and the queue's slow-consumer clock.
            let now = Instant::now();
            ctx.metrics
                .ack_latency_us
                .observe(now.saturating_duration_since(arrived).as_micros() as u64);
            if durable {
                // In the engine's publishing pass, which flushes at its end.
                ctx.hub.reply(&link, frame, now);
            } else {
                // A refusal may come from any task (a full or stopped engine).
                link.out.push(Kind::Reply, frame, now);
            }
            inflight.fetch_sub(1, Ordering::Relaxed);
        };
        // Waits only while the engine's queue is full: reading no more of this client's
        // frames meanwhile is the backpressure we want.
        self.ctx.engine.submit_then(command, answer).await;
    }
}

/// How a write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// Written.
    Done,
    /// The socket failed (the client is gone).
    Failed,
    /// Not finished within the send timeout: the client is not reading.
    Stuck,
}

impl Sent {
    /// The writer's end after this write, if it must stop.
    fn ended(self) -> Option<End> {
        match self {
            Self::Done => None,
            Self::Stuck => Some(SLOW_CONSUMER),
            Self::Failed => Some(End::Gone),
        }
    }
}

/// Runs a write, with `limit` to finish. The timer is armed only for a write that does
/// not finish at once: nearly every write fits the socket's buffer, and a hot lot's
/// fan-out must not pay a timer's insert and removal per subscriber frame.
async fn within<E>(limit: Duration, write: impl Future<Output = Result<(), E>>) -> Sent {
    let mut write = std::pin::pin!(write);
    let done = match std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        Poll::Ready(done) => done,
        Poll::Pending => match tokio::time::timeout(limit, write).await {
            Ok(done) => done,
            Err(_) => return Sent::Stuck,
        },
    };
    if done.is_ok() {
        Sent::Done
    } else {
        Sent::Failed
    }
}

/// Drains the queue into the socket, pings the client, and sends the close frame. Closing
/// the queue is what ends this loop, and the close reason carries the frame to send: the
/// writer waits on the queue alone. Returns the end it chose or saw, so that a session
/// the writer ends (a client not reading, a failed socket) is closed, counted and logged
/// by the reader like any other; after a close the reader asked for, nobody looks.
async fn write_loop(
    socket: Socket,
    out: Arc<Outbound<Frame>>,
    ping_every: Duration,
    send_timeout: Duration,
) -> End {
    let mut batch = Vec::new();
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await; // the first tick is immediate
    let close = loop {
        tokio::select! {
            taken = out.take(&mut batch) => {
                // A client that does not take what was queued within the timeout is gone.
                let sent = within(send_timeout, socket.write_all(&batch, taken.skip)).await;
                batch.clear();
                if let Some(end) = sent.ended() {
                    return end;
                }
                match taken.close {
                    Some(CloseReason::SlowConsumer) => break SLOW_CONSUMER,
                    Some(CloseReason::Ended(code, reason)) => break End::Close(code, reason),
                    None => {}
                }
            }
            _ = ping.tick() => {
                // Queued like any frame, so it never lands inside one being written.
                out.push(Kind::Event, socket::ping(), Instant::now());
            }
        }
    };
    if let End::Close(code, reason) = close {
        let frame = [socket::close(code, reason)];
        let _ = within(send_timeout, socket.write_all(&frame, 0)).await;
        socket.shutdown_write();
    }
    close
}
