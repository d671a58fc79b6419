//! Frames ⇄ messages, in JSON (text frames) or MessagePack (binary frames, maps with named
//! fields).
//!
//! Decoding is by hand, in two steps, because the contract's error behaviour is finer than
//! what a derived `Deserialize` gives:
//!
//! 1. The frame is read as one map into loosely typed slots (`Loose`): every value is
//!    accepted at this step, whatever its type, so a wrong type in one field cannot hide the
//!    frame's `req`. `req` is stored the moment it is read, so even a frame that breaks
//!    later (truncated, a syntax error after `req`) still gets its `req` echoed.
//! 2. The slots are checked against the message named by `type`, field by field, with the
//!    contract's codes: `unknown_type` for a string `type` that names no message,
//!    `bad_message` for everything else.
//!
//! Nothing here allocates in proportion to what a frame *claims* (a MessagePack header may
//! announce 4 billion entries): containers are walked, not collected, strings longer than
//! an id are not kept, and nesting deeper than [`MAX_DEPTH`] is refused in both encodings
//! before it can use the stack. The frame size limit itself is the WebSocket layer's job.
//!
//! Encoding produces [`Frame`]s that are cheap to clone (`Arc`), so one encoding of a
//! message serves every receiver that gets the same bytes; [`Broadcast`] does that for the
//! two messages whose content depends on the receiver (`update`, `closed`).

use super::wire::{
    BidRequest, ClientMessage, Closed, ErrorCode, ErrorReply, Req, Request, ServerMessage, Update,
    MAX_ID_BYTES,
};
use crate::auction::{LotUpdate, Outcome};
use crate::vocab::{DealerId, Fen, LotId};
use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use std::fmt;
use std::sync::{Arc, OnceLock};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Deepest nesting a client frame may have, counting the message map itself as level 1.
/// Client messages are flat; the margin is for clients that add structured extra fields.
/// Deeper frames are `bad_message` in both encodings.
pub const MAX_DEPTH: u8 = 16;

/// The encoding of a connection, chosen once with `?format=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON in text frames (the default).
    Json,
    /// MessagePack maps with named fields in binary frames.
    MsgPack,
}

impl Format {
    /// Reads the `format` query parameter: absent or `json` → JSON, `msgpack` → MessagePack,
    /// anything else → `None` (refuse the upgrade with 400).
    pub fn from_query(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("json") => Some(Self::Json),
            Some("msgpack") => Some(Self::MsgPack),
            Some(_) => None,
        }
    }

    /// The query value naming this format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::MsgPack => "msgpack",
        }
    }
}

/// An encoded server message, ready to send. Clones share the bytes (`Utf8Bytes` is
/// reference-counted `Bytes` known to be UTF-8), so an update encoded once reaches every
/// receiver's socket without a copy: the session writes the WebSocket header beside the
/// shared bytes ([`super::socket`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text frame.
    Text(Utf8Bytes),
    /// A MessagePack binary frame.
    Binary(Bytes),
    /// A whole WebSocket frame, header included: control frames (ping, close) and what
    /// tungstenite writes while it reads (the pong to a client's ping).
    Raw(Bytes),
}

impl Frame {
    /// The encoded bytes (for [`Frame::Raw`], the whole frame).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(s) => s.as_bytes(),
            Self::Binary(b) | Self::Raw(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the frame is empty (never, for an encoded message).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether both frames share one buffer.
    pub fn shares_buffer_with(&self, other: &Frame) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && std::ptr::eq(self.as_bytes(), other.as_bytes())
    }
}

/// A frame that does not decode into a client message. Send it back with
/// [`DecodeError::into_message`]; the connection stays open (the caller counts it in
/// [`super::limits::BadFrames`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// [`ErrorCode::BadMessage`] or [`ErrorCode::UnknownType`] (decoding produces no other).
    pub code: ErrorCode,
    /// The frame's `req`, when the frame was a map whose `req` could be read and was valid.
    pub req: Option<Req>,
    /// For people: what was wrong, with no internal detail.
    pub message: String,
}

