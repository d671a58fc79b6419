//! The dealer credit line (车商贷) over the public protocol: a real gavel on 127.0.0.1:0
//! with its file journal, real HTTP and WebSocket clients, a restart, and
//! `gavel replay --verify` over the journal it wrote.

mod support;

use serde_json::{json, Value};
use support::api::{verify_replay, Api};
use support::client::Dealer;

const ADMIN: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const Y: u64 = 100;
const VIN: &str = "1M8GDM9AXKP042788";

fn config(extra: &[(&str, &str)]) -> gavel::config::Config {
    let mut env = vec![
        ("GAVEL_ADMIN_TOKEN".to_string(), ADMIN.to_string()),
        ("GAVEL_LISTEN".to_string(), "127.0.0.1:0".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    gavel::config::Config::from_layers(None, env).expect("test config")
}

/// Lists a clean car with a 60,000-yuan buy-now.
async fn list(api: &Api, seller: &str) -> String {
    let body = json!({
        "vehicle": {"vin": VIN, "make": "Toyota", "model": "Corolla",
                    "year": 2020, "mileage_km": 50000},
        "inspection": {"structural_damage": false, "fire": false, "flood": false,
                       "odometer_tampered": false, "title_transferable": true,
                       "grade": 4, "notes": "Clean."},
        "start_price": 50_000 * Y, "reserve": 50_000 * Y, "buy_now": 60_000 * Y
    });
    let r = api.ok("POST", "/v1/listings", seller, body, 201).await;
    r["auction"].as_str().expect("auction").to_string()
}

/// A dealer's money as `/v1/me` shows it: (buying power, exposure, left, limit, drawn,
/// available), in yuan.
fn money(v: &Value) -> [u64; 6] {
    [
        "buying_power",
        "exposure",
        "buying_power_left",
        "credit_limit",
        "credit_drawn",
        "credit_available",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")) / Y)
}

fn warnings(standing: &Value) -> Vec<(String, bool)> {
    standing["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            (
                w["cause"].as_str().expect("cause").to_string(),
                w["corrected"].as_bool().expect("corrected"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_credit_line_finances_a_car_survives_a_restart_and_its_violations_replay() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    // Loans due after 2 s, so one falls due inside the test.
    let cfg = config(&[("GAVEL_DEALERS__CREDIT_DUE_S", "2")]);
    let open = || {
        gavel::store::file::FileJournal::open(
            dir.path(),
            gavel::store::file::FileJournalConfig::default(),
        )
    };
    let server = gavel::server::start(&cfg, open().await.expect("journal"))
        .await
        .expect("server");
    let api = Api::new(server.addr, ADMIN);
    let (_, seller) = api.account("/v1/sellers", json!({"name": "Li Wei"})).await;
    let (dealer, token) = api.dealer("Hangzhou Floor Plan Motors", 5_000 * Y).await;
    let (_, other) = api.dealer("Other", 5_000 * Y).await;
    let (_, service) = api
        .account("/v1/service-tokens", json!({"name": "consumer site"}))
        .await;
    let credit = format!("/v1/dealers/{dealer}/credit");

    // Without a line, 60,000 yuan is past the deposit's 50,000 of buying power.
    let car = list(&api, &seller).await;
    let mut ws = Dealer::connect(server.addr, &token).await;
    let r = ws.bid(&car, 60_000 * Y, "b-1").await;
    assert_eq!(r["reason"], "exposure_limit", "{r}");

    // Only an operator grants a line; the answer is the line.
    let (status, _) = api
        .call("POST", &credit, &token, Some(json!({"limit": 1})))
        .await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call(
            "POST",
            &credit,
            ADMIN,
            Some(json!({"limit": 1_000_000_000_001u64})),
        )
        .await;
    assert_eq!((status, &err["error"]["code"]), (422, &json!("invalid")));
    let line = api
        .ok("POST", &credit, ADMIN, json!({"limit": 100_000 * Y}), 200)
        .await;
    assert_eq!(money(&line), [150_000, 0, 150_000, 100_000, 0, 100_000]);
    assert_eq!(line["loans"], json!([]));

    // Now the buy-now is within buying power: sold.
    let r = ws.bid(&car, 60_000 * Y, "b-2").await;
    assert_eq!(r["accepted"], true, "{r}");
    let me = api.get("/v1/me", &token).await;
    assert_eq!(money(&me), [150_000, 60_000, 90_000, 100_000, 0, 100_000]);

    // Financed by its buyer (another dealer may not): the price moves to the line.
    let finance = format!("/v1/auctions/{car}/finance");
    assert_eq!(api.fails("POST", &finance, &other, 403).await, "forbidden");
    assert_eq!(api.fails("POST", &finance, &seller, 403).await, "forbidden");
    let loan = api.ok("POST", &finance, &token, json!({}), 201).await;
    assert_eq!(
        (
            &loan["id"],
            &loan["auction"],
            &loan["dealer"],
            &loan["status"]
        ),
        (&json!("L1"), &json!(car), &json!(dealer), &json!("open"))
    );
    assert_eq!(loan["principal"], 60_000 * Y);
    let drawn_at = loan["drawn_at"].as_u64().expect("drawn_at");
    assert_eq!(loan["due_at"], drawn_at + 2_000);
    assert_eq!(
        api.fails("POST", &finance, &token, 409).await,
        "wrong_state"
    );
    let me = api.get("/v1/me", &token).await;
    assert_eq!(money(&me), [90_000, 0, 90_000, 100_000, 60_000, 40_000]);

    // A second car: 40,000 yuan left on the line does not cover it; it is paid instead.
    let second = list(&api, &seller).await;
    let r = ws.bid(&second, 60_000 * Y, "b-3").await;
    assert_eq!(r["accepted"], true, "{r}");
    let second_finance = format!("/v1/auctions/{second}/finance");
    assert_eq!(
        api.fails("POST", &second_finance, ADMIN, 409).await,
        "credit_limit"
    );
    api.ok(
        "POST",
        &format!("/v1/auctions/{second}/settle"),
        ADMIN,
        json!({}),
        200,
    )
    .await;

    // The financed car reaches the inventory and is retailed before the loan is repaid:
    // the sale stands, and it is sold out of trust.
    let items = api
        .until(&format!("/v1/inventory?dealer={dealer}"), &token, |v| {
            v["items"].as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
    let item = items["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["auction"] == json!(car))
        .expect("the financed car's item")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let sold = api
        .ok(
            "POST",
            &format!("/v1/inventory/{item}/retail"),
            &token,
            json!({"consumer_ref": "c-1", "price": 70_000 * Y}),
            200,
        )
        .await;
    assert_eq!(sold["status"], "retailed");
    let standing_path = format!("/v1/dealers/{dealer}/standing");
    let standing = api.get(&standing_path, &service).await;
    assert_eq!(
        warnings(&standing),
        [("sold_out_of_trust".to_string(), false)]
    );
    assert_eq!(standing["warnings"][0]["loan"], "L1");
    assert_eq!(standing["warnings"][0]["inventory"], item.as_str());

    // Its due time passes unrepaid: a late repayment, seen by the engine's own timer.
    let standing = api
        .until(&standing_path, &service, |s| {
            s["warnings"].as_array().is_some_and(|w| w.len() == 2)
        })
        .await;
    assert_eq!(standing["warnings"][1]["cause"], "late_repayment");
    let line = api.get(&credit, &token).await;
    assert_eq!(line["loans"][0]["status"], "overdue");
    assert_eq!(api.fails("GET", &credit, &other, 403).await, "forbidden");
    server.shutdown().await.expect("clean shutdown");
    verify_replay(dir.path());

    // After a restart: the same line, loans and warnings.
    let server = gavel::server::start(&cfg, open().await.expect("journal again"))
        .await
        .expect("server again");
    let api = Api::new(server.addr, ADMIN);
    let again = api.get(&credit, ADMIN).await;
    assert_eq!(again, api.get(&credit, &token).await);
    assert_eq!(again["loans"], line["loans"]);
    assert_eq!(money(&again), [90_000, 0, 90_000, 100_000, 60_000, 40_000]);
    assert_eq!(api.get(&standing_path, &service).await, standing);

    // Repayment: an operator records it; the line is restored and both warnings corrected.
    assert_eq!(
        api.fails("POST", "/v1/loans/L1/repay", &token, 403).await,
        "forbidden"
    );
    let repaid = api
        .ok("POST", "/v1/loans/L1/repay", ADMIN, json!({}), 200)
        .await;
    assert_eq!(
        (&repaid["status"], &repaid["overdue"]),
        (&json!("repaid"), &json!(true))
    );
    assert_eq!(
        api.fails("POST", "/v1/loans/L1/repay", ADMIN, 409).await,
        "wrong_state"
    );
    assert_eq!(
        api.fails("POST", "/v1/loans/L9/repay", ADMIN, 404).await,
        "not_found"
    );
    let me = api.get("/v1/me", &token).await;
    assert_eq!(money(&me), [150_000, 0, 150_000, 100_000, 0, 100_000]);
    let standing = api.get(&standing_path, &service).await;
    assert_eq!(
        warnings(&standing),
        [
            ("sold_out_of_trust".to_string(), true),
            ("late_repayment".to_string(), true)
        ]
    );

    // Withdrawn below nothing drawn: the deposit alone again, in the operator's list too.
    let line = api
        .ok("POST", &credit, ADMIN, json!({"limit": 0}), 200)
        .await;
    assert_eq!(money(&line), [50_000, 0, 50_000, 0, 0, 0]);
    let dealers = api.get("/v1/dealers", ADMIN).await;
    assert_eq!(money(&dealers["dealers"][0]), [50_000, 0, 50_000, 0, 0, 0]);
    server.shutdown().await.expect("clean shutdown");
    verify_replay(dir.path());
}
