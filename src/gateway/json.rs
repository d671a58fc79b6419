//! JSON for the two messages every bid sends: `update` (to each watcher, twice encoded: for
//! the leader and for everyone else) and `bid_result` (to the bidder).
//!
//! Every bid encodes these, so serde_json's per-token writes and key escaping would be
//! paid on every bid. Here the keys are constant text and the numbers go through `itoa`. The output is byte for byte what
//! serde_json makes of the same message (same key order, same escapes), which the tests
//! check against serde_json for arbitrary messages; every other message still goes
//! through serde.

use super::wire::{BidResult, Req, Update};

/// `ServerMessage::Update(u)` as serde_json writes it.
pub(super) fn update(u: &Update) -> String {
    let mut out = String::with_capacity(192);
    out.push_str(r#"{"type":"update","auction":"#);
    string(&mut out, u.auction.as_str());
    out.push_str(r#","seq":"#);
    number(&mut out, u.seq);
    out.push_str(r#","status":""#);
    out.push_str(u.status.as_str());
    out.push_str(r#"","price":"#);
    match u.price {
        Some(p) => number(&mut out, p),
        None => out.push_str("null"),
    }
    out.push_str(r#","min_next":"#);
    number(&mut out, u.min_next);
    out.push_str(r#","bids":"#);
    number(&mut out, u64::from(u.bids));
    out.push_str(r#","reserve_met":"#);
    boolean(&mut out, u.reserve_met);
    out.push_str(r#","leading":"#);
    boolean(&mut out, u.leading);
    out.push_str(r#","ends_at":"#);
    number(&mut out, u.ends_at);
    out.push('}');
    out
}

/// `ServerMessage::BidResult(r)` as serde_json writes it (absent options are left out).
pub(super) fn bid_result(r: &BidResult) -> String {
    let mut out = String::with_capacity(192);
    out.push_str(r#"{"type":"bid_result""#);
    if let Some(req) = &r.req {
        out.push_str(r#","req":"#);
        match req {
            Req::Str(s) => string(&mut out, s),
            Req::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
            Req::UInt(v) => number(&mut out, *v),
        }
    }
    out.push_str(r#","bid_id":"#);
    string(&mut out, &r.bid_id);
    out.push_str(r#","auction":"#);
    string(&mut out, r.auction.as_str());
    out.push_str(r#","accepted":"#);
    boolean(&mut out, r.accepted);
    if let Some(price) = r.price {
        out.push_str(r#","price":"#);
        number(&mut out, price);
    }
    if let Some(leading) = r.leading {
        out.push_str(r#","leading":"#);
        boolean(&mut out, leading);
    }
    if let Some(ends_at) = r.ends_at {
        out.push_str(r#","ends_at":"#);
        number(&mut out, ends_at);
    }
    if let Some(seq) = r.seq {
        out.push_str(r#","seq":"#);
        number(&mut out, seq);
    }
    if let Some(reason) = r.reason {
        out.push_str(r#","reason":""#);
        out.push_str(reason.as_str());
        out.push('"');
    }
    if let Some(min_next) = r.min_next {
        out.push_str(r#","min_next":"#);
        number(&mut out, min_next);
    }
    if let Some(max) = r.max {
        out.push_str(r#","max":"#);
        number(&mut out, max);
    }
    out.push('}');
    out
}

fn number(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

fn boolean(out: &mut String, v: bool) {
    out.push_str(if v { "true" } else { "false" });
}

/// A JSON string with serde_json's escapes: `"`, `\` and the control characters below
/// U+0020 (the five with a short form use it, the rest `\u00xx` in lower-case hex);
/// everything else, non-ASCII and DEL included, as it is.
fn string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `b` is ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&s[plain_from..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire::{RejectReason, ServerMessage};
    use crate::views::{AuctionRef, Status};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn text() -> impl Strategy<Value = String> {
        // Control characters, quotes, backslashes, DEL and non-ASCII, as well as plain ids.
        prop_oneof![
            "[A-Za-z0-9_-]{0,20}",
            "[\\x00-\\x1f\"\\\\\\x7f/é速😀 a]{0,20}",
            any::<String>(),
        ]
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Scheduled),
            Just(Status::Live),
            Just(Status::PendingSeller),
            Just(Status::Sold),
            Just(Status::NoSale),
            Just(Status::Cancelled),
        ]
    }

    fn reason() -> impl Strategy<Value = RejectReason> {
        prop_oneof![
            Just(RejectReason::BelowMinimum),
            Just(RejectReason::NotLive),
            Just(RejectReason::UnknownAuction),
            Just(RejectReason::NotEligible),
            Just(RejectReason::OwnListing),
            Just(RejectReason::ExposureLimit),
            Just(RejectReason::RateLimited),
            Just(RejectReason::Invalid),
            Just(RejectReason::Unavailable),
            Just(RejectReason::AlreadyLeading),
            Just(RejectReason::NotInGoodStanding),
            Just(RejectReason::PrebidLowered),
        ]
    }

    fn req() -> impl Strategy<Value = Req> {
        prop_oneof![
            text().prop_map(|s| Req::Str(s.into())),
            (i64::MIN..0).prop_map(Req::Int),
            any::<u64>().prop_map(Req::UInt),
        ]
    }

    fn serde(m: ServerMessage) -> String {
        serde_json::to_string(&m).expect("serializes")
    }

    proptest! {
        #[test]
        fn update_is_what_serde_json_writes(
            auction in text(),
            seq in any::<u64>(),
            status in status(),
            price in proptest::option::of(any::<u64>()),
            min_next in any::<u64>(),
            bids in any::<u32>(),
            reserve_met in any::<bool>(),
            leading in any::<bool>(),
            ends_at in any::<u64>(),
        ) {
            let u = Update {
                auction: AuctionRef::new(&auction),
                seq, status, price, min_next, bids, reserve_met, leading, ends_at,
            };
            prop_assert_eq!(update(&u), serde(ServerMessage::Update(u)));
        }

        #[test]
        fn bid_result_is_what_serde_json_writes(
            req in proptest::option::of(req()),
            bid_id in text(),
            auction in text(),
            accepted in any::<bool>(),
            price in proptest::option::of(any::<u64>()),
            leading in proptest::option::of(any::<bool>()),
            ends_at in proptest::option::of(any::<u64>()),
            seq in proptest::option::of(any::<u64>()),
            reason in proptest::option::of(reason()),
            min_next in proptest::option::of(any::<u64>()),
            max in proptest::option::of(any::<u64>()),
        ) {
            let r = BidResult {
                req, bid_id: Arc::from(bid_id), auction: AuctionRef::new(&auction), accepted,
                price, leading, ends_at, seq, reason, min_next, max,
            };
            prop_assert_eq!(bid_result(&r), serde(ServerMessage::BidResult(r)));
        }
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut ours = String::new();
        string(&mut ours, &all);
        assert_eq!(ours, serde_json::to_string(&all).expect("serializes"));
    }
}
