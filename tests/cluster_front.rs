//! A cluster node's front door as a client meets it (docs/protocol.md, "Cluster"): the map,
//! the city route, redirects to a market's server, accounts that
//! only the front door creates, and transfers of buying power between markets.
//!
//! Two real `gavel node` processes on a real `redis-server` started by the test.

mod support;

use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use support::cluster_nodes::{ClusterNodes, ClusterSpec, SharedRedis};
use support::gavel::{listing, ADMIN};
use support::http;
use support::redis_server::{RedisOpts, RedisServer};

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_finds_redirects_registers_and_moves_buying_power() {
    let redis = RedisServer::start(RedisOpts::no_aof());
    let shared = SharedRedis::Single(redis.url());
    let c = ClusterNodes::start(&shared, ClusterSpec::four_markets(), 2).await;
    let map = c.wait_until_all_served(Duration::from_secs(20)).await;
    let front = c.front(0);

    // The map names every market with where it is served; a city routes to its market.
    let m = http::get(front, "/v1/cluster", None).await;
    assert_eq!(m.status, 200, "{m:?}");
    let markets = m.body["markets"].as_array().expect("markets");
    assert_eq!(markets.len(), 4, "{m:?}");
    let east_url = markets
        .iter()
        .find(|x| x["market"] == "east")
        .and_then(|x| x["url"].as_str())
        .expect("east is served")
        .to_owned();
    assert_eq!(m.body["nodes"].as_array().map(Vec::len), Some(2), "{m:?}");
    let r = http::get(front, "/v1/cluster/route?city=Hangzhou", None).await;
    assert_eq!(r.body["market"], "east", "{r:?}");
    assert_eq!(r.body["url"].as_str(), Some(east_url.as_str()), "{r:?}");
    let r = http::get(front, "/v1/cluster/route?city=Lhasa", None).await;
    assert_eq!(
        r.body["market"], "north",
        "an unlisted city goes to the default: {r:?}"
    );

    // Market-scoped paths are 307 to the market's server, path and query kept.
    let r = http::get(front, "/m/east/v1/auctions?limit=5", None).await;
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("{east_url}/v1/auctions?limit=5").as_str())
    );
    let r = http::get(front, "/m/atlantis/v1/auctions", None).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (404, Some("unknown_market"))
    );
    let r = http::get(front, "/v1/auctions", None).await;
    assert_eq!(
        r.status, 404,
        "the front door serves no market itself: {r:?}"
    );

    // Accounts: only through the front door, the same id in every market.
    let r = http::post(front, "/v1/sellers", None, &json!({"name": "S"})).await;
    assert_eq!(r.status, 403, "{r:?}");
    let seller = http::post(front, "/v1/sellers", Some(ADMIN), &json!({"name": "S"})).await;
    assert_eq!(seller.status, 201, "{seller:?}");
    let dealer = http::post(
        front,
        "/v1/dealers",
        Some(ADMIN),
        &json!({"name": "Hangzhou Motors", "deposit": 1_000_000, "home_market": "east"}),
    )
    .await;
    assert_eq!(dealer.status, 201, "{dealer:?}");
    let dealer_id = dealer.body["id"].as_str().expect("id").to_owned();
    let r = http::post(
        addr_of(&east_url),
        "/v1/dealers",
        Some(ADMIN),
        &json!({"name": "X", "deposit": 1}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (409, Some("register_at_front_door")),
        "{r:?}"
    );

    // A listing through the front door goes to its city's market.
    let seller_token = seller.body["token"].as_str().expect("token");
    let r = http::post(
        front,
        "/v1/listings",
        Some(seller_token),
        &listing(600, 100_000),
    )
    .await;
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("{east_url}/v1/listings").as_str()),
        "the test listing's city is Hangzhou"
    );

    // The deposit counts in the home market only, until a transfer moves some of it.
    let west_url = map
        .markets
        .get("west")
        .and_then(|r| r.url.clone())
        .expect("west is served");
    let deposit = |url: String, id: String| async move {
        let r = http::get(addr_of(&url), "/v1/dealers", Some(ADMIN)).await;
        r.body["dealers"]
            .as_array()?
            .iter()
            .find(|d| d["id"] == id.as_str())?["deposit"]
            .as_u64()
    };
    let west_deposit = poll(|| deposit(west_url.clone(), dealer_id.clone()), Some(0)).await;
    assert_eq!(west_deposit, Some(0));
    assert_eq!(
        deposit(east_url.clone(), dealer_id.clone()).await,
        Some(1_000_000)
    );
    let move_1 = json!({"transfer": "move-1", "dealer": dealer_id, "from": "east", "to": "west",
                        "amount": 300_000});
    let t = http::post(front, "/v1/cluster/transfers", Some(ADMIN), &move_1).await;
    assert_eq!(
        (t.status, t.body["state"].as_str()),
        (200, Some("done")),
        "{t:?}"
    );
    // The same id again moves nothing twice.
    let again = http::post(front, "/v1/cluster/transfers", Some(ADMIN), &move_1).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        deposit(east_url.clone(), dealer_id.clone()).await,
        Some(700_000)
    );
    assert_eq!(
        deposit(west_url.clone(), dealer_id.clone()).await,
        Some(300_000)
    );
    let too_much = http::post(
        front,
        "/v1/cluster/transfers",
        Some(ADMIN),
        &json!({"dealer": dealer_id, "from": "east", "to": "west", "amount": 900_000}),
    )
    .await;
    assert_eq!(too_much.status, 409, "{too_much:?}");
    assert_eq!(too_much.body["error"]["code"], "transfer_exceeds_free");
    assert_eq!(too_much.body["error"]["free"], 700_000);
    let r = http::post(
        addr_of(&east_url),
        "/v1/admin/transfers",
        Some(ADMIN),
        &json!({"transfer": "x", "dealer": dealer_id, "direction": "in", "market": "west",
                "amount": 1}),
    )
    .await;
    assert_eq!(
        r.status, 409,
        "one half alone is refused on a cluster's market: {r:?}"
    );

    let (status, out) = c.replay_verify_all();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("1 transfers and 0 sold cars checked, 0 in flight; accounts, transfers and the inventory agree"),
        "{out}"
    );
}

/// Polls `f` every 20 ms for up to 5 s until it returns `want`; returns the last value.
async fn poll<T, F, Fut>(mut f: F, want: T) -> T
where
    T: PartialEq,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = f().await;
        if v == want || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
