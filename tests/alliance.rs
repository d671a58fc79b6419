//! The alliance pipeline against real servers: real `redis-server` processes (started
//! here, on their own ports), the real gavel server on 127.0.0.1:0, real HTTP and
//! WebSocket clients.

mod support;

use gavel::alliance::AllianceCommand;
use gavel::auction::{Command as AuctionCommand, Event as AuctionEvent, Listing};
use gavel::config::Config;
use gavel::engine::{self, EngineConfig, EngineHandle};
use gavel::market::{Command, Event, Rules};
use gavel::pipeline::redis_consumer::Handling;
use gavel::pipeline::{RedisHandoff, RedisHandoffConfig, Role};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::{Journal, JournalRead, RedisJournal, RedisJournalConfig};
use gavel::views::{AllianceBoard, Lots, MarketData, ViewsPublisher};
use gavel::vocab::{DealerId, Inspection, LotId, SellerId, Vehicle};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use std::time::Duration;
use support::api::{verify_replay, Api};
use support::client::Dealer;
use support::redis_server::{RedisOpts, RedisServer};

const ADMIN: &str = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";
const Y: u64 = 100;
const VIN: &str = "1M8GDM9AXKP042788";
/// SHA-256 of the canonical form of `clean_report()` (see `gavel::alliance::certify`).
const CLEAN_SHA256: &str = "6afff9a4621b06f533fe7339c63c66b350ef97a7957579913cab937b6e8dc7d6";

fn clean_report() -> Value {
    json!({"structural_damage": false, "fire": false, "flood": false,
           "odometer_tampered": false, "title_transferable": true, "grade": 4,
           "notes": "Front bumper resprayed; tyres 60%."})
}

fn redis_config_at(server: &RedisServer, prefix: &str) -> RedisJournalConfig {
    RedisJournalConfig {
        url: server.url(),
        prefix: prefix.into(),
        // Short, so a restarted server in the same test takes the lease over quickly.
        lease_ttl_ms: 300,
        op_timeout_ms: 2_000,
        require_fsync: false,
        retain_commands_behind_snapshot: None,
        ..RedisJournalConfig::default()
    }
}

/// Opens the journal, waiting out a previous owner's lease.
async fn open_redis(server: &RedisServer) -> RedisJournal {
    open_redis_at(server, "alliance-test").await
}