impl DecodeError {
    fn bad(req: Option<Req>, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadMessage,
            req,
            message: message.into(),
        }
    }

    /// The `error` message to send back.
    pub fn into_message(self) -> ServerMessage {
        ServerMessage::Error(ErrorReply {
            code: self.code,
            message: self.message,
            req: self.req,
        })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one frame of a connection in `format`.
///
/// A text frame on a MessagePack connection (or binary on JSON) should be passed here with
/// the connection's format all the same: it then fails as `bad_message`, which is what the
/// contract's "encoding for the whole connection" implies.
pub fn decode(format: Format, frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    if frame.is_empty() {
        return Err(DecodeError::bad(None, "empty frame"));
    }
    match format {
        Format::Json => decode_json(frame),
        Format::MsgPack => decode_msgpack(frame),
    }
}

/// Decodes a JSON frame.
pub fn decode_json(frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    let mut slots = Slots::default();
    let mut de = serde_json::Deserializer::from_slice(frame);
    let parsed = FrameSeed { out: &mut slots }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        let message = match e.classify() {
            serde_json::error::Category::Data => e.to_string(),
            _ => format!("malformed JSON: {e}"),
        };
        return Err(DecodeError::bad(slots.readable_req(), message));
    }
    slots.interpret()
}

/// Decodes a MessagePack frame.
pub fn decode_msgpack(frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    let mut slots = Slots::default();
    // The `Read`-based deserializer (not `from_slice`) because it reports its position,
    // which is how trailing bytes are caught. It copies each string it reads into a
    // scratch buffer sized by the bytes actually present, never by a length header.
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(frame));
    let parsed = FrameSeed { out: &mut slots }.deserialize(&mut de);
    if let Err(e) = parsed {
        use rmp_serde::decode::Error as E;
        // rmp's own wording speaks of I/O and markers; say what it means for a frame.
        let what = match e {
            // Our own complaints (not a map, too deep) come back as `Syntax`.
            E::Syntax(m) | E::Uncategorized(m) => {
                return Err(DecodeError::bad(slots.readable_req(), m))
            }
            // Reading from a slice, the only I/O error is running out of bytes.
            E::InvalidMarkerRead(_) | E::InvalidDataRead(_) => "the frame ends inside a value",
            E::TypeMismatch(_) => "a byte that starts no MessagePack value",
            E::LengthMismatch(_) => "a container shorter than its header says",
            E::Utf8Error(_) => "a string that is not UTF-8",
            E::DepthLimitExceeded => "nested too deeply",
            E::OutOfRange => "a number out of range",
        };
        let message = format!("malformed MessagePack: {what}");
        return Err(DecodeError::bad(slots.readable_req(), message));
    }
    if usize::try_from(de.position()) != Ok(frame.len()) {
        return Err(DecodeError::bad(
            slots.readable_req(),
            "malformed MessagePack: trailing bytes after the message",
        ));
    }
    slots.interpret()
}

/// Encodes a server message.
pub fn encode(format: Format, message: &ServerMessage) -> Frame {
    // Neither serializer can fail on these types: every map key is a string, every
    // sequence has a known length, and the output is an in-memory buffer. A failure would
    // be a bug in this module, caught by the round-trip tests of every message.
    match format {
        Format::Json => Frame::Text(
            match message {
                // The two every bid sends, written directly (see `json`).
                ServerMessage::Update(u) => super::json::update(u),
                ServerMessage::BidResult(r) => super::json::bid_result(r),
                _ => serde_json::to_string(message)
                    .expect("server messages always serialize to JSON"),
            }
            .into(),
        ),
        Format::MsgPack => Frame::Binary(
            rmp_serde::to_vec_named(message)
                .expect("server messages always serialize to MessagePack")
                .into(),
        ),
    }
}

