//! The contract additions made for the web console (docs/protocol.md, "Reads for the
//! console" and "WebSocket auth from a browser"), end to end: a real server on
//! 127.0.0.1:0, real HTTP, a real WebSocket client.

mod support;

use gavel::gateway::ServerMessage;
use serde_json::{json, Value};
use std::time::Duration;
use support::http;
use support::server::{create_dealer, create_seller, list_car, listing, now_ms, TestServer, ADMIN};
use support::ws::Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const Y: u64 = 100;

/// Polls `GET path` until `done` holds (the alliance's hand-off and timers are
/// asynchronous), for at most 10 s.
async fn eventually(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http::get(server.addr, path, token).await;
        if r.status == 200 && done(&r.body) {
            return r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path}: never got there; last {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ws_with_protocols(
    server: &TestServer,
    protocols: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tungstenite::handshake::client::Response,
    ),
    tungstenite::Error,
> {
    let mut req = format!("ws://{}/v1/ws", server.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).expect("header"),
    );
    tokio_tungstenite::connect_async(req).await
}

#[tokio::test]
async fn a_browser_authenticates_with_a_bearer_subprotocol_and_gets_gavel_v1_back() {
    let server = TestServer::start(&[]).await;
    let seller = create_seller(server.addr, "s").await;
    let dealer = create_dealer(server.addr, "d", 1_000_000 * Y).await;
    let lot = list_car(
        server.addr,
        &seller,
        &listing(1_000 * Y, 2_000 * Y, None, 60),
    )
    .await;
    let lot = lot["auction"].as_str().expect("auction").to_string();

    let (stream, response) =
        ws_with_protocols(&server, &format!("gavel.v1, bearer.{}", dealer.token))
            .await
            .expect("the upgrade with a bearer subprotocol is accepted");
    let protocols: Vec<_> = response
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .collect();
    assert_eq!(
        protocols,
        ["gavel.v1"],
        "gavel.v1 alone is echoed, never the token"
    );
    // The session is the dealer's: it may bid.
    let mut ws = Ws::from_stream(stream, gavel::gateway::Format::Json);
    let result = ws.bid(&lot, 1_000 * Y, None, "sp-1").await;
    assert!(result.accepted, "{result:?}");

    // An unknown token in the subprotocol is refused before the upgrade, with 401.
    match ws_with_protocols(&server, &format!("gavel.v1, bearer.{}", "0".repeat(64))).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("an unknown bearer subprotocol must be 401, got {other:?}"),
    }
    // gavel.v1 alone carries no token: 401 as before.
    match ws_with_protocols(&server, "gavel.v1").await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("no token must be 401, got {other:?}"),
    }
    // `?token=` keeps working, and offering gavel.v1 with it gets the echo too.
    let mut req = format!("ws://{}/v1/ws?token={}", server.addr, dealer.token)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("gavel.v1"),
    );
    let (mut s, r) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(r.headers()["sec-websocket-protocol"], "gavel.v1");
    s.send_ping().await;
    let _ = s.close(None).await;
}

trait Ping {
    async fn send_ping(&mut self);
}

impl Ping
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn send_ping(&mut self) {
        use futures_util::{SinkExt, StreamExt};
        self.send(Message::text(r#"{"type":"ping","req":1}"#))
            .await
            .expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(5), self.next())
            .await
            .expect("a pong in time")
            .expect("a frame")
            .expect("a good frame");
        assert!(reply.to_text().expect("text").contains("pong"), "{reply:?}");
    }
}

