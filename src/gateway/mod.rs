//! The WebSocket gateway's pure parts: wire types, codecs and limits.
//!
//! Owns the v1 WebSocket contract's bytes (docs/protocol.md): what a client may send, what
//! it gets back, how each is spelled in JSON and MessagePack, and the per-connection and
//! per-dealer limits. It must not do I/O, read a clock or hold a lock: the server (sessions,
//! listener, fan-out) drives these parts and passes time in, so every decision here is
//! testable on its own.
//!
//! - [`wire`]: client and server messages, kept apart from the domain types.
//! - [`codec`]: frame ⇄ message, the exact error codes, shared encodings for fan-out.
//! - [`limits`]: the bid-rate token bucket and the bad-frame counter.

pub mod codec;
pub mod limits;
pub mod wire;

pub use codec::{decode, encode, Broadcast, DecodeError, Format, Frame};
pub use limits::{BadFrames, BidRate, TokenBucket, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION};
pub use wire::{
    AuctionRef, AuctionView, BidRequest, BidResult, ClientMessage, Closed, ClosedOutcome,
    ErrorCode, ErrorReply, Outbid, RejectReason, Reply, Req, Request, ServerMessage, Snapshot,
    Status, Update, Viewer, MAX_ID_BYTES,
};