/// One event's message to all subscribers of a lot, when its content depends on the
/// receiver (`leading` in `update`, `won` in `closed`): at most two messages (the one
/// dealer it is personal to, and everyone else), each encoded at most once per format, on
/// first use, and shared by every receiver of that format.
///
/// Build it once per event and hand `Arc<Broadcast>` (or the frames) to the sessions.
/// The dealer id inside never reaches a frame.
#[derive(Debug)]
pub struct Broadcast {
    lot: LotId,
    personal_to: Option<DealerId>,
    general: ServerMessage,
    personal: Option<ServerMessage>,
    /// Index: `format * 2 + personal`.
    frames: [OnceLock<Frame>; 4],
}

impl Broadcast {
    /// An `update` for `Event::Updated(u)` sequenced at `seq`: `leading: true` for
    /// `u.leader`, false for everyone else.
    pub fn update(seq: u64, u: &LotUpdate) -> Self {
        Self::build(
            u.lot,
            u.leader,
            ServerMessage::Update(Update::new(seq, u, false)),
            ServerMessage::Update(Update::new(seq, u, true)),
        )
    }

    /// A `closed` for `Event::Closed`: `won: true` only for the buyer of a `sold` outcome
    /// (the best bidder of a `pending_seller` outcome gets `won: false` like everyone).
    pub fn closed(
        lot: LotId,
        outcome: Outcome,
        price: Option<Fen>,
        leader: Option<DealerId>,
    ) -> Self {
        let buyer = leader.filter(|_| outcome == Outcome::Sold);
        Self::build(
            lot,
            buyer,
            ServerMessage::Closed(Closed::new(lot, outcome, price, false)),
            ServerMessage::Closed(Closed::new(lot, outcome, price, true)),
        )
    }

    fn build(
        lot: LotId,
        personal_to: Option<DealerId>,
        general: ServerMessage,
        personal: ServerMessage,
    ) -> Self {
        Self {
            lot,
            personal_to,
            general,
            personal: personal_to.map(|_| personal),
            frames: Default::default(),
        }
    }

    /// The lot this message is about (for per-auction conflation in session queues).
    pub fn lot(&self) -> LotId {
        self.lot
    }

    /// The message `receiver` gets (`None`: a receiver that is not a dealer).
    pub fn message_for(&self, receiver: Option<DealerId>) -> &ServerMessage {
        match &self.personal {
            Some(p) if receiver.is_some() && receiver == self.personal_to => p,
            _ => &self.general,
        }
    }

    /// The encoded frame `receiver` gets, encoding it on first use.
    pub fn frame_for(&self, format: Format, receiver: Option<DealerId>) -> Frame {
        let personal =
            self.personal.is_some() && receiver.is_some() && receiver == self.personal_to;
        let slot = match format {
            Format::Json => 0,
            Format::MsgPack => 2,
        } + usize::from(personal);
        self.frames[slot]
            .get_or_init(|| encode(format, self.message_for(receiver)))
            .clone()
    }

    /// How many encodings were made so far (at most 2 per format).
    pub fn encodings(&self) -> usize {
        self.frames.iter().filter(|f| f.get().is_some()).count()
    }
}

// ---------------------------------------------------------------------------------------
// Step 1: the frame as loosely typed slots.

/// Any value, reduced to what the checks need. Strings longer than an id are not kept.
#[derive(Clone, Debug, PartialEq)]
enum Loose {
    Null,
    Bool,
    UInt(u64),
    Neg(i64),
    Float(f64),
    Str(Arc<str>),
    LongStr,
    Bytes,
    Seq,
    Map,
}

impl Loose {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::UInt(_) | Self::Neg(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Str(_) | Self::LongStr => "a string",
            Self::Bytes => "binary",
            Self::Seq => "an array",
            Self::Map => "a map",
        }
    }
}

/// Reads one value of any type, walking (not keeping) containers. `depth` is how many more
/// levels of containers the value may open (0: scalars only).
#[derive(Clone, Copy)]
struct LooseSeed {
    depth: u8,
}

impl<'de> DeserializeSeed<'de> for LooseSeed {
    type Value = Loose;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(self)
    }
}