/// Opens the journal under `prefix`, waiting out a previous owner's lease.
async fn open_redis_at(server: &RedisServer, prefix: &str) -> RedisJournal {
    support::init_tracing();
    for _ in 0..50 {
        match RedisJournal::open(&redis_config_at(server, prefix)).await {
            Ok(j) => return j,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the redis journal did not open");
}

fn config(extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("GAVEL_ADMIN_TOKEN".to_string(), ADMIN.to_string()),
        ("GAVEL_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        // Stale entries of a dead consumer are claimed quickly in tests.
        (
            "GAVEL_ALLIANCE__CLAIM_IDLE_MS".to_string(),
            "500".to_string(),
        ),
        (
            "GAVEL_ALLIANCE__READ_BLOCK_MS".to_string(),
            "100".to_string(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_layers(None, env).expect("test config")
}

/// Lists a car of `VIN` with this report (start and reserve 50,000 yuan, buy-now 60,000).
trait ListCar {
    async fn list(&self, seller: &str, report: Value) -> String;
}

impl ListCar for Api {
    async fn list(&self, seller: &str, report: Value) -> String {
        let r = self
            .ok(
                "POST",
                "/v1/listings",
                seller,
                json!({
                    "vehicle": {"vin": VIN, "make": "Toyota", "model": "Corolla",
                                "year": 2020, "mileage_km": 50000},
                    "inspection": report,
                    "start_price": 50_000 * Y, "reserve": 50_000 * Y, "buy_now": 60_000 * Y
                }),
                201,
            )
            .await;
        r["auction"].as_str().expect("auction").to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Redelivery: a consumer that dies before XACK

async fn submit(engine: &EngineHandle, command: Command) -> Vec<Event> {
    engine.submit(command).await.expect("durable").events
}

/// Lists a car and sells it at once (buy-now) to dealer D1.
async fn sell(engine: &EngineHandle, n: u32) -> LotId {
    let events = submit(
        engine,
        Command::Auction(AuctionCommand::ListCar {
            seller: SellerId(1),
            listing: Box::new(Listing {
                vehicle: Vehicle {
                    vin: VIN.into(),
                    make: "Toyota".into(),
                    model: "Corolla".into(),
                    year: 2020,
                    mileage_km: 50_000,
                    city: None,
                },
                inspection: serde_json::from_value::<Inspection>(clean_report()).expect("report"),
                start_price: 50_000 * Y,
                reserve: 50_000 * Y,
                buy_now: Some(60_000 * Y),
                starts_at: None,
                duration_ms: None,
            }),
        }),
    )
    .await;
    let Some(Event::Auction(AuctionEvent::Listed { lot, .. })) = events.first() else {
        panic!("not listed: {events:?}");
    };
    submit(
        engine,
        Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1),
            lot: *lot,
            amount: 60_000 * Y,
            max: None,
            bid_id: format!("buy-{n}").into(),
        }),
    )
    .await;
    *lot
}

async fn pending(con: &mut MultiplexedConnection, key: &str) -> i64 {
    let summary: Vec<Value> = redis::cmd("XPENDING")
        .arg(key)
        .arg("alliance")
        .query_async(con)
        .await
        .map(|v: redis::Value| match v {
            redis::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    redis::Value::Int(n) => json!(n),
                    _ => Value::Null,
                })
                .collect(),
            _ => Vec::new(),
        })
        .expect("XPENDING");
    summary.first().and_then(Value::as_i64).unwrap_or(-1)
}

fn hand_offs_of(journal_entries: &[Command], lot: LotId) -> usize {
    journal_entries
        .iter()
        .filter(|c| matches!(c, Command::Alliance(AllianceCommand::HandOff(r)) if r.auction == lot))
        .count()
}

/// An engine journaling to `prefix` of a real Redis, with the accounts of [`sell`] (seller
/// S1, dealer D1) and its views; no hand-off consumer of its own (a test's consumers are
/// the only ones).
struct RedisMarket {
    engine: EngineHandle,
    task: tokio::task::JoinHandle<Result<(), gavel::store::StoreError>>,
    lots: std::sync::Arc<Lots>,
    board: std::sync::Arc<AllianceBoard>,
    /// Its outcomes stream.
    outcomes: gavel::store::OutcomeStream,
}

async fn market_on(redis: &RedisServer, prefix: &str) -> RedisMarket {
    let journal = open_redis_at(redis, prefix).await;
    let outcomes = journal
        .outcome_stream()
        .expect("redis has an outcomes stream");
    let (lots, board) = (Lots::new(), AllianceBoard::new());
    let publisher = ViewsPublisher {
        lots: lots.clone(),
        alliance: board.clone(),
        market_data: MarketData::new(Default::default()),
    };
    let (engine, task) = engine::spawn(
        journal,
        Rules::default(),
        publisher,
        EngineConfig::default(),
    )
    .await
    .expect("engine");
    submit(
        &engine,
        Command::Auction(AuctionCommand::RegisterSeller {
            name: "s".into(),
            token_hash: [1; 32],
        }),
    )
    .await;
    submit(
        &engine,
        Command::Auction(AuctionCommand::RegisterDealer {
            name: "d".into(),
            deposit: 1_000_000 * Y,
            linked_sellers: Vec::new(),
            token_hash: [2; 32],
        }),
    )
    .await;
    RedisMarket {
        engine,
        task,
        lots,
        board,
        outcomes,
    }
}

#[tokio::test]
async fn redelivery_after_a_killed_consumer_yields_one_inventory_item() {
    let redis = RedisServer::start(RedisOpts::always());
    let RedisMarket {
        engine,
        task,
        lots,
        board,
        outcomes: stream,
    } = market_on(&redis, "alliance-test").await;
    let consumer = |name: &str| RedisHandoffConfig {
        url: stream.url.clone(),
        cluster_urls: stream.cluster_urls.clone(),
        stream: stream.key.clone(),
        group: "alliance".into(),
        consumer: name.into(),
        claim_idle: Duration::from_millis(300),
        block: Duration::from_millis(100),
        count: 16,
        op_timeout: Duration::from_secs(2),
        role: Role::HandOff,
    };
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");

    // 1. Consumer A reads the sold outcome, hands it off (durable), and dies before XACK.
    let first = sell(&engine, 1).await;
    let mut a = RedisHandoff::connect(consumer("a"), engine.clone(), lots.clone())
        .await
        .expect("consumer a");
    let read = a.read_new().await.expect("read");
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].outcome.as_ref().map(|o| o.lot), Some(first));
    assert_eq!(a.handle(&read[0]).await, Handling::Ack);
    drop(a);
    assert_eq!(board.items(None, None).len(), 1);
    assert_eq!(
        pending(&mut raw, &stream.key).await,
        1,
        "read, never acknowledged"
    );

    // 2. Consumer B cannot take it before it has been idle for the claim timeout ...
    let mut b = RedisHandoff::connect(consumer("b"), engine.clone(), lots.clone())
        .await
        .expect("consumer b");
    assert!(b.claim_stale().await.expect("claim").is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // ... then claims it, hands it off again, and acknowledges it.
    let claimed = b.claim_stale().await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, read[0].id);
    assert!(b.process(&claimed).await.expect("process"));
    assert_eq!(pending(&mut raw, &stream.key).await, 0);
    // Delivered twice, handed off twice (both durable), one item: effect once.
    assert_eq!(board.items(None, None).len(), 1);

    // 3. Consumer C reads the next outcome and dies before doing anything with it; the
    //    consumer loop (as the server runs it) claims it and hands it off.
    let second = sell(&engine, 2).await;
    let mut c = RedisHandoff::connect(consumer("c"), engine.clone(), lots.clone())
        .await
        .expect("consumer c");
    assert_eq!(c.read_new().await.expect("read").len(), 1);
    drop(c);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(RedisHandoff::run(
        consumer("d"),
        engine.clone(),
        lots.clone(),
        stopped,
    ));
    // 4. And a sale while it runs goes through the ordinary path.
    let third = sell(&engine, 3).await;
    for _ in 0..100 {
        if board.item_for_auction(second).is_some() && board.item_for_auction(third).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        board.item_for_auction(second).is_some(),
        "claimed and handed off"
    );
    assert!(
        board.item_for_auction(third).is_some(),
        "read and handed off"
    );
    for _ in 0..100 {
        if pending(&mut raw, &stream.key).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending(&mut raw, &stream.key).await, 0);
    let _ = stop.send(true);
    runner.await.expect("consumer loop stops");
    engine.close();
    drop(engine);
    task.await.expect("join").expect("engine stops");

    // One item per auction; the journal shows the first auction was handed off twice.
    assert_eq!(board.items(None, None).len(), 3);
    let mut journal = open_redis(&redis).await;
    let mut commands = Vec::new();
    let mut after = 0;
    loop {
        let batches = journal.read_after(after, 64).await.expect("read back");
        let Some(last) = batches.last() else { break };
        after = last.last_seq();
        commands.extend(
            batches
                .into_iter()
                .flat_map(|b| b.entries)
                .map(|e| e.command),
        );
    }
    assert_eq!(hand_offs_of(&commands, first), 2);
    assert_eq!(hand_offs_of(&commands, second), 1);
    assert_eq!(hand_offs_of(&commands, third), 1);
}

