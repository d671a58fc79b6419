//! A cluster of real `gavel node` processes on a real Redis (issue 25, "Tests against real
//! parts"): a node killed under load, a node stopped past its lease (fencing), a clean
//! hand-over and a node joining, and a sanction through the front door reaching every
//! market.
//!
//! The nodes are children of the test (`support::cluster_nodes`), on a generated config
//! with a 1 s lease and a 200 ms heartbeat; the Redis under them is one `redis-server`
//! started by each test (tests/cluster_redis.rs runs them on a Redis Cluster). The helpers
//! (accounts, bidders, the ledger and its check) are `support::cluster_load`.
//!
//! Bidders are WebSocket clients that find their market's server through any front door
//! that answers, bid at `min_next` one bid at a time, and on a closed connection, a timeout
//! or `unavailable` ask the map again, reconnect and send that bid again with the same
//! `bid_id`. Every bid goes into a `Ledger`: acknowledged `accepted`, or *unknown* (sent,
//! no answer yet: it may or may not have happened; the retry's definite answer settles
//! it). At the end each lot is read from its market's server and must be explained
//! by the ledger: the price is at least every accepted amount, it is the highest accepted
//! amount or one of the unknown ones, its leader is the dealer who bid it, and the bid
//! count lies between the accepted bids and the accepted plus unknown ones. So one
//! acknowledged bid lost, or one bid that nobody's ledger can explain (a fenced server's
//! write that got through), fails the test. `gavel replay --verify --all-markets` must
//! then agree with every market's published outcomes.
//!
//! The tests take turns (one lock): each runs three or four debug nodes, and side by side
//! on a 2-core machine they would starve each other's heartbeats and measure that instead.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster_load::{
    self, assert_replay_verifies, busiest, check_final_state, connect_known, create, dealer,
    first_accepted_after, front_call, on_market, resolve, via_front, warm_up, Account, Bidding,
    Dealer, Lot, QUICK,
};
use support::cluster_nodes::{ClusterNodes, ClusterSpec, SharedRedis};
use support::gavel::{BidReply, WsClient, ADMIN};
use support::redis_server::{RedisOpts, RedisServer};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster of `n` nodes on a fresh single Redis (see [`cluster_load::cluster_with_lots`]).
async fn cluster_with_lots(
    n: usize,
    per_market: usize,
    lots: usize,
) -> (RedisServer, ClusterNodes, Vec<Dealer>, Vec<Lot>) {
    let redis = RedisServer::start(RedisOpts::no_aof());
    let (c, dealers, lots) =
        cluster_load::cluster_with_lots(&SharedRedis::Single(redis.url()), n, per_market, lots)
            .await;
    (redis, c, dealers, lots)
}

// ---------------------------------------------------------------------------------------
// The tests

/// kill -9 the busiest node under load: its markets come back on the others within the
/// goal, every acknowledged bid is in the final state, and the journals replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_markets_resume_elsewhere_and_no_acknowledged_bid_is_lost() {
    let _turn = SERIAL.lock().await;
    let t0 = Instant::now();
    let (_redis, mut c, dealers, lots) = cluster_with_lots(3, 2, 2).await;
    let markets = c.spec.market_names();
    let bidding = Bidding::start(&c, &dealers, &lots, Duration::from_millis(20));
    warm_up(&bidding.ledger, &markets, 10, &c).await;

    let map = c.map().await;
    let victim = busiest(&map);
    let moved = map.served_by(&victim);
    let killed_at = Instant::now();
    c.kill9(c.index(&victim));
    eprintln!("killed {victim} (serving {moved:?})");

    let mut failover = Vec::new();
    for m in &moved {
        let first = first_accepted_after(
            &bidding.ledger,
            m,
            killed_at,
            |node| node != victim,
            Duration::from_secs(15),
            &c,
        )
        .await;
        failover.push((m.clone(), first.node.clone(), first.at - killed_at));
    }
    for (m, node, d) in &failover {
        eprintln!("failover {m}: kill -> first accepted bid on {node}: {d:?}");
    }
    let survivors = c.live_ids();
    c.wait_until(
        Duration::from_secs(10),
        "every market served by the survivors",
        |m| m.balanced_over(&survivors),
    )
    .await;
    // Bidding goes on everywhere after the move.
    let after = Instant::now();
    for m in &markets {
        first_accepted_after(
            &bidding.ledger,
            m,
            after,
            |_| true,
            Duration::from_secs(10),
            &c,
        )
        .await;
    }
    let ledger = bidding.finish().await;
    eprintln!(
        "{} bids accepted, {} unknown, {} settled by a retry with the same bid_id",
        ledger.accepted.len(),
        ledger.unknown.len(),
        ledger.settled_by_retry
    );
    check_final_state(&c, &lots, &dealers, &ledger).await;
    assert_replay_verifies(&c);
    eprintln!("kill -9 test: {:?}", t0.elapsed());
}

