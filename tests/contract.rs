//! Where gavel kept its word only partly (issue 21's contract defects), end to end over a
//! real server and real clients, in both encodings where the WebSocket is involved:
//! - a repeated `bid_id` gets its first result whole, the auction it named included;
//! - an auction id that is not one is answered at once and does not spend the `bid_id`;
//! - a plain bid from the leader is `already_leading`, with its current `max`;
//! - every amount over 10^12 fen is `invalid`, a leader's raise included;
//! - a complaint or rating naming an unknown item is `422 unknown_item`;
//! - a close the server starts reaches a client that is still sending, code and reason.

mod support;

use gavel::gateway::{Format, RejectReason, ServerMessage};
use serde_json::json;
use std::time::Duration;
use support::http;
use support::server::{create_dealer, create_seller, list_car, listing, TestServer, ADMIN};
use support::ws::{close_frame, raw_upgrade, Ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEPOSIT: u64 = 1_000_000_000;
const START: u64 = 5_000_000;
const RESERVE: u64 = 8_000_000;

/// A server with one seller's live lot and two dealers: (server, lot, d1 token, d2 token).
async fn market() -> (TestServer, String, String, String) {
    let server = TestServer::start(&[]).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let d1 = create_dealer(addr, "Dealer 1", DEPOSIT).await;
    let d2 = create_dealer(addr, "Dealer 2", DEPOSIT).await;
    let lot = list_car(addr, &seller, &listing(START, RESERVE, None, 600)).await;
    let lot = lot["auction"].as_str().expect("auction id").to_owned();
    (server, lot, d1.token, d2.token)
}

/// Sends a bid and returns its `bid_result`, whatever auction it names.
async fn bid_result(
    ws: &mut Ws,
    auction: &str,
    amount: u64,
    max: Option<u64>,
    bid_id: &str,
) -> gavel::gateway::BidResult {
    ws.send_bid(auction, amount, max, bid_id).await;
    let r = ws
        .expect(
            &format!("bid_result for {bid_id}"),
            Duration::from_secs(5),
            |m| matches!(m, ServerMessage::BidResult(r) if &*r.bid_id == bid_id),
        )
        .await;
    let ServerMessage::BidResult(result) = r.msg else {
        unreachable!()
    };
    result
}

async fn repeated_bid_id_names_the_first_auction(format: Format) {
    let (server, lot, d1, _) = market().await;
    let mut ws = Ws::connect(server.addr, &d1, format).await;
    // First use: a well-formed id the server never gave out.
    let first = bid_result(&mut ws, "A999", START, None, "b-1").await;
    assert_eq!(first.reason, Some(RejectReason::UnknownAuction));
    assert_eq!(first.auction.as_str(), "A999");
    // The same bid_id for an auction that exists: the first result, whole.
    let again = bid_result(&mut ws, &lot, START, None, "b-1").await;
    // Only `req`, which echoes each request, differs.
    let same = |r: &gavel::gateway::BidResult| gavel::gateway::BidResult {
        req: None,
        ..r.clone()
    };
    assert_eq!(
        same(&again),
        same(&first),
        "a repeat is the first result, its auction included"
    );
    // And the other way round: an accepted first result, repeated for the unknown id.
    let accepted = bid_result(&mut ws, &lot, START, None, "b-2").await;
    assert!(accepted.accepted, "{accepted:?}");
    let repeat = bid_result(&mut ws, "A999", START, None, "b-2").await;
    assert_eq!(same(&repeat), same(&accepted));
    assert_eq!(repeat.auction.as_str(), lot);
}

#[tokio::test]
async fn a_repeated_bid_id_names_its_first_auction_json() {
    repeated_bid_id_names_the_first_auction(Format::Json).await;
}

#[tokio::test]
async fn a_repeated_bid_id_names_its_first_auction_msgpack() {
    repeated_bid_id_names_the_first_auction(Format::MsgPack).await;
}

#[tokio::test]
async fn an_id_that_is_no_auction_id_is_answered_and_does_not_spend_the_bid_id() {
    let (server, lot, d1, _) = market().await;
    for format in [Format::Json, Format::MsgPack] {
        let mut ws = Ws::connect(server.addr, &d1, format).await;
        let bid_id = format!("x-{}", format.as_str());
        let r = bid_result(&mut ws, "not-an-auction", START, None, &bid_id).await;
        assert_eq!(r.reason, Some(RejectReason::UnknownAuction));
        assert_eq!(r.auction.as_str(), "not-an-auction", "echoed as sent");
        // The bid_id is still free: used on a real auction it acts.
        let r = bid_result(&mut ws, &lot, 0, Some(START * 2), &bid_id).await;
        assert!(r.reason.is_some() || r.accepted, "{r:?}");
        assert_ne!(r.auction.as_str(), "not-an-auction");
    }
}

async fn a_plain_bid_from_the_leader(format: Format) {
    let (server, lot, d1, _) = market().await;
    let mut ws = Ws::connect(server.addr, &d1, format).await;
    let lead = bid_result(&mut ws, &lot, START, Some(6_000_000), "lead").await;
    assert!(lead.accepted && lead.leading == Some(true), "{lead:?}");
    let plain = bid_result(&mut ws, &lot, 5_500_000, None, "plain").await;
    assert!(!plain.accepted);
    assert_eq!(plain.reason, Some(RejectReason::AlreadyLeading));
    assert_eq!(plain.max, Some(6_000_000), "it is told its own max");
    // Its raise over that max is accepted.
    let raise = bid_result(&mut ws, &lot, 0, Some(6_500_000), "raise").await;
    assert!(raise.accepted, "{raise:?}");
}

#[tokio::test]
async fn a_plain_bid_from_the_leader_is_already_leading_json() {
    a_plain_bid_from_the_leader(Format::Json).await;
}

#[tokio::test]
async fn a_plain_bid_from_the_leader_is_already_leading_msgpack() {
    a_plain_bid_from_the_leader(Format::MsgPack).await;
}

#[tokio::test]
async fn a_leaders_raise_with_an_amount_over_the_cap_is_invalid() {
    let (server, lot, d1, _) = market().await;
    let mut ws = Ws::connect(server.addr, &d1, Format::Json).await;
    let lead = bid_result(&mut ws, &lot, START, Some(7_000_000), "lead").await;
    assert!(lead.accepted, "{lead:?}");
    for format in [Format::Json, Format::MsgPack] {
        let mut ws = Ws::connect(server.addr, &d1, format).await;
        let id = format!("over-{}", format.as_str());
        let over = bid_result(&mut ws, &lot, 1_000_000_000_001, Some(9_000_000), &id).await;
        assert_eq!(over.reason, Some(RejectReason::Invalid), "{over:?}");
    }
    // The same raise with an amount under the cap is accepted.
    let raise = bid_result(&mut ws, &lot, 1_000_000_000_000, Some(9_000_000), "raise").await;
    assert!(raise.accepted, "{raise:?}");
}

#[tokio::test]
async fn a_complaint_or_rating_naming_an_unknown_item_is_422_unknown_item() {
    let (server, _, _, _) = market().await;
    let addr = server.addr;
    let service = http::post(
        addr,
        "/v1/service-tokens",
        Some(ADMIN),
        &json!({"name": "site"}),
    )
    .await;
    assert_eq!(service.status, 201, "{:?}", service.body);
    let token = service.body["token"].as_str().expect("token").to_owned();
    let complaint = http::post(
        addr,
        "/v1/complaints",
        Some(&token),
        &json!({"dealer": "D1", "inventory": "I999", "consumer_ref": "c-1", "text": "t"}),
    )
    .await;
    assert_eq!(complaint.status, 422, "{:?}", complaint.body);
    assert_eq!(complaint.body["error"]["code"], "unknown_item");
    let rating = http::post(
        addr,
        "/v1/dealers/D1/ratings",
        Some(&token),
        &json!({"inventory": "I999", "consumer_ref": "c-1", "condition": 5, "service": 5}),
    )
    .await;
    assert_eq!(rating.status, 422, "{:?}", rating.body);
    assert_eq!(rating.body["error"]["code"], "unknown_item");
    // An item named in the path is a resource: unknown, it is 404.
    let path = http::post(
        addr,
        "/v1/inventory/I999/returns",
        Some(&token),
        &json!({"consumer_ref": "c-1", "reason": "not_as_described"}),
    )
    .await;
    assert_eq!(path.status, 404, "{:?}", path.body);
}

/// A masked client frame (clients must mask) of `opcode` carrying `payload`.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// What a client that keeps sending `frame` for half a second sees: the close frame's code
/// and reason, whether every one of its writes went through (a server that closes its
/// socket while input still arrives resets the connection, and the client's next write
/// fails), and whether its read side ended cleanly (EOF) rather than by a reset.
async fn close_seen_while_sending(
    addr: std::net::SocketAddr,
    token: &str,
    frame: Vec<u8>,
) -> (u16, String, bool) {
    let stream = raw_upgrade(addr, token).await;
    let (mut read, mut write) = stream.into_split();
    let sender = tokio::spawn(async move {
        // Keeps sending whatever the server says, as a misbehaving client would, for less
        // than `gateway.close_drain_ms` (1 s).
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        let mut failed = None;
        while tokio::time::Instant::now() < until {
            if let Err(e) = write.write_all(&frame).await {
                failed = Some(e.to_string());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (write, failed)
    });
    // A busy client reads a moment later: what waits in its buffer must still be there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let clean = loop {
        match tokio::time::timeout(Duration::from_secs(10), read.read(&mut buf)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break false,
            Err(_) => panic!("the server neither closed nor reset within 10 s"),
        }
    };
    let (mut write, failed) = sender.await.expect("the sender ends");
    assert_eq!(
        failed, None,
        "a write failed: the server reset the connection"
    );
    // Done: the client closes its side too, which ends the server's wait.
    let _ = write.shutdown().await;
    let (code, reason) = close_frame(&data).unwrap_or_else(|| {
        panic!(
            "no close frame among {} bytes (clean end: {clean})",
            data.len()
        )
    });
    (code, reason, clean)
}

#[tokio::test]
async fn a_client_flooding_bad_frames_gets_1008_and_its_reason_not_a_reset() {
    let (server, _, d1, _) = market().await;
    let (code, reason, clean) =
        close_seen_while_sending(server.addr, &d1, client_frame(0x1, b"{not json")).await;
    assert_eq!((code, reason.as_str()), (1008, "too many bad frames"));
    assert!(clean, "the connection was reset after the close frame");
}

#[tokio::test]
async fn a_client_sending_an_oversized_frame_gets_1009_and_its_reason_not_a_reset() {
    let (server, _, d1, _) = market().await;
    let big = vec![b'x'; 70 * 1024];
    let (code, reason, clean) =
        close_seen_while_sending(server.addr, &d1, client_frame(0x1, &big)).await;
    assert_eq!((code, reason.as_str()), (1009, "message too big"));
    assert!(clean, "the connection was reset after the close frame");
}
