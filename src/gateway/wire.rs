//! Wire types: the messages of the v1 WebSocket contract, kept apart from domain types.
//!
//! The domain (`crate::auction`) may rename or reshape its types for its own reasons; the
//! contract may not change without a new version. So every message a client sees is built
//! here from domain values by an explicit conversion, and nothing in this module derives
//! its wire shape from a domain type's serde attributes. The conversions are also where
//! the privacy rule lives: a `LotUpdate` carries its leader's id, and the only thing that
//! leaves this module is a per-receiver `leading` flag.
//!
//! Client messages are decoded by hand in [`super::codec`] (to get the contract's exact
//! error codes and `req` echo); they implement `Serialize` so test clients and the load
//! generator can produce them. Server messages derive both directions, so a client can
//! read them back.

use crate::alliance::Complaint;
use crate::auction::{BidId, BidOutcome, LotUpdate, Outcome, Rejection};

use crate::views::{AuctionRef, AuctionView, Status};
use crate::vocab::{Fen, LotId};
use serde::de::{self, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The longest `req`, `bid_id` or auction id a client may send, in bytes (UTF-8).
pub const MAX_ID_BYTES: usize = 64;

/// A client's request tag, echoed in the direct reply: a string (≤ 64 bytes) or an integer.
///
/// Integers keep their sign on the way back: a non-negative integer is `UInt`, a negative
/// one `Int`, so an echo is the same JSON number or MessagePack int the client sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Req {
    /// A string tag.
    Str(Arc<str>),
    /// A negative integer tag.
    Int(i64),
    /// A non-negative integer tag.
    UInt(u64),
}

impl Req {
    /// A req from a signed integer (normalised: non-negative values become `UInt`).
    pub fn from_i64(v: i64) -> Self {
        match u64::try_from(v) {
            Ok(u) => Self::UInt(u),
            Err(_) => Self::Int(v),
        }
    }

    /// A string req, or `None` if it is longer than [`MAX_ID_BYTES`].
    pub fn from_str_checked(s: &str) -> Option<Self> {
        (s.len() <= MAX_ID_BYTES).then(|| Self::Str(s.into()))
    }
}