impl LooseSeed {
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        // Called on entering a container: a container needs one level of the budget.
        match self.depth.checked_sub(1) {
            Some(depth) => Ok(Self { depth }),
            None => Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            ))),
        }
    }
}

impl<'de> Visitor<'de> for LooseSeed {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        // MessagePack may spell a positive number as a signed int; it is the same number.
        Ok(u64::try_from(v).map_or(Loose::Neg(v), Loose::UInt))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(if v.len() <= MAX_ID_BYTES {
            Loose::Str(v.into())
        } else {
            Loose::LongStr
        })
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Loose, E> {
        Ok(Loose::Bytes)
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        // A MessagePack extension value: a (tag, bytes) pair. Walk it, keep nothing.
        self.inner()?.deserialize(d)?;
        Ok(Loose::Bytes)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(Loose::Seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let inner = self.inner()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(Loose::Map)
    }
}

/// The fields any client message can have, as read.
#[derive(Default)]
struct Slots {
    ty: Option<Loose>,
    req: Option<Loose>,
    auction: Option<Loose>,
    amount: Option<Loose>,
    max: Option<Loose>,
    bid_id: Option<Loose>,
    duplicate: Option<&'static str>,
}

impl Slots {
    fn slot(&mut self, key: Key) -> Option<(&'static str, &mut Option<Loose>)> {
        Some(match key {
            Key::Type => ("type", &mut self.ty),
            Key::Req => ("req", &mut self.req),
            Key::Auction => ("auction", &mut self.auction),
            Key::Amount => ("amount", &mut self.amount),
            Key::Max => ("max", &mut self.max),
            Key::BidId => ("bid_id", &mut self.bid_id),
            Key::Other => return None,
        })
    }

    /// `req` if it was read and is valid; what an error echoes.
    fn readable_req(&self) -> Option<Req> {
        check_req(self.req.as_ref()).ok().flatten()
    }
}

/// A key of the message map: one of the known field names, or anything else (an unknown
/// name, or a non-string key, which MessagePack allows: both are extra fields). Reading a
/// key allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Type,
    Req,
    Auction,
    Amount,
    Max,
    BidId,
    Other,
}

