//! Market data for members (docs/protocol.md, "Market data"), end to end: real auctions
//! closing on a real server (127.0.0.1:0, a file journal), read over real HTTP by dealers
//! in good standing, the operator and sellers; the same statistics after a restart, and
//! from `gavel replay --verify --market-data` over the journal alone.

mod support;

use gavel::store::file::{FileJournal, FileJournalConfig};
use serde_json::{json, Value};
use std::time::Duration;
use support::http;
use support::server::{
    create_dealer, create_seller, list_car, listing, Account, TestServer, ADMIN,
};
use support::ws::Ws;

const Y: u64 = 100;

const SETTINGS: [(&str, &str); 3] = [
    ("auction.decision_window_s", "600"),
    ("auction.extend_window_s", "10"),
    ("auction.extend_by_s", "3"),
];

fn car(
    make: &str,
    model: &str,
    year: u16,
    city: &str,
    reserve: u64,
    buy_now: Option<u64>,
) -> Value {
    let mut l = listing(10_000 * Y, reserve, buy_now, 2);
    l["vehicle"]["make"] = json!(make);
    l["vehicle"]["model"] = json!(model);
    l["vehicle"]["year"] = json!(year);
    l["vehicle"]["city"] = json!(city);
    l
}

async fn list(server: &TestServer, seller: &Account, body: &Value) -> String {
    let r = list_car(server.addr, seller, body).await;
    r["auction"].as_str().expect("auction id").to_string()
}

/// Polls the auction until its status is `status`, for at most 10 s.
async fn until_status(server: &TestServer, lot: &str, status: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = http::get(server.addr, &format!("/v1/auctions/{lot}"), Some(ADMIN)).await;
        if r.body["status"] == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{lot} never became {status}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let r = http::get(server.addr, path, Some(token)).await;
    (r.status, r.body)
}

async fn decide(server: &TestServer, seller: &Account, lot: &str, accept: bool) {
    let r = http::post(
        server.addr,
        &format!("/v1/auctions/{lot}/decision"),
        Some(&seller.token),
        &json!({ "accept": accept }),
    )
    .await;
    assert_eq!(r.status, 200, "decision on {lot}: {:?}", r.body);
}

