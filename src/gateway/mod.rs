//! The live gateway: WebSocket sessions, the hub's fan-out, and the v1 wire contract.
//!
//! Owns the connection side of the engine: what a client may send and gets back, how each
//! is spelled in JSON and MessagePack (docs/protocol.md), per-connection and per-dealer
//! limits, the hub that turns durable events into per-receiver messages, and each
//! session's bounded outbound queue. Must not: decide an auction rule (the engine does) or
//! let a dealer's id reach another dealer.
//!
//! - [`wire`]: client and server messages, kept apart from the domain types.
//! - [`codec`]: frame ⇄ message, the exact error codes, shared encodings for fan-out.
//! - [`limits`]: the bid-rate token bucket and the bad-frame counter (pure, time passed in).
//! - [`outbound`]: a session's bounded, conflating queue.
//! - [`hub`]: subscriptions and fan-out (one of the engine's publishers).
//! - [`session`]: one WebSocket connection's reader and writer.
//! - [`socket`]: the shared connection, the upgrade handshake, and our own server frames.
//! - [`upgrade`]: `GET /v1/ws`, from the HTTP request to a running session.
//!
//! Who a token is comes from `crate::directory`, and the state a `subscribe` snapshots
//! from `crate::views`.

pub mod codec;
pub mod hub;
mod json;
pub mod limits;
pub mod outbound;
pub mod session;
pub mod socket;
pub mod upgrade;
pub mod wire;

pub use codec::{decode, encode, Broadcast, DecodeError, Format, Frame};
pub use limits::{BadFrames, BidRate, TokenBucket, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION};
pub use wire::{
    BidRequest, BidResult, ClientMessage, Closed, ClosedOutcome, ComplaintNotice, ComplaintView,
    ErrorCode, ErrorReply, Outbid, RejectReason, Reply, Req, Request, ServerMessage, Snapshot,
    Update, MAX_ID_BYTES,
};

use crate::metrics::render_value;
use session::SessionCtx;
use std::fmt::Write as _;

/// Renders the gateway's measurements in Prometheus text.
pub fn render_metrics(ctx: &SessionCtx, out: &mut String) {
    let m = &ctx.metrics;
    render_value(
        out,
        "gavel_ws_sessions",
        "gauge",
        "Open WebSocket sessions.",
        m.sessions.get(),
    );
    let _ = writeln!(out, "# HELP gavel_bids_total Bids answered, by result.");
    let _ = writeln!(out, "# TYPE gavel_bids_total counter");
    for (result, n) in m.bids() {
        let _ = writeln!(out, "gavel_bids_total{{result=\"{result}\"}} {n}");
    }
    m.ack_latency_us.render(
        out,
        "gavel_bid_ack_seconds",
        "From a bid frame's arrival to its durable result.",
        "",
        1e6,
    );
    let _ = writeln!(
        out,
        "# HELP gavel_bids_refused_before_engine_total Bids refused before the engine (not journaled, not in the audit trail), by cause."
    );
    let _ = writeln!(out, "# TYPE gavel_bids_refused_before_engine_total counter");
    for (cause, n) in m.pre_engine() {
        let _ = writeln!(
            out,
            "gavel_bids_refused_before_engine_total{{cause=\"{cause}\"}} {n}"
        );
    }
    render_value(
        out,
        "gavel_ws_unauthorized_total",
        "counter",
        "WebSocket upgrades refused 401 (no or unknown token).",
        m.unauthorized.get(),
    );
    render_value(
        out,
        "gavel_bad_frames_total",
        "counter",
        "Undecodable client frames.",
        m.bad_frames.get(),
    );
    render_value(
        out,
        "gavel_policy_closes_total",
        "counter",
        "Sessions closed for bad frames, oversize frames or not reading.",
        m.policy_closes.get(),
    );
    let h = &ctx.hub.metrics;
    render_value(
        out,
        "gavel_queue_conflations_total",
        "counter",
        "Unsent updates replaced in a session queue by a newer one.",
        h.conflations.get(),
    );
    render_value(
        out,
        "gavel_lot_closes_total",
        "counter",
        "Lots closed, and seller decisions.",
        h.closes.get(),
    );
}