/// Reads a [`Key`]; a container used as a key is walked with the same depth budget.
struct KeySeed(LooseSeed);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "type" => Key::Type,
            "req" => Key::Req,
            "auction" => Key::Auction,
            "amount" => Key::Amount,
            "max" => Key::Max,
            "bid_id" => Key::BidId,
            _ => Key::Other,
        })
    }
    fn visit_bool<E>(self, _: bool) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_unit<E>(self) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_none<E>(self) -> Result<Key, E> {
        Ok(Key::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        self.0.deserialize(d).map(|_| Key::Other)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        self.0.visit_newtype_struct(d).map(|_| Key::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key, A::Error> {
        self.0.visit_seq(seq).map(|_| Key::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
        self.0.visit_map(map).map(|_| Key::Other)
    }
}

/// Reads the top-level map into [`Slots`], writing each slot as soon as it is read.
struct FrameSeed<'a> {
    out: &'a mut Slots,
}

impl<'de> DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FrameSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message map with a \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The map itself is level 1; its values may nest MAX_DEPTH - 1 further levels.
        let below = LooseSeed {
            depth: MAX_DEPTH - 1,
        };
        while let Some(key) = map.next_key_seed(KeySeed(below))? {
            match self.out.slot(key) {
                Some((name, slot)) => {
                    let value = map.next_value_seed(below)?;
                    if slot.is_some() {
                        self.out.duplicate.get_or_insert(name);
                    } else {
                        *slot = Some(value);
                    }
                }
                None => {
                    map.next_value_seed(below)?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Step 2: the slots against the message named by `type`.

/// `Ok(None)`: no `req` (absent or null). `Err`: a `req` that may not be echoed.
fn check_req(v: Option<&Loose>) -> Result<Option<Req>, String> {
    match v {
        None | Some(Loose::Null) => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(Req::Str(s.clone()))),
        Some(Loose::UInt(u)) => Ok(Some(Req::UInt(*u))),
        Some(Loose::Neg(i)) => Ok(Some(Req::Int(*i))),
        Some(Loose::LongStr) => Err(format!("`req` is longer than {MAX_ID_BYTES} bytes")),
        Some(other) => Err(format!(
            "`req` must be a string or an integer, not {}",
            other.kind()
        )),
    }
}

impl Slots {
    fn interpret(mut self) -> Result<ClientMessage, DecodeError> {
        let req = check_req(self.req.as_ref()).map_err(|m| DecodeError::bad(None, m))?;
        let bad = |m: String| DecodeError::bad(req.clone(), m);
        if let Some(name) = self.duplicate {
            return Err(bad(format!("field `{name}` appears more than once")));
        }
        let ty = match self.ty.take() {
            Some(Loose::Str(t)) => t,
            // A `type` string too long to keep is no type we know.
            Some(Loose::LongStr) => {
                return Err(DecodeError {
                    code: ErrorCode::UnknownType,
                    req,
                    message: "unknown message type".into(),
                })
            }
            None => return Err(bad("missing field `type`".into())),
            Some(other) => {
                return Err(bad(format!(
                    "`type` must be a string, not {}",
                    other.kind()
                )))
            }
        };
        let request = match &*ty {
            "ping" => Request::Ping,
            "subscribe" => Request::Subscribe {
                auction: id_field("auction", self.auction.take())
                    .map_err(bad)?
                    .into(),
            },
            "unsubscribe" => Request::Unsubscribe {
                auction: id_field("auction", self.auction.take())
                    .map_err(bad)?
                    .into(),
            },
            "bid" => {
                // Report the first bad field in the contract's order.
                let auction = id_field("auction", self.auction.take()).map_err(bad)?;
                let amount = amount_field("amount", self.amount.take()).map_err(bad)?;
                let max = match self.max.take() {
                    None | Some(Loose::Null) => None,
                    v => Some(amount_field("max", v).map_err(bad)?),
                };
                let bid_id = id_field("bid_id", self.bid_id.take()).map_err(bad)?;
                Request::Bid(BidRequest {
                    auction: auction.into(),
                    amount,
                    max,
                    bid_id,
                })
            }
            other => {
                return Err(DecodeError {
                    code: ErrorCode::UnknownType,
                    req,
                    message: format!("unknown message type {other:?}"),
                })
            }
        };
        Ok(ClientMessage { req, request })
    }
}

/// A required string of at most [`MAX_ID_BYTES`].
fn id_field(name: &str, v: Option<Loose>) -> Result<Arc<str>, String> {
    match v {
        Some(Loose::Str(s)) => Ok(s),
        None => Err(format!("missing field `{name}`")),
        Some(Loose::LongStr) => Err(format!("`{name}` is longer than {MAX_ID_BYTES} bytes")),
        Some(other) => Err(format!("`{name}` must be a string, not {}", other.kind())),
    }
}

/// A required amount: an integer in `0..=u64::MAX`, written as an integer.
fn amount_field(name: &str, v: Option<Loose>) -> Result<Fen, String> {
    // 2^64 as a float: the smallest float above every u64.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    match v {
        Some(Loose::UInt(u)) => Ok(u),
        None => Err(format!("missing field `{name}`")),
        Some(Loose::Neg(_)) => Err(format!("`{name}` must not be negative")),
        Some(Loose::Float(f)) if f.is_nan() || f.fract() != 0.0 => {
            Err(format!("`{name}` must be a whole number of fen"))
        }
        Some(Loose::Float(f)) if f < 0.0 => Err(format!("`{name}` must not be negative")),
        Some(Loose::Float(f)) if f >= TWO_POW_64 => {
            Err(format!("`{name}` is too large for a 64-bit amount"))
        }
        Some(Loose::Float(_)) => Err(format!(
            "`{name}` must be written as an integer, without a fraction or exponent"
        )),
        Some(other) => Err(format!("`{name}` must be an integer, not {}", other.kind())),
    }
}

#[cfg(test)]
mod tests;
