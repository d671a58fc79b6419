//! What the two comparison servers (`baseline/`, `echo/`) share: the client messages they
//! read, their WebSocket settings, and how they encode a reply. Kept in one place so the
//! servers differ only in the work they do per bid.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The fields of a client message the comparison servers use (the protocol subset:
/// `subscribe`, `bid`, `ping`).
#[derive(Deserialize)]
pub struct In<'a> {
    /// The message type.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// Echoed in the answer.
    #[serde(default)]
    pub req: Option<serde_json::Value>,
    /// The auction, for `subscribe` and `bid`.
    #[serde(default, borrow)]
    pub auction: Option<Cow<'a, str>>,
    /// A bid's amount.
    #[serde(default)]
    pub amount: Option<u64>,
    /// A bid's idempotency key.
    #[serde(default, borrow)]
    pub bid_id: Option<Cow<'a, str>>,
}

/// An `update` as both comparison servers send it (the protocol's fields; `A` is however
/// the server holds an auction id). Sent as `Out::Update(Update { .. })`, which serde
/// tags with `"type": "update"`.
#[derive(Serialize, Clone)]
pub struct Update<A> {
    /// The auction.
    pub auction: A,
    /// Its sequence number.
    pub seq: u64,
    /// `live` while it takes bids.
    pub status: &'static str,
    /// The current price.
    pub price: u64,
    /// The lowest bid it takes next.
    pub min_next: u64,
    /// Bids so far.
    pub bids: u64,
    /// Whether the reserve is met.
    pub reserve_met: bool,
    /// Whether the recipient leads.
    pub leading: bool,
    /// When it ends (ms).
    pub ends_at: u64,
}

/// Decodes a data frame (JSON text or MessagePack binary); `None` for any other frame.
pub fn decode(m: &Message) -> Option<Result<In<'_>, ()>> {
    match m {
        Message::Text(t) => Some(serde_json::from_str(t).map_err(|_| ())),
        Message::Binary(b) => Some(rmp_serde::from_slice(b).map_err(|_| ())),
        _ => None,
    }
}

/// Encodes an answer in the connection's format.
pub fn encode<T: Serialize>(o: &T, msgpack: bool) -> Message {
    if msgpack {
        Message::Binary(rmp_serde::to_vec_named(o).unwrap_or_default().into())
    } else {
        Message::Text(serde_json::to_string(o).unwrap_or_default().into())
    }
}

/// The same per-connection buffers as gavel's defaults (config/default.toml), so idle
/// memory and read costs compare like for like.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10))
        .read_buffer_size(2048)
        .write_buffer_size(4096)
}