#[tokio::test]
async fn members_read_prices_and_histories_of_closed_auctions_and_a_restart_and_replay_agree() {
    // Two-second auctions; any bid in them extends the close to three seconds after it.
    let mut server = TestServer::start(&SETTINGS).await;
    let seller = create_seller(server.addr, "s1").await;
    let other_seller = create_seller(server.addr, "s2").await;
    let d1 = create_dealer(server.addr, "d1", 1_000_000 * Y).await;
    let d2 = create_dealer(server.addr, "d2", 1_000_000 * Y).await;
    let suspended = create_dealer(server.addr, "d3", 1_000_000 * Y).await;

    // Four Corollas in Shanghai (reserve 50,000 yuan): sold over the reserve; accepted
    // under it; declined under it; no bids. A Civic in Beijing sold by buy-now, and one
    // cancelled (no market outcome).
    let corolla = car("Toyota", "Corolla", 2020, "Shanghai", 50_000 * Y, None);
    let sold = list(&server, &seller, &corolla).await;
    let accepted = list(&server, &seller, &corolla).await;
    let declined = list(&server, &seller, &corolla).await;
    let no_bids = list(&server, &seller, &corolla).await;
    let civic = car(
        "honda",
        "Civic",
        2018,
        "Beijing",
        50_000 * Y,
        Some(60_000 * Y),
    );
    let bought = list(&server, &other_seller, &civic).await;
    let cancelled = list(&server, &other_seller, &civic).await;
    let r = http::post(
        server.addr,
        &format!("/v1/auctions/{cancelled}/cancel"),
        Some(&other_seller.token),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "cancel: {:?}", r.body);
    let mut w1 = Ws::connect(server.addr, &d1.token, gavel::gateway::Format::Json).await;
    let mut w2 = Ws::connect(server.addr, &d2.token, gavel::gateway::Format::Json).await;
    // Each bid extends its auction once.
    assert!(w1.bid(&sold, 52_000 * Y, None, "b1").await.accepted);
    assert!(w2.bid(&accepted, 40_000 * Y, None, "b2").await.accepted);
    assert!(w2.bid(&declined, 30_000 * Y, None, "b3").await.accepted);
    assert!(w1.bid(&bought, 60_000 * Y, None, "b4").await.accepted);
    until_status(&server, &sold, "sold").await;
    until_status(&server, &no_bids, "no_sale").await;
    until_status(&server, &accepted, "pending_seller").await;
    until_status(&server, &declined, "pending_seller").await;
    decide(&server, &seller, &accepted, true).await;
    decide(&server, &seller, &declined, false).await;

    // Prices: one row per make, model, band and city, in that order.
    let (status, prices) = get(&server, "/v1/market/prices", &d1.token).await;
    assert_eq!(status, 200, "{prices}");
    assert_eq!(prices["year_band_years"], 3);
    assert_eq!(prices["next"], Value::Null);
    let rows = prices["prices"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{prices}");
    let civic_row = &rows[0];
    assert_eq!(
        (&civic_row["make"], &civic_row["model"], &civic_row["city"]),
        (&json!("honda"), &json!("civic"), &json!("beijing"))
    );
    assert_eq!(civic_row["year_band"], json!({"from": 2016, "to": 2018}));
    assert_eq!(civic_row["closed"], 1, "the cancelled lot is no close");
    assert_eq!(civic_row["sold"], 1);
    assert_eq!(civic_row["recent"]["median_price"], 60_000 * Y);
    let row = &rows[1];
    assert_eq!(row["make"], "toyota");
    assert_eq!(row["year_band"], json!({"from": 2019, "to": 2021}));
    assert_eq!(row["city"], "shanghai");
    assert_eq!(
        [
            &row["closed"],
            &row["sold"],
            &row["sold_below_reserve"],
            &row["declined"],
            &row["no_bids"],
            &row["sell_through_permille"],
        ],
        [
            &json!(4),
            &json!(2),
            &json!(1),
            &json!(1),
            &json!(1),
            &json!(500)
        ],
        "{row}"
    );
    let recent = &row["recent"];
    assert_eq!(recent["closed"], 4);
    assert_eq!(recent["sold"], 2);
    assert_eq!(
        recent["median_price"],
        40_000 * Y,
        "the lower of 40,000 and 52,000"
    );
    assert_eq!(recent["min_price"], 40_000 * Y);
    assert_eq!(recent["max_price"], 52_000 * Y);
    assert_eq!(recent["median_bids"], 1, "bids 0, 1, 1, 1");
    assert_eq!(recent["median_extensions"], 1, "extensions 0, 1, 1, 1");

    // Filters and pages.
    let (_, only) = get(
        &server,
        "/v1/market/prices?make=TOYOTA&model=corolla&year=2021&city=Shanghai",
        &d1.token,
    )
    .await;
    assert_eq!(only["prices"].as_array().expect("rows").len(), 1, "{only}");
    assert_eq!(only["prices"][0], *row);
    let (_, banded) = get(&server, "/v1/market/prices?year_band=2016-2018", &d1.token).await;
    assert_eq!(banded["prices"][0]["model"], "civic", "{banded}");
    assert_eq!(banded["prices"].as_array().expect("rows").len(), 1);
    let (_, first) = get(&server, "/v1/market/prices?limit=1", &d1.token).await;
    assert_eq!(first["prices"][0], *civic_row);
    let next = first["next"].as_str().expect("a cursor after a full page");
    let (_, second) = get(
        &server,
        &format!("/v1/market/prices?limit=1&after={next}"),
        &d1.token,
    )
    .await;
    assert_eq!(second["prices"][0], *row);
    let (_, last) = get(
        &server,
        &format!(
            "/v1/market/prices?limit=1&after={}",
            second["next"].as_str().expect("full page")
        ),
        &d1.token,
    )
    .await;
    assert_eq!(
        last,
        json!({"prices": [], "next": null, "year_band_years": 3, "window": 200})
    );

    // The history: sales only, newest first.
    let (status, history) = get(
        &server,
        "/v1/market/history?make=Toyota&model=Corolla",
        &d2.token,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let sales = history["sales"].as_array().expect("sales");
    assert_eq!(sales.len(), 2, "{history}");
    let mut got: Vec<(String, u64, bool)> = sales
        .iter()
        .map(|s| {
            (
                s["lot"].as_str().expect("lot").to_string(),
                s["price"].as_u64().expect("price"),
                s["below_reserve"].as_bool().expect("flag"),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (sold.clone(), 52_000 * Y, false),
        (accepted.clone(), 40_000 * Y, true),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(sales[0]["ended_at"].as_u64() >= sales[1]["ended_at"].as_u64());
    assert_eq!(sales[0]["year"], 2020);
    assert_eq!(sales[0]["city"], "shanghai");

    // A seller sees the history of its own car's model, by lot, and nothing else.
    let (status, own) = get(
        &server,
        &format!("/v1/market/history?lot={no_bids}"),
        &seller.token,
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own, history);
    let (status, body) = get(
        &server,
        &format!("/v1/market/history?lot={sold}"),
        &other_seller.token,
    )
    .await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    let (status, _) = get(&server, "/v1/market/prices", &seller.token).await;
    assert_eq!(status, 403);
    let (status, _) = get(
        &server,
        "/v1/market/history?make=toyota&model=corolla",
        &seller.token,
    )
    .await;
    assert_eq!(status, 403);
    let (status, theirs) = get(
        &server,
        &format!("/v1/market/history?lot={cancelled}"),
        &other_seller.token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(theirs["model"], "civic");
    assert_eq!(theirs["sales"][0]["lot"], bought);

    // A dealer not in good standing gets 403 not_in_good_standing; the operator reads.
    let r = http::post(
        server.addr,
        &format!("/v1/dealers/{}/status", suspended.id),
        Some(ADMIN),
        &json!({"status": "suspended", "reason": "unpaid invoice"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for path in [
        "/v1/market/prices".to_string(),
        "/v1/market/history?make=toyota&model=corolla".to_string(),
        format!("/v1/market/history?lot={sold}"),
    ] {
        let (status, body) = get(&server, &path, &suspended.token).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_in_good_standing", "{path}");
    }
    let (status, admin_view) = get(&server, "/v1/market/prices", ADMIN).await;
    assert_eq!(status, 200);
    assert_eq!(admin_view, prices);
    assert_eq!(
        http::get(server.addr, "/v1/market/prices", None)
            .await
            .status,
        401
    );

    // Bad queries are 400 (and an id that is no lot 404).
    for path in [
        "/v1/market/prices?year_band=2019-2020",
        "/v1/market/prices?year_band=2019",
        "/v1/market/prices?year=2020&year_band=2019-2021",
        "/v1/market/prices?limit=0",
        "/v1/market/prices?limit=501",
        "/v1/market/prices?after=zz",
        "/v1/market/prices?make=%20",
        "/v1/market/prices?lot=A1",
        "/v1/market/history?make=toyota",
        "/v1/market/history?lot=A1&make=toyota&model=corolla",
    ] {
        let (status, body) = get(&server, path, &d1.token).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("bad_request")),
            "{path}: {body}"
        );
    }
    let long = "x".repeat(65);
    let (status, _) = get(
        &server,
        &format!("/v1/market/prices?make={long}"),
        &d1.token,
    )
    .await;
    assert_eq!(status, 400);
    for lot in ["B1", "A999"] {
        let (status, _) = get(&server, &format!("/v1/market/history?lot={lot}"), &d1.token).await;
        assert_eq!(status, 404, "{lot}");
    }

    // After a restart the statistics are rebuilt from the journal, the same.
    server.shutdown().await.expect("clean shutdown");
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().expect("dir"));
    let journal = FileJournal::open(dir.path(), FileJournalConfig::default())
        .await
        .expect("reopen the journal");
    let mut again =
        TestServer::start_on(&SETTINGS, journal, tempfile::tempdir().expect("dir")).await;
    let (_, prices_after) = get(&again, "/v1/market/prices", &d1.token).await;
    assert_eq!(prices_after, prices);
    let (_, history_after) = get(
        &again,
        "/v1/market/history?make=toyota&model=corolla",
        &d1.token,
    )
    .await;
    assert_eq!(history_after, history);
    again.shutdown().await.expect("clean shutdown");

    // And `gavel replay` rebuilds the same from the journal alone.
    let (status, out) = support::gavel::replay_verify_with(
        &support::gavel::JournalArg::File(dir.path().to_path_buf()),
        &["--market-data"],
    );
    assert!(status.success(), "{out}");
    let replayed: Vec<Value> = out
        .lines()
        .filter_map(|l| l.strip_prefix("market-data "))
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(replayed, *prices["prices"].as_array().expect("rows"));
    let histories: Vec<Value> = out
        .lines()
        .filter_map(|l| l.strip_prefix("market-history "))
        .map(|l| serde_json::from_str(l).expect("a JSON history"))
        .collect();
    assert_eq!(histories.len(), 2, "{out}");
    assert_eq!(histories[1], history);
}
