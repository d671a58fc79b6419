//! The gateway end to end: a real server on 127.0.0.1:0, real WebSocket and HTTP
//! clients, checked against the v1 contract (../shared/PROTOCOL.md, docs/protocol.md).
//!
//! Auctions here are seconds long (`auction.min_duration_s = 1`, a 1 s soft-close window
//! extending to 2 s), so every timing assertion leaves a wide margin: these tests check
//! behaviour, not speed.

mod support;

use futures_util::{SinkExt, StreamExt};
use gavel::auction::{Command as AuctionCommand, Event as AuctionEvent};
use gavel::gateway::{ClosedOutcome, ErrorCode, Format, RejectReason, Req, ServerMessage};
use gavel::market::{Command, Event};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::JournalRead;
use gavel::vocab::{DealerId, LotId};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::http;
use support::server::{
    create_dealer, create_seller, list_car, listing, now_ms, Account, TestServer, ADMIN, VIN,
};
use support::ws::{assert_no_dealer_ids, Received, Ws, WAIT};
use tokio_tungstenite::tungstenite::{self, Message};

/// 1,000,000 yuan: buying power 10,000,000 yuan, far above any price here.
const DEPOSIT: u64 = 100_000_000;

// ---------------------------------------------------------------------------------------
// Contract checks shared by the tests

/// The auction object (snapshot, GET) has exactly the contract's fields, with `reserve`
/// only when `reserve` is given (the seller's own view).
fn check_auction_object(v: &Value, id: &str, listed: &Value, body: &Value, reserve: Option<u64>) {
    let mut keys: BTreeSet<&str> = [
        "id",
        "status",
        "price",
        "min_next",
        "bids",
        "reserve_met",
        "leading",
        "starts_at",
        "ends_at",
        "vehicle",
        "inspection",
    ]
    .into();
    if body.get("buy_now").is_some() {
        keys.insert("buy_now");
    }
    if reserve.is_some() {
        keys.insert("reserve");
    }
    let got: BTreeSet<&str> = v
        .as_object()
        .expect("auction is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, keys, "auction object fields: {v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["status"], "live");
    assert!(
        v["price"].is_null(),
        "price is null before the first bid: {v}"
    );
    assert_eq!(v["min_next"], body["start_price"]);
    assert_eq!(v["bids"], 0);
    assert_eq!(v["reserve_met"], false);
    assert_eq!(v["leading"], false);
    assert_eq!(v["starts_at"], listed["starts_at"]);
    assert_eq!(v["ends_at"], listed["ends_at"]);
    if let Some(b) = body.get("buy_now") {
        assert_eq!(&v["buy_now"], b);
    }
    if let Some(r) = reserve {
        assert_eq!(v["reserve"], r);
    }
    // The car and its inspection, field by field, exactly as listed.
    assert_eq!(v["vehicle"], body["vehicle"], "vehicle as listed");
    assert_eq!(v["inspection"], body["inspection"], "inspection as listed");
    assert_eq!(v["vehicle"]["vin"], VIN);
}

/// `update` for `lot` at `seq`.
async fn expect_update(ws: &mut Ws, lot: &str, seq: u64) -> gavel::gateway::Update {
    let r = ws
        .expect(
            &format!("update {lot} seq {seq}"),
            WAIT,
            |m| matches!(m, ServerMessage::Update(u) if u.auction.as_str() == lot && u.seq == seq),
        )
        .await;
    let keys: BTreeSet<&str> = r
        .value
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = [
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
    ]
    .into();
    assert_eq!(keys, want, "update fields (no req, no ids): {}", r.value);
    let ServerMessage::Update(u) = r.msg else {
        unreachable!()
    };
    u
}

/// The one `outbid` for `lot` at `price`.
async fn expect_outbid(ws: &mut Ws, lot: &str, price: u64, min_next: u64) {
    let r = ws
        .expect(&format!("outbid {lot} at {price}"), WAIT, |m| {
            matches!(m, ServerMessage::Outbid(o) if o.auction.as_str() == lot && o.price == price)
        })
        .await;
    assert_eq!(r.value["min_next"], min_next, "outbid: {}", r.value);
    let keys: BTreeSet<&str> = r
        .value
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["type", "auction", "price", "min_next"].into(),
        "outbid fields: {}",
        r.value
    );
}

/// The next `closed` for `lot`.
async fn expect_closed(
    ws: &mut Ws,
    lot: &str,
    within: Duration,
) -> (Received, gavel::gateway::Closed) {
    let r = ws
        .expect(
            &format!("closed {lot}"),
            within,
            |m| matches!(m, ServerMessage::Closed(c) if c.auction.as_str() == lot),
        )
        .await;
    let keys: BTreeSet<&str> = r
        .value
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["type", "auction", "outcome", "price", "won"].into(),
        "closed fields: {}",
        r.value
    );
    let ServerMessage::Closed(c) = r.msg.clone() else {
        unreachable!()
    };
    (r, c)
}

/// No message of `kind` for `lot` is waiting or arrives within `within`.
async fn assert_none(
    ws: &mut Ws,
    within: Duration,
    what: &str,
    pred: impl Fn(&ServerMessage) -> bool,
) {
    if let Some(r) = ws.try_expect(within, pred).await {
        panic!("unexpected {what}: {}", r.value);
    }
}

/// `GET path` with a bearer token.
async fn bearer_get(addr: SocketAddr, path: &str, token: &str) -> http::Response {
    http::get(addr, path, Some(token)).await
}

/// A `req` as the JSON value it was sent as.
fn req_value(req: &Req) -> Value {
    serde_json::to_value(req).expect("req")
}

/// The privacy check itself: it must find an id as a whole token and nowhere else.
#[test]
fn the_dealer_id_check_finds_whole_ids_only() {
    use support::ws::contains_id;
    assert!(contains_id("D1", "D1"));
    assert!(contains_id("outbid by D1.", "D1"));
    assert!(contains_id("D7,D1", "D1"));
    assert!(!contains_id("D12", "D1"));
    assert!(!contains_id("AD1", "D1"));
    assert!(!contains_id("1M8GDM9AXKP042788", "D1"));
    let leak = Received {
        value: json!({"type": "error", "message": "no auction A1", "extra": ["x", {"who": "D2"}]}),
        msg: ServerMessage::Pong(Default::default()),
        at: Instant::now(),
        text: true,
    };
    let log = [leak];
    let found = support::ws::find_dealer_id(&log, &["D1".into(), "D2".into()]);
    assert_eq!(
        found.map(|(_, id)| id),
        Some("D2".into()),
        "a nested id is found"
    );
    assert!(support::ws::find_dealer_id(&log, &["D1".into()]).is_none());
}

// ---------------------------------------------------------------------------------------
// 1. A whole auction, in each encoding

/// Prices in fen. Increments: 200 yuan below 50,000 yuan, 500 yuan from 50,000.
const A_START: u64 = 5_000_000;
const A_RESERVE: u64 = 5_600_000;
const A_BUY_NOW: u64 = 9_000_000;
const B_START: u64 = 1_000_000;
const B_RESERVE: u64 = 9_000_000;