/// SIGSTOP a node past its lease: once its markets are served elsewhere, bids queued on
/// connections to its old servers are never accepted after SIGCONT; it rejoins and the
/// markets are balanced again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_its_lease_accepts_nothing_for_a_moved_market_and_rejoins() {
    let _turn = SERIAL.lock().await;
    let t0 = Instant::now();
    let (_redis, mut c, mut dealers, lots) = cluster_with_lots(3, 2, 1).await;
    let markets = c.spec.market_names();
    let bidding = Bidding::start(&c, &dealers, &lots, Duration::from_millis(30));
    warm_up(&bidding.ledger, &markets, 3, &c).await;

    let map = c.map().await;
    let victim = busiest(&map);
    let moved = map.served_by(&victim);
    // One more dealer per moved market, connected to the victim's server before the stop.
    let mut stale = Vec::new();
    for m in &moved {
        let d = dealer(&c, &format!("{m} stale"), m).await;
        let addr = map.markets[m].addr().expect("served");
        let lot = lots.iter().find(|l| &l.market == m).expect("a lot").clone();
        let client = connect_known(addr, &d.account.token).await;
        let snapshot = client.subscribe(&lot.id).await.expect("snapshot");
        let min_next = snapshot["auction"]["min_next"].as_u64().expect("min_next");
        dealers.push(d.clone());
        stale.push((d, lot, client, min_next));
    }

    let v = c.index(&victim);
    c.stop(v);
    let stopped_at = Instant::now();
    eprintln!("stopped {victim} (serving {moved:?})");
    let victim_id = victim.clone();
    c.wait_until(
        Duration::from_secs(10),
        "the stopped node's markets served elsewhere",
        |m| m.all_served() && m.served_by(&victim_id).is_empty(),
    )
    .await;
    // Bids into the frozen servers' sockets: far above anything the others reach, so
    // one that took effect could not hide in the final state.
    let mut queued = Vec::new();
    for (k, (d, lot, client, min_next)) in stale.iter().enumerate() {
        let amount = min_next * 100;
        let fut = client.bid(&lot.id, amount, None, &format!("stale-{k}"));
        queued.push((d.account.id.clone(), lot.clone(), amount, fut));
    }
    for m in &moved {
        let a = first_accepted_after(
            &bidding.ledger,
            m,
            stopped_at,
            |node| node != victim,
            Duration::from_secs(10),
            &c,
        )
        .await;
        eprintln!(
            "{m} on {} accepts bids {:?} after the stop",
            a.node,
            a.at - stopped_at
        );
    }
    let frozen_for = Duration::from_secs(3);
    tokio::time::sleep(frozen_for.saturating_sub(stopped_at.elapsed())).await;
    c.cont(v);
    eprintln!("continued {victim} after {:?}", stopped_at.elapsed());
    for (dealer, lot, amount, fut) in queued {
        let reply = tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .unwrap_or(BidReply::Unanswered);
        eprintln!("queued bid of {dealer} on {lot:?} at {amount}: {reply:?}");
        if let BidReply::Answered(v) = &reply {
            assert_ne!(
                v["accepted"], true,
                "the stopped node accepted a bid for {} after it moved: {v}",
                lot.market
            );
        }
    }
    drop(stale);
    let all = c.live_ids();
    assert_eq!(all.len(), 3);
    let rejoined = Instant::now();
    c.wait_until(
        Duration::from_secs(15),
        "the continued node listed again and the markets balanced over three nodes",
        |m| m.balanced_over(&all),
    )
    .await;
    eprintln!("{victim} rejoined in {:?}", rejoined.elapsed());
    let after = Instant::now();
    for m in &markets {
        first_accepted_after(
            &bidding.ledger,
            m,
            after,
            |_| true,
            Duration::from_secs(10),
            &c,
        )
        .await;
    }
    let ledger = bidding.finish().await;
    check_final_state(&c, &lots, &dealers, &ledger).await;
    assert_replay_verifies(&c);
    eprintln!("SIGSTOP test: {:?}", t0.elapsed());
}

