//! Pre-bids in a lot's preview, end to end: a real gavel on a file journal, real WebSocket
//! clients in JSON and MessagePack, real HTTP; a restart in the preview; and
//! `gavel replay --verify` on the journal it leaves.
//!
//! The preview here is seconds long (`auction.min_preview_s = 1`), so the opening's timing
//! is checked with wide margins: these tests check behaviour, not speed.

mod support;

use gavel::gateway::{Format, RejectReason, ServerMessage};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::views::Status;
use serde_json::{json, Value};
use std::time::Duration;
use support::gavel::{replay_verify, JournalArg};
use support::http;
use support::server::{
    create_dealer, create_seller, list_car, listing, now_ms, Account, TestServer, ADMIN,
};
use support::ws::{Ws, WAIT};

/// 10,000 yuan of deposit: 100,000 yuan of buying power.
const DEPOSIT: u64 = 1_000_000;
const YUAN: u64 = 100;
const SETTINGS: &[(&str, &str)] = &[("auction.min_preview_s", "1")];
/// Long enough for the pre-bids and a restart before the lot opens.
const PREVIEW_S: u64 = 8;

async fn get(addr: std::net::SocketAddr, path: &str, who: &Account) -> http::Response {
    http::get(addr, path, Some(&who.token)).await
}