/// Two lots: A goes through a proxy war, meets its reserve, is extended by a late bid and
/// sells; B closes under its reserve, waits for the seller, and is sold by the seller's
/// decision. Three dealers and the seller watch over WebSocket in `format`.
async fn whole_auction(addr: SocketAddr, format: Format) {
    let seller = create_seller(addr, "Private seller").await;
    let mut dealers = Vec::new();
    for i in 1..=3 {
        dealers.push(create_dealer(addr, &format!("Dealer {i}"), DEPOSIT).await);
    }
    let ids: Vec<String> = dealers.iter().map(|d| d.id.clone()).collect();

    let body_a = listing(A_START, A_RESERVE, Some(A_BUY_NOW), 4);
    let body_b = listing(B_START, B_RESERVE, None, 3);
    let listed_a = list_car(addr, &seller, &body_a).await;
    let listed_b = list_car(addr, &seller, &body_b).await;
    let (a, b) = (
        listed_a["auction"].as_str().expect("id").to_string(),
        listed_b["auction"].as_str().expect("id").to_string(),
    );
    assert_eq!(listed_a["status"], "live");
    let ends_a0 = listed_a["ends_at"].as_u64().expect("ends_at");
    assert_eq!(
        ends_a0 - listed_a["starts_at"].as_u64().expect("starts_at"),
        4_000
    );

    // Over HTTP the seller sees its reserve and a dealer does not.
    let seller_view = bearer_get(addr, &format!("/v1/auctions/{a}"), &seller.token).await;
    assert_eq!(seller_view.status, 200);
    check_auction_object(&seller_view.body, &a, &listed_a, &body_a, Some(A_RESERVE));
    let dealer_view = bearer_get(addr, &format!("/v1/auctions/{a}"), &dealers[0].token).await;
    check_auction_object(&dealer_view.body, &a, &listed_a, &body_a, None);

    // Everyone subscribes to both lots; the snapshot is checked field by field.
    let mut sw = Ws::connect(addr, &seller.token, format).await;
    let mut dw = Vec::new();
    for d in &dealers {
        dw.push(Ws::connect(addr, &d.token, format).await);
    }
    for w in dw.iter_mut() {
        for (lot, listed, body) in [(&a, &listed_a, &body_a), (&b, &listed_b, &body_b)] {
            let r = w.subscribe(lot).await;
            assert_eq!(r.value["type"], "snapshot", "{}", r.value);
            check_auction_object(&r.value["auction"], lot, listed, body, None);
        }
    }
    for (lot, listed, body, reserve) in [
        (&a, &listed_a, &body_a, A_RESERVE),
        (&b, &listed_b, &body_b, B_RESERVE),
    ] {
        let r = sw.subscribe(lot).await;
        check_auction_object(&r.value["auction"], lot, listed, body, Some(reserve));
    }

    // Every update reaches all four watchers, with `leading` true only for the leader.
    async fn updates(
        dw: &mut [Ws],
        sw: &mut Ws,
        lot: &str,
        seq: u64,
        leader: Option<usize>,
    ) -> gavel::gateway::Update {
        let mut first = None;
        for (i, w) in dw.iter_mut().enumerate() {
            let u = expect_update(w, lot, seq).await;
            assert_eq!(
                u.leading,
                Some(i) == leader,
                "dealer {} leading at seq {seq}",
                i + 1
            );
            first.get_or_insert(u);
        }
        let u = expect_update(sw, lot, seq).await;
        assert!(!u.leading, "the seller never leads");
        let first = first.expect("three dealers");
        assert_eq!(
            (u.price, u.bids, u.ends_at),
            (first.price, first.bids, first.ends_at)
        );
        first
    }
    // A bid sent this long before the window opens must not extend the close.
    let clearly_before_window = |sent: u64, ends: u64| sent + 1_000 + 300 < ends;

    // --- Lot A: a proxy war.
    // D1 opens at the start price with a plain bid.
    let sent = now_ms();
    let r = dw[0].bid(&a, A_START, None, "d1-a1").await;
    assert!(r.accepted, "{r:?}");
    assert_eq!((r.price, r.leading), (Some(A_START), Some(true)));
    if clearly_before_window(sent, ends_a0) {
        assert_eq!(r.ends_at, Some(ends_a0), "no extension outside the window");
    }
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(0)).await;
    assert_eq!((u.price, u.bids, u.min_next), (Some(A_START), 1, 5_050_000));
    assert!(!u.reserve_met);

    // D2 bids one increment more with a proxy max of 5,500,000: it leads at 5,050,000.
    let r = dw[1].bid(&a, 5_050_000, Some(5_500_000), "d2-a1").await;
    assert!(r.accepted);
    assert_eq!((r.price, r.leading), (Some(5_050_000), Some(true)));
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(1)).await;
    assert_eq!(u.min_next, 5_100_000);
    expect_outbid(&mut dw[0], &a, 5_050_000, 5_100_000).await;

    // D3 under D2's max: D2's proxy answers with D3's max plus one increment.
    let r = dw[2].bid(&a, 5_100_000, Some(5_300_000), "d3-a1").await;
    assert!(r.accepted);
    assert_eq!((r.price, r.leading), (Some(5_350_000), Some(false)));
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(1)).await;
    assert_eq!(
        (u.price, u.bids, u.min_next),
        (Some(5_350_000), 3, 5_400_000)
    );

    // Below min_next: refused with min_next, nothing changes.
    let r = dw[2].bid(&a, 5_350_000, None, "d3-a2").await;
    assert!(!r.accepted);
    assert_eq!(
        (r.reason, r.min_next),
        (Some(RejectReason::BelowMinimum), Some(5_400_000))
    );

    // D1 comes back over D2's max: it leads at the reserve (its max reaches it).
    let r = dw[0].bid(&a, 5_400_000, Some(5_700_000), "d1-a2").await;
    assert!(r.accepted);
    assert_eq!((r.price, r.leading), (Some(A_RESERVE), Some(true)));
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(0)).await;
    assert!(u.reserve_met);
    assert_eq!(u.min_next, 5_650_000);
    expect_outbid(&mut dw[1], &a, A_RESERVE, 5_650_000).await;
    // Buy-now is withdrawn once the reserve is met.
    let view = bearer_get(addr, &format!("/v1/auctions/{a}"), &dealers[2].token).await;
    assert!(view.body.get("buy_now").is_none(), "{:?}", view.body);
    assert_eq!(view.body["reserve_met"], true);
    assert!(view.body.get("reserve").is_none());

    // The leader raises its own max: accepted, the price does not move.
    let r = dw[0].bid(&a, 1, Some(5_800_000), "d1-a3").await;
    assert!(r.accepted, "{r:?}");
    assert_eq!((r.price, r.leading), (Some(A_RESERVE), Some(true)));
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(0)).await;
    assert_eq!((u.price, u.bids), (Some(A_RESERVE), 5));

    // --- Lot B: two bids, the reserve stays far away.
    let r = dw[1].bid(&b, B_START, None, "d2-b1").await;
    assert!(r.accepted);
    updates(&mut dw, &mut sw, &b, r.seq.expect("seq"), Some(1)).await;
    let r = dw[2].bid(&b, 1_020_000, None, "d3-b1").await;
    assert!(r.accepted);
    assert_eq!((r.price, r.leading), (Some(1_020_000), Some(true)));
    updates(&mut dw, &mut sw, &b, r.seq.expect("seq"), Some(2)).await;
    expect_outbid(&mut dw[1], &b, 1_020_000, 1_040_000).await;
    // D2 stops watching B; as a dealer who bid, it still hears how B ends.
    let req = dw[1].req();
    dw[1]
        .send(&gavel::gateway::ClientMessage {
            req: Some(req.clone()),
            request: gavel::gateway::Request::Unsubscribe {
                auction: gavel::views::AuctionRef::new(&b),
            },
        })
        .await;
    let r = dw[1]
        .expect("unsubscribed", WAIT, |m| {
            matches!(m, ServerMessage::Unsubscribed(_))
        })
        .await;
    assert_eq!(
        r.value,
        json!({"type": "unsubscribed", "req": req_value(&req)})
    );

    // The live list: every lot as its viewer may see it.
    for (token, own) in [(&dealers[0].token, false), (&seller.token, true)] {
        let r = http::get(addr, "/v1/auctions?status=live", Some(token)).await;
        assert_eq!(r.status, 200);
        let lots = r.body["auctions"].as_array().expect("auctions");
        let listed: BTreeSet<&str> = lots.iter().filter_map(|l| l["id"].as_str()).collect();
        assert!(
            listed.contains(a.as_str()) && listed.contains(b.as_str()),
            "{listed:?}"
        );
        for l in lots {
            assert_eq!(l["status"], "live");
            assert_eq!(
                l.get("reserve").is_some(),
                own,
                "reserve only to its seller: {l}"
            );
        }
    }

    // --- Soft close on A: a bid inside the last second moves ends_at to 2 s after it.
    let window_opens = ends_a0 - 600;
    let wait = window_opens.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let sent = now_ms();
    assert!(sent < ends_a0, "too slow to bid inside the window");
    let r = dw[2].bid(&a, 5_650_000, None, "d3-a3").await;
    assert!(r.accepted, "{r:?}");
    // D1's proxy (max 5,800,000) answers: 5,650,000 + 50,000.
    assert_eq!((r.price, r.leading), (Some(5_700_000), Some(false)));
    let ends_a1 = r.ends_at.expect("ends_at");
    assert!(
        ends_a1 > ends_a0,
        "the close moved later: {ends_a0} -> {ends_a1}"
    );
    assert!(
        ends_a1 >= sent + 2_000 && ends_a1 <= now_ms() + 2_000,
        "ends_at is 2 s after the bid: sent {sent}, ends_at {ends_a1}"
    );
    let u = updates(&mut dw, &mut sw, &a, r.seq.expect("seq"), Some(0)).await;
    assert_eq!((u.ends_at, u.price), (ends_a1, Some(5_700_000)));

    // --- B closes under its reserve: pending_seller, nobody has won yet. (D2 no longer
    // watches B, but bid on it.)
    for (i, w) in dw.iter_mut().enumerate() {
        let (_, c) = expect_closed(w, &b, Duration::from_secs(6)).await;
        assert_eq!(c.outcome, ClosedOutcome::PendingSeller, "dealer {}", i + 1);
        assert_eq!(
            (c.price, c.won),
            (Some(1_020_000), false),
            "dealer {}",
            i + 1
        );
    }
    let (_, c) = expect_closed(&mut sw, &b, WAIT).await;
    assert_eq!((c.outcome, c.won), (ClosedOutcome::PendingSeller, false));
    let view = bearer_get(addr, &format!("/v1/auctions/{b}"), &seller.token).await;
    assert_eq!(view.body["status"], "pending_seller");

    // Only the seller decides; it accepts the best offer over HTTP.
    let path = format!("/v1/auctions/{b}/decision");
    let r = http::post(
        addr,
        &path,
        Some(&dealers[0].token),
        &json!({"accept": true}),
    )
    .await;
    assert_eq!(r.status, 403, "a dealer cannot decide: {:?}", r.body);
    let r = http::post(addr, &path, Some(&seller.token), &json!({"accept": true})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "sold");
    assert_eq!(r.body["price"], 1_020_000);
    // Every dealer who bid hears the final outcome in a second `closed`.
    for (i, w) in dw.iter_mut().enumerate().skip(1) {
        let (_, c) = expect_closed(w, &b, WAIT).await;
        assert_eq!(c.outcome, ClosedOutcome::Sold, "dealer {}", i + 1);
        assert_eq!(c.price, Some(1_020_000));
        assert_eq!(c.won, i == 2, "won only for the buyer (dealer {})", i + 1);
    }

    // --- A closes at the extended time and sells to D1 at 5,700,000.
    for (i, w) in dw.iter_mut().enumerate() {
        let (_, c) = expect_closed(w, &a, Duration::from_secs(6)).await;
        assert!(
            now_ms() + 50 >= ends_a1,
            "closed only at the extended ends_at"
        );
        assert_eq!(c.outcome, ClosedOutcome::Sold, "dealer {}", i + 1);
        assert_eq!(c.price, Some(5_700_000));
        assert_eq!(c.won, i == 0, "won only for the buyer (dealer {})", i + 1);
        let u = w
            .expect("final update of A", WAIT, |m| {
                matches!(m, ServerMessage::Update(u) if u.auction.as_str() == a
                    && u.status == gavel::views::Status::Sold)
            })
            .await;
        assert_eq!(u.value["leading"], i == 0);
    }
    let (_, c) = expect_closed(&mut sw, &a, WAIT).await;
    assert_eq!(
        (c.outcome, c.price, c.won),
        (ClosedOutcome::Sold, Some(5_700_000), false)
    );

    // Exactly one `outbid` per lost lead, and none to a dealer who never led.
    for (i, w) in dw.iter_mut().enumerate() {
        w.gather(Duration::from_millis(200)).await;
        let outbids = w
            .log
            .iter()
            .filter(|r| matches!(r.msg, ServerMessage::Outbid(_)))
            .count();
        let want = [1, 2, 0][i];
        assert_eq!(outbids, want, "outbids to dealer {}", i + 1);
        assert!(
            w.closed.is_none(),
            "the connection stayed open: {:?}",
            w.closed
        );
    }

    // No dealer ever saw another dealer's id, in any message.
    for (i, w) in dw.iter().enumerate() {
        let others: Vec<String> = ids.iter().filter(|id| **id != ids[i]).cloned().collect();
        assert_no_dealer_ids(&w.log, &others, &format!("dealer {}", ids[i]));
        assert!(!w.log.is_empty());
        // Pushed messages never carry `req`.
        for r in &w.log {
            if matches!(
                r.msg,
                ServerMessage::Update(_) | ServerMessage::Outbid(_) | ServerMessage::Closed(_)
            ) {
                assert!(r.value.get("req").is_none(), "{}", r.value);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_auction_over_json() {
    let server = TestServer::start(&[]).await;
    whole_auction(server.addr, Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_auction_over_msgpack() {
    let server = TestServer::start(&[]).await;
    whole_auction(server.addr, Format::MsgPack).await;
}

/// The same auction with the Redis journal (appendfsync always) underneath.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_auction_on_redis() {
    use gavel::store::{RedisJournal, RedisJournalConfig};
    use support::redis_server::{RedisOpts, RedisServer};
    let redis = tokio::task::spawn_blocking(|| RedisServer::start(RedisOpts::always()))
        .await
        .expect("start redis");
    let journal = RedisJournal::open(&RedisJournalConfig {
        url: redis.url(),
        prefix: "gwtest".into(),
        require_fsync: true,
        ..RedisJournalConfig::default()
    })
    .await
    .expect("open the Redis journal");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_on(&[], journal, dir).await;
    whole_auction(server.addr, Format::Json).await;
    server.shutdown().await.expect("graceful shutdown");
}

// ---------------------------------------------------------------------------------------
// 2. Authentication and eligibility

fn http_status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refuses_unknown_tokens_and_ineligible_bidders() {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 30)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();

    // No token, an unknown token, an empty token: 401 before any upgrade.
    for url in [
        support::ws::url(addr, None, Format::Json),
        support::ws::url(addr, Some("not-a-token"), Format::Json),
        support::ws::url(addr, Some(""), Format::MsgPack),
    ] {
        let err = Ws::try_connect(&url, Format::Json)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} upgraded"));
        assert_eq!(http_status(err), 401, "{url}");
    }
    // The token may come in the Authorization header instead.
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(support::ws::url(
        addr,
        None,
        Format::Json,
    ))
    .expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", dealer.token).parse().expect("header"),
    );
    let (stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("bearer header upgrade");
    let mut via_header = Ws::from_stream(stream, Format::Json);
    via_header.ping().await;
    // A wrong bearer header is refused too.
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(support::ws::url(
        addr,
        None,
        Format::Json,
    ))
    .expect("request");
    req.headers_mut()
        .insert("Authorization", "Bearer nope".parse().expect("header"));
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("refused");
    assert_eq!(http_status(err), 401);

    // A seller (and the admin) may connect and subscribe, but not bid.
    for token in [&seller.token, &ADMIN.to_string()] {
        let mut w = Ws::connect(addr, token, Format::Json).await;
        let s = w.subscribe(&lot).await;
        assert_eq!(s.value["type"], "snapshot");
        let r = w.bid(&lot, A_START, None, "not-mine").await;
        assert!(!r.accepted);
        assert_eq!(r.reason, Some(RejectReason::NotEligible));
    }

    // An active dealer may bid; once expelled it may still connect, but not bid.
    let mut w = Ws::connect(addr, &dealer.token, Format::MsgPack).await;
    let r = w.bid(&lot, A_START, None, "before").await;
    assert!(r.accepted, "{r:?}");
    let path = format!("/v1/dealers/{}/status", dealer.id);
    let r = http::post(
        addr,
        &path,
        Some(&seller.token),
        &json!({"status": "expelled"}),
    )
    .await;
    assert_eq!(r.status, 403, "only the admin changes a dealer's status");
    let r = http::post(
        addr,
        &path,
        Some(ADMIN),
        &json!({"status": "expelled", "reason": "test"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "expelled");
    let r = w.bid(&lot, 5_100_000, None, "after").await;
    assert!(!r.accepted);
    assert_eq!(r.reason, Some(RejectReason::NotEligible));
    let mut again = Ws::connect(addr, &dealer.token, Format::Json).await;
    let r = again.bid(&lot, 5_100_000, None, "after-2").await;
    assert_eq!(r.reason, Some(RejectReason::NotEligible));
    // An unknown dealer's status is 404, and HTTP without a token is 401.
    let r = http::post(
        addr,
        "/v1/dealers/D999/status",
        Some(ADMIN),
        &json!({"status": "active"}),
    )
    .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = http::get(addr, &format!("/v1/auctions/{lot}"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "unauthorized");

    // Health, readiness and metrics need no token.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(http::get(addr, path, None).await.status, 200, "{path}");
    }
    let m = http::get(addr, "/metrics", None).await;
    assert_eq!(m.status, 200);
    let text = m.body.as_str().expect("Prometheus text");
    assert!(
        text.contains("gavel_bids_total{result=\"not_eligible\"}"),
        "refusals are counted: {text}"
    );
}

/// Cancelling: a seller only before the first bid, the admin after; subscribers get an
/// `update` with status `cancelled`, and bids are then `not_live`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_auction_tells_its_subscribers() {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let other = create_seller(addr, "Other seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let body = listing(A_START, A_RESERVE, None, 60);
    let quiet = list_car(addr, &seller, &body).await["auction"]
        .as_str()
        .expect("id")
        .to_string();
    let bid_on = list_car(addr, &seller, &body).await["auction"]
        .as_str()
        .expect("id")
        .to_string();
    let mut w = Ws::connect(addr, &dealer.token, Format::MsgPack).await;
    w.subscribe(&quiet).await;
    assert!(w.bid(&bid_on, A_START, None, "b1").await.accepted);

    let cancel = |lot: &str| format!("/v1/auctions/{lot}/cancel");
    let r = http::post(addr, &cancel(&quiet), Some(&other.token), &json!({})).await;
    assert_eq!(r.status, 403, "not its seller: {:?}", r.body);
    let r = http::post(addr, &cancel(&quiet), Some(&seller.token), &json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let r = http::post(addr, &cancel(&bid_on), Some(&seller.token), &json!({})).await;
    assert_eq!(
        r.status, 403,
        "a seller cannot cancel after a bid: {:?}",
        r.body
    );
    let r = http::post(addr, &cancel(&bid_on), Some(ADMIN), &json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    for lot in [&quiet, &bid_on] {
        let u = w
            .expect(&format!("cancelled update for {lot}"), WAIT, |m| {
                matches!(m, ServerMessage::Update(u) if u.auction.as_str() == lot.as_str()
                    && u.status == gavel::views::Status::Cancelled)
            })
            .await;
        assert_eq!(u.value["leading"], lot == &bid_on);
        let r = w.bid(lot, 9_000_000, None, &format!("late-{lot}")).await;
        assert_eq!(r.reason, Some(RejectReason::NotLive));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Bad input over a real socket

/// Sends `frame`, expects an `error` with `code` and `req`, then proves the connection
/// still answers.
async fn bad(ws: &mut Ws, name: &str, frame: Message, code: ErrorCode, req: Option<Req>) {
    ws.send_raw(frame).await;
    let r = ws
        .expect(&format!("error for {name}"), WAIT, |m| {
            matches!(m, ServerMessage::Error(_))
        })
        .await;
    let ServerMessage::Error(e) = &r.msg else {
        unreachable!()
    };
    assert_eq!(e.code, code, "{name}: {}", r.value);
    assert_eq!(e.req, req, "{name}: req echo: {}", r.value);
    assert!(!e.message.is_empty(), "{name}: a message for people");
    ws.ping().await;
    assert!(ws.closed.is_none(), "{name}: the connection stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_error_and_the_connection_stays_open() {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 60)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();
    let s = |v: &str| Some(Req::Str(v.into()));
    use ErrorCode::{BadMessage, UnknownType};

    // JSON.
    let mut ws = Ws::connect(addr, &dealer.token, Format::Json).await;
    let text = |t: &str| Message::text(t.to_string());
    let bid = |req: &str, amount: &str| {
        Message::text(format!(
            r#"{{"type":"bid","req":"{req}","auction":"{lot}","amount":{amount},"bid_id":"x"}}"#
        ))
    };
    let table: Vec<(&str, Message, ErrorCode, Option<Req>)> = vec![
        (
            "truncated JSON",
            text(r#"{"type":"ping","req":1,"x":"#),
            BadMessage,
            Some(Req::UInt(1)),
        ),
        ("not JSON", text("hello"), BadMessage, None),
        ("an array", text("[1,2,3]"), BadMessage, None),
        ("no type", text(r#"{"req":"n1"}"#), BadMessage, s("n1")),
        (
            "type not a string",
            text(r#"{"type":7,"req":"n2"}"#),
            BadMessage,
            s("n2"),
        ),
        (
            "amount as a string",
            bid("t1", r#""5000000""#),
            BadMessage,
            s("t1"),
        ),
        (
            "auction as a number",
            text(r#"{"type":"subscribe","req":"t2","auction":17}"#),
            BadMessage,
            s("t2"),
        ),
        (
            "bid_id missing",
            text(&format!(
                r#"{{"type":"bid","req":"t3","auction":"{lot}","amount":5000000}}"#
            )),
            BadMessage,
            s("t3"),
        ),
        (
            "negative amount",
            bid("t4", "-5000000"),
            BadMessage,
            s("t4"),
        ),
        (
            "amount over u64",
            bid("t5", "18446744073709551616"),
            BadMessage,
            s("t5"),
        ),
        (
            "fractional amount",
            bid("t6", "5000000.5"),
            BadMessage,
            s("t6"),
        ),
        (
            "amount with an exponent",
            bid("t7", "5e6"),
            BadMessage,
            s("t7"),
        ),
        (
            "unknown type",
            text(r#"{"type":"bet","req":8}"#),
            UnknownType,
            Some(Req::UInt(8)),
        ),
        (
            "req over 64 bytes",
            text(&format!(r#"{{"type":"ping","req":"{}"}}"#, "r".repeat(65))),
            BadMessage,
            None,
        ),
        (
            "binary frame on a JSON connection",
            Message::binary(br#"{"type":"ping"}"#.to_vec()),
            BadMessage,
            None,
        ),
    ];
    for (name, frame, code, req) in table {
        bad(&mut ws, name, frame, code, req).await;
    }

    // Frames that decode but name no auction, or break a bidding rule.
    for unknown in ["A999", "nonsense"] {
        let r = ws.subscribe(unknown).await;
        assert_eq!(r.value["type"], "error", "{}", r.value);
        assert_eq!(r.value["code"], "unknown_auction");
        let r = ws
            .bid(unknown, A_START, None, &format!("u-{unknown}"))
            .await;
        assert!(!r.accepted);
        assert_eq!(r.reason, Some(RejectReason::UnknownAuction));
    }
    for (id, amount, max) in [
        ("zero", 0, None),
        ("over-cap", 1_000_000_000_001, None),
        ("max-below-amount", A_START, Some(A_START - 1)),
    ] {
        let r = ws.bid(&lot, amount, max, id).await;
        assert_eq!(r.reason, Some(RejectReason::Invalid), "{id}: {r:?}");
    }
    ws.ping().await;

    // MessagePack.
    let mut ws = Ws::connect(addr, &dealer.token, Format::MsgPack).await;
    let mp = |v: Value| Message::binary(rmp_serde::to_vec_named(&v).expect("encode"));
    // {"req": 5, "type": "ping"}, cut inside "ping": the req was already read.
    let mut truncated = vec![0x82, 0xa3];
    truncated.extend_from_slice(b"req");
    truncated.extend_from_slice(&[0x05, 0xa4]);
    truncated.extend_from_slice(b"type");
    truncated.extend_from_slice(&[0xa4, b'p', b'i']);
    let mut trailing = rmp_serde::to_vec_named(&json!({"type": "ping", "req": 6})).expect("encode");
    trailing.push(0xc0);
    let mbid = |req: &str, amount: Value| {
        mp(json!({"type": "bid", "req": req, "auction": lot, "amount": amount, "bid_id": "x"}))
    };
    let table: Vec<(&str, Message, ErrorCode, Option<Req>)> = vec![
        (
            "truncated MessagePack",
            Message::binary(truncated),
            BadMessage,
            Some(Req::UInt(5)),
        ),
        (
            "a never-used byte",
            Message::binary(vec![0xc1]),
            BadMessage,
            None,
        ),
        (
            "an array",
            Message::binary(vec![0x92, 0x01, 0x02]),
            BadMessage,
            None,
        ),
        (
            "trailing bytes",
            Message::binary(trailing),
            BadMessage,
            Some(Req::UInt(6)),
        ),
        (
            "amount as a string",
            mbid("m1", json!("5000000")),
            BadMessage,
            s("m1"),
        ),
        (
            "negative amount",
            mbid("m2", json!(-5_000_000)),
            BadMessage,
            s("m2"),
        ),
        (
            "amount as a float",
            mbid("m3", json!(5e6)),
            BadMessage,
            s("m3"),
        ),
        (
            "amount beyond u64, as a float",
            mbid("m4", json!(1e20)),
            BadMessage,
            s("m4"),
        ),
        (
            "auction as a number",
            mp(json!({"type": "subscribe", "req": "m5", "auction": 3})),
            BadMessage,
            s("m5"),
        ),
        (
            "unknown type",
            mp(json!({"type": "Ping", "req": "m6"})),
            UnknownType,
            s("m6"),
        ),
        (
            "text frame on a MessagePack connection",
            Message::text(r#"{"type":"ping"}"#),
            BadMessage,
            None,
        ),
    ];
    for (name, frame, code, req) in table {
        bad(&mut ws, name, frame, code, req).await;
    }
    let r = ws.subscribe("A999").await;
    assert_eq!(r.value["code"], "unknown_auction");
    assert_eq!(
        ws.bid("A999", A_START, None, "u").await.reason,
        Some(RejectReason::UnknownAuction)
    );

    // A frame over 64 KiB closes the connection with 1009.
    let mut ws = Ws::connect(addr, &dealer.token, Format::Json).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    ws.send_raw(Message::text(big)).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(1009));

    // 1,000 garbage frames: an error for each of the first 21, then close 1008.
    let mut ws = Ws::connect(addr, &dealer.token, Format::Json).await;
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..1000 {
        if ws
            .try_send_raw(Message::text(format!("garbage {i}")))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(
        sent > 21,
        "the server read at least 21 frames ({sent} sent)"
    );
    assert_eq!(ws.expect_close(Duration::from_secs(10)).await, Some(1008));
    assert!(started.elapsed() < Duration::from_secs(10));
    let errors = ws
        .backlog()
        .filter(|r| r.value["code"] == "bad_message")
        .count();
    assert_eq!(errors, 21, "one error per bad frame up to the 21st");

    // HTTP: one 422 naming every bad field of a listing.
    let mut body = listing(A_START, A_RESERVE, None, 60);
    body["vehicle"]["vin"] = json!("1M8GDM9A1KP042788"); // wrong check digit
    body["vehicle"]["year"] = json!(1970);
    body["vehicle"]["mileage_km"] = json!(-1);
    body["inspection"]["grade"] = json!(9);
    body["start_price"] = json!(50);
    body["duration_s"] = json!(0);
    let r = http::post(addr, "/v1/listings", Some(&seller.token), &body).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let fields: BTreeSet<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert!(e["message"].is_string(), "{e}");
            e["field"].as_str().expect("field")
        })
        .collect();
    for f in [
        "vehicle.vin",
        "vehicle.year",
        "vehicle.mileage_km",
        "inspection.grade",
        "start_price",
        "duration_s",
    ] {
        assert!(fields.contains(f), "422 names {f}: {:?}", r.body);
    }
    let r = http::post(
        addr,
        "/v1/listings",
        Some(&dealer.token),
        &listing(A_START, A_RESERVE, None, 60),
    )
    .await;
    assert_eq!(r.status, 403, "only sellers list cars");
}

// ---------------------------------------------------------------------------------------
// 4. Idempotent retry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_bid_id_returns_the_first_result_and_does_nothing() {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let d1 = create_dealer(addr, "Dealer 1", DEPOSIT).await;
    let d2 = create_dealer(addr, "Dealer 2", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 60)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();

    let mut w1 = Ws::connect(addr, &d1.token, Format::Json).await;
    let low = w1.bid(&lot, 1, None, "d1-low").await;
    assert_eq!(low.reason, Some(RejectReason::BelowMinimum));
    let first = w1.bid(&lot, A_START, None, "d1-1").await;
    assert!(first.accepted);
    w1.close().await;

    // D2 takes the lead, so a fresh bid by D1 would now get a different answer.
    let mut w2 = Ws::connect(addr, &d2.token, Format::Json).await;
    let r = w2.bid(&lot, 5_050_000, None, "d2-1").await;
    assert!(r.accepted);
    expect_update(&mut w2, &lot, r.seq.expect("seq")).await;
    w2.clear_backlog();
    let before = bearer_get(addr, &format!("/v1/auctions/{lot}"), &d2.token)
        .await
        .body;
    assert_eq!(before["bids"], 2);

    // D1 reconnects (the other encoding, even) and resends both bids.
    let mut w1 = Ws::connect(addr, &d1.token, Format::MsgPack).await;
    let again = w1.bid(&lot, A_START, None, "d1-1").await;
    assert_eq!(again.seq, first.seq, "same seq");
    assert_eq!(again.price, first.price, "same price");
    assert_eq!(
        (again.accepted, again.leading, again.ends_at),
        (true, Some(true), first.ends_at)
    );
    // Even with other fields, a used bid_id is answered with its first result.
    let changed = w1.bid(&lot, 6_000_000, Some(7_000_000), "d1-1").await;
    assert_eq!((changed.seq, changed.price), (first.seq, first.price));
    // A refusal is repeated as well: the bid_id is spent, whatever the answer was.
    let low_again = w1.bid(&lot, 6_000_000, None, "d1-low").await;
    assert_eq!(
        (low_again.reason, low_again.min_next),
        (low.reason, low.min_next)
    );

    // None of the retries had an effect: no update, no bid, no price change.
    assert_none(
        &mut w2,
        Duration::from_millis(300),
        "update after a retry",
        |m| matches!(m, ServerMessage::Update(_)),
    )
    .await;
    let after = bearer_get(addr, &format!("/v1/auctions/{lot}"), &d2.token)
        .await
        .body;
    assert_eq!(after, before, "state unchanged by retries");
    // A fresh bid_id does act.
    let r = w1.bid(&lot, 5_100_000, None, "d1-2").await;
    assert!(r.accepted && r.seq > first.seq);
}

/// `rate_limited` is decided before the engine sees the bid: the same `bid_id` is a fresh
/// attempt afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_bid_id_is_not_spent() {
    let server =
        TestServer::start(&[("gateway.bid_burst", "1"), ("gateway.bid_rate_per_s", "2")]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 60)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();
    let mut w = Ws::connect(addr, &dealer.token, Format::Json).await;
    let first = w.bid(&lot, 1, None, "spent").await;
    assert_eq!(first.reason, Some(RejectReason::BelowMinimum));
    let limited = w.bid(&lot, A_START, None, "retry-me").await;
    assert_eq!(limited.reason, Some(RejectReason::RateLimited));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = w.bid(&lot, A_START, None, "retry-me").await;
    assert!(
        again.accepted,
        "a fresh attempt after rate_limited: {again:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. A slow consumer

/// A client socket that can hold little: a 2 KiB receive buffer, and a 536-byte MSS,
/// which the server's send buffer is sized from (Linux sizes it from the MSS, and on
/// loopback the default MSS of 64 KiB would let megabytes pile up in the kernel first).
async fn tiny_socket(addr: SocketAddr) -> tokio::net::TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    s.set_recv_buffer_size(2048).expect("SO_RCVBUF");
    s.set_tcp_mss(536).expect("TCP_MAXSEG");
    s.set_nonblocking(true).expect("non-blocking");
    tokio::net::TcpSocket::from_std_stream(s.into())
        .connect(addr)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_stays_bounded_and_slows_no_one() {
    const QUEUE: usize = 16;
    const TIMEOUT_MS: u64 = 1_000;
    let server = TestServer::start(&[
        ("gateway.outbound_queue", "16"),
        ("gateway.slow_consumer_timeout_ms", "1000"),
        ("gateway.bid_burst", "100000"),
        ("gateway.bid_rate_per_s", "100000"),
    ])
    .await;
    let addr = server.addr;
    let hub = server.running().hub.clone();
    let seller = create_seller(addr, "Seller").await;
    let storm = create_dealer(addr, "Storm", 100_000_000_000).await;
    let fast = create_dealer(addr, "Fast", DEPOSIT).await;
    let storm_id: DealerId = storm.id.parse().expect("dealer id");
    let fast_id: DealerId = fast.id.parse().expect("dealer id");
    let slow = create_dealer(addr, "Slow", DEPOSIT).await;
    let slow_id: DealerId = slow.id.parse().expect("dealer id");
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 120)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();
    let lot_id: LotId = lot.parse().expect("lot id");

    // The slow client: a tiny receive buffer, subscribes, and never reads again.
    let tcp = tiny_socket(addr).await;
    let (stream, _) = tokio_tungstenite::client_async(
        support::ws::url(addr, Some(&slow.token), Format::Json),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .expect("upgrade");
    let mut slow_ws = Ws::from_stream(stream, Format::Json);
    slow_ws
        .send_value(&json!({"type": "subscribe", "auction": lot}))
        .await;

    // The storm: one dealer leads and keeps raising its max, dozens of bids in flight,
    // each one an update to every watcher.
    let stop = Arc::new(AtomicBool::new(false));
    let (storm_stream, _) =
        tokio_tungstenite::connect_async(support::ws::url(addr, Some(&storm.token), Format::Json))
            .await
            .expect("storm connects");
    let (mut tx, mut rx) = storm_stream.split();
    let answered = Arc::new(AtomicUsize::new(0));
    let reader = {
        let answered = answered.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m {
                    if t.contains(r#""type":"bid_result""#) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Its first bid makes it the leader before anyone else bids (otherwise its bids at
    // the start price would all be below the minimum, and there would be no storm).
    let opening = json!({"type": "bid", "auction": lot, "amount": A_START,
                         "max": 10_000_000_000u64, "bid_id": "s-open"});
    tx.send(Message::text(opening.to_string()))
        .await
        .expect("storm opens");
    let opened = Instant::now();
    while answered.load(Ordering::Relaxed) == 0 {
        assert!(
            opened.elapsed() < WAIT,
            "the storm's opening bid was answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let storm_task = {
        let (stop, answered, lot) = (stop.clone(), answered.clone(), lot.clone());
        tokio::spawn(async move {
            let mut sent = 1usize;
            while !stop.load(Ordering::Relaxed) {
                if sent - answered.load(Ordering::Relaxed) >= 32 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let max = 10_000_000_000 + sent as u64;
                let bid = json!({"type": "bid", "auction": lot, "amount": A_START,
                                 "max": max, "bid_id": format!("s{sent}")});
                if tx.send(Message::text(bid.to_string())).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };

    // The fast dealer bids against the storm's proxy and times every answer.
    let mut fw = Ws::connect(addr, &fast.token, Format::Json).await;
    let mut next = 5_050_000;
    let mut acks = Vec::new();
    let mut accepted = 0;
    let mut max_queue = 0;
    let mut full_at = None;
    let mut gone_at = None;
    let mut others_at_gone = None;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let queues = hub.dealer_queues(slow_id);
        max_queue = max_queue.max(queues.iter().copied().max().unwrap_or(0));
        if full_at.is_none() && queues.iter().any(|&q| q >= QUEUE) {
            full_at = Some(Instant::now());
        }
        if queues.is_empty() && gone_at.is_none() {
            gone_at = Some(Instant::now());
            // Checked now, while the fast dealer still reads: after the loop it stops
            // reading, and would rightly become a slow consumer itself.
            others_at_gone = Some((
                hub.dealer_connections(storm_id),
                hub.dealer_connections(fast_id),
                hub.subscribers(lot_id),
            ));
        }
        if gone_at.is_some() && acks.len() >= 10 {
            break;
        }
        i += 1;
        let t = Instant::now();
        let r = fw.bid(&lot, next, None, &format!("f{i}")).await;
        acks.push(t.elapsed());
        if r.accepted {
            accepted += 1;
            next = r.price.expect("price") + 50_000;
        } else if let Some(m) = r.min_next {
            next = m;
        }
        fw.clear_backlog(); // the updates it also gets; we only time the acks
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let storm_sent = storm_task.await.expect("storm");
    reader.abort();

    let conflations = hub.metrics.conflations.get();
    let slowest = acks.iter().max().copied().unwrap_or_default();
    eprintln!(
        "slow consumer: storm sent {storm_sent} bids, fast acks {} (accepted {accepted}, slowest {slowest:?}), \
         slow queue max {max_queue}, conflations {conflations}, full after {:?}, gone after {:?}",
        acks.len(),
        full_at.map(|t| t - started),
        gone_at.map(|t| t - started),
    );
    assert!(
        max_queue <= QUEUE,
        "the queue never grew past its bound: {max_queue}"
    );
    // The slow client only watches one lot, so its queue holds one update that each newer
    // one replaces (it need not reach the bound); the writer, stuck on the full socket,
    // gives up after the slow-consumer timeout.
    assert!(
        conflations > 0,
        "updates were conflated, not queued without end"
    );
    let gone_at = gone_at.expect("the slow client was disconnected");
    if let Some(full_at) = full_at {
        assert!(
            gone_at.duration_since(full_at) < Duration::from_millis(TIMEOUT_MS * 2 + 2_000),
            "closed soon after the slow-consumer timeout"
        );
    }
    assert_eq!(hub.dealer_connections(slow_id), 0);
    assert_eq!(
        policy_closes(addr).await,
        1,
        "the slow consumer's close is counted"
    );
    assert_eq!(
        others_at_gone,
        Some((1, 1, 2)),
        "the storm and the fast dealer stayed connected and subscribed"
    );
    assert!(acks.len() >= 10 && accepted > 0);
    assert!(
        slowest < Duration::from_secs(1),
        "the fast dealer's acks were not held up: {slowest:?}"
    );
    // What it finds when it finally reads: what the kernel held, then the end of the
    // connection (a close frame could not be written to a full socket).
    let code = slow_ws.expect_close(Duration::from_secs(10)).await;
    assert!(
        matches!(code, None | Some(1008)),
        "slow consumer ends without a frame or with 1008: {code:?}"
    );
}

/// A client that answers the server's pings stays connected however quiet it is; one
/// that neither sends nor answers is closed with 1001 after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_and_quiet_live_ones_kept() {
    let server = TestServer::start(&[
        ("gateway.ping_interval_s", "1"),
        ("gateway.idle_timeout_s", "2"),
    ])
    .await;
    let addr = server.addr;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let mut quiet = Ws::connect(addr, &dealer.token, Format::Json).await;
    // Made by hand: a WebSocket library would answer the pings whenever it reads.
    let mut mute = support::ws::raw_upgrade(addr, &dealer.token).await;
    // `quiet` reads (its library answers pings) but sends nothing for 3.5 s.
    quiet.gather(Duration::from_millis(3_500)).await;
    assert!(
        quiet.closed.is_none(),
        "a client answering pings is not idle"
    );
    quiet.ping().await;
    let code = support::ws::raw_close_code(&mut mute, WAIT).await;
    assert_eq!(code, Some(1001), "idle: going away");
}

/// gavel writes its own frames and tungstenite only reads, so the pong tungstenite owes a
/// client's ping goes through the session's queue: it must come back whole, with its
/// payload, behind the replies queued before it, while updates are written around it.
#[tokio::test]
async fn websocket_pings_are_answered_whole_among_the_servers_frames() {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 60)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();
    let url = support::ws::url(addr, Some(&dealer.token), Format::Json);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("upgrade");
    let subscribe = json!({"type": "subscribe", "req": 1, "auction": lot});
    ws.send(Message::text(subscribe.to_string()))
        .await
        .expect("send");
    ws.send(Message::Ping(b"first".to_vec().into()))
        .await
        .expect("ping");
    for (i, amount) in [A_START, A_START + 10_000, A_START + 20_000]
        .iter()
        .enumerate()
    {
        let bid = json!({"type": "bid", "req": 10 + i, "auction": lot, "amount": amount,
                         "bid_id": format!("b{i}")});
        ws.send(Message::text(bid.to_string())).await.expect("send");
        ws.send(Message::Ping(format!("ping {i}").into_bytes().into()))
            .await
            .expect("ping");
    }
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen
        .iter()
        .filter(|s: &&String| s.starts_with("pong "))
        .count()
        < 4
    {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("not every pong came; got {seen:?}"));
        match next {
            Some(Ok(Message::Pong(p))) => {
                seen.push(format!("pong {}", String::from_utf8_lossy(&p)));
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("a text frame that is not JSON ({e}): {t}"));
                let ty = v["type"].as_str().unwrap_or("?").to_string();
                seen.push(format!("{ty} {}", v["req"]));
            }
            other => panic!("unexpected {other:?} after {seen:?}"),
        }
    }
    let at = |what: &str| {
        seen.iter()
            .position(|s| s == what)
            .unwrap_or_else(|| panic!("no {what} in {seen:?}"))
    };
    assert!(at("snapshot 1") < at("pong first"), "{seen:?}");
    assert!(at("pong first") < at("pong ping 0"), "{seen:?}");
    assert!(at("pong ping 0") < at("pong ping 1"), "{seen:?}");
    assert!(at("pong ping 1") < at("pong ping 2"), "{seen:?}");
}

/// A client may send its first frame right behind the upgrade request, in the same
/// packet: the bytes the HTTP server read past the request must reach the session.
#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut bytes = format!(
        "GET /v1/ws?token={} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        dealer.token
    )
    .into_bytes();
    // A masked text frame (clients must mask): {"type":"ping","req":7}.
    let payload = br#"{"type":"ping","req":7}"#;
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&bytes).await.expect("request and frame");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let frame = loop {
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]);
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        let frame = &got[end + 4..];
        if frame.len() >= 2 && frame.len() >= 2 + usize::from(frame[1] & 0x7f) {
            break frame.to_vec();
        }
    };
    assert_eq!(frame[0], 0x81, "an unmasked, final text frame");
    let len = usize::from(frame[1]);
    let v: Value = serde_json::from_slice(&frame[2..2 + len]).expect("JSON");
    assert_eq!(
        (v["type"].as_str(), v["req"].as_u64()),
        (Some("pong"), Some(7))
    );
}

/// The server's `gavel_policy_closes_total`, from `/metrics`.
async fn policy_closes(addr: SocketAddr) -> u64 {
    let m = http::get(addr, "/metrics", None).await;
    let text = m.body.as_str().expect("Prometheus text");
    text.lines()
        .find_map(|l| l.strip_prefix("gavel_policy_closes_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gavel_policy_closes_total in {text}"))
}

/// A client that keeps sending requests but never reads their replies: replies are never
/// dropped, so the server must stop reading it rather than queue a reply per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_but_never_reads_stays_bounded() {
    const QUEUE: usize = 16;
    let server = TestServer::start(&[
        ("gateway.outbound_queue", "16"),
        ("gateway.slow_consumer_timeout_ms", "1000"),
    ])
    .await;
    let addr = server.addr;
    let hub = server.running().hub.clone();
    let dealer = create_dealer(addr, "Pinger", DEPOSIT).await;
    let id: DealerId = dealer.id.parse().expect("dealer id");
    let (stream, _) = tokio_tungstenite::client_async(
        support::ws::url(addr, Some(&dealer.token), Format::Json),
        tokio_tungstenite::MaybeTlsStream::Plain(tiny_socket(addr).await),
    )
    .await
    .expect("upgrade");
    let (mut tx, _rx) = stream.split();
    // Pings as fast as the socket takes them, each asking for a pong.
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        let ping = Message::text(format!(r#"{{"type":"ping","req":"{}"}}"#, "p".repeat(60)));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            match tokio::time::timeout(Duration::from_millis(500), tx.send(ping.clone())).await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(_)) => break, // the server closed
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await, // pushed back
            }
        }
        sent
    });
    let started = Instant::now();
    let mut peak = 0;
    let mut gone = None;
    while started.elapsed() < Duration::from_secs(8) {
        let queues = hub.dealer_queues(id);
        peak = peak.max(queues.iter().copied().max().unwrap_or(0));
        if queues.is_empty() && started.elapsed() > Duration::from_millis(200) {
            gone = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = sender.await.expect("sender");
    eprintln!("pinger: sent {sent}, peak queue {peak}, gone after {gone:?}");
    assert!(peak >= QUEUE, "the test made pressure: peak {peak}");
    assert!(
        peak <= QUEUE + 1,
        "replies stopped at the bound: peak {peak}"
    );
    assert!(
        gone.is_some(),
        "the server dropped the client that does not read"
    );
    assert_eq!(policy_closes(addr).await, 1, "and counted it");
}

// ---------------------------------------------------------------------------------------
// 6. One hot auction, 1,000 watching dealers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_dealers_all_see_the_final_price() {
    const N: usize = 1_000;
    let started = Instant::now();
    let server = TestServer::start(&[("gateway.max_connections", "5000")]).await;
    let addr = server.addr;
    let engine = server.running().engine.clone();
    let seller = create_seller(addr, "Seller").await;

    // Register the dealers straight through the engine (the same command the HTTP route
    // submits: the token's digest, never the token).
    let mut registering = Vec::new();
    for i in 0..N {
        let engine = engine.clone();
        registering.push(tokio::spawn(async move {
            let (token, token_hash) = gavel::directory::token::new_token();
            let applied = engine
                .submit(Command::Auction(AuctionCommand::RegisterDealer {
                    name: format!("Dealer {i}"),
                    deposit: DEPOSIT,
                    linked_sellers: Vec::new(),
                    token_hash,
                }))
                .await
                .expect("register");
            let id = applied
                .events
                .iter()
                .find_map(|e| match e {
                    Event::Auction(AuctionEvent::DealerRegistered { dealer }) => {
                        Some(dealer.to_string())
                    }
                    _ => None,
                })
                .expect("registered");
            Account { id, token }
        }));
    }
    let mut dealers = Vec::new();
    for r in registering {
        dealers.push(r.await.expect("join"));
    }
    let ids: Arc<Vec<String>> = Arc::new(dealers.iter().map(|d| d.id.clone()).collect());
    eprintln!("registered {N} dealers in {:?}", started.elapsed());

    // Every dealer connects; they subscribe once the lot exists.
    let (lot_tx, lot_rx) = tokio::sync::watch::channel(String::new());
    let subscribed = Arc::new(tokio::sync::Barrier::new(N + 1));
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let mut watchers = Vec::new();
    for (i, d) in dealers.iter().cloned().enumerate() {
        let (mut lot_rx, subscribed, connecting, ids) = (
            lot_rx.clone(),
            subscribed.clone(),
            connecting.clone(),
            ids.clone(),
        );
        let format = if i % 2 == 0 {
            Format::Json
        } else {
            Format::MsgPack
        };
        watchers.push(tokio::spawn(async move {
            let permit = connecting.acquire().await.expect("semaphore");
            let mut w = Ws::connect(addr, &d.token, format).await;
            drop(permit);
            let lot = lot_rx
                .wait_for(|l| !l.is_empty())
                .await
                .expect("lot id")
                .clone();
            let snap = w.subscribe(&lot).await;
            assert_eq!(snap.value["type"], "snapshot");
            subscribed.wait().await;
            let (_, closed) = expect_closed(&mut w, &lot, Duration::from_secs(20)).await;
            // Spot-check privacy on a sample (every message of every client is costly).
            if i % 50 == 0 {
                let others: Vec<String> = ids
                    .iter()
                    .filter(|x| **x != d.id)
                    .take(10)
                    .cloned()
                    .collect();
                assert_no_dealer_ids(&w.log, &others, &d.id);
            }
            closed
        }));
    }
    let t = Instant::now();
    // Long enough for 1,000 subscriptions and the bid war before it closes on a loaded
    // two-core machine (subscribing took 3.4 s at a load average of 25).
    let body = listing(A_START, A_RESERVE, None, 8);
    let listed = list_car(addr, &seller, &body).await;
    let lot = listed["auction"].as_str().expect("id").to_string();
    lot_tx.send(lot.clone()).expect("watchers wait");
    tokio::time::timeout(Duration::from_secs(20), subscribed.wait())
        .await
        .expect("all subscribed");
    let lot_id: LotId = lot.parse().expect("lot");
    assert_eq!(server.running().hub.subscribers(lot_id), N);
    eprintln!("{N} connected and subscribed in {:?}", t.elapsed());

    // A bid war among three of them, on second connections.
    let mut b = Vec::new();
    for d in &dealers[..3] {
        b.push(Ws::connect(addr, &d.token, Format::Json).await);
    }
    let r = b[0].bid(&lot, A_START, Some(5_200_000), "w1").await;
    assert!(r.accepted);
    let r = b[1].bid(&lot, 5_100_000, Some(5_400_000), "w2").await;
    assert_eq!((r.price, r.leading), (Some(5_250_000), Some(true)));
    let r = b[2].bid(&lot, 5_300_000, None, "w3").await;
    assert_eq!((r.price, r.leading), (Some(5_350_000), Some(false)));
    let r = b[0]
        .bid(&lot, 5_450_000, Some(A_RESERVE + 200_000), "w4")
        .await;
    assert_eq!((r.price, r.leading), (Some(A_RESERVE), Some(true)));
    let r = b[2].bid(&lot, 5_650_000, None, "w5").await;
    assert_eq!((r.price, r.leading), (Some(5_700_000), Some(false)));
    let final_price = 5_700_000;

    let mut seen = 0;
    for (i, w) in watchers.into_iter().enumerate() {
        let c = w.await.expect("watcher");
        assert_eq!(c.outcome, ClosedOutcome::Sold, "dealer {i}");
        assert_eq!(c.price, Some(final_price), "dealer {i} saw the final price");
        assert_eq!(c.won, i == 0, "dealer {i}");
        seen += 1;
    }
    assert_eq!(seen, N);
    eprintln!("whole test {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30));
}

// ---------------------------------------------------------------------------------------
// 7. Graceful shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_clients_with_1001_and_keeps_acked_bids() {
    let mut server = TestServer::start(&[("gateway.shutdown_deadline_s", "5")]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(A_START, A_RESERVE, None, 60)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();

    let mut dw = Ws::connect(addr, &dealer.token, Format::MsgPack).await;
    let mut sw = Ws::connect(addr, &seller.token, Format::Json).await;
    sw.subscribe(&lot).await;
    let acked = dw.bid(&lot, A_START, Some(5_500_000), "kept").await;
    assert!(acked.accepted);
    let seq = acked.seq.expect("seq");

    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(6), server.shutdown())
        .await
        .expect("shutdown returned within the deadline")
        .expect("shutdown is Ok");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(dw.expect_close(WAIT).await, Some(1001), "going away");
    assert_eq!(sw.expect_close(WAIT).await, Some(1001), "going away");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );

    // The acknowledged bid is in the journal.
    let mut journal = FileJournal::open(server.dir.path(), FileJournalConfig::default())
        .await
        .expect("reopen the journal");
    let mut found = None;
    let mut after = 0;
    loop {
        let batches = journal.read_after(after, 64).await.expect("read");
        if batches.is_empty() {
            break;
        }
        for e in batches.iter().flat_map(|b| &b.entries) {
            after = after.max(e.seq);
            if let Command::Auction(AuctionCommand::PlaceBid { bid_id, amount, .. }) = &e.command {
                if &**bid_id == "kept" {
                    found = Some((e.seq, *amount));
                }
            }
        }
    }
    assert_eq!(
        found,
        Some((seq, A_START)),
        "the acked bid is durable at its seq"
    );

    // And a server started on it shows the bid.
    let mut again = TestServer::start_on(&[], journal, tempfile::tempdir().expect("dir")).await;
    let view = http::get(
        again.addr,
        &format!("/v1/auctions/{lot}"),
        Some(&dealer.token),
    )
    .await;
    assert_eq!(
        view.status, 200,
        "the dealer's token survived too: {:?}",
        view.body
    );
    assert_eq!(
        (view.body["price"].as_u64(), view.body["bids"].as_u64()),
        (Some(A_START), Some(1))
    );
    assert_eq!(view.body["leading"], true);
    again.shutdown().await.expect("second shutdown");
}

/// `Running::shutdown` returns only once every client has its close frame: `gavel serve`
/// exits right after it, which drops every task still running. The server runs on its
/// own runtime here, dropped as soon as `shutdown` returns, like the binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_after_every_client_has_its_close_frame() {
    const CLIENTS: usize = 300;
    support::init_tracing();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let result = rt.block_on(async move {
            let dir = tempfile::tempdir().expect("dir");
            let journal = FileJournal::open(dir.path(), FileJournalConfig::default())
                .await
                .expect("journal");
            let config = support::server::config(&[("gateway.max_connections_per_dealer", "1000")]);
            let running = gavel::server::start(&config, journal).await.expect("start");
            let _ = addr_tx.send(running.addr);
            let _ = go_rx.await;
            running.shutdown().await.map_err(|e| e.to_string())
        });
        drop(rt);
        result
    });
    let addr = addr_rx.await.expect("server address");
    let dealer = create_dealer(addr, "Dealer", DEPOSIT).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let format = if i % 2 == 0 {
            Format::Json
        } else {
            Format::MsgPack
        };
        clients.push(Ws::connect(addr, &dealer.token, format).await);
    }
    go_tx.send(()).expect("server waits");
    let result = tokio::task::spawn_blocking(move || server.join().expect("server thread"))
        .await
        .expect("join");
    assert_eq!(result, Ok(()));
    let mut codes = std::collections::BTreeMap::new();
    for mut c in clients {
        *codes.entry(c.expect_close(WAIT).await).or_insert(0) += 1;
    }
    assert_eq!(codes, [(Some(1001), CLIENTS)].into(), "close codes seen");
}

/// When `shutdown` returns, the journal is closed, not only flushed: it can be opened
/// again at once (a restart in the same process). Ten rounds, because the window was
/// small: the engine's writer task dropped the journal a moment after the engine ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_journal_opens_again_at_once() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    for round in 1..=10 {
        let journal = FileJournal::open(dir.path(), FileJournalConfig::default())
            .await
            .unwrap_or_else(|e| panic!("round {round}: the journal is still held: {e}"));
        let running = gavel::server::start(&support::server::config(&[]), journal)
            .await
            .expect("start");
        let seller = create_seller(running.addr, "Seller").await;
        assert_eq!(
            seller.id,
            format!("S{round}"),
            "every earlier round is in the journal"
        );
        running.shutdown().await.expect("shutdown");
    }
}

/// A graceful shutdown on Redis should release the journal's lease, so a restarted
/// server takes over at once rather than after the lease TTL (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_redis_lease_is_free() {
    use gavel::store::{RedisJournal, RedisJournalConfig};
    use support::redis_server::{RedisOpts, RedisServer};
    let redis = tokio::task::spawn_blocking(|| RedisServer::start(RedisOpts::always()))
        .await
        .expect("start redis");
    let config = RedisJournalConfig {
        url: redis.url(),
        prefix: "gwtest".into(),
        ..RedisJournalConfig::default()
    };
    let journal = RedisJournal::open(&config).await.expect("open");
    let mut server = TestServer::start_on(&[], journal, tempfile::tempdir().expect("dir")).await;
    create_seller(server.addr, "Seller").await;
    server.shutdown().await.expect("shutdown");
    RedisJournal::open(&config)
        .await
        .expect("a successor opens the journal at once");
}