/// SIGTERM hands a node's markets over with nothing lost and exits 0; a node joining
/// takes a fair share, which moves to it cleanly and accepts bids there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_node_hands_over_cleanly_and_a_joining_node_takes_a_fair_share() {
    let _turn = SERIAL.lock().await;
    let t0 = Instant::now();
    // Two dealers a market: one alone would lead and have nothing left to bid.
    let (_redis, mut c, dealers, lots) = cluster_with_lots(3, 2, 1).await;
    let markets = c.spec.market_names();
    let bidding = Bidding::start(&c, &dealers, &lots, Duration::from_millis(100));
    warm_up(&bidding.ledger, &markets, 2, &c).await;

    let map = c.map().await;
    let victim = busiest(&map);
    let moved = map.served_by(&victim);
    let termed_at = Instant::now();
    let status = c.terminate(c.index(&victim));
    eprintln!(
        "SIGTERM {victim} (serving {moved:?}): exited {status} in {:?}",
        termed_at.elapsed()
    );
    assert!(
        status.success(),
        "{victim} exited {status}\n{}",
        c.outputs()
    );
    let survivors = c.live_ids();
    c.wait_until(
        Duration::from_secs(10),
        "the terminated node's markets on the survivors",
        |m| m.balanced_over(&survivors),
    )
    .await;
    for m in &moved {
        let a = first_accepted_after(
            &bidding.ledger,
            m,
            termed_at,
            |node| node != victim,
            Duration::from_secs(10),
            &c,
        )
        .await;
        eprintln!(
            "hand-over {m}: SIGTERM -> first accepted bid on {}: {:?}",
            a.node,
            a.at - termed_at
        );
    }

    let joined_at = Instant::now();
    let newcomer = c.add_node().await;
    let newcomer = c.id(newcomer).to_owned();
    let all = c.live_ids();
    let map = c
        .wait_until(
            Duration::from_secs(15),
            "the new node takes a fair share",
            |m| m.balanced_over(&all),
        )
        .await;
    let taken = map.served_by(&newcomer);
    eprintln!(
        "{newcomer} joined and serves {taken:?} after {:?}",
        joined_at.elapsed()
    );
    assert!(!taken.is_empty());
    for m in &taken {
        let nc = newcomer.clone();
        first_accepted_after(
            &bidding.ledger,
            m,
            joined_at,
            move |node| node == nc,
            Duration::from_secs(10),
            &c,
        )
        .await;
    }
    let ledger = bidding.finish().await;
    check_final_state(&c, &lots, &dealers, &ledger).await;
    assert_replay_verifies(&c);
    eprintln!("SIGTERM + join test: {:?}", t0.elapsed());
}

/// One bid by `token` on `lot` at its current `min_next`, on a fresh connection to the
/// market's server: the `bid_result`, or why there was none.
async fn bid_once(c: &ClusterNodes, token: &str, lot: &Lot, k: &mut u64) -> Result<Value, String> {
    bid_at_least(c, token, lot, 0, k).await
}

/// One bid of `min_next`, or of `floor` if that is more.
async fn bid_at_least(
    c: &ClusterNodes,
    token: &str,
    lot: &Lot,
    floor: u64,
    k: &mut u64,
) -> Result<Value, String> {
    let (_, addr) = resolve(&c.fronts(), &lot.market)
        .await
        .ok_or("market not served")?;
    let client = tokio::time::timeout(QUICK, WsClient::connect(addr, token))
        .await
        .map_err(|_| "connect timed out".to_owned())??;
    let snapshot = client
        .subscribe(&lot.id)
        .await
        .ok_or("no snapshot".to_owned())?;
    let amount = snapshot["auction"]["min_next"]
        .as_u64()
        .ok_or("min_next")?
        .max(floor);
    *k += 1;
    match client.bid(&lot.id, amount, None, &format!("s-{k}")).await {
        BidReply::Answered(v) => Ok(v),
        BidReply::Unanswered => Err("unanswered".to_owned()),
    }
}