impl Serialize for Req {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Str(v) => s.serialize_str(v),
            Self::Int(v) => s.serialize_i64(*v),
            Self::UInt(v) => s.serialize_u64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Req {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Req;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of at most 64 bytes or an integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Req, E> {
                Ok(Req::UInt(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Req, E> {
                Ok(Req::from_i64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Req, E> {
                Req::from_str_checked(v).ok_or_else(|| E::custom("req longer than 64 bytes"))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------
// Client → server

/// A decoded client message: its optional `req` tag and what it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientMessage {
    /// Echoed in the direct reply.
    pub req: Option<Req>,
    /// The request itself.
    pub request: Request,
}

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `subscribe`: send me a snapshot now and the auction's updates from now on.
    Subscribe {
        /// The auction.
        auction: AuctionRef,
    },
    /// `unsubscribe`: stop sending me this auction's updates.
    Unsubscribe {
        /// The auction.
        auction: AuctionRef,
    },
    /// `bid`: place a bid (or raise my max while I lead).
    Bid(BidRequest),
    /// `ping`: answer `pong`.
    Ping,
}

impl Request {
    /// The contract's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Bid(_) => "bid",
            Self::Ping => "ping",
        }
    }
}

/// The fields of a `bid` as decoded. Amounts are not checked against the rules here: an
/// amount of 0, over 10^12, or a `max` below `amount` decodes and the engine answers
/// `invalid`, because only the engine knows, for instance, that a leader's `amount` is
/// ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BidRequest {
    /// The auction as the client named it.
    pub auction: AuctionRef,
    /// Placed amount, fen.
    pub amount: Fen,
    /// Proxy ceiling, fen.
    pub max: Option<Fen>,
    /// Client-chosen idempotency key (≤ 64 bytes).
    pub bid_id: BidId,
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = match &self.request {
            Request::Subscribe { .. } | Request::Unsubscribe { .. } => 2,
            Request::Bid(b) => 4 + usize::from(b.max.is_some()),
            Request::Ping => 1,
        } + usize::from(self.req.is_some());
        let mut m = s.serialize_map(Some(fields))?;
        m.serialize_entry("type", self.request.type_name())?;
        if let Some(req) = &self.req {
            m.serialize_entry("req", req)?;
        }
        match &self.request {
            Request::Subscribe { auction } | Request::Unsubscribe { auction } => {
                m.serialize_entry("auction", auction)?;
            }
            Request::Bid(b) => {
                m.serialize_entry("auction", &b.auction)?;
                m.serialize_entry("amount", &b.amount)?;
                if let Some(max) = b.max {
                    m.serialize_entry("max", &max)?;
                }
                m.serialize_entry("bid_id", &*b.bid_id)?;
            }
            Request::Ping => {}
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------
// Server → client

/// The `outcome` of a `closed` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedOutcome {
    /// Sold to the leader.
    Sold,
    /// Not sold.
    NoSale,
    /// Under the reserve: waiting for the seller (a second `closed` follows).
    PendingSeller,
}

impl From<Outcome> for ClosedOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Sold => Self::Sold,
            Outcome::NoSale => Self::NoSale,
            Outcome::PendingSeller => Self::PendingSeller,
        }
    }
}

/// `bid_result.reason`: every way a bid can be refused, including the two the gateway
/// decides before the engine sees the bid (`rate_limited`, `unavailable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Below `min_next` (sent with `min_next`).
    BelowMinimum,
    /// Not started, closed, pending or cancelled.
    NotLive,
    /// No such auction.
    UnknownAuction,
    /// Not an active dealer.
    NotEligible,
    /// A dealer linked to the car's seller.
    OwnListing,
    /// Buying power exceeded.
    ExposureLimit,
    /// The dealer's bid rate was exceeded (gateway; a retry is a fresh attempt).
    RateLimited,
    /// Decoded, but breaks a rule.
    Invalid,
    /// Could not be made durable in time; nothing happened (a retry is a fresh attempt).
    Unavailable,
    /// A plain bid from the dealer who leads (sent with its current `max`).
    AlreadyLeading,
    /// A pre-bid from a dealer not in the alliance's good standing.
    NotInGoodStanding,
    /// A pre-bid under the dealer's own pre-bid on the lot (sent with that `max`).
    PrebidLowered,
}

impl RejectReason {
    /// Every reason, in declaration order (`r as usize` indexes it).
    pub const ALL: [RejectReason; 12] = [
        Self::BelowMinimum,
        Self::NotLive,
        Self::UnknownAuction,
        Self::NotEligible,
        Self::OwnListing,
        Self::ExposureLimit,
        Self::RateLimited,
        Self::Invalid,
        Self::Unavailable,
        Self::AlreadyLeading,
        Self::NotInGoodStanding,
        Self::PrebidLowered,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BelowMinimum => "below_minimum",
            Self::NotLive => "not_live",
            Self::UnknownAuction => "unknown_auction",
            Self::NotEligible => "not_eligible",
            Self::OwnListing => "own_listing",
            Self::ExposureLimit => "exposure_limit",
            Self::RateLimited => "rate_limited",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::AlreadyLeading => "already_leading",
            Self::NotInGoodStanding => "not_in_good_standing",
            Self::PrebidLowered => "prebid_lowered",
        }
    }
}

impl From<Rejection> for RejectReason {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::BelowMinimum { .. } => Self::BelowMinimum,
            Rejection::NotLive => Self::NotLive,
            Rejection::UnknownAuction => Self::UnknownAuction,
            Rejection::NotEligible => Self::NotEligible,
            Rejection::OwnListing => Self::OwnListing,
            Rejection::ExposureLimit => Self::ExposureLimit,
            Rejection::Invalid => Self::Invalid,
            Rejection::AlreadyLeading { .. } => Self::AlreadyLeading,
            Rejection::NotInGoodStanding => Self::NotInGoodStanding,
            Rejection::PrebidLowered { .. } => Self::PrebidLowered,
        }
    }
}

