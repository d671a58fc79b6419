//! The codec's tables: bad input (each row's exact code and `req`), round trips of every
//! server message in both encodings, field names against the contract, fan-out sharing.

use super::*;
use crate::auction::{BidOutcome, Book, Command, Listing, LotStatus, Rejection, Rules};
use crate::gateway::wire::*;
use crate::views::{AuctionRef, AuctionView, InspectionView, LotView, Status, VehicleView, Viewer};
use crate::vocab::{DealerId, Inspection, SellerId, Vehicle};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------
// Helpers

/// MessagePack of any serializable value (maps keep their names).
fn mp<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("test value encodes")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn s(x: &str) -> Option<Req> {
    Some(Req::Str(x.into()))
}

fn n(x: u64) -> Option<Req> {
    Some(Req::UInt(x))
}

fn ping(req: Option<Req>) -> ClientMessage {
    ClientMessage {
        req,
        request: Request::Ping,
    }
}

fn subscribe(req: Option<Req>, auction: &str) -> ClientMessage {
    ClientMessage {
        req,
        request: Request::Subscribe {
            auction: AuctionRef::new(auction),
        },
    }
}

fn bid(req: Option<Req>, auction: &str, amount: u64, max: Option<u64>, id: &str) -> ClientMessage {
    ClientMessage {
        req,
        request: Request::Bid(BidRequest {
            auction: AuctionRef::new(auction),
            amount,
            max,
            bid_id: id.into(),
        }),
    }
}

#[derive(Debug)]
enum Want {
    Msg(ClientMessage),
    Fail(ErrorCode, Option<Req>),
}

fn ok(m: ClientMessage) -> Want {
    Want::Msg(m)
}

fn bad(req: Option<Req>) -> Want {
    Want::Fail(ErrorCode::BadMessage, req)
}

fn unknown(req: Option<Req>) -> Want {
    Want::Fail(ErrorCode::UnknownType, req)
}

fn check(name: &str, format: Format, input: &[u8], want: &Want) {
    let got = decode(format, input);
    match (want, &got) {
        (Want::Msg(m), Ok(g)) => assert_eq!(m, g, "{name} ({format:?})"),
        (Want::Fail(code, req), Err(e)) => {
            assert_eq!(e.code, *code, "{name} ({format:?}): {e}");
            assert_eq!(&e.req, req, "{name} ({format:?}): req of {e}");
            assert!(!e.message.is_empty(), "{name}: empty message");
            // The error itself always encodes, and echoes the req.
            for f in [Format::Json, Format::MsgPack] {
                let frame = encode(f, &e.clone().into_message());
                let back: ServerMessage = match f {
                    Format::Json => serde_json::from_slice(frame.as_bytes()).unwrap(),
                    Format::MsgPack => rmp_serde::from_slice(frame.as_bytes()).unwrap(),
                };
                assert_eq!(back, e.clone().into_message());
            }
        }
        _ => panic!("{name} ({format:?}): want {want:?}, got {got:?}"),
    }
}