#[tokio::test]
async fn time_me_and_the_dealer_list() {
    let server = TestServer::start(&[]).await;
    let a = server.addr;
    // Server time: no token needed, not cached, close to ours (same machine).
    let before = now_ms();
    let r = http::get(a, "/v1/time", None).await;
    assert_eq!(r.status, 200);
    let now = r.body["now"].as_u64().expect("now is an integer");
    assert!(
        now >= before.saturating_sub(1_000) && now <= now_ms() + 1_000,
        "{now}"
    );

    // Me: every role, and 401 without a token.
    assert_eq!(http::get(a, "/v1/me", None).await.status, 401);
    let seller = create_seller(a, "Wang Fang").await;
    let dealer = create_dealer(a, "Chengdu Honest Motors", 1_000 * Y).await;
    let other = create_dealer(a, "Beijing Auto Trust", 1_000 * Y).await;
    let me = http::get(a, "/v1/me", Some(&seller.token)).await.body;
    assert_eq!(
        me,
        json!({"role": "seller", "id": seller.id, "name": "Wang Fang"})
    );
    let me = http::get(a, "/v1/me", Some(ADMIN)).await.body;
    assert_eq!(me["role"], "admin");
    let me = http::get(a, "/v1/me", Some(&dealer.token)).await.body;
    assert_eq!(
        me,
        json!({"role": "dealer", "id": dealer.id, "name": "Chengdu Honest Motors",
               "status": "active", "deposit": 1_000 * Y, "buying_power": 10_000 * Y,
               "exposure": 0, "buying_power_left": 10_000 * Y})
    );

    // A leading max counts against buying power at once; losing the lead frees it.
    let lot = list_car(a, &seller, &listing(1_000 * Y, 2_000 * Y, None, 60)).await;
    let lot = lot["auction"].as_str().expect("auction").to_string();
    let mut ws = Ws::connect(a, &dealer.token, gavel::gateway::Format::Json).await;
    assert!(
        ws.bid(&lot, 1_000 * Y, Some(4_000 * Y), "m-1")
            .await
            .accepted
    );
    let me = http::get(a, "/v1/me", Some(&dealer.token)).await.body;
    assert_eq!(me["exposure"], 4_000 * Y);
    assert_eq!(me["buying_power_left"], 6_000 * Y);
    let mut ws2 = Ws::connect(a, &other.token, gavel::gateway::Format::Json).await;
    assert!(ws2.bid(&lot, 5_000 * Y, None, "o-1").await.accepted);
    let me = http::get(a, "/v1/me", Some(&dealer.token)).await.body;
    assert_eq!(me["exposure"], 0, "outbid: the max no longer counts");
    assert_eq!(me["buying_power_left"], 10_000 * Y);

    // The operator's list: admin only, paged, with money and standing.
    for t in [&dealer.token, &seller.token] {
        assert_eq!(http::get(a, "/v1/dealers", Some(t)).await.status, 403);
    }
    let page = http::get(a, "/v1/dealers?limit=1", Some(ADMIN)).await.body;
    assert_eq!(page["dealers"].as_array().expect("list").len(), 1);
    assert_eq!(page["dealers"][0]["id"], dealer.id);
    assert_eq!(page["dealers"][0]["name"], "Chengdu Honest Motors");
    assert_eq!(page["dealers"][0]["score"], Value::Null);
    assert_eq!(page["dealers"][0]["warnings"], json!([]));
    assert_eq!(page["next"], dealer.id);
    let page2 = http::get(
        a,
        &format!("/v1/dealers?limit=1&after={}", dealer.id),
        Some(ADMIN),
    )
    .await
    .body;
    assert_eq!(page2["dealers"][0]["id"], other.id);
    assert_eq!(page2["dealers"][0]["exposure"], 5_000 * Y);
    assert_eq!(page2["dealers"][0]["buying_power_left"], 5_000 * Y);
    assert_eq!(
        http::get(a, "/v1/dealers?limit=0", Some(ADMIN))
            .await
            .status,
        400
    );
    assert_eq!(
        http::get(a, "/v1/dealers?limit=501", Some(ADMIN))
            .await
            .status,
        400
    );

    // An operator's suspension is listed with its reason.
    let r = http::post(
        a,
        &format!("/v1/dealers/{}/status", other.id),
        Some(ADMIN),
        &json!({"status": "suspended", "reason": "unpaid invoice"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let page2 = http::get(a, &format!("/v1/dealers?after={}", dealer.id), Some(ADMIN))
        .await
        .body;
    assert_eq!(page2["dealers"][0]["status"], "suspended");
    assert_eq!(
        page2["dealers"][0]["status_change"]["reason"],
        "unpaid invoice"
    );
    assert_eq!(page2["next"], Value::Null);
}

#[tokio::test]
async fn a_seller_reads_its_own_lots_with_reserve_and_decision_deadline() {
    let server = TestServer::start(&[("auction.decision_window_s", "600")]).await;
    let a = server.addr;
    let seller = create_seller(a, "s1").await;
    let stranger = create_seller(a, "s2").await;
    let dealer = create_dealer(a, "d", 1_000_000 * Y).await;
    let first = list_car(a, &seller, &listing(1_000 * Y, 3_000 * Y, None, 1)).await;
    let first = first["auction"].as_str().expect("id").to_string();
    let second = list_car(a, &seller, &listing(2_000 * Y, 2_500 * Y, None, 60)).await;
    let second = second["auction"].as_str().expect("id").to_string();
    list_car(a, &stranger, &listing(1_000 * Y, 1_000 * Y, None, 60)).await;

    // A bid under the reserve; the one-second auction closes pending the seller.
    let mut ws = Ws::connect(a, &dealer.token, gavel::gateway::Format::Json).await;
    assert!(ws.bid(&first, 1_500 * Y, None, "b-1").await.accepted);
    let mine = eventually(
        &server,
        "/v1/auctions?seller=me",
        Some(&seller.token),
        |b| b["auctions"][1]["status"] == "pending_seller",
    )
    .await;
    let lots = mine["auctions"].as_array().expect("list");
    assert_eq!(lots.len(), 2, "only its own lots: {mine}");
    assert_eq!(lots[0]["id"], second, "newest first");
    assert_eq!(lots[0]["reserve"], 2_500 * Y, "the seller sees its reserve");
    assert!(lots[0].get("decide_by").is_none(), "no deadline while live");
    assert_eq!(lots[1]["id"], first);
    let ends_at = lots[1]["ends_at"].as_u64().expect("ends_at");
    assert_eq!(lots[1]["decide_by"], ends_at + 600_000);
    assert_eq!(mine["next"], Value::Null);

    let page = http::get(a, "/v1/auctions?seller=me&limit=1", Some(&seller.token))
        .await
        .body;
    assert_eq!(page["auctions"].as_array().expect("list").len(), 1);
    assert_eq!(page["next"], second);
    let page = http::get(
        a,
        &format!("/v1/auctions?seller=me&limit=1&before={second}"),
        Some(&seller.token),
    )
    .await
    .body;
    assert_eq!(page["auctions"][0]["id"], first);

    for t in [&dealer.token, ADMIN] {
        assert_eq!(
            http::get(a, "/v1/auctions?seller=me", Some(t)).await.status,
            403
        );
    }
    assert_eq!(
        http::get(a, "/v1/auctions?seller=S1", Some(&seller.token))
            .await
            .status,
        400
    );
    // Accepting ends the window: the deadline goes.
    let r = http::post(
        a,
        &format!("/v1/auctions/{first}/decision"),
        Some(&seller.token),
        &json!({"accept": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mine = http::get(a, "/v1/auctions?seller=me", Some(&seller.token))
        .await
        .body;
    assert_eq!(mine["auctions"][1]["status"], "sold");
    assert!(mine["auctions"][1].get("decide_by").is_none());
}

#[tokio::test]
async fn the_public_catalogue_and_complaint_reads() {
    let server = TestServer::start(&[("alliance.complaint_due_s", "2")]).await;
    let a = server.addr;
    let seller = create_seller(a, "s").await;
    let dealer = create_dealer(a, "Chengdu Honest Motors", 1_000_000 * Y).await;
    let other = create_dealer(a, "Other", 1_000_000 * Y).await;
    let lot = list_car(a, &seller, &listing(1_000 * Y, 1_000 * Y, None, 1)).await;
    let lot = lot["auction"].as_str().expect("id").to_string();
    // A flood car, bought by the same dealer: barred from retail, so never in the
    // catalogue, not even among the cars sold not certified.
    let mut flooded = listing(1_000 * Y, 1_000 * Y, None, 1);
    flooded["inspection"]["flood"] = json!(true);
    let flooded = list_car(a, &seller, &flooded).await;
    let flooded = flooded["auction"].as_str().expect("id").to_string();
    let mut ws = Ws::connect(a, &dealer.token, gavel::gateway::Format::Json).await;
    assert!(ws.bid(&lot, 1_000 * Y, None, "c-1").await.accepted);
    assert!(ws.bid(&flooded, 1_000 * Y, None, "c-2").await.accepted);
    let inventory = eventually(&server, "/v1/inventory", Some(ADMIN), |b| {
        b["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    assert!(inventory.to_string().contains("\"flood\""));

    // No token needed; the sold car arrives once handed off.
    let cat = eventually(&server, "/v1/catalogue", None, |b| {
        b["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    assert_eq!(cat["items"].as_array().map(Vec::len), Some(1));
    let with_not_certified = http::get(a, "/v1/catalogue?include=not_certified", None)
        .await
        .body;
    assert_eq!(
        with_not_certified["items"], cat["items"],
        "the flood car stays out"
    );
    assert_eq!(
        http::get(a, "/v1/catalogue?include=everything", None)
            .await
            .status,
        400
    );
    let item = &cat["items"][0];
    assert_eq!(item["certified"], true);
    assert_eq!(item["reasons"], json!([]));
    assert_eq!(item["vin"], support::server::VIN);
    assert_eq!(item["status"], "in_stock");
    assert_eq!(item["vehicle"]["make"], "Kenworth");
    assert_eq!(item["dealer"]["id"], dealer.id);
    assert_eq!(item["dealer"]["name"], "Chengdu Honest Motors");
    assert_eq!(item["dealer"]["standing"]["status"], "active");
    // The same report hash as the alliance's inventory (its canonical form's SHA-256).
    let inv = http::get(a, "/v1/inventory", Some(ADMIN)).await.body;
    let same = inv["items"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["id"] == item["id"]))
        .expect("the catalogue's car is in the inventory");
    assert_eq!(item["inspection_sha256"], same["inspection_sha256"]);
    assert_eq!(item["inspection"], same["inspection"]);
    assert!(
        item.get("price").is_none(),
        "what the dealer paid is not public"
    );
    assert!(!cat.to_string().contains("consumer_ref"));
    assert_eq!(
        cat["promises"],
        json!({"return_window_h": 120, "complaint_due_h": 24})
    );
    assert_eq!(
        http::get(a, "/v1/catalogue?limit=900", None).await.status,
        400
    );
    let item_id = item["id"].as_str().expect("id").to_string();

    // A complaint (the consumer site opens it with a service token).
    let service = http::post(
        a,
        "/v1/service-tokens",
        Some(ADMIN),
        &json!({"name": "site"}),
    )
    .await
    .body;
    let service = service["token"].as_str().expect("token").to_string();
    // The dealer's open connections, in both encodings, hear of it at once; another
    // dealer hears nothing.
    let mut mp = Ws::connect(a, &dealer.token, gavel::gateway::Format::MsgPack).await;
    let mut bystander = Ws::connect(a, &other.token, gavel::gateway::Format::Json).await;
    let r = http::post(
        a,
        "/v1/complaints",
        Some(&service),
        &json!({"dealer": dealer.id, "inventory": item_id, "consumer_ref": "cust-42",
                "text": "the spare tyre is missing"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let complaint = r.body["id"].as_str().expect("id").to_string();
    let pushed = |status: &'static str| move |m: &ServerMessage| matches!(m, ServerMessage::Complaint(c) if c.complaint.status == status);
    for conn in [&mut ws, &mut mp] {
        let got = conn
            .expect(
                "the filed complaint",
                Duration::from_secs(2),
                pushed("open"),
            )
            .await;
        assert_eq!(got.value["complaint"]["id"], complaint.as_str());
        assert_eq!(got.value["complaint"]["dealer"], dealer.id.as_str());
        assert_eq!(got.value["complaint"]["inventory"], item_id.as_str());
        assert_eq!(got.value["complaint"]["text"], "the spare tyre is missing");
        assert_eq!(got.value["complaint"]["due_at"], r.body["due_at"]);
        assert!(got.value["complaint"].get("consumer_ref").is_none());
    }

    // Its dealer lists it (with the text, without the consumer's reference).
    let mine = http::get(a, "/v1/complaints", Some(&dealer.token))
        .await
        .body;
    assert_eq!(mine["complaints"][0]["id"], complaint);
    assert_eq!(mine["complaints"][0]["text"], "the spare tyre is missing");
    assert_eq!(mine["complaints"][0]["status"], "open");
    assert!(mine["complaints"][0].get("consumer_ref").is_none());
    assert!(mine["now"].is_u64());
    let path = format!("/v1/complaints/{complaint}");
    assert_eq!(http::get(a, &path, Some(&other.token)).await.status, 404);
    assert_eq!(
        http::get(a, "/v1/complaints", Some(&other.token))
            .await
            .body["complaints"],
        json!([])
    );
    assert_eq!(
        http::get(a, "/v1/complaints", Some(&seller.token))
            .await
            .status,
        403
    );
    // The consumer site: by id or by its reference, never the whole list.
    let by_id = http::get(a, &path, Some(&service)).await.body;
    assert_eq!(by_id["consumer_ref"], "cust-42");
    assert_eq!(
        http::get(a, "/v1/complaints", Some(&service)).await.status,
        400
    );
    let by_ref = http::get(a, "/v1/complaints?consumer_ref=cust-42", Some(&service))
        .await
        .body;
    assert_eq!(by_ref["complaints"][0]["id"], complaint);
    let none = http::get(a, "/v1/complaints?consumer_ref=cust-43", Some(&service))
        .await
        .body;
    assert_eq!(none["complaints"], json!([]));

    // The operator, by state: due within the hour now, overdue after two seconds.
    let soon = http::get(a, "/v1/complaints?state=due_soon", Some(ADMIN))
        .await
        .body;
    assert_eq!(soon["complaints"][0]["id"], complaint);
    let overdue = eventually(&server, "/v1/complaints?state=overdue", Some(ADMIN), |b| {
        b["complaints"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    assert_eq!(overdue["complaints"][0]["status"], "overdue");
    let late = ws
        .expect(
            "the complaint gone overdue",
            Duration::from_secs(2),
            pushed("overdue"),
        )
        .await;
    assert_eq!(
        late.value["complaint"]["warning"],
        overdue["complaints"][0]["warning"]
    );
    assert_eq!(
        http::get(a, "/v1/complaints?state=open", Some(ADMIN))
            .await
            .body["complaints"],
        json!([])
    );
    assert_eq!(
        http::get(a, "/v1/complaints?state=late", Some(ADMIN))
            .await
            .status,
        400
    );
    // Its dealer resolves it late; it lists as resolved.
    let r = http::post(
        a,
        &format!("{path}/resolve"),
        Some(&dealer.token),
        &json!({"resolution": "tyre delivered"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let resolved = http::get(a, "/v1/complaints?state=resolved", Some(ADMIN))
        .await
        .body;
    assert_eq!(resolved["complaints"][0]["resolution"], "tyre delivered");
    let done = mp
        .expect("the resolution", Duration::from_secs(2), pushed("resolved"))
        .await;
    assert_eq!(done.value["complaint"]["resolution"], "tyre delivered");
    bystander.gather(Duration::from_millis(200)).await;
    assert!(
        !bystander
            .backlog()
            .any(|m| matches!(m.msg, ServerMessage::Complaint(_))),
        "another dealer's complaints are not pushed to it"
    );
}

/// One raw `GET` (the support client keeps no headers): status line and headers, and the
/// body's length.
async fn raw_get(server: &TestServer, path: &str, extra: &str) -> (String, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    (
        String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
        raw.len() - split - 4,
    )
}

#[tokio::test]
async fn the_console_is_served_embedded_with_a_strict_policy_and_revalidated_caching() {
    let server = TestServer::start(&[]).await;
    let (head, len) = raw_get(&server, "/", "").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(len > 500, "the page has a body");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .to_string();
    let (head, len) = raw_get(&server, "/", &format!("If-None-Match: {etag}\r\n")).await;
    assert!(head.starts_with("http/1.1 304"), "{head}");
    assert_eq!(len, 0);
    for (path, ty) in [
        ("/assets/js/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (head, _) = raw_get(&server, path, "").await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {ty}")),
            "{path}: {head}"
        );
        assert!(head.contains("content-security-policy"), "{path}: {head}");
    }
    let (head, _) = raw_get(&server, "/assets/../Cargo.toml", "").await;
    assert!(!head.starts_with("http/1.1 200"), "{head}");
    let (head, _) = raw_get(&server, "/assets/js/nope.js", "").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
}
