//! The subset of the v1 WebSocket contract the load generator speaks, as our own serde
//! types (docs/protocol.md). Deliberately independent of gavel's `wire` module: the harness
//! must be able to point at any server that implements the contract.
//!
//! Server messages decode into one flat [`ServerMsg`] with every field optional, because a
//! load generator reads a few fields of many message kinds and must never allocate a tree
//! (`serde_json::Value`) per frame. The one field whose shape depends on the kind is
//! `auction` (a string id, or the auction object in `snapshot`); [`AuctionField`] reads
//! either without buffering.

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The connection's encoding, fixed at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Text frames of JSON.
    Json,
    /// Binary frames of MessagePack maps.
    Msgpack,
}

impl Format {
    /// The `format=` query value.
    pub fn query(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Msgpack => "msgpack",
        }
    }
}

/// A client message.
#[derive(Serialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg<'a> {
    /// Watch an auction.
    Subscribe {
        /// Request tag.
        req: u64,
        /// Auction id.
        auction: &'a str,
    },
    /// Place a bid.
    Bid {
        /// Auction id.
        auction: &'a str,
        /// Placed amount, fen.
        amount: u64,
        /// Proxy ceiling, fen.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
        /// Idempotency key.
        bid_id: &'a str,
    },
    /// Liveness.
    Ping {
        /// Request tag.
        req: u64,
    },
}

/// One encoded client frame.
pub enum Frame {
    /// JSON text.
    Text(String),
    /// MessagePack bytes.
    Binary(Vec<u8>),
}

impl ClientMsg<'_> {
    /// Encodes the message for a connection of `format` (MessagePack as a map, with names).
    pub fn encode(&self, format: Format) -> Frame {
        match format {
            // Serialising a derived struct of strings and integers cannot fail.
            Format::Json => Frame::Text(serde_json::to_string(self).unwrap_or_default()),
            Format::Msgpack => Frame::Binary(rmp_serde::to_vec_named(self).unwrap_or_default()),
        }
    }
}

/// The kind of a server message.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Reply to subscribe.
    Snapshot,
    /// Reply to bid.
    BidResult,
    /// State change of a watched auction.
    Update,
    /// The receiver lost the lead.
    Outbid,
    /// The auction closed.
    Closed,
    /// Reply to ping.
    Pong,
    /// Reply to unsubscribe.
    Unsubscribed,
    /// Something the server could not take.
    Error,
    /// A kind this harness does not know (the contract lets servers add them).
    #[serde(other)]
    Other,
}

/// The fields of the auction object (in `snapshot`) that the harness uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuctionObj {
    /// Id.
    pub id: String,
    /// Status.
    pub status: String,
    /// Price, null before the first bid.
    pub price: Option<u64>,
    /// Lowest acceptable next amount.
    pub min_next: u64,
    /// Accepted bids.
    pub bids: u64,
    /// Close time, ms.
    pub ends_at: u64,
}

/// `auction` as it appears on the wire: an id, or (in `snapshot`) the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuctionField {
    /// An id.
    Id(String),
    /// The auction object.
    Obj(AuctionObj),
}

impl AuctionField {
    /// The auction's id either way.
    pub fn id(&self) -> &str {
        match self {
            Self::Id(s) => s,
            Self::Obj(o) => &o.id,
        }
    }
}

impl<'de> Deserialize<'de> for AuctionField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AuctionField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an auction id or an auction object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuctionField, E> {
                Ok(AuctionField::Id(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<AuctionField, A::Error> {
                let mut o = AuctionObj::default();
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*k {
                        "id" => o.id = m.next_value()?,
                        "status" => o.status = m.next_value()?,
                        "price" => o.price = m.next_value()?,
                        "min_next" => o.min_next = m.next_value()?,
                        "bids" => o.bids = m.next_value()?,
                        "ends_at" => o.ends_at = m.next_value()?,
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(AuctionField::Obj(o))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any server message, flattened: each kind fills the fields the contract gives it.
#[derive(Deserialize, Debug, Clone)]
pub struct ServerMsg {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// `bid_result`.
    pub bid_id: Option<String>,
    /// Every auction-scoped message.
    pub auction: Option<AuctionField>,
    /// `bid_result`.
    pub accepted: Option<bool>,
    /// `bid_result` (accepted), `update`, `outbid`, `closed`.
    pub price: Option<u64>,
    /// `bid_result` (accepted), `update`.
    pub leading: Option<bool>,
    /// `bid_result` (accepted), `update`.
    pub ends_at: Option<u64>,
    /// `bid_result` (accepted), `update`.
    pub seq: Option<u64>,
    /// `bid_result` (refused).
    pub reason: Option<String>,
    /// `bid_result` (below_minimum), `update`, `outbid`.
    pub min_next: Option<u64>,
    /// `update`.
    pub status: Option<String>,
    /// `update`.
    pub bids: Option<u64>,
    /// `closed`.
    pub outcome: Option<String>,
    /// `closed`.
    pub won: Option<bool>,
    /// `error`.
    pub code: Option<String>,
}

impl ServerMsg {
    /// Decodes a text (JSON) frame.
    pub fn from_json(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    /// Decodes a binary (MessagePack) frame.
    pub fn from_msgpack(b: &[u8]) -> Result<Self, String> {
        rmp_serde::from_slice(b).map_err(|e| e.to_string())
    }

    /// The auction id, if the message names one.
    pub fn auction_id(&self) -> Option<&str> {
        self.auction.as_ref().map(AuctionField::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_contract_examples() {
        let m = ServerMsg::from_json(
            r#"{"type":"bid_result","req":"r-3","bid_id":"d3-0001","auction":"A17","accepted":true,"price":5250000,"leading":true,"ends_at":1760001230000,"seq":8812}"#,
        )
        .unwrap();
        assert_eq!(m.kind, Kind::BidResult);
        assert_eq!(m.seq, Some(8812));
        assert_eq!(m.auction_id(), Some("A17"));
        let s = ServerMsg::from_json(
            r#"{"type":"snapshot","req":1,"auction":{"id":"A17","status":"live","price":null,"min_next":5250000,"bids":0,"reserve_met":false,"leading":false,"starts_at":1,"ends_at":2,"vehicle":{"vin":"x"},"inspection":{"notes":"n"}}}"#,
        )
        .unwrap();
        match s.auction {
            Some(AuctionField::Obj(o)) => {
                assert_eq!(o.id, "A17");
                assert_eq!(o.price, None);
                assert_eq!(o.min_next, 5250000);
            }
            other => panic!("{other:?}"),
        }
        let u = ServerMsg::from_json(r#"{"type":"something_new","x":[1,2]}"#).unwrap();
        assert_eq!(u.kind, Kind::Other);
    }

    #[test]
    fn msgpack_round_trip() {
        let bid = ClientMsg::Bid {
            auction: "A1",
            amount: 100,
            max: Some(300),
            bid_id: "c1-0",
        };
        let Frame::Binary(b) = bid.encode(Format::Msgpack) else {
            panic!("binary expected")
        };
        // A map of 5 named fields, type first.
        assert_eq!(b[0], 0x85);
        let Frame::Text(t) = bid.encode(Format::Json) else {
            panic!("text expected")
        };
        assert_eq!(
            t,
            r#"{"type":"bid","auction":"A1","amount":100,"max":300,"bid_id":"c1-0"}"#
        );
    }
}