fn nested_arrays(depth: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

// ---------------------------------------------------------------------------------------
// The bad-input table

/// Rows given as JSON values: each runs as a JSON text frame and as a MessagePack frame
/// (the same map, named fields), and must give the same answer in both.
fn rows_in_both_encodings() -> Vec<(&'static str, Value, Want)> {
    let long = |c: &str, n: usize| c.repeat(n);
    vec![
        // Well-formed messages.
        ("ping", json!({"type": "ping"}), ok(ping(None))),
        (
            "ping, integer req",
            json!({"type": "ping", "req": 7}),
            ok(ping(n(7))),
        ),
        (
            "ping, negative req",
            json!({"type": "ping", "req": -3}),
            ok(ping(Some(Req::Int(-3)))),
        ),
        (
            "ping, string req",
            json!({"type": "ping", "req": "a-1"}),
            ok(ping(s("a-1"))),
        ),
        (
            "req null is no req",
            json!({"type": "ping", "req": null}),
            ok(ping(None)),
        ),
        (
            "req of 64 bytes",
            json!({"type": "ping", "req": long("r", 64)}),
            ok(ping(s(&long("r", 64)))),
        ),
        (
            "req of 64 bytes in 2-byte chars",
            json!({"type": "ping", "req": long("é", 32)}),
            ok(ping(s(&long("é", 32)))),
        ),
        (
            "subscribe",
            json!({"type": "subscribe", "auction": "A17", "req": "s1"}),
            ok(subscribe(s("s1"), "A17")),
        ),
        (
            "unsubscribe",
            json!({"type": "unsubscribe", "auction": "A17"}),
            ok(ClientMessage {
                req: None,
                request: Request::Unsubscribe {
                    auction: AuctionRef::new("A17"),
                },
            }),
        ),
        (
            "bid with max",
            json!({"type": "bid", "auction": "A17", "amount": 1_000_000, "max": 1_500_000,
                   "bid_id": "b1", "req": 9}),
            ok(bid(n(9), "A17", 1_000_000, Some(1_500_000), "b1")),
        ),
        (
            "bid without max",
            json!({"type": "bid", "auction": "A17", "amount": 1_000_000, "bid_id": "b1"}),
            ok(bid(None, "A17", 1_000_000, None, "b1")),
        ),
        (
            "bid, max null is no max",
            json!({"type": "bid", "auction": "A17", "amount": 5, "max": null, "bid_id": "b"}),
            ok(bid(None, "A17", 5, None, "b")),
        ),
        // Decodes; the engine answers `invalid`.
        (
            "amount 0 decodes",
            json!({"type": "bid", "auction": "A1", "amount": 0, "bid_id": "b"}),
            ok(bid(None, "A1", 0, None, "b")),
        ),
        (
            "amount over 10^12 decodes",
            json!({"type": "bid", "auction": "A1", "amount": 1_000_000_000_001u64, "bid_id": "b"}),
            ok(bid(None, "A1", 1_000_000_000_001, None, "b")),
        ),
        (
            "max below amount decodes",
            json!({"type": "bid", "auction": "A1", "amount": 500, "max": 400, "bid_id": "b"}),
            ok(bid(None, "A1", 500, Some(400), "b")),
        ),
        (
            "amount u64::MAX decodes",
            json!({"type": "bid", "auction": "A1", "amount": u64::MAX, "bid_id": "b"}),
            ok(bid(None, "A1", u64::MAX, None, "b")),
        ),
        (
            "auction that is no id decodes (unknown_auction is the engine's answer)",
            json!({"type": "subscribe", "auction": "XYZ"}),
            ok(subscribe(None, "XYZ")),
        ),
        (
            "auction of 64 bytes decodes",
            json!({"type": "subscribe", "auction": long("A", 64)}),
            ok(subscribe(None, &long("A", 64))),
        ),
        (
            "bid_id of 64 bytes",
            json!({"type": "bid", "auction": "A1", "amount": 1, "bid_id": long("x", 64)}),
            ok(bid(None, "A1", 1, None, &long("x", 64))),
        ),
        (
            "empty bid_id",
            json!({"type": "bid", "auction": "A1", "amount": 1, "bid_id": ""}),
            ok(bid(None, "A1", 1, None, "")),
        ),
        (
            "extra fields are ignored",
            json!({"type": "ping", "x": [1, {"y": [2, "z"]}], "z": null, "note": long("n", 500)}),
            ok(ping(None)),
        ),
        (
            "fields of other message types are ignored",
            json!({"type": "subscribe", "auction": "A1", "amount": "lots", "bid_id": 5}),
            ok(subscribe(None, "A1")),
        ),
        (
            "nesting to the limit is fine",
            json!({"type": "ping", "x": nested_arrays(usize::from(MAX_DEPTH) - 1)}),
            ok(ping(None)),
        ),
        (
            "a huge array in an extra field is walked, not kept",
            json!({"type": "ping", "x": vec![0u8; 20_000]}),
            ok(ping(None)),
        ),
        // Wrong types.
        (
            "amount as string",
            json!({"type": "bid", "auction": "A1", "amount": "100", "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "auction as number",
            json!({"type": "subscribe", "auction": 17, "req": 1}),
            bad(n(1)),
        ),
        (
            "auction as number in a bid",
            json!({"type": "bid", "auction": 17, "amount": 1, "bid_id": "b", "req": 2}),
            bad(n(2)),
        ),
        (
            "amount as boolean",
            json!({"type": "bid", "auction": "A1", "amount": true, "bid_id": "b", "req": 3}),
            bad(n(3)),
        ),
        (
            "amount null",
            json!({"type": "bid", "auction": "A1", "amount": null, "bid_id": "b", "req": 3}),
            bad(n(3)),
        ),
        (
            "amount as array",
            json!({"type": "bid", "auction": "A1", "amount": [100], "bid_id": "b", "req": 3}),
            bad(n(3)),
        ),
        (
            "amount as map",
            json!({"type": "bid", "auction": "A1", "amount": {"fen": 100}, "bid_id": "b"}),
            bad(None),
        ),
        (
            "bid_id as number",
            json!({"type": "bid", "auction": "A1", "amount": 1, "bid_id": 7, "req": "r"}),
            bad(s("r")),
        ),
        (
            "max as string",
            json!({"type": "bid", "auction": "A1", "amount": 1, "max": "2", "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        // Numbers that are no u64.
        (
            "negative amount",
            json!({"type": "bid", "auction": "A1", "amount": -100, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "negative max",
            json!({"type": "bid", "auction": "A1", "amount": 100, "max": -1, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "fractional amount",
            json!({"type": "bid", "auction": "A1", "amount": 100.5, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "amount as a float with an integral value",
            json!({"type": "bid", "auction": "A1", "amount": 100.0, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "amount over u64 (as a float: the only way to write it)",
            json!({"type": "bid", "auction": "A1", "amount": 18_446_744_073_709_551_616.0f64,
                   "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "negative fractional amount",
            json!({"type": "bid", "auction": "A1", "amount": -0.5, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        // Missing fields.
        (
            "bid without amount",
            json!({"type": "bid", "auction": "A1", "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "bid without auction",
            json!({"type": "bid", "amount": 1, "bid_id": "b", "req": "r"}),
            bad(s("r")),
        ),
        (
            "bid without bid_id",
            json!({"type": "bid", "auction": "A1", "amount": 1, "req": "r"}),
            bad(s("r")),
        ),
        (
            "subscribe without auction",
            json!({"type": "subscribe", "req": "r"}),
            bad(s("r")),
        ),
        ("empty map", json!({}), bad(None)),
        // type.
        (
            "unknown type",
            json!({"type": "bidd", "req": "r"}),
            unknown(s("r")),
        ),
        (
            "type is case-sensitive",
            json!({"type": "Ping", "req": 4}),
            unknown(n(4)),
        ),
        ("empty type", json!({"type": ""}), unknown(None)),
        (
            "long unknown type",
            json!({"type": long("t", 100)}),
            unknown(None),
        ),
        (
            "unknown type wins over bad fields",
            json!({"type": "nope", "amount": -1, "req": "r"}),
            unknown(s("r")),
        ),
        (
            "missing type",
            json!({"req": "r", "auction": "A1"}),
            bad(s("r")),
        ),
        (
            "type as number",
            json!({"type": 1, "req": "r"}),
            bad(s("r")),
        ),
        ("type null", json!({"type": null, "req": "r"}), bad(s("r"))),
        (
            "type as array",
            json!({"type": ["ping"], "req": "r"}),
            bad(s("r")),
        ),
        // Not a map.
        ("array frame", json!([1, 2]), bad(None)),
        (
            "array holding a message",
            json!([{"type": "ping", "req": 1}]),
            bad(None),
        ),
        ("string frame", json!("ping"), bad(None)),
        ("number frame", json!(42), bad(None)),
        ("null frame", json!(null), bad(None)),
        ("boolean frame", json!(true), bad(None)),
        // req that may not be echoed.
        (
            "req of 65 bytes",
            json!({"type": "ping", "req": long("r", 65)}),
            bad(None),
        ),
        (
            "req as float",
            json!({"type": "ping", "req": 1.5}),
            bad(None),
        ),
        (
            "req as boolean",
            json!({"type": "ping", "req": true}),
            bad(None),
        ),
        (
            "req as map",
            json!({"type": "ping", "req": {"id": 1}}),
            bad(None),
        ),
        (
            "req as array",
            json!({"type": "ping", "req": [1]}),
            bad(None),
        ),
        (
            "bad req beats unknown type",
            json!({"type": "nope", "req": long("r", 65)}),
            bad(None),
        ),
        // Over-long ids.
        (
            "bid_id of 65 bytes",
            json!({"type": "bid", "auction": "A1", "amount": 1, "bid_id": long("x", 65), "req": "r"}),
            bad(s("r")),
        ),
        (
            "auction of 65 bytes",
            json!({"type": "subscribe", "auction": long("A", 65), "req": "r"}),
            bad(s("r")),
        ),
        // Nesting.
        (
            "nesting one level past the limit",
            json!({"type": "ping", "req": "r", "x": nested_arrays(usize::from(MAX_DEPTH))}),
            bad(s("r")),
        ),
    ]
}

#[test]
fn bad_input_table_in_both_encodings() {
    for (name, value, want) in rows_in_both_encodings() {
        let text = serde_json::to_vec(&value).unwrap();
        check(name, Format::Json, &text, &want);
        check(name, Format::MsgPack, &mp(&value), &want);
    }
}

#[test]
fn bad_input_table_json_text() {
    let deep = "[".repeat(100_000);
    let deep_in_field = format!(r#"{{"req":5,"type":"ping","x":{deep}"#);
    let deep_closed = format!(
        r#"{{"req":5,"type":"ping","x":{}0{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let huge = format!(r#"{{"type":"ping","x":[{}0]}}"#, "0,".repeat(30_000));
    let rows: Vec<(&str, &[u8], Want)> = vec![
        ("empty frame", b"", bad(None)),
        ("whitespace only", b"  \n ", bad(None)),
        ("not JSON", b"hello", bad(None)),
        ("single quotes", b"{'type':'ping'}", bad(None)),
        ("truncated", br#"{"type":"ping""#, bad(None)),
        ("truncated after req", br#"{"req":"r1","type":"bid","auction":"A"#, bad(s("r1"))),
        ("syntax error after req", br#"{"req":"r1","type":"bid","amount":}"#, bad(s("r1"))),
        ("syntax error before req", br#"{"type":,"req":"r1"}"#, bad(None)),
        ("trailing characters", br#"{"type":"ping","req":2} x"#, bad(n(2))),
        ("two messages in one frame", br#"{"type":"ping"}{"type":"ping"}"#, bad(None)),
        ("trailing whitespace is fine", b"{\"type\":\"ping\"}\n", ok(ping(None))),
        (
            "amount 2^64 written as an integer",
            br#"{"req":"r","type":"bid","auction":"A1","amount":18446744073709551616,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        (
            "amount far beyond f64",
            br#"{"req":"r","type":"bid","auction":"A1","amount":1e400,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        (
            "amount with exponent",
            br#"{"req":"r","type":"bid","auction":"A1","amount":1e3,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        (
            "amount with leading zero",
            br#"{"req":"r","type":"bid","auction":"A1","amount":0100,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        (
            "amount as hex",
            br#"{"req":"r","type":"bid","auction":"A1","amount":0x10,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        (
            "duplicate field",
            br#"{"req":"r","type":"bid","auction":"A1","amount":1,"amount":2,"bid_id":"b"}"#,
            bad(s("r")),
        ),
        ("duplicate req: the first is echoed", br#"{"req":"a","req":"b","type":"ping"}"#, bad(s("a"))),
        ("duplicate type", br#"{"type":"ping","type":"bid"}"#, bad(None)),
        ("invalid UTF-8", b"{\"type\":\"ping\",\"x\":\"\xff\"}", bad(None)),
        ("NaN is no JSON", br#"{"type":"bid","auction":"A1","amount":NaN,"bid_id":"b"}"#, bad(None)),
        ("deep nesting (100,000 open arrays)", deep.as_bytes(), bad(None)),
        ("deep nesting in a field, after req", deep_in_field.as_bytes(), bad(n(5))),
        ("deep but closed nesting in a field", deep_closed.as_bytes(), bad(n(5))),
        ("30,000-element array in a field", huge.as_bytes(), ok(ping(None))),
        ("escaped strings decode", br#"{"type":"subscribe","auction":"A\u0031"}"#, ok(subscribe(None, "A1"))),
    ];
    for (name, input, want) in rows {
        check(name, Format::Json, input, &want);
    }
}

#[test]
fn bad_input_table_msgpack_bytes() {
    let req_r1 = cat(&[&mp("req"), &mp("r1")]);
    let ping_kv = cat(&[&mp("type"), &mp("ping")]);
    let bid_head = |amount: &[u8]| {
        cat(&[
            &[0x85],
            &req_r1,
            &mp("type"),
            &mp("bid"),
            &mp("auction"),
            &mp("A1"),
            &mp("bid_id"),
            &mp("b"),
            &mp("amount"),
            amount,
        ])
    };
    let bid_ok = |amount| ok(bid(s("r1"), "A1", amount, None, "b"));
    let deep = vec![0x91; 100_000];
    let mut huge = vec![0x82];
    huge.extend(&ping_kv);
    huge.extend(mp("x"));
    huge.extend([0xdc, 0x75, 0x30]); // array16 of 30,000
    huge.extend(vec![0x00; 30_000]);

    let rows: Vec<(&str, Vec<u8>, Want)> = vec![
        ("empty frame", vec![], bad(None)),
        ("reserved marker 0xc1", vec![0xc1], bad(None)),
        ("nil frame", vec![0xc0], bad(None)),
        ("empty array frame", vec![0x90], bad(None)),
        ("map header only", vec![0x81], bad(None)),
        ("truncated key", cat(&[&[0x81, 0xa4], b"ty"]), bad(None)),
        (
            "map32 claiming 4 billion entries",
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
            bad(None),
        ),
        (
            "array32 claiming 4 billion entries",
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            bad(None),
        ),
        (
            "str32 claiming 4 GiB",
            cat(&[
                &[0x82],
                &req_r1,
                &mp("type"),
                &[0xdb, 0xff, 0xff, 0xff, 0xff],
                b"ping",
            ]),
            bad(s("r1")),
        ),
        (
            "bin32 claiming 4 GiB",
            cat(&[
                &[0x83],
                &req_r1,
                &ping_kv,
                &mp("x"),
                &[0xc6, 0xff, 0xff, 0xff, 0xff],
            ]),
            bad(s("r1")),
        ),
        (
            "truncated after req",
            cat(&[&[0x83], &req_r1, &ping_kv]),
            bad(s("r1")),
        ),
        (
            "trailing bytes after the map",
            cat(&[&[0x82], &req_r1, &ping_kv, &[0x00]]),
            bad(s("r1")),
        ),
        (
            "two messages in one frame",
            cat(&[&[0x81], &ping_kv, &[0x81], &ping_kv]),
            bad(None),
        ),
        (
            "amount as positive int8 (same number)",
            bid_head(&[0xd0, 0x05]),
            bid_ok(5),
        ),
        (
            "amount as positive int64",
            bid_head(&cat(&[&[0xd3], &7i64.to_be_bytes()])),
            bid_ok(7),
        ),
        (
            "amount as uint64 max",
            bid_head(&cat(&[&[0xcf], &[0xff; 8]])),
            bid_ok(u64::MAX),
        ),
        ("amount as negative fixint", bid_head(&[0xff]), bad(s("r1"))),
        (
            "amount as int64 min",
            bid_head(&cat(&[&[0xd3], &i64::MIN.to_be_bytes()])),
            bad(s("r1")),
        ),
        (
            "amount as float32 1.5",
            bid_head(&cat(&[&[0xca], &1.5f32.to_be_bytes()])),
            bad(s("r1")),
        ),
        (
            "amount as float64 2^64",
            bid_head(&cat(&[
                &[0xcb],
                &18_446_744_073_709_551_616f64.to_be_bytes(),
            ])),
            bad(s("r1")),
        ),
        (
            "amount as float64 NaN",
            bid_head(&cat(&[&[0xcb], &f64::NAN.to_be_bytes()])),
            bad(s("r1")),
        ),
        (
            "amount as float64 infinity",
            bid_head(&cat(&[&[0xcb], &f64::INFINITY.to_be_bytes()])),
            bad(s("r1")),
        ),
        ("amount as bin", bid_head(&[0xc4, 0x01, 0x05]), bad(s("r1"))),
        ("amount as ext", bid_head(&[0xd4, 0x01, 0x05]), bad(s("r1"))),
        ("amount as string", bid_head(&mp("5")), bad(s("r1"))),
        (
            "invalid UTF-8 in auction",
            cat(&[
                &[0x83],
                &req_r1,
                &mp("type"),
                &mp("subscribe"),
                &mp("auction"),
                &[0xa2, 0xff, 0xfe],
            ]),
            bad(s("r1")),
        ),
        (
            "invalid UTF-8 in type",
            cat(&[&[0x82], &req_r1, &mp("type"), &[0xa2, 0xff, 0xfe]]),
            bad(s("r1")),
        ),
        (
            "integer key is an extra field",
            cat(&[&[0x82, 0x01], &mp("x"), &ping_kv]),
            ok(ping(None)),
        ),
        (
            "array key is an extra field",
            cat(&[&[0x82, 0x91, 0x01, 0x02], &ping_kv]),
            ok(ping(None)),
        ),
        (
            "nil key is an extra field",
            cat(&[&[0x82, 0xc0, 0xc0], &ping_kv]),
            ok(ping(None)),
        ),
        (
            "ext value in an extra field",
            cat(&[&[0x82], &ping_kv, &mp("x"), &[0xd4, 0x01, 0x00]]),
            ok(ping(None)),
        ),
        (
            "bin value in an extra field",
            cat(&[&[0x82], &ping_kv, &mp("x"), &[0xc4, 0x01, 0x00]]),
            ok(ping(None)),
        ),
        ("deep nesting (100,000 arrays)", deep.clone(), bad(None)),
        (
            "deep nesting in a field, after req",
            cat(&[&[0x83], &req_r1, &ping_kv, &mp("x"), &deep, &[0x00]]),
            bad(s("r1")),
        ),
        ("30,000-element array in a field", huge, ok(ping(None))),
        (
            "JSON sent on a MessagePack connection",
            br#"{"type":"ping"}"#.to_vec(),
            bad(None),
        ),
    ];
    for (name, input, want) in rows {
        check(name, Format::MsgPack, &input, &want);
    }
}

#[test]
fn msgpack_frame_on_a_json_connection_is_bad() {
    check(
        "msgpack on JSON",
        Format::Json,
        &mp(&json!({"type": "ping"})),
        &bad(None),
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every prefix and every single-byte corruption of valid
    // frames, in both decoders.
    let frames = [
        mp(
            &json!({"type": "bid", "auction": "A17", "amount": 1_000_000, "max": 2_000_000,
                   "bid_id": "b-1", "req": "r"}),
        ),
        serde_json::to_vec(
            &json!({"type": "bid", "auction": "A17", "amount": 1_000_000,
                                    "bid_id": "b-1", "req": 12}),
        )
        .unwrap(),
    ];
    for f in &frames {
        for end in 0..=f.len() {
            let _ = decode_json(&f[..end]);
            let _ = decode_msgpack(&f[..end]);
        }
        for i in 0..f.len() {
            for b in [0x00, 0x7f, 0x80, 0xc1, 0xdd, 0xdf, 0xff, b'"', b'{', b'['] {
                let mut g = f.clone();
                g[i] = b;
                let _ = decode_json(&g);
                let _ = decode_msgpack(&g);
            }
        }
    }
}

#[test]
fn client_messages_round_trip_through_their_own_encoding() {
    let msgs = [
        ping(None),
        ping(Some(Req::Int(-9))),
        subscribe(s("x"), "A3"),
        ClientMessage {
            req: n(1),
            request: Request::Unsubscribe {
                auction: AuctionRef::new("A3"),
            },
        },
        bid(s("r"), "A3", 1_000_000, Some(2_000_000), "b-7"),
        bid(None, "A3", 0, None, ""),
    ];
    for m in msgs {
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(decode(Format::Json, &json).as_ref(), Ok(&m));
        assert_eq!(decode(Format::MsgPack, &mp(&m)).as_ref(), Ok(&m));
    }
}

// ---------------------------------------------------------------------------------------
// Server messages

fn view(
    price: Option<u64>,
    leading: bool,
    buy_now: Option<u64>,
    city: Option<&str>,
) -> AuctionView {
    AuctionView {
        id: AuctionRef::new("A17"),
        status: Status::Live,
        price,
        min_next: 5_000_000,
        bids: u32::from(price.is_some()) * 3,
        reserve_met: false,
        leading,
        starts_at: 1_760_000_000_000,
        ends_at: 1_760_001_200_000,
        buy_now,
        reserve: None,
        vehicle: VehicleView {
            vin: "LSVAU2180N2183294".into(),
            make: "Volkswagen".into(),
            model: "Lavida".into(),
            year: 2022,
            mileage_km: 31_000,
            city: city.map(Into::into),
        },
        inspection: InspectionView {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 4,
            notes: "Rear bumper repainted.".into(),
        },
    }
}

fn lot_update(price: Option<u64>, leader: Option<DealerId>) -> crate::auction::LotUpdate {
    crate::auction::LotUpdate {
        lot: LotId(17),
        status: LotStatus::Live,
        price,
        min_next: 5_020_000,
        bids: 4,
        reserve_met: false,
        leader,
        ends_at: 1_760_001_230_000,
    }
}

/// (message, its top-level keys as the contract names them)
fn server_samples() -> Vec<(ServerMessage, &'static [&'static str])> {
    let accepted = BidOutcome::Accepted {
        price: 5_000_000,
        leading: true,
        ends_at: 1_760_001_230_000,
        seq: 812,
    };
    vec![
        (
            ServerMessage::Snapshot(Snapshot {
                req: s("sub-1"),
                auction: view(Some(4_800_000), true, Some(9_000_000), Some("Hangzhou")),
            }),
            &["type", "req", "auction"],
        ),
        (
            ServerMessage::Snapshot(Snapshot {
                req: None,
                auction: view(None, false, None, None),
            }),
            &["type", "auction"],
        ),
        (
            ServerMessage::BidResult(BidResult::from_outcome(
                s("b"),
                "bid-1".into(),
                LotId(17).into(),
                &accepted,
            )),
            &[
                "type", "req", "bid_id", "auction", "accepted", "price", "leading", "ends_at",
                "seq",
            ],
        ),
        (
            ServerMessage::BidResult(BidResult::from_outcome(
                None,
                "bid-2".into(),
                LotId(17).into(),
                &BidOutcome::Rejected(Rejection::BelowMinimum {
                    min_next: 5_020_000,
                }),
            )),
            &[
                "type", "bid_id", "auction", "accepted", "reason", "min_next",
            ],
        ),
        (
            ServerMessage::BidResult(BidResult::from_outcome(
                n(4),
                "bid-3".into(),
                LotId(17).into(),
                &BidOutcome::Rejected(Rejection::NotLive),
            )),
            &["type", "req", "bid_id", "auction", "accepted", "reason"],
        ),
        (
            ServerMessage::BidResult(BidResult::refused(
                None,
                "bid-4".into(),
                AuctionRef::new("nonsense"),
                RejectReason::RateLimited,
            )),
            &["type", "bid_id", "auction", "accepted", "reason"],
        ),
        (
            ServerMessage::Update(Update::new(813, &lot_update(Some(5_000_000), None), true)),
            &[
                "type",
                "auction",
                "seq",
                "status",
                "price",
                "min_next",
                "bids",
                "reserve_met",
                "leading",
                "ends_at",
            ],
        ),
        (
            ServerMessage::Update(Update::new(1, &lot_update(None, None), false)),
            &[
                "type",
                "auction",
                "seq",
                "status",
                "price",
                "min_next",
                "bids",
                "reserve_met",
                "leading",
                "ends_at",
            ],
        ),
        (
            ServerMessage::Outbid(Outbid::new(LotId(17), 5_000_000, 5_020_000)),
            &["type", "auction", "price", "min_next"],
        ),
        (
            ServerMessage::Closed(Closed::new(LotId(17), Outcome::Sold, Some(5_000_000), true)),
            &["type", "auction", "outcome", "price", "won"],
        ),
        (
            ServerMessage::Closed(Closed::new(LotId(17), Outcome::NoSale, None, false)),
            &["type", "auction", "outcome", "price", "won"],
        ),
        (
            ServerMessage::Unsubscribed(Reply { req: s("u") }),
            &["type", "req"],
        ),
        (ServerMessage::Pong(Reply { req: None }), &["type"]),
        (
            ServerMessage::Pong(Reply {
                req: Some(Req::Int(-1)),
            }),
            &["type", "req"],
        ),
        (
            ServerMessage::Error(ErrorReply {
                code: ErrorCode::UnknownAuction,
                message: "no such auction".into(),
                req: s("s"),
            }),
            &["type", "code", "message", "req"],
        ),
        (
            ServerMessage::Error(ErrorReply {
                code: ErrorCode::BadMessage,
                message: "malformed JSON".into(),
                req: None,
            }),
            &["type", "code", "message"],
        ),
    ]
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("a map")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn every_server_message_round_trips_in_both_encodings_with_the_contract_field_names() {
    for (msg, want_keys) in server_samples() {
        let json = encode(Format::Json, &msg);
        let Frame::Text(text) = &json else {
            panic!("JSON must be a text frame")
        };
        let packed = encode(Format::MsgPack, &msg);
        let Frame::Binary(bytes) = &packed else {
            panic!("MessagePack must be a binary frame")
        };

        // Round trips.
        assert_eq!(serde_json::from_str::<ServerMessage>(text).unwrap(), msg);
        assert_eq!(rmp_serde::from_slice::<ServerMessage>(bytes).unwrap(), msg);

        // Exactly the contract's fields, and the same map in both encodings.
        let v: Value = serde_json::from_str(text).unwrap();
        let want: BTreeSet<&str> = want_keys.iter().copied().collect();
        assert_eq!(keys(&v), want, "{text}");
        let from_msgpack: Value = rmp_serde::from_slice(bytes).unwrap();
        assert_eq!(from_msgpack, v, "MessagePack differs from JSON for {text}");
        assert!(
            matches!(bytes[0], 0x80..=0x8f | 0xde | 0xdf),
            "MessagePack message is not a map: {:02x}",
            bytes[0]
        );
    }
}

#[test]
fn snapshot_and_nullable_fields_match_the_contract() {
    let full = view(Some(4_800_000), true, Some(9_000_000), Some("Hangzhou"));
    let v = serde_json::to_value(&full).unwrap();
    let auction_keys: BTreeSet<&str> = [
        "id",
        "status",
        "price",
        "min_next",
        "bids",
        "reserve_met",
        "leading",
        "starts_at",
        "ends_at",
        "buy_now",
        "vehicle",
        "inspection",
    ]
    .into();
    assert_eq!(keys(&v), auction_keys);
    assert_eq!(
        keys(&v["vehicle"]),
        ["vin", "make", "model", "year", "mileage_km", "city"].into()
    );
    assert_eq!(
        keys(&v["inspection"]),
        [
            "structural_damage",
            "fire",
            "flood",
            "odometer_tampered",
            "title_transferable",
            "grade",
            "notes"
        ]
        .into()
    );
    assert_eq!(v["status"], "live");

    // Optional fields are omitted; `price` is present as null before the first bid.
    let bare = serde_json::to_value(view(None, false, None, None)).unwrap();
    assert!(bare["price"].is_null() && bare.as_object().unwrap().contains_key("price"));
    assert!(!bare.as_object().unwrap().contains_key("buy_now"));
    assert!(!bare["vehicle"].as_object().unwrap().contains_key("city"));
    let update = serde_json::to_value(ServerMessage::Update(Update::new(
        1,
        &lot_update(None, None),
        false,
    )))
    .unwrap();
    assert!(update.as_object().unwrap().contains_key("price") && update["price"].is_null());
    let closed = serde_json::to_value(ServerMessage::Closed(Closed::new(
        LotId(1),
        Outcome::NoSale,
        None,
        true,
    )))
    .unwrap();
    assert!(closed["price"].is_null());
    assert_eq!(closed["won"], false, "won is only for a sold outcome");
    let pending = Closed::new(LotId(1), Outcome::PendingSeller, Some(5), true);
    assert!(!pending.won, "won is false while pending_seller");
}

#[test]
fn wire_strings_match_the_contract() {
    let names = |v: Vec<Value>| {
        v.into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let statuses = [
        LotStatus::Scheduled,
        LotStatus::Live,
        LotStatus::PendingSeller,
        LotStatus::Sold,
        LotStatus::NoSale,
        LotStatus::Cancelled,
    ];
    for st in statuses {
        assert_eq!(serde_json::to_value(Status::from(st)).unwrap(), st.as_str());
    }
    for o in [Outcome::Sold, Outcome::NoSale, Outcome::PendingSeller] {
        assert_eq!(
            serde_json::to_value(ClosedOutcome::from(o)).unwrap(),
            o.as_str()
        );
    }
    for r in [
        Rejection::BelowMinimum { min_next: 1 },
        Rejection::NotLive,
        Rejection::UnknownAuction,
        Rejection::NotEligible,
        Rejection::OwnListing,
        Rejection::ExposureLimit,
        Rejection::Invalid,
    ] {
        assert_eq!(
            serde_json::to_value(RejectReason::from(r)).unwrap(),
            r.reason()
        );
    }
    assert_eq!(
        names(vec![
            serde_json::to_value(RejectReason::RateLimited).unwrap(),
            serde_json::to_value(RejectReason::Unavailable).unwrap(),
        ]),
        ["rate_limited", "unavailable"]
    );
    for c in [
        ErrorCode::BadMessage,
        ErrorCode::UnknownType,
        ErrorCode::UnknownAuction,
    ] {
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
    }
    assert_eq!(
        names(vec![
            serde_json::to_value(ErrorCode::BadMessage).unwrap(),
            serde_json::to_value(ErrorCode::UnknownType).unwrap(),
            serde_json::to_value(ErrorCode::UnknownAuction).unwrap(),
        ]),
        ["bad_message", "unknown_type", "unknown_auction"]
    );
}

// ---------------------------------------------------------------------------------------
// Views built from the real book, and privacy

fn listing() -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: "1M8GDM9AXKP042788".into(),
            make: "BYD".into(),
            model: "Han".into(),
            year: 2021,
            mileage_km: 42_000,
            city: None,
        },
        inspection: Inspection {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 4,
            notes: String::new(),
        },
        start_price: 1_000_000,
        reserve: 5_000_000,
        buy_now: Some(9_000_000),
        starts_at: None,
        duration_ms: None,
    }
}

#[test]
fn views_are_per_viewer_and_never_name_a_dealer() {
    let mut book = Book::new(Rules::default());
    let mut seq = 0;
    let mut apply = |book: &mut Book, c: Command| {
        seq += 1;
        book.apply(seq, 1_000, c)
    };
    apply(
        &mut book,
        Command::RegisterSeller {
            name: "s".into(),
            token_hash: [1; 32],
        },
    );
    apply(
        &mut book,
        Command::RegisterSeller {
            name: "s2".into(),
            token_hash: [4; 32],
        },
    );
    for (i, h) in [2u8, 3].into_iter().enumerate() {
        apply(
            &mut book,
            Command::RegisterDealer {
                name: format!("d{i}"),
                deposit: 100_000_000,
                linked_sellers: vec![],
                token_hash: [h; 32],
            },
        );
    }
    apply(
        &mut book,
        Command::ListCar {
            seller: SellerId(1),
            listing: Box::new(listing()),
        },
    );
    let events = apply(
        &mut book,
        Command::PlaceBid {
            dealer: DealerId(1),
            lot: LotId(1),
            amount: 1_000_000,
            max: Some(3_000_000),
            bid_id: "x".into(),
        },
    );
    assert!(events.iter().any(|e| matches!(
        e,
        crate::auction::Event::Bid {
            outcome: BidOutcome::Accepted { .. },
            ..
        }
    )));
    let lot = &LotView::of(book.lot(LotId(1)).expect("listed"));
    let inc = &book.rules().increments;

    let leader = AuctionView::new(lot, inc, Viewer::Dealer(DealerId(1)));
    let other = AuctionView::new(lot, inc, Viewer::Dealer(DealerId(2)));
    let seller = AuctionView::new(lot, inc, Viewer::Seller(SellerId(1)));
    let stranger = AuctionView::new(lot, inc, Viewer::Seller(SellerId(2)));
    let admin = AuctionView::new(lot, inc, Viewer::Other);
    assert!(leader.leading && !other.leading && !seller.leading && !admin.leading);
    assert_eq!(seller.reserve, Some(5_000_000));
    assert_eq!(
        (
            other.reserve,
            stranger.reserve,
            admin.reserve,
            leader.reserve
        ),
        (None, None, None, None)
    );
    assert_eq!(leader.price, Some(1_000_000));
    assert_eq!(leader.min_next, 1_000_000 + inc.increment(1_000_000));
    assert_eq!(leader.buy_now, Some(9_000_000));
    assert_eq!(leader.id.as_str(), "A1");
    for v in [&leader, &other, &seller] {
        let text = serde_json::to_string(v).unwrap();
        assert!(
            !text.contains("\"D1\"") && !text.contains("\"D2\""),
            "{text}"
        );
    }
}

#[test]
fn broadcast_update_encodes_at_most_twice_per_format_and_shares_the_bytes() {
    let b = Broadcast::update(900, &lot_update(Some(5_000_000), Some(DealerId(7))));
    assert_eq!(b.lot(), LotId(17));
    assert_eq!(b.encodings(), 0, "nothing is encoded before it is needed");
    let lead = b.frame_for(Format::Json, Some(DealerId(7)));
    let others: Vec<Frame> = (1..=100)
        .filter(|&d| d != 7)
        .map(|d| b.frame_for(Format::Json, Some(DealerId(d))))
        .chain([b.frame_for(Format::Json, None)])
        .collect();
    assert_eq!(b.encodings(), 2);
    for f in &others {
        assert!(
            f.shares_buffer_with(&others[0]),
            "one buffer for everyone but the leader"
        );
    }
    assert!(b
        .frame_for(Format::Json, Some(DealerId(7)))
        .shares_buffer_with(&lead));
    let lead_v: Value = serde_json::from_slice(lead.as_bytes()).unwrap();
    let other_v: Value = serde_json::from_slice(others[0].as_bytes()).unwrap();
    assert_eq!(lead_v["leading"], true);
    assert_eq!(other_v["leading"], false);
    assert_eq!(lead_v["seq"], 900);
    assert_eq!(lead_v["auction"], "A17");

    let lead_mp = b.frame_for(Format::MsgPack, Some(DealerId(7)));
    let other_mp = b.frame_for(Format::MsgPack, Some(DealerId(8)));
    assert!(b
        .frame_for(Format::MsgPack, Some(DealerId(9)))
        .shares_buffer_with(&other_mp));
    assert_eq!(b.encodings(), 4);
    assert_eq!(
        rmp_serde::from_slice::<Value>(lead_mp.as_bytes()).unwrap(),
        lead_v
    );
    assert_eq!(
        rmp_serde::from_slice::<Value>(other_mp.as_bytes()).unwrap(),
        other_v
    );

    // The leader's id is in no frame.
    for f in [&lead, &others[0], &lead_mp, &other_mp] {
        let bytes = f.as_bytes();
        assert!(!bytes.windows(2).any(|w| w == b"D7"), "dealer id leaked");
    }

    // Without a leader, one encoding per format serves everyone.
    let b = Broadcast::update(1, &lot_update(None, None));
    let a = b.frame_for(Format::Json, Some(DealerId(1)));
    assert!(b.frame_for(Format::Json, None).shares_buffer_with(&a));
    assert_eq!(b.encodings(), 1);
}

#[test]
fn broadcast_closed_wins_only_for_the_buyer_of_a_sale() {
    let b = Broadcast::closed(LotId(3), Outcome::Sold, Some(7_000_000), Some(DealerId(2)));
    let won = |f: Frame| serde_json::from_slice::<Value>(f.as_bytes()).unwrap()["won"].clone();
    assert_eq!(won(b.frame_for(Format::Json, Some(DealerId(2)))), true);
    assert_eq!(won(b.frame_for(Format::Json, Some(DealerId(1)))), false);
    assert_eq!(won(b.frame_for(Format::Json, None)), false);

    let b = Broadcast::closed(
        LotId(3),
        Outcome::PendingSeller,
        Some(4_000_000),
        Some(DealerId(2)),
    );
    assert_eq!(won(b.frame_for(Format::Json, Some(DealerId(2)))), false);
    assert_eq!(
        b.encodings(),
        1,
        "nobody wins while pending: one frame for all"
    );
    let b = Broadcast::closed(LotId(3), Outcome::NoSale, None, None);
    let v: Value = serde_json::from_slice(b.frame_for(Format::Json, None).as_bytes()).unwrap();
    assert_eq!(
        v,
        json!({"type": "closed", "auction": "A3", "outcome": "no_sale", "price": null, "won": false})
    );
}

#[test]
fn format_query_values() {
    assert_eq!(Format::from_query(None), Some(Format::Json));
    assert_eq!(Format::from_query(Some("json")), Some(Format::Json));
    assert_eq!(Format::from_query(Some("msgpack")), Some(Format::MsgPack));
    assert_eq!(Format::from_query(Some("MSGPACK")), None);
    assert_eq!(Format::from_query(Some("")), None);
    for f in [Format::Json, Format::MsgPack] {
        assert_eq!(Format::from_query(Some(f.as_str())), Some(f));
    }
}

#[test]
fn auction_refs_name_lots_only_when_well_formed() {
    assert_eq!(AuctionRef::new("A17").lot(), Some(LotId(17)));
    assert_eq!(AuctionRef::from(LotId(17)).as_str(), "A17");
    for bad in ["", "A0", "A017", "D17", "XYZ", "A-1"] {
        assert_eq!(AuctionRef::new(bad).lot(), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------
// docs/protocol.md: its examples are this encoder's output

/// Every example in docs/protocol.md: (name, JSON text, MessagePack bytes), produced by
/// the same code the server runs.
fn doc_examples() -> Vec<(&'static str, String, Vec<u8>)> {
    let client = |m: ClientMessage| (serde_json::to_string(&m).unwrap(), mp(&m));
    let server = |m: ServerMessage| {
        let Frame::Text(t) = encode(Format::Json, &m) else {
            unreachable!()
        };
        (
            t.to_string(),
            encode(Format::MsgPack, &m).as_bytes().to_vec(),
        )
    };
    let decode_error = |frame: &str| decode_json(frame.as_bytes()).unwrap_err().into_message();
    let mut snapshot = view(Some(5_200_000), false, Some(9_000_000), Some("Changchun"));
    snapshot.min_next = 5_250_000;
    snapshot.bids = 3;
    snapshot.vehicle.vin = "LFV2A21K0M3123456".into();
    snapshot.vehicle.make = "FAW-Volkswagen".into();
    snapshot.vehicle.model = "Sagitar".into();
    snapshot.vehicle.year = 2021;
    snapshot.vehicle.mileage_km = 48_500;
    snapshot.inspection.notes = "Front bumper resprayed; tyres 60%.".into();
    let after = crate::auction::LotUpdate {
        lot: LotId(17),
        status: LotStatus::Live,
        price: Some(5_250_000),
        min_next: 5_300_000,
        bids: 4,
        reserve_met: false,
        leader: Some(DealerId(3)),
        ends_at: 1_760_001_230_000,
    };
    let examples: Vec<(&str, (String, Vec<u8>))> = vec![
        ("subscribe", client(subscribe(n(1), "A17"))),
        (
            "unsubscribe",
            client(ClientMessage {
                req: n(2),
                request: Request::Unsubscribe {
                    auction: AuctionRef::new("A17"),
                },
            }),
        ),
        (
            "bid",
            client(bid(s("r-3"), "A17", 5_250_000, Some(6_000_000), "d3-0001")),
        ),
        ("ping", client(ping(n(4)))),
        (
            "snapshot",
            server(ServerMessage::Snapshot(Snapshot {
                req: n(1),
                auction: snapshot,
            })),
        ),
        (
            "bid_result accepted",
            server(ServerMessage::BidResult(BidResult::from_outcome(
                s("r-3"),
                "d3-0001".into(),
                LotId(17).into(),
                &BidOutcome::Accepted {
                    price: 5_250_000,
                    leading: true,
                    ends_at: 1_760_001_230_000,
                    seq: 8_812,
                },
            ))),
        ),
        (
            "bid_result below_minimum",
            server(ServerMessage::BidResult(BidResult::from_outcome(
                None,
                "d5-0042".into(),
                LotId(17).into(),
                &BidOutcome::Rejected(Rejection::BelowMinimum {
                    min_next: 5_300_000,
                }),
            ))),
        ),
        (
            "bid_result rate_limited",
            server(ServerMessage::BidResult(BidResult::refused(
                None,
                "d5-0043".into(),
                AuctionRef::new("A17"),
                RejectReason::RateLimited,
            ))),
        ),
        (
            "bid_result already_leading",
            server(ServerMessage::BidResult(BidResult::from_outcome(
                None,
                "d5-0050".into(),
                LotId(17).into(),
                &BidOutcome::Rejected(Rejection::AlreadyLeading { max: 6_000_000 }),
            ))),
        ),
        (
            "update to the leader",
            server(ServerMessage::Update(Update::new(8_812, &after, true))),
        ),
        (
            "update to everyone else",
            server(ServerMessage::Update(Update::new(8_812, &after, false))),
        ),
        (
            "outbid",
            server(ServerMessage::Outbid(Outbid::new(
                LotId(17),
                5_250_000,
                5_300_000,
            ))),
        ),
        (
            "closed sold, to the buyer",
            server(ServerMessage::Closed(Closed::new(
                LotId(17),
                Outcome::Sold,
                Some(6_100_000),
                true,
            ))),
        ),
        (
            "closed pending_seller",
            server(ServerMessage::Closed(Closed::new(
                LotId(17),
                Outcome::PendingSeller,
                Some(5_250_000),
                false,
            ))),
        ),
        (
            "unsubscribed",
            server(ServerMessage::Unsubscribed(Reply { req: n(2) })),
        ),
        ("pong", server(ServerMessage::Pong(Reply { req: n(4) }))),
        (
            "error bad_message",
            server(decode_error(
                r#"{"type":"bid","req":7,"auction":"A17","amount":-1,"bid_id":"x"}"#,
            )),
        ),
        (
            "error unknown_type",
            server(decode_error(r#"{"type":"bet","req":8}"#)),
        ),
        (
            "error unknown_auction",
            server(ServerMessage::Error(ErrorReply {
                code: ErrorCode::UnknownAuction,
                message: "no such auction".into(),
                req: n(9),
            })),
        ),
    ];
    examples
        .into_iter()
        .map(|(name, (j, m))| (name, j, m))
        .collect()
}

fn hex_block(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How an example appears in docs/protocol.md.
fn doc_snippet(json: &str, msgpack: &[u8]) -> String {
    format!(
        "```json\n{json}\n```\n\nMessagePack ({} bytes):\n\n```text\n{}\n```\n",
        msgpack.len(),
        hex_block(msgpack)
    )
}

#[test]
fn docs_protocol_examples_are_this_encoders_output() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let mut missing = Vec::new();
    for (name, json, msgpack) in doc_examples() {
        // The MessagePack bytes really are the same message as the JSON.
        let a: Value = serde_json::from_str(&json).unwrap();
        let b: Value = rmp_serde::from_slice(&msgpack).unwrap();
        assert_eq!(a, b, "{name}");
        let snippet = doc_snippet(&json, &msgpack);
        if !doc.contains(&snippet) {
            missing.push(format!("#### {name}\n\n{snippet}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/protocol.md is out of date; these examples are missing or differ:\n\n{}",
        missing.join("\n")
    );
}

/// `RejectReason::ALL` indexes the bid counters (`r as usize`), and `as_str` is written
/// out by hand for the metrics and the JSON writer: both must match the enum and serde.
#[test]
fn every_reject_reason_is_listed_once_in_order_with_its_wire_name() {
    // Fails to compile when a reason is added, so ALL cannot silently miss it.
    fn position(r: RejectReason) -> usize {
        match r {
            RejectReason::BelowMinimum => 0,
            RejectReason::NotLive => 1,
            RejectReason::UnknownAuction => 2,
            RejectReason::NotEligible => 3,
            RejectReason::OwnListing => 4,
            RejectReason::ExposureLimit => 5,
            RejectReason::RateLimited => 6,
            RejectReason::Invalid => 7,
            RejectReason::Unavailable => 8,
            RejectReason::AlreadyLeading => 9,
            RejectReason::NotInGoodStanding => 10,
            RejectReason::PrebidLowered => 11,
        }
    }
    assert_eq!(RejectReason::ALL.len(), 12);
    for (i, r) in RejectReason::ALL.into_iter().enumerate() {
        assert_eq!((position(r), r as usize), (i, i), "{r:?}");
        assert_eq!(serde_json::to_value(r).expect("encode"), json!(r.as_str()));
    }
    for s in [
        Status::Scheduled,
        Status::Live,
        Status::PendingSeller,
        Status::Sold,
        Status::NoSale,
        Status::Cancelled,
    ] {
        assert_eq!(serde_json::to_value(s).expect("encode"), json!(s.as_str()));
    }
}