/// Polls `bid_once` until `want` holds of its result; panics after 10 s.
async fn bid_until(
    c: &ClusterNodes,
    token: &str,
    lot: &Lot,
    k: &mut u64,
    what: &str,
    want: impl Fn(&Result<Value, String>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = bid_once(c, token, lot, k).await;
        if want(&r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} on {lot:?}: last {r:?}\n{}",
            c.outputs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reason(r: &Result<Value, String>) -> Option<&str> {
    r.as_ref().ok().and_then(|v| v["reason"].as_str())
}

fn accepted(r: &Result<Value, String>) -> bool {
    r.as_ref().is_ok_and(|v| v["accepted"] == true)
}

/// A suspension and an expulsion sent to one front door reach every market: the dealer's
/// bids are refused `not_eligible` everywhere, while another dealer's go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_or_expulsion_through_the_front_door_reaches_every_market() {
    let _turn = SERIAL.lock().await;
    let t0 = Instant::now();
    let (_redis, c, dealers, lots) = cluster_with_lots(2, 1, 1).await;
    let mut k = 0;
    // Each dealer's lot in its home market: accepted there, so known and active.
    for d in &dealers {
        let lot = lots.iter().find(|l| l.market == d.market).expect("lot");
        bid_until(
            &c,
            &d.account.token,
            lot,
            &mut k,
            "an active dealer's bid accepted",
            accepted,
        )
        .await;
    }
    let (suspended, expelled, control) = (&dealers[0], &dealers[1], &dealers[2]);
    for (d, status) in [(suspended, "suspended"), (expelled, "expelled")] {
        let (code, reply) = front_call(
            &c,
            "POST",
            &format!("/v1/dealers/{}/status", d.account.id),
            ADMIN,
            Some(&json!({"status": status, "reason": "cluster test"})),
        )
        .await;
        assert_eq!(code, 202, "{status}: {reply}");
    }
    let sent = Instant::now();
    for lot in &lots {
        bid_until(
            &c,
            &suspended.account.token,
            lot,
            &mut k,
            "the suspended dealer refused",
            |r| reason(r) == Some("not_eligible"),
        )
        .await;
        // An expelled dealer's bid is refused, or its connection is.
        bid_until(
            &c,
            &expelled.account.token,
            lot,
            &mut k,
            "the expelled dealer refused",
            |r| {
                reason(r) == Some("not_eligible")
                    || r.as_ref()
                        .err()
                        .is_some_and(|e| e.contains("websocket connect"))
            },
        )
        .await;
    }
    eprintln!(
        "sanctions in force in every market {:?} after the call",
        sent.elapsed()
    );
    let lot = lots
        .iter()
        .find(|l| l.market == control.market)
        .expect("lot");
    // It leads its lot since its first bid, so `already_leading` (checked after
    // eligibility) shows it may still bid as well as `accepted` would.
    let r = bid_once(&c, &control.account.token, lot, &mut k).await;
    assert!(
        accepted(&r) || reason(&r) == Some("already_leading"),
        "another dealer's bid: {r:?}"
    );
    eprintln!("sanctions test: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------
// The alliance across markets

/// Files a complaint against `dealer` in `market` (its service token may not be known
/// there yet: retried); the complaint's id.
async fn complain(c: &ClusterNodes, market: &str, service: &Account, dealer: &str) -> String {
    let body =
        json!({"dealer": dealer, "consumer_ref": format!("ref-{market}"), "text": "no call back"});
    let created = on_market(
        c,
        market,
        ("POST", "/v1/complaints", &service.token, Some(&body)),
        "complaint filed",
        |status, _| status == 201,
    )
    .await;
    created["id"].as_str().expect("complaint id").to_owned()
}

/// Whether the alliance's group on stream `key` has been delivered its last entry and has
/// acknowledged everything.
async fn caught_up(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(raw)
        .await
        .expect("XINFO STREAM");
    let fields: Vec<redis::Value> = match info {
        redis::Value::Array(fields) => fields,
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => panic!("XINFO STREAM {key}: {other:?}"),
    };
    let last = fields.chunks(2).find_map(|kv| match kv {
        [redis::Value::BulkString(k), redis::Value::BulkString(v)]
            if k.as_slice() == b"last-generated-id" =>
        {
            Some(String::from_utf8_lossy(v).into_owned())
        }
        _ => None,
    });
    let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(raw)
        .await
        .expect("XINFO GROUPS");
    groups.groups.iter().any(|g| {
        g.name == "alliance" && Some(&g.last_delivered_id) == last.as_ref() && g.pending == 0
    })
}

/// `market`'s remote warnings in a standing, as `(market, corrected)`.
fn remote(standing: &Value) -> Vec<(String, bool)> {
    let mut notes: Vec<(String, bool)> = standing["remote_warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| {
                    (
                        w["market"].as_str().unwrap_or("?").to_owned(),
                        w["corrected"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    notes.sort();
    notes
}

fn notes(expected: &[(&str, bool)]) -> Vec<(String, bool)> {
    expected
        .iter()
        .map(|(m, c)| ((*m).to_owned(), *c))
        .collect()
}

/// Issue 25, "Alliance and sanctions stay one": a dealer's uncorrected warnings count
/// across markets. Complaints go overdue in `north` and `east` (one warning each: neither
/// market alone has two); `north`'s is then resolved, and the correction reaches the
/// others, so an overdue complaint in `south` does not expel (one uncorrected before it).
/// One in `west` does (`east`'s and `south`'s, both uncorrected), and the expulsion
/// reaches every market; another dealer stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_count_across_markets_and_a_violation_in_another_expels_everywhere() {
    let _turn = SERIAL.lock().await;
    support::init_tracing();
    let t0 = Instant::now();
    let redis = RedisServer::start(RedisOpts::no_aof());
    let mut spec = ClusterSpec::four_markets();
    spec.extra_toml = "[alliance]\ncomplaint_due_s = 1\n".into();
    let c = ClusterNodes::start(&SharedRedis::Single(redis.url()), spec, 1).await;
    c.wait_until_all_served(Duration::from_secs(20)).await;
    let d = dealer(&c, "warned dealer", "north").await;
    let other = dealer(&c, "other dealer", "north").await;
    let service = create(&c, "/v1/service-tokens", json!({"name": "consumer site"})).await;
    let standing_path = format!("/v1/dealers/{}/standing", d.account.id);
    let standing = |market: &'static str, what: &'static str, done: fn(&Value) -> bool| {
        let (c, path, token) = (&c, standing_path.clone(), service.token.clone());
        async move {
            on_market(
                c,
                market,
                ("GET", &path, &token, None),
                what,
                |status, s| status == 200 && done(s),
            )
            .await
        }
    };

    // One overdue complaint in north, one in east: one warning each, nobody expelled.
    let mut complaints = BTreeMap::new();
    for market in ["north", "east"] {
        complaints.insert(market, complain(&c, market, &service, &d.account.id).await);
        let s = standing(market, "its own warning", |s| s["violations"] == 1).await;
        assert_eq!(
            s["warnings"][0]["cause"], "overdue_complaint",
            "{market}: {s}"
        );
        assert_eq!(
            s["status"], "active",
            "{market}: one warning does not expel"
        );
    }
    // Every market notes the others' warnings.
    let s = standing("south", "both warnings noted", |s| {
        remote(s) == notes(&[("east", false), ("north", false)])
    })
    .await;
    assert_eq!(
        (s["violations"].clone(), s["status"].clone()),
        (json!(0), json!("active"))
    );
    standing("north", "east's warning noted", |s| {
        remote(s) == notes(&[("east", false)])
    })
    .await;

    // North's complaint is resolved: the correction reaches every market.
    let resolve_path = format!("/v1/complaints/{}/resolve", complaints["north"]);
    let body = json!({"resolution": "called back"});
    on_market(
        &c,
        "north",
        ("POST", &resolve_path, &d.account.token, Some(&body)),
        "complaint resolved",
        |status, _| status == 200,
    )
    .await;
    standing("south", "north's correction noted", |s| {
        remote(s) == notes(&[("east", false), ("north", true)])
    })
    .await;

    // South: one uncorrected before its own violation (east's): not expelled.
    complain(&c, "south", &service, &d.account.id).await;
    let s = standing("south", "its own warning", |s| s["violations"] == 1).await;
    assert_eq!(
        s["status"], "active",
        "south: one uncorrected warning before: {s}"
    );
    standing("west", "every warning noted", |s| {
        remote(s) == notes(&[("east", false), ("north", true), ("south", false)])
    })
    .await;

    // West: east's and south's are uncorrected, so its first violation expels.
    let before = Instant::now();
    complain(&c, "west", &service, &d.account.id).await;
    let s = standing("west", "expelled", |s| s["status"] == "expelled").await;
    assert_eq!(
        s["violations"], 1,
        "west expelled on its first violation: {s}"
    );
    for market in ["north", "east", "south"] {
        standing(market, "the expulsion relayed", |s| {
            s["status"] == "expelled"
        })
        .await;
    }
    eprintln!(
        "expelled in every market {:?} after west's complaint",
        before.elapsed()
    );
    // Nobody else is touched.
    for market in c.spec.market_names() {
        let path = format!("/v1/dealers/{}/standing", other.account.id);
        let s = on_market(
            &c,
            &market,
            ("GET", &path, &service.token, None),
            "standing",
            |status, _| status == 200,
        )
        .await;
        assert_eq!(
            (s["status"].clone(), remote(&s)),
            (json!("active"), vec![]),
            "{market}: {s}"
        );
    }
    eprintln!("warnings across markets test: {:?}", t0.elapsed());
}

/// Issue 25, "outcomes from every market reach the one pipeline": a car sold in each of
/// the four markets becomes one item of the one inventory (the alliance market's, `north`
/// by default), with its market, dealer, price and report, shown once in the catalogue
/// a front door leads to, even with the node serving half the markets killed -9 as the
/// auctions close (every hop is at least once; the effect is once). A car of `west`
/// returned there with hidden damage is its dealer's violation, and `west` itself counts
/// that warning toward expulsion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_markets_sold_cars_reach_the_one_inventory_even_across_a_kill() {
    let _turn = SERIAL.lock().await;
    support::init_tracing();
    let t0 = Instant::now();
    let redis = RedisServer::start(RedisOpts::no_aof());
    let mut spec = ClusterSpec::four_markets();
    // Auctions short enough to close during the test; a late bid moves the close 1 s. The
    // alliance market trims its inbox every half claim_idle.
    spec.extra_toml = "[auction]\nmin_duration_s = 1\nextend_window_s = 1\nextend_by_s = 1\n\
                       [alliance]\nclaim_idle_ms = 1000\n"
        .into();
    let mut c = ClusterNodes::start(&SharedRedis::Single(redis.url()), spec, 2).await;
    c.wait_until_all_served(Duration::from_secs(20)).await;
    let s = cluster_load::seller(&c).await;
    let service = create(&c, "/v1/service-tokens", json!({"name": "consumer site"})).await;
    let mut buyers = BTreeMap::new();
    for market in c.spec.market_names() {
        buyers.insert(
            market.clone(),
            dealer(&c, &format!("{market} buyer"), &market).await,
        );
    }
    let listed = Instant::now();
    let lots = cluster_load::list_lots_lasting(&c, &s, 1, 8).await;
    let reserve = 2 * cluster_load::START_PRICE;
    let mut k = 0;
    for lot in &lots {
        let token = buyers[&lot.market].account.token.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = bid_at_least(&c, &token, lot, reserve, &mut k).await;
            if accepted(&r) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a bid at the reserve on {lot:?}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The node serving the alliance market dies as the auctions close: the survivor
    // takes every market, and the hand-offs in flight are delivered again.
    let map = c.map().await;
    let alliance_node = map.markets["north"].node.clone().expect("north is served");
    let victim = c.index(&alliance_node);
    let closing = listed + Duration::from_millis(8_300);
    tokio::time::sleep(closing.saturating_duration_since(Instant::now())).await;
    c.kill9(victim);

    let inventory = via_front(
        &c,
        ("GET", "/v1/inventory", ADMIN, None),
        "every market's car in the one inventory",
        |status, v| status == 200 && v["items"].as_array().is_some_and(|i| i.len() >= 4),
    )
    .await;
    let items = inventory["items"].as_array().expect("items");
    let mut seen: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["market"].as_str().unwrap_or("?").to_owned(),
                i["dealer"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut want: Vec<(String, String)> = buyers
        .iter()
        .map(|(m, d)| (m.clone(), d.account.id.clone()))
        .collect();
    want.sort();
    assert_eq!(
        seen, want,
        "one item per market's sale, no more: {inventory}"
    );
    for i in items {
        let market = i["market"].as_str().unwrap_or("?");
        let lot = lots.iter().find(|l| l.market == market).expect("its lot");
        assert_eq!(i["auction"], json!(lot.id), "{i}");
        assert_eq!(i["certified"], true, "{i}");
        assert!(
            i["price"].as_u64() >= Some(cluster_load::START_PRICE),
            "{i}"
        );
        assert_eq!(
            i["inspection"]["notes"], "test car",
            "the report travels: {i}"
        );
    }
    // Every other market's forwarder sends its whole history again (its group rewound, as
    // if it had died before acknowledging anything): still one item each.
    let mut raw = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut streams = vec!["{gt:north}:alliance_inbox".to_owned()];
    for market in ["east", "south", "west"] {
        let outcomes = format!("{{gt:{market}}}:outcomes");
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&outcomes)
            .arg("alliance")
            .arg("0")
            .query_async(&mut raw)
            .await
            .expect("XGROUP SETID");
        streams.insert(0, outcomes);
    }
    // Sent and collected: every group has read its stream to the end, acknowledged all.
    let deadline = Instant::now() + Duration::from_secs(10);
    for key in &streams {
        while !caught_up(&mut raw, key).await {
            assert!(Instant::now() < deadline, "{key} was not read to the end");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let again = via_front(
        &c,
        ("GET", "/v1/inventory", ADMIN, None),
        "the inventory",
        |status, _| status == 200,
    )
    .await;
    assert_eq!(again["items"].as_array().map(Vec::len), Some(4), "{again}");

    // The inbox keeps only cars on their way: what was collected is trimmed.
    loop {
        let inbox: u64 = redis::cmd("XLEN")
            .arg("{gt:north}:alliance_inbox")
            .query_async(&mut raw)
            .await
            .expect("XLEN");
        if inbox == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{inbox} collected cars left in the inbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The consumer catalogue, through any front door, shows each car once.
    let catalogue = via_front(
        &c,
        ("GET", "/v1/catalogue", &service.token, None),
        "the catalogue",
        |status, _| status == 200,
    )
    .await;
    let shown = catalogue["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(shown.len(), 4, "{catalogue}");
    // Each car with its own market's description: the vehicle travels with the car.
    for car in &shown {
        let market = car["market"].as_str().unwrap_or("?");
        assert_eq!(
            (
                car["vehicle"]["make"].as_str(),
                car["vehicle"]["city"].as_str()
            ),
            (Some("Ford"), Some(c.spec.city(market))),
            "{car}"
        );
    }

    // West's dealer retails its car at the alliance market; it comes back with hidden
    // structural damage: a violation of west's dealer, counted in west too.
    let west = &buyers["west"];
    let item = items
        .iter()
        .find(|i| i["market"] == "west")
        .and_then(|i| i["id"].as_str())
        .expect("west's item");
    let retail = json!({"consumer_ref": "c-1", "price": 300_000});
    via_front(
        &c,
        (
            "POST",
            &format!("/v1/inventory/{item}/retail"),
            &west.account.token,
            Some(&retail),
        ),
        "retailed",
        |status, _| status == 200,
    )
    .await;
    let claim = json!({"consumer_ref": "c-1", "reason": "not_as_described",
                       "findings": ["structural_damage"]});
    via_front(
        &c,
        (
            "POST",
            &format!("/v1/inventory/{item}/returns"),
            &service.token,
            Some(&claim),
        ),
        "returned",
        |status, _| status == 201,
    )
    .await;
    let path = format!("/v1/dealers/{}/standing", west.account.id);
    let s = via_front(
        &c,
        ("GET", &path, &service.token, None),
        "the violation at the alliance market",
        |status, s| status == 200 && s["violations"] == 1,
    )
    .await;
    assert_eq!(s["warnings"][0]["cause"], "hidden_damage", "{s}");
    on_market(
        &c,
        "west",
        ("GET", &path, &service.token, None),
        "west notes the alliance market's warning",
        |status, s| status == 200 && remote(s) == notes(&[("north", false)]),
    )
    .await;
    assert_replay_verifies(&c);
    let (_, out) = c.replay_verify_all();
    assert!(
        out.contains("3 sold cars checked, 0 in flight"),
        "replay did not find every other market's car in the inventory:\n{out}"
    );
    eprintln!("one inventory test: {:?}", t0.elapsed());
}

/// A car bought on credit in `west` (the dealer's home, where its line is) and retailed
/// at the alliance market before the loan is repaid is sold out of trust there, as it
/// would be in one market; repaying the loan in `west` corrects the warning. West relays
/// its loans on the control stream; the alliance market notes them by (market, auction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_car_of_another_market_retailed_before_its_loan_is_repaid_is_sold_out_of_trust() {
    let _turn = SERIAL.lock().await;
    support::init_tracing();
    let t0 = Instant::now();
    let redis = RedisServer::start(RedisOpts::no_aof());
    let mut spec = ClusterSpec::four_markets();
    spec.extra_toml =
        "[auction]\nmin_duration_s = 1\nextend_window_s = 1\nextend_by_s = 1\n".into();
    let c = ClusterNodes::start(&SharedRedis::Single(redis.url()), spec, 1).await;
    c.wait_until_all_served(Duration::from_secs(20)).await;
    let s = cluster_load::seller(&c).await;
    let d = dealer(&c, "west buyer", "west").await;
    let reserve = 2 * cluster_load::START_PRICE;
    let credit = json!({"limit": 10 * reserve});
    on_market(
        &c,
        "west",
        (
            "POST",
            &format!("/v1/dealers/{}/credit", d.account.id),
            ADMIN,
            Some(&credit),
        ),
        "a credit line at home",
        |status, _| status == 200,
    )
    .await;
    let lots = cluster_load::list_lots_lasting(&c, &s, 1, 3).await;
    let lot = lots
        .iter()
        .find(|l| l.market == "west")
        .expect("west's lot");
    let mut k = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !accepted(&bid_at_least(&c, &d.account.token, lot, reserve, &mut k).await) {
        assert!(
            Instant::now() < deadline,
            "no bid at the reserve on {lot:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Won and paid for from the line, once the auction has closed.
    let loan = on_market(
        &c,
        "west",
        (
            "POST",
            &format!("/v1/auctions/{}/finance", lot.id),
            &d.account.token,
            None,
        ),
        "financed",
        |status, _| status == 201,
    )
    .await;
    let loan = loan["id"].as_str().expect("loan id").to_owned();

    // The car reaches the alliance market, its loan noted as open.
    let path = format!("/v1/inventory?dealer={}", d.account.id);
    let inventory = via_front(
        &c,
        ("GET", &path, ADMIN, None),
        "west's car, its loan noted",
        |status, v| status == 200 && v["items"][0]["loan"]["status"] == "open",
    )
    .await;
    let item = &inventory["items"][0];
    assert_eq!(
        (item["market"].as_str(), item["loan"]["id"].as_str()),
        (Some("west"), Some(loan.as_str())),
        "{item}"
    );
    let item = item["id"].as_str().expect("item id").to_owned();
    let retail = json!({"consumer_ref": "c-9", "price": 3 * reserve});
    via_front(
        &c,
        (
            "POST",
            &format!("/v1/inventory/{item}/retail"),
            &d.account.token,
            Some(&retail),
        ),
        "retailed",
        |status, _| status == 200,
    )
    .await;
    let standing = format!("/v1/dealers/{}/standing", d.account.id);
    let s1 = via_front(
        &c,
        ("GET", &standing, ADMIN, None),
        "sold out of trust",
        |status, s| status == 200 && s["violations"] == 1,
    )
    .await;
    let w = &s1["warnings"][0];
    assert_eq!(
        (
            w["cause"].as_str(),
            w["inventory"].as_str(),
            w["corrected"].as_bool()
        ),
        (Some("sold_out_of_trust"), Some(item.as_str()), Some(false)),
        "{s1}"
    );

    // Repaid at home: the alliance market corrects the warning.
    on_market(
        &c,
        "west",
        ("POST", &format!("/v1/loans/{loan}/repay"), ADMIN, None),
        "repaid",
        |status, _| status == 200,
    )
    .await;
    via_front(
        &c,
        ("GET", &standing, ADMIN, None),
        "the warning corrected",
        |status, s| status == 200 && s["warnings"][0]["corrected"] == true,
    )
    .await;
    assert_replay_verifies(&c);
    eprintln!("loans across markets test: {:?}", t0.elapsed());
}