/// The ids of `GET /v1/auctions?status=scheduled` as `who` sees them.
async fn previews(addr: std::net::SocketAddr, who: &Account) -> Vec<String> {
    let r = get(addr, "/v1/auctions?status=scheduled", who).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["auctions"]
        .as_array()
        .expect("auctions")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn buying_power_left(addr: std::net::SocketAddr, who: &Account) -> u64 {
    let me = get(addr, "/v1/me", who).await;
    me.body["buying_power_left"]
        .as_u64()
        .unwrap_or_else(|| panic!("buying_power_left: {:?}", me.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_prebid_in_the_preview_and_the_lot_opens_on_them_after_a_restart() {
    let mut server = TestServer::start(SETTINGS).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let a = create_dealer(addr, "Member A", DEPOSIT).await;
    let b = create_dealer(addr, "Member B", DEPOSIT).await;
    let c = create_dealer(addr, "Suspended C", DEPOSIT).await;
    let suspended = http::post(
        addr,
        &format!("/v1/dealers/{}/status", c.id),
        Some(ADMIN),
        &json!({"status": "suspended", "reason": "deposit under review"}),
    )
    .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);

    // A car in a preview the seller chose; start 10,000 yuan, reserve 50,000.
    let mut body = listing(10_000 * YUAN, 50_000 * YUAN, None, 600);
    body["preview_s"] = json!(PREVIEW_S);
    let before = now_ms();
    let listed = list_car(addr, &seller, &body).await;
    assert_eq!(listed["status"], "scheduled");
    let starts_at = listed["starts_at"].as_u64().expect("starts_at");
    assert!(starts_at >= before + PREVIEW_S * 1_000, "{listed}");
    let lot = listed["auction"].as_str().expect("auction").to_owned();

    // Members and the seller see it; the suspended dealer does not, by any read.
    assert_eq!(previews(addr, &a).await, std::slice::from_ref(&lot));
    assert_eq!(previews(addr, &c).await, Vec::<String>::new());
    let path = format!("/v1/auctions/{lot}");
    assert_eq!(get(addr, &path, &seller).await.status, 200);
    assert_eq!(get(addr, &path, &c).await.status, 404);
    let mut ws_a = Ws::connect(addr, &a.token, Format::Json).await;
    let mut ws_b = Ws::connect(addr, &b.token, Format::MsgPack).await;
    let mut ws_c = Ws::connect(addr, &c.token, Format::Json).await;
    let snap = ws_a.subscribe(&lot).await;
    assert!(
        matches!(&snap.msg, ServerMessage::Snapshot(s) if s.auction.status == Status::Scheduled),
        "{}",
        snap.value
    );
    assert!(matches!(
        ws_b.subscribe(&lot).await.msg,
        ServerMessage::Snapshot(_)
    ));
    let hidden = ws_c.subscribe(&lot).await;
    assert_eq!(hidden.value["type"], "error", "{}", hidden.value);
    assert_eq!(hidden.value["code"], "unknown_auction");

    // A plain bid stays not_live; a bid with a max is a sealed pre-bid.
    let plain = ws_a.bid(&lot, 10_000 * YUAN, None, "a-plain").await;
    assert_eq!(plain.reason, Some(RejectReason::NotLive));
    let pa = ws_a
        .bid(&lot, 10_000 * YUAN, Some(15_000 * YUAN), "a-pre")
        .await;
    assert!(pa.accepted, "{pa:?}");
    assert_eq!((pa.price, pa.leading), (Some(10_000 * YUAN), Some(false)));
    let pb = ws_b
        .bid(&lot, 10_000 * YUAN, Some(12_000 * YUAN), "b-pre")
        .await;
    assert!(pb.accepted, "{pb:?}");
    assert_eq!(
        pb.leading,
        Some(false),
        "sealed: B does not learn it trails"
    );
    let lower = ws_a
        .bid(&lot, 10_000 * YUAN, Some(14_000 * YUAN), "a-lower")
        .await;
    assert_eq!(lower.reason, Some(RejectReason::PrebidLowered));
    assert_eq!(lower.max, Some(15_000 * YUAN));
    let pc = ws_c
        .bid(&lot, 10_000 * YUAN, Some(20_000 * YUAN), "c-pre")
        .await;
    assert_eq!(pc.reason, Some(RejectReason::NotEligible));
    // The pre-bid holds buying power at its max from the moment it is placed.
    assert_eq!(buying_power_left(addr, &a).await, 85_000 * YUAN);
    assert_eq!(buying_power_left(addr, &b).await, 88_000 * YUAN);
    ws_a.close().await;
    ws_b.close().await;
    ws_c.close().await;

    // Restart in the preview: the pre-bids are in the journal and still held.
    server.shutdown().await.expect("graceful shutdown");
    assert!(now_ms() < starts_at, "the restart fell inside the preview");
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().expect("dir"));
    let journal = FileJournal::open(dir.path(), FileJournalConfig::default())
        .await
        .expect("reopen the journal");
    let mut server = TestServer::start_on(SETTINGS, journal, dir).await;
    let addr = server.addr;
    assert_eq!(buying_power_left(addr, &a).await, 85_000 * YUAN);
    assert_eq!(buying_power_left(addr, &b).await, 88_000 * YUAN);
    let mut ws_a = Ws::connect(addr, &a.token, Format::MsgPack).await;
    let mut ws_b = Ws::connect(addr, &b.token, Format::Json).await;
    assert!(matches!(
        ws_a.subscribe(&lot).await.msg,
        ServerMessage::Snapshot(_)
    ));
    assert!(matches!(
        ws_b.subscribe(&lot).await.msg,
        ServerMessage::Snapshot(_)
    ));
    let retry = ws_b
        .bid(&lot, 10_000 * YUAN, Some(12_000 * YUAN), "b-pre")
        .await;
    assert_eq!(
        (retry.accepted, retry.price, retry.leading, retry.seq),
        (pb.accepted, pb.price, pb.leading, pb.seq),
        "a repeated bid_id gets its first result after the restart"
    );

    // The opening: A leads at B's max plus one increment (200 yuan), B is outbid.
    let until = Duration::from_millis(starts_at.saturating_sub(now_ms())) + WAIT;
    let opened =
        |m: &ServerMessage| matches!(m, ServerMessage::Update(u) if u.status == Status::Live);
    let ua = ws_a.expect("the opening", until, opened).await;
    let ServerMessage::Update(ua) = ua.msg else {
        unreachable!()
    };
    assert_eq!(
        (ua.price, ua.leading, ua.bids, ua.min_next),
        (Some(12_200 * YUAN), true, 2, 12_400 * YUAN)
    );
    let ub = ws_b.expect("the opening", WAIT, opened).await;
    assert_eq!(ub.value["leading"], false, "{}", ub.value);
    let out = ws_b
        .expect("outbid", WAIT, |m| matches!(m, ServerMessage::Outbid(_)))
        .await;
    assert_eq!(out.value["price"], 12_200 * YUAN, "{}", out.value);
    assert_eq!(
        buying_power_left(addr, &b).await,
        100_000 * YUAN,
        "released"
    );
    assert_eq!(
        buying_power_left(addr, &a).await,
        85_000 * YUAN,
        "held as the lead"
    );

    // Live now: everyone sees it, and live bidding continues from the opening.
    assert_eq!(get(addr, &path, &c).await.status, 200);
    let live = ws_b.bid(&lot, 12_400 * YUAN, None, "b-live").await;
    assert_eq!(
        (live.price, live.leading),
        (Some(12_600 * YUAN), Some(false))
    );
    ws_a.close().await;
    ws_b.close().await;
    server.shutdown().await.expect("graceful shutdown");

    let journal = JournalArg::File(server.dir.path().to_path_buf());
    let (status, out) = tokio::task::spawn_blocking(move || replay_verify(&journal))
        .await
        .expect("replay");
    assert!(status.success(), "gavel replay --verify failed:\n{out}");
}

/// A listing's `preview_s` is checked like its other fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_out_of_bounds_is_a_field_error() {
    let server = TestServer::start(&[]).await;
    let seller = create_seller(server.addr, "Seller").await;
    for (preview, starts_at) in [(json!(599), None), (json!(600), Some(now_ms() + 60_000))] {
        let mut body: Value = listing(10_000 * YUAN, 50_000 * YUAN, None, 600);
        body["preview_s"] = preview;
        if let Some(t) = starts_at {
            body["starts_at"] = json!(t);
        }
        let r = http::post(server.addr, "/v1/listings", Some(&seller.token), &body).await;
        assert_eq!(r.status, 422, "{:?}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "preview_s", "{:?}", r.body);
    }
}