/// `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame does not decode into a known message.
    BadMessage,
    /// `type` is a string but names no message.
    UnknownType,
    /// `subscribe` to an auction that does not exist.
    UnknownAuction,
}

impl ErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad_message",
            Self::UnknownType => "unknown_type",
            Self::UnknownAuction => "unknown_auction",
        }
    }
}

/// Every message the server sends on the WebSocket. Serialized as a map whose `type` is
/// the variant name in snake case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Reply to `subscribe`.
    Snapshot(Snapshot),
    /// Reply to `bid`.
    BidResult(BidResult),
    /// A lot's public state changed.
    Update(Update),
    /// To the dealer who just lost the lead.
    Outbid(Outbid),
    /// A lot closed (or its seller decided).
    Closed(Closed),
    /// Reply to `unsubscribe`.
    Unsubscribed(Reply),
    /// Reply to `ping`.
    Pong(Reply),
    /// A frame could not be served.
    Error(ErrorReply),
    /// To the dealer a consumer complained about: filed, overdue or resolved.
    Complaint(ComplaintNotice),
}

/// `snapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Echo of the `subscribe`'s `req`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<Req>,
    /// The auction as this receiver sees it.
    pub auction: AuctionView,
}

/// `bid_result`. Which optional fields are present depends on `accepted`; build it with
/// [`BidResult::from_outcome`] or [`BidResult::refused`] rather than by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidResult {
    /// Echo of the `bid`'s `req`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<Req>,
    /// The bid's `bid_id`.
    pub bid_id: BidId,
    /// The auction.
    pub auction: AuctionRef,
    /// Whether the bid was accepted.
    pub accepted: bool,
    /// Accepted: the price right after the bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Fen>,
    /// Accepted: whether the bidder leads right after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leading: Option<bool>,
    /// Accepted: the close time right after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<u64>,
    /// Accepted: the sequence number of the accepting command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Refused: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// Refused as `below_minimum`: the lowest acceptable amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_next: Option<Fen>,
    /// Refused as `already_leading`: the bidder's own current max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Fen>,
}

impl BidResult {
    /// The reply for an outcome the engine decided (first time or repeat), naming the
    /// auction as the bid did.
    pub fn from_outcome(
        req: Option<Req>,
        bid_id: BidId,
        auction: AuctionRef,
        outcome: &BidOutcome,
    ) -> Self {
        let mut r = Self::refused(req, bid_id, auction, RejectReason::Invalid);
        match *outcome {
            BidOutcome::Accepted {
                price,
                leading,
                ends_at,
                seq,
            } => {
                r.accepted = true;
                r.reason = None;
                r.price = Some(price);
                r.leading = Some(leading);
                r.ends_at = Some(ends_at);
                r.seq = Some(seq);
            }
            BidOutcome::Rejected(rejection) => {
                r.reason = Some(rejection.into());
                match rejection {
                    Rejection::BelowMinimum { min_next } => r.min_next = Some(min_next),
                    Rejection::AlreadyLeading { max } | Rejection::PrebidLowered { max } => {
                        r.max = Some(max)
                    }
                    _ => {}
                }
            }
        }
        r
    }

    /// A refusal decided without the engine's outcome (`rate_limited`, `unavailable`, or an
    /// auction id that names no lot). `below_minimum` needs a `min_next`: use
    /// [`BidResult::from_outcome`] for it.
    pub fn refused(
        req: Option<Req>,
        bid_id: BidId,
        auction: AuctionRef,
        reason: RejectReason,
    ) -> Self {
        Self {
            req,
            bid_id,
            auction,
            accepted: false,
            price: None,
            leading: None,
            ends_at: None,
            seq: None,
            reason: Some(reason),
            min_next: None,
            max: None,
        }
    }
}