// ---------------------------------------------------------------------------------------
// Overdue complaint → warning; acknowledged state survives a restart

#[tokio::test]
async fn an_overdue_complaint_becomes_a_warning_and_survives_a_restart() {
    let redis = RedisServer::start(RedisOpts::always());
    let cfg = config(&[("GAVEL_ALLIANCE__COMPLAINT_DUE_S", "1")]);
    let server = gavel::server::start(&cfg, open_redis(&redis).await)
        .await
        .expect("server");
    let api = Api::new(server.addr, ADMIN);
    let (dealer, dealer_token) = api
        .account(
            "/v1/dealers",
            json!({"name": "Chengdu Motors", "deposit": 50_000 * Y}),
        )
        .await;
    let (_, service) = api
        .account("/v1/service-tokens", json!({"name": "consumer site"}))
        .await;

    let standing_path = format!("/v1/dealers/{dealer}/standing");
    let fresh = api.get(&standing_path, &service).await;
    assert_eq!(
        fresh,
        json!({"dealer": dealer, "score": null, "ratings": 0, "violations": 0,
               "warnings": [], "status": "active", "refused_retail": 0})
    );

    // Only the consumer site (or an admin) files complaints.
    let body =
        json!({"dealer": dealer, "consumer_ref": "ref-7", "text": "No call back about the brakes"});
    let (status, _) = api
        .call("POST", "/v1/complaints", &dealer_token, Some(body.clone()))
        .await;
    assert_eq!(status, 403);
    let complaint = api.ok("POST", "/v1/complaints", &service, body, 201).await;
    let id = complaint["id"].as_str().expect("id").to_string();
    let opened = complaint["opened_at"].as_u64().expect("opened_at");
    assert_eq!(complaint["due_at"].as_u64(), Some(opened + 1_000));
    assert_eq!(complaint["status"], "open");

    // Nobody resolves it: once due, it is a violation and a warning.
    let standing = api
        .until(&standing_path, &service, |s| s["violations"] == 1)
        .await;
    let warning = &standing["warnings"][0];
    assert_eq!(warning["cause"], "overdue_complaint");
    assert_eq!(warning["complaint"], id.as_str());
    assert_eq!(warning["corrected"], false);
    assert_eq!(standing["status"], "active", "one warning does not expel");

    // Resolving it late corrects the warning (the violation still counts).
    let resolved = api
        .ok(
            "POST",
            &format!("/v1/complaints/{id}/resolve"),
            &dealer_token,
            json!({"resolution": "Called back; brakes fixed free of charge"}),
            200,
        )
        .await;
    assert_eq!(resolved["status"], "resolved");
    let (status, err) = api
        .call(
            "POST",
            &format!("/v1/complaints/{id}/resolve"),
            &dealer_token,
            Some(json!({"resolution": "again"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("already_resolved"))
    );
    let before = api.get(&standing_path, &service).await;
    assert_eq!(before["violations"], 1);
    assert_eq!(before["warnings"][0]["corrected"], true);

    // Everything acknowledged survives a restart of the server (rebuilt from Redis).
    server.shutdown().await.expect("clean shutdown");
    let server = gavel::server::start(&cfg, open_redis(&redis).await)
        .await
        .expect("server again");
    let api = Api::new(server.addr, ADMIN);
    let after = api.get(&standing_path, &service).await;
    assert_eq!(after, before);
    server.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// The expulsion path, ending in a refused WebSocket bid

#[tokio::test]
async fn an_expelled_dealers_next_websocket_bid_is_not_eligible() {
    let redis = RedisServer::start(RedisOpts::always());
    let cfg = config(&[("GAVEL_ALLIANCE__COMPLAINT_DUE_S", "1")]);
    let server = gavel::server::start(&cfg, open_redis(&redis).await)
        .await
        .expect("server");
    let api = Api::new(server.addr, ADMIN);
    let (_, seller) = api
        .account("/v1/sellers", json!({"name": "Wang Fang"}))
        .await;
    let (offender, offender_token) = api
        .account(
            "/v1/dealers",
            json!({"name": "Shady Motors", "deposit": 100_000 * Y}),
        )
        .await;
    let (_, honest_token) = api
        .account(
            "/v1/dealers",
            json!({"name": "Honest Motors", "deposit": 100_000 * Y}),
        )
        .await;
    let (_, service) = api
        .account("/v1/service-tokens", json!({"name": "consumer site"}))
        .await;

    // The offender buys a certified car over WebSocket (buy-now) ...
    let car = api.list(&seller, clean_report()).await;
    let mut ws = Dealer::connect(server.addr, &offender_token).await;
    let r = ws.bid(&car, 60_000 * Y, "buy-1").await;
    assert_eq!(r["accepted"], true, "{r}");
    // ... which the consumer group hands to the alliance: a certified item.
    let inventory = format!("/v1/inventory?dealer={offender}");
    let items = api
        .until(&inventory, &service, |v| {
            v["items"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let item = &items["items"][0];
    assert_eq!(item["auction"], car.as_str());
    assert_eq!(item["vin"], VIN);
    assert_eq!(item["certified"], true);
    assert_eq!(item["reasons"], json!([]));
    assert_eq!(item["inspection_sha256"], CLEAN_SHA256);
    assert_eq!(item["inspection"], clean_report());
    assert_eq!(item["status"], "in_stock");
    let certified = api.get("/v1/inventory?certified=true", &honest_token).await;
    assert_eq!(certified["items"].as_array().map(Vec::len), Some(1));
    let id = item["id"].as_str().expect("id").to_string();

    // Violation 1: the consumer returns it with flood damage the report did not show.
    let (status, err) = api
        .call(
            "POST",
            &format!("/v1/inventory/{id}/returns"),
            &service,
            Some(json!({"consumer_ref": "c-1", "reason": "not_as_described", "details": "wet"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("not_retailed"))
    );
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/inventory/{id}/retail"),
            &honest_token,
            Some(json!({"consumer_ref": "c-1", "price": 70_000 * Y})),
        )
        .await;
    assert_eq!(
        status, 403,
        "only the holding dealer records its retail sale"
    );
    let sold = api
        .ok(
            "POST",
            &format!("/v1/inventory/{id}/retail"),
            &offender_token,
            json!({"consumer_ref": "c-1", "price": 70_000 * Y}),
            200,
        )
        .await;
    assert_eq!(sold["status"], "retailed");
    let retail_at = sold["retail_at"].as_u64().expect("retail_at");
    assert_eq!(
        sold["return_until"].as_u64(),
        Some(retail_at + 120 * 3_600_000)
    );
    let returned = api
        .ok(
            "POST",
            &format!("/v1/inventory/{id}/returns"),
            &service,
            json!({"consumer_ref": "c-1", "reason": "not_as_described",
                   "details": "water marks under the carpets", "findings": ["flood"]}),
            201,
        )
        .await;
    assert_eq!(returned["status"], "returned");

    // Violations 2 and 3: two complaints nobody resolves in time.
    for n in 0..2 {
        api.ok(
            "POST",
            "/v1/complaints",
            &service,
            json!({"dealer": offender, "inventory": id, "consumer_ref": format!("c-{n}"),
                      "text": "Refund not paid"}),
            201,
        )
        .await;
    }
    let standing = api
        .until(
            &format!("/v1/dealers/{offender}/standing"),
            &honest_token,
            |s| s["status"] == "expelled",
        )
        .await;
    assert_eq!(standing["violations"], 3);
    let causes: Vec<_> = standing["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| (w["cause"].as_str().unwrap_or("?"), w["corrected"].as_bool()))
        .collect();
    assert_eq!(
        causes,
        [
            ("hidden_damage", Some(false)),
            ("overdue_complaint", Some(false)),
            ("overdue_complaint", Some(false)),
        ]
    );

    // The expulsion reached the engine: the offender's next bid, on the same connection,
    // is not eligible; another dealer bids as before.
    let next = api.list(&seller, clean_report()).await;
    let r = ws.bid(&next, 50_000 * Y, "after-expulsion").await;
    assert_eq!(r["accepted"], false, "{r}");
    assert_eq!(r["reason"], "not_eligible");
    let mut honest = Dealer::connect(server.addr, &honest_token).await;
    let r = honest.bid(&next, 50_000 * Y, "h-1").await;
    assert_eq!(r["accepted"], true, "{r}");
    server.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// The file journal: hand-off from the engine's publication, the contract's answers

#[tokio::test]
async fn with_the_file_journal_sold_cars_reach_the_inventory_and_stay_there() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&[("GAVEL_ALLIANCE__RETURN_WINDOW_S", "2")]);
    let open = || FileJournal::open(dir.path(), FileJournalConfig::default());
    let server = gavel::server::start(&cfg, open().await.expect("journal"))
        .await
        .expect("server");
    let api = Api::new(server.addr, ADMIN);
    let (_, seller) = api.account("/v1/sellers", json!({"name": "Li Wei"})).await;
    let (dealer, dealer_token) = api
        .account(
            "/v1/dealers",
            json!({"name": "Beijing Auto Trust", "deposit": 100_000 * Y}),
        )
        .await;
    let (_, service) = api
        .account("/v1/service-tokens", json!({"name": "consumer site"}))
        .await;

    // A car with an odometer problem: delivered, not certifiable, every reason given.
    let mut report = clean_report();
    report["odometer_tampered"] = json!(true);
    report["title_transferable"] = json!(false);
    let car = api.list(&seller, report.clone()).await;
    let mut ws = Dealer::connect(server.addr, &dealer_token).await;
    assert_eq!(ws.bid(&car, 60_000 * Y, "b-1").await["accepted"], true);
    let items = api
        .until("/v1/inventory", &dealer_token, |v| {
            v["items"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let item = items["items"][0].clone();
    assert_eq!(item["certified"], false);
    assert_eq!(
        item["reasons"],
        json!(["odometer_tampered", "title_not_transferable"])
    );
    assert_eq!(item["dealer"], dealer.as_str());
    let uncertified = api.get("/v1/inventory?certified=false", &service).await;
    assert_eq!(uncertified["items"].as_array().map(Vec::len), Some(1));
    let certified = api.get("/v1/inventory?certified=true", &service).await;
    assert_eq!(certified["items"], json!([]));
    let barred = item["id"].as_str().expect("id").to_string();

    // Zero tolerance: its retail sale is refused, twice; the first attempt is a warning.
    let retail = format!("/v1/inventory/{barred}/retail");
    for (attempt, warning) in [(1, json!("W1")), (2, Value::Null)] {
        let (status, err) = api
            .call(
                "POST",
                &retail,
                &dealer_token,
                Some(json!({"consumer_ref": format!("c-{attempt}"), "price": 65_000 * Y})),
            )
            .await;
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["error"]["code"], "zero_tolerance");
        assert_eq!(
            err["error"]["reasons"],
            json!(["odometer_tampered", "title_not_transferable"])
        );
        assert_eq!(err["error"]["warning"], warning, "attempt {attempt}");
    }
    let standing = api
        .get(&format!("/v1/dealers/{dealer}/standing"), &seller)
        .await;
    assert_eq!(standing["refused_retail"], 2);
    assert_eq!(standing["violations"], 1);
    assert_eq!(standing["warnings"][0]["cause"], "zero_tolerance_retail");
    assert_eq!(standing["warnings"][0]["inventory"], barred.as_str());
    assert_eq!(standing["warnings"][0]["corrected"], false);
    let held = api.get(&format!("/v1/inventory/{barred}"), &service).await;
    assert_eq!(held["status"], "in_stock", "nothing was sold");

    // Disposal out of the alliance: the holding dealer's (or an admin's); it corrects the
    // warning and shows in the dealer's inventory history, its note only to the dealer.
    let dispose = format!("/v1/inventory/{barred}/dispose");
    let scrap = json!({"channel": "scrap", "note": "Scrap certificate ZZ-118"});
    let (status, _) = api
        .call("POST", &dispose, &service, Some(scrap.clone()))
        .await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call(
            "POST",
            &dispose,
            &dealer_token,
            Some(json!({"channel": "river"})),
        )
        .await;
    assert_eq!((status, &err["error"]["code"]), (422, &json!("invalid")));
    let disposed = api.ok("POST", &dispose, &dealer_token, scrap, 200).await;
    assert_eq!(disposed["status"], "disposed");
    assert_eq!(disposed["disposal_channel"], "scrap");
    assert_eq!(disposed["disposal_note"], "Scrap certificate ZZ-118");
    let events: Vec<_> = disposed["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["event"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(events, ["delivered", "disposed"]);
    let public = api.get(&format!("/v1/inventory/{barred}"), &service).await;
    assert_eq!(public["disposal_channel"], "scrap");
    assert!(public.get("disposal_note").is_none(), "{public}");
    let (status, err) = api
        .call(
            "POST",
            &dispose,
            &dealer_token,
            Some(json!({"channel": "export"})),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (409, &json!("wrong_state"))
    );
    let standing = api
        .get(&format!("/v1/dealers/{dealer}/standing"), &seller)
        .await;
    assert_eq!(standing["warnings"][0]["corrected"], true);

    // A clean car for the consumer's side: retail, rating, return window, refund.
    let car = api.list(&seller, clean_report()).await;
    assert_eq!(ws.bid(&car, 60_000 * Y, "b-2").await["accepted"], true);
    let items = api
        .until("/v1/inventory?certified=true", &dealer_token, |v| {
            v["items"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    let id = items["items"][0]["id"].as_str().expect("id").to_string();

    // Ratings: not before a retail sale; one per sale; bad marks are 422.
    let rating =
        |n: u64| json!({"inventory": id, "consumer_ref": "c-9", "condition": n, "service": 4});
    let ratings = format!("/v1/dealers/{dealer}/ratings");
    let (status, err) = api.call("POST", &ratings, &service, Some(rating(5))).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("not_retailed"))
    );
    api.ok(
        "POST",
        &format!("/v1/inventory/{id}/retail"),
        &dealer_token,
        json!({"consumer_ref": "c-9", "price": 65_000 * Y}),
        200,
    )
    .await;
    let (status, _) = api.call("POST", &ratings, &service, Some(rating(6))).await;
    assert_eq!(status, 422);
    let rated = api.ok("POST", &ratings, &service, rating(5), 201).await;
    assert_eq!(rated["score"], 4.5);
    let (status, err) = api.call("POST", &ratings, &service, Some(rating(3))).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("already_rated"))
    );

    let standing = api
        .get(&format!("/v1/dealers/{dealer}/standing"), &seller)
        .await;
    assert_eq!(standing["score"], 4.5);
    assert_eq!(standing["ratings"], 1);
    assert_eq!(
        standing["violations"], 1,
        "a certified sale is no violation"
    );

    // After the (2 s, in this test) window, a return is refused.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, err) = api
        .call(
            "POST",
            &format!("/v1/inventory/{id}/returns"),
            &service,
            Some(json!({"consumer_ref": "c-9", "reason": "not_as_described", "details": ""})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("return_window_closed"))
    );
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/inventory/{id}/returns"),
            &service,
            Some(json!({"consumer_ref": "c-9", "reason": "changed_my_mind"})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/inventory/{id}/refund"),
            &dealer_token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "the consumer site or an admin records refunds");
    let refunded = api
        .ok(
            "POST",
            &format!("/v1/inventory/{id}/refund"),
            &service,
            json!({}),
            200,
        )
        .await;
    assert_eq!(refunded["status"], "refunded");
    let before = api
        .get(&format!("/v1/dealers/{dealer}/standing"), &seller)
        .await;
    let inventory_before = api.get("/v1/inventory", &dealer_token).await;
    server.shutdown().await.expect("clean shutdown");
    verify_replay(dir.path());

    // Restart on the same directory: the journal brings every item and mark back.
    let server = gavel::server::start(&cfg, open().await.expect("journal again"))
        .await
        .expect("server again");
    let api = Api::new(server.addr, ADMIN);
    assert_eq!(
        api.get("/v1/inventory", &dealer_token).await,
        inventory_before
    );
    assert_eq!(
        api.get(&format!("/v1/dealers/{dealer}/standing"), &seller)
            .await,
        before
    );
    let (status, _) = api
        .call("GET", "/v1/inventory?certified=maybe", &service, None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .call("GET", "/v1/dealers/D99/standing", &service, None)
        .await;
    assert_eq!(status, 404);
    server.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// Real source: an operator edits who is linked to whom

#[tokio::test]
async fn an_operator_links_a_dealer_to_a_seller_at_once_and_the_link_survives_a_restart() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&[]);
    let open = || FileJournal::open(dir.path(), FileJournalConfig::default());
    let server = gavel::server::start(&cfg, open().await.expect("journal"))
        .await
        .expect("server");
    let api = Api::new(server.addr, ADMIN);
    let (cousin, cousin_token) = api
        .account("/v1/sellers", json!({"name": "Zhao Lei"}))
        .await;
    let (_, stranger_token) = api.account("/v1/sellers", json!({"name": "Li Wei"})).await;
    let (dealer, dealer_token) = api
        .account(
            "/v1/dealers",
            json!({"name": "Family Motors", "deposit": 100_000 * Y}),
        )
        .await;
    let own = api.list(&cousin_token, clean_report()).await;
    let other = api.list(&stranger_token, clean_report()).await;
    let mut ws = Dealer::connect(server.addr, &dealer_token).await;
    let r = ws.bid_max(&own, 50_000 * Y, 55_000 * Y, "b-1").await;
    assert_eq!(r["accepted"], true, "{r}");

    // Only an admin, only real sellers and dealers.
    let links = format!("/v1/dealers/{dealer}/links");
    let body = json!({"linked_sellers": [cousin, cousin]});
    let (status, _) = api
        .call("POST", &links, &dealer_token, Some(body.clone()))
        .await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call(
            "POST",
            &links,
            ADMIN,
            Some(json!({"linked_sellers": ["S99"]})),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (422, &json!("unknown_seller"))
    );
    let (status, _) = api
        .call("POST", "/v1/dealers/D99/links", ADMIN, Some(body.clone()))
        .await;
    assert_eq!(status, 404);

    // Linked: the answer names the lot it leads; its lead stands, its next bid does not.
    let linked = api.ok("POST", &links, ADMIN, body, 200).await;
    assert_eq!(
        linked,
        json!({"dealer": dealer, "linked_sellers": [cousin], "leading": [own]})
    );
    let r = ws.bid_max(&own, 0, 58_000 * Y, "b-2").await;
    assert_eq!(
        (r["accepted"].clone(), r["reason"].clone()),
        (json!(false), json!("own_listing"))
    );
    let view = api.get(&format!("/v1/auctions/{own}"), &dealer_token).await;
    assert_eq!(view["leading"], true, "the lead stands: {view}");
    let r = ws.bid(&other, 50_000 * Y, "b-3").await;
    assert_eq!(r["accepted"], true, "{r}");
    server.shutdown().await.expect("clean shutdown");
    verify_replay(dir.path());

    // After a restart the link holds; unlinking takes effect at once too.
    let server = gavel::server::start(&cfg, open().await.expect("journal again"))
        .await
        .expect("server again");
    let api = Api::new(server.addr, ADMIN);
    let mut ws = Dealer::connect(server.addr, &dealer_token).await;
    let r = ws.bid_max(&own, 0, 58_000 * Y, "b-4").await;
    assert_eq!(r["reason"], "own_listing", "{r}");
    let unlinked = api
        .ok("POST", &links, ADMIN, json!({"linked_sellers": []}), 200)
        .await;
    assert_eq!(unlinked["linked_sellers"], json!([]));
    let r = ws.bid_max(&own, 0, 58_000 * Y, "b-5").await;
    assert_eq!(r["accepted"], true, "{r}");
    server.shutdown().await.expect("clean shutdown");
    verify_replay(dir.path());
}

// ---------------------------------------------------------------------------------------
// A cluster's two hops: a market forwards, the alliance market collects

async fn xlen(con: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(con)
        .await
        .expect("XLEN")
}

/// West's forwarder sends its sold car, report and vehicle, to north's inbox and only then
/// acknowledges the outcome; the car sent twice (a forwarder that died between its XADD
/// and its XACK) is one item in north, filed as west's auction; and what north collected
/// is trimmed from the inbox, so it holds only cars on their way.
#[tokio::test]
async fn a_forwarded_car_is_collected_once_as_the_selling_markets_and_trimmed() {
    let redis = RedisServer::start(RedisOpts::no_aof());
    let RedisMarket {
        engine: west,
        lots: west_lots,
        outcomes,
        ..
    } = market_on(&redis, "{t:west}").await;
    let outcomes = outcomes.key;
    let RedisMarket {
        engine: north,
        lots: north_lots,
        board: north_board,
        ..
    } = market_on(&redis, "{t:north}").await;
    let inbox = "{t:north}:alliance_inbox".to_owned();
    let consumer = |stream: &str, role: Role| RedisHandoffConfig {
        url: redis.url(),
        cluster_urls: Vec::new(),
        stream: stream.to_owned(),
        group: "alliance".into(),
        consumer: "c".into(),
        claim_idle: Duration::from_millis(300),
        block: Duration::from_millis(100),
        count: 16,
        op_timeout: Duration::from_secs(2),
        role,
    };
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");

    // North sells a car of its own too: its lot A1 is not west's A1.
    let north_lot = sell(&north, 1).await;
    let west_lot = sell(&west, 1).await;
    assert_eq!(north_lot, west_lot, "each market numbers its own lots");
    let forward = Role::Forward {
        market: "west".into(),
        inbox: inbox.clone(),
    };
    let mut f = RedisHandoff::connect(consumer(&outcomes, forward), west.clone(), west_lots)
        .await
        .expect("forwarder");
    let read = f.read_new().await.expect("read");
    assert_eq!(read.len(), 1, "{read:?}");
    assert!(f.process(&read).await.expect("forwarded"));
    assert_eq!(
        pending(&mut raw, &outcomes).await,
        0,
        "acknowledged once sent"
    );
    assert_eq!(f.handle(&read[0]).await, Handling::Ack, "sent again");
    assert_eq!(xlen(&mut raw, &inbox).await, 2);

    let mut c = RedisHandoff::connect(consumer(&inbox, Role::Collect), north.clone(), north_lots)
        .await
        .expect("collector");
    assert!(c.round(true, true).await.expect("collected"));
    let items = north_board.items(None, None);
    assert_eq!(items.len(), 1, "one item for the car sent twice: {items:?}");
    let item = &items[0];
    assert_eq!((item.auction, item.dealer), (west_lot, DealerId(1)));
    let (market, vehicle) = north_board
        .sold_elsewhere(item.id)
        .expect("filed as west's");
    assert_eq!(
        (
            market.as_str(),
            vehicle.make.as_str(),
            vehicle.model.as_str()
        ),
        ("west", "Toyota", "Corolla")
    );
    assert!(item.certified, "{item:?}");
    assert!(
        north_board.item_for_auction(north_lot).is_none(),
        "north's own A1 is not handed off here: west's car did not take its place"
    );
    assert_eq!(pending(&mut raw, &inbox).await, 0);
    assert_eq!(xlen(&mut raw, &inbox).await, 0, "collected, then trimmed");

    // A car on its way stays: forwarded, not yet collected.
    sell(&west, 2).await;
    let read = f.read_new().await.expect("read");
    assert!(f.process(&read).await.expect("forwarded"));
    assert_eq!(c.trim_collected().await.expect("trim"), 0);
    assert_eq!(
        xlen(&mut raw, &inbox).await,
        1,
        "not trimmed before it is collected"
    );
    assert!(c.round(false, true).await.expect("collected"));
    assert_eq!(north_board.items(None, None).len(), 2);
    assert_eq!(xlen(&mut raw, &inbox).await, 0);

    // Redis drops every client: the forwarder makes its inbox connection again and the
    // car goes through on a later try (again harmlessly: one item per market and auction).
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL");
    let mut tries = Vec::new();
    for _ in 0..3 {
        let h = f.handle(&read[0]).await;
        tries.push(h.clone());
        if h == Handling::Ack {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tries.last(), Some(&Handling::Ack), "{tries:?}");
    assert_eq!(xlen(&mut raw, &inbox).await, 1);
}