/// `update`: a lot's public state, with `leading` for this receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The auction.
    pub auction: AuctionRef,
    /// Sequence number of the command that caused it.
    pub seq: u64,
    /// Status.
    pub status: Status,
    /// Price; `null` before the first accepted bid.
    pub price: Option<Fen>,
    /// Lowest acceptable next bid.
    pub min_next: Fen,
    /// Count of accepted bids.
    pub bids: u32,
    /// Whether the reserve is met.
    pub reserve_met: bool,
    /// True only for the leader.
    pub leading: bool,
    /// When bidding closes.
    pub ends_at: u64,
}

impl Update {
    /// The update for one class of receiver: the leader (`leading: true`) or everyone else.
    pub fn new(seq: u64, u: &LotUpdate, leading: bool) -> Self {
        Self {
            auction: u.lot.into(),
            seq,
            status: u.status.into(),
            price: u.price,
            min_next: u.min_next,
            bids: u.bids,
            reserve_met: u.reserve_met,
            leading,
            ends_at: u.ends_at,
        }
    }
}

/// `outbid`: to the dealer who just lost the lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbid {
    /// The auction.
    pub auction: AuctionRef,
    /// The price now.
    pub price: Fen,
    /// Lowest acceptable next bid.
    pub min_next: Fen,
}

impl Outbid {
    /// From the fields of `Event::Outbid`.
    pub fn new(lot: LotId, price: Fen, min_next: Fen) -> Self {
        Self {
            auction: lot.into(),
            price,
            min_next,
        }
    }
}

/// `complaint`: pushed to every open connection of the dealer a consumer complained
/// about, when the complaint is filed and each time its state changes (it goes overdue,
/// it is resolved, its due time moves after an outage), so a dealer hears of it before
/// it becomes a warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintNotice {
    /// The complaint as `GET /v1/complaints/{id}` shows it to its dealer.
    pub complaint: ComplaintView,
}

/// A complaint as its dealer reads it: everything but the consumer's reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintView {
    /// Its id (`C4`).
    pub id: String,
    /// The dealer complained about.
    pub dealer: String,
    /// The inventory item it concerns, if any.
    pub inventory: Option<String>,
    /// `open`, `overdue` or `resolved`.
    pub status: String,
    /// When it was filed (ms since the epoch).
    pub opened_at: u64,
    /// When it becomes overdue if still open.
    pub due_at: u64,
    /// When it was resolved.
    pub resolved_at: Option<u64>,
    /// The warning it earned by going overdue.
    pub warning: Option<String>,
    /// The consumer's complaint.
    pub text: String,
    /// How it was resolved.
    pub resolution: Option<String>,
}

impl From<&Complaint> for ComplaintNotice {
    fn from(c: &Complaint) -> Self {
        Self {
            complaint: ComplaintView {
                id: c.id.to_string(),
                dealer: c.dealer.to_string(),
                inventory: c.item.map(|i| i.to_string()),
                status: c.status.as_str().to_owned(),
                opened_at: c.opened_at,
                due_at: c.due_at,
                resolved_at: c.resolved_at,
                warning: c.warning.map(|w| w.to_string()),
                text: c.text.clone(),
                resolution: c.resolution.clone(),
            },
        }
    }
}

/// `closed`: to every subscriber, with `won` for this receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    /// The auction.
    pub auction: AuctionRef,
    /// What happened.
    pub outcome: ClosedOutcome,
    /// Final (or best) price; `null` when no bid was accepted.
    pub price: Option<Fen>,
    /// True only for the buyer of a `sold` outcome.
    pub won: bool,
}

impl Closed {
    /// The message for one class of receiver.
    pub fn new(lot: LotId, outcome: Outcome, price: Option<Fen>, won: bool) -> Self {
        Self {
            auction: lot.into(),
            outcome: outcome.into(),
            price,
            won: won && outcome == Outcome::Sold,
        }
    }
}

/// `unsubscribed` and `pong`: only the echoed `req`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Echo of the request's `req`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<Req>,
}

/// `error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub code: ErrorCode,
    /// For people; never internal detail.
    pub message: String,
    /// Echo of the frame's `req`, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req: Option<Req>,
}
