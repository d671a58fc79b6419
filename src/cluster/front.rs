//! A node's front door: its own listener, which serves no market itself but tells clients
//! where each market is served, sends market-scoped requests there (HTTP `307`), and takes
//! the requests every market shares (accounts, an operator's status change) onto the
//! control stream.
//!
//! Routes (docs/protocol.md, "Cluster"):
//! - `GET /v1/cluster`: the markets, their cities, and where each is served now;
//! - `GET /v1/cluster/route?city=`: the market of a city and its server;
//! - `/m/{market}/{path}`: `307` to the same path on the market's server (any method; the
//!   body follows a 307), `503 market_unavailable` while the market changes hands;
//! - `POST /v1/listings`: `307` to the listing's market, chosen by `vehicle.city`;
//! - `POST /v1/sellers`, `/v1/dealers`, `/v1/service-tokens` (admin): an account in every
//!   market; `POST /v1/dealers/{id}/status` (admin): a status in every market;
//! - `POST /v1/cluster/transfers` (admin): move part of a dealer's deposit between markets.
//!
//! Must not: serve a market's state itself (it would be a second, stale copy), or hold a
//! request longer than the control stream's wait.

use super::control::{self, ControlEntry, ControlKeys};
use super::registry::Conn;
use super::routes::RouteTable;
use super::ClusterSettings;
use crate::api::routes::ApiError;
use crate::auction;
use crate::directory::token::{hash_token, new_token};
use crate::market::Command;
use crate::vocab::{DealerId, DealerStatus};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What the front door's handlers share.
pub struct FrontState {
    /// The cluster's settings.
    pub settings: ClusterSettings,
    /// Where markets are served.
    pub routes: Arc<RouteTable>,
    /// Digest of the admin token (none: admin routes refused).
    pub admin: Option<[u8; 32]>,
    /// The shared Redis, for the control stream.
    pub conn: Conn,
    /// How long an account request waits for its home market.
    pub wait: Duration,
    /// The node's counters.
    pub metrics: Arc<super::metrics::NodeMetrics>,
}

type Shared = Arc<FrontState>;

/// The front door's routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/cluster", get(map))
        .route("/v1/cluster/route", get(route_city))
        .route("/m/{market}", any(to_market_root))
        .route("/m/{market}/{*rest}", any(to_market))
        .route("/v1/listings", post(listing))
        .route("/v1/sellers", post(create_seller))
        .route("/v1/dealers", post(create_dealer))
        .route("/v1/service-tokens", post(create_service))
        .route("/v1/dealers/{id}/status", post(set_status))
        .route("/v1/cluster/transfers", post(transfer))
        // The alliance is one: its routes are the alliance market's.
        .route("/v1/catalogue", get(to_alliance))
        .route("/v1/inventory", any(to_alliance))
        .route("/v1/inventory/{*rest}", any(to_alliance))
        .route("/v1/complaints", any(to_alliance))
        .route("/v1/complaints/{*rest}", any(to_alliance))
        .route("/v1/dealers/{id}/ratings", any(to_alliance))
        .route("/v1/dealers/{id}/standing", any(to_alliance))
        .fallback(not_here)
        .with_state(state)
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message).into_response()
}

async fn not_here() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "this is a cluster node's front door: find a market's server with GET /v1/cluster, \
         or send market requests to /m/{market}/...",
    )
}

async fn metrics(State(s): State<Shared>) -> Response {
    let mut out = String::new();
    s.metrics.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn map(State(s): State<Shared>) -> Json<Value> {
    let t = s.routes.snapshot();
    let markets: Vec<Value> = s
        .settings
        .markets
        .iter()
        .map(|m| {
            let cities: Vec<&String> = s
                .settings
                .cities
                .iter()
                .filter(|(_, to)| *to == m)
                .map(|(c, _)| c)
                .collect();
            let route = t.markets.get(m);
            json!({
                "market": m,
                "cities": cities,
                "default": *m == s.settings.default_market,
                "node": route.map(|r| r.node.clone()),
                "url": route.map(|r| r.url.clone()),
                "ws": route.map(|r| ws_url(&r.url)),
            })
        })
        .collect();
    let nodes: Vec<Value> = t
        .nodes
        .iter()
        .map(|(id, url)| json!({"node": id, "url": url}))
        .collect();
    Json(json!({"node": s.settings.node_id, "markets": markets, "nodes": nodes}))
}

fn ws_url(http: &str) -> String {
    format!("{}/v1/ws", http.replacen("http://", "ws://", 1))
}

#[derive(Deserialize)]
struct CityQuery {
    city: Option<String>,
}

async fn route_city(State(s): State<Shared>, Query(q): Query<CityQuery>) -> Json<Value> {
    let market = s.settings.market_of_city(q.city.as_deref()).to_owned();
    let route = s.routes.route(&market);
    Json(json!({
        "market": market,
        "url": route.as_ref().map(|r| r.url.clone()),
        "ws": route.as_ref().map(|r| ws_url(&r.url)),
    }))
}

fn redirect(s: &FrontState, market: &str, path_and_query: &str) -> Response {
    redirect_to(&s.settings, &s.routes, market, path_and_query)
}

/// `307` to `market`'s server, `503` while nobody serves it, `404` for no such market.
fn redirect_to(
    settings: &ClusterSettings,
    routes: &RouteTable,
    market: &str,
    path_and_query: &str,
) -> Response {
    if !settings.markets.iter().any(|m| m == market) {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_market",
            format!("no market {market:?}"),
        );
    }
    match routes.route(market) {
        Some(r) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, format!("{}{path_and_query}", r.url))],
        )
            .into_response(),
        None => {
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "market_unavailable",
                format!("market {market:?} is changing hands; retry in a moment"),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            resp
        }
    }
}

async fn to_market(
    State(s): State<Shared>,
    Path((market, rest)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    redirect(&s, &market, &format!("/{rest}{query}"))
}

async fn to_market_root(State(s): State<Shared>, Path(market): Path<String>, uri: Uri) -> Response {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    redirect(&s, &market, &format!("/{query}"))
}

/// The one inventory, its returns, complaints, ratings and standings, and the consumer
/// catalogue: `307` to the alliance market's server, the same path and query.
async fn to_alliance(State(s): State<Shared>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    redirect(&s, &s.settings.alliance_market, path)
}

/// A listing goes to the market of its car's city; the body itself is checked there.
async fn listing(State(s): State<Shared>, body: Bytes) -> Response {
    let city = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("vehicle")
            .and_then(|v| v.get("city"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let market = s.settings.market_of_city(city.as_deref()).to_owned();
    redirect(&s, &market, "/v1/listings")
}

fn is_admin(s: &FrontState, headers: &HeaderMap) -> bool {
    let Some(token) = crate::directory::bearer(headers) else {
        return false;
    };
    s.admin.is_some_and(|a| a == hash_token(token))
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this token may not do that",
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DealerBody {
    name: String,
    deposit: u64,
    #[serde(default)]
    linked_sellers: Vec<String>,
    /// The market that holds the deposit; default `cluster.default_market`.
    #[serde(default)]
    home_market: Option<String>,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn create_seller(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    create_named(&s, &headers, &body, |name, token_hash| {
        auction::Command::RegisterSeller { name, token_hash }
    })
    .await
}

async fn create_service(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    create_named(&s, &headers, &body, |name, token_hash| {
        auction::Command::RegisterService { name, token_hash }
    })
    .await
}

/// An account that has only a name (a seller, a service), homed in the default market.
async fn create_named(
    s: &FrontState,
    headers: &HeaderMap,
    body: &Bytes,
    command: impl FnOnce(String, [u8; 32]) -> auction::Command,
) -> Response {
    if !is_admin(s, headers) {
        return forbidden();
    }
    let name =
        match json_body::<NameBody>(body).and_then(|b| crate::api::routes::check_name(&b.name)) {
            Ok(n) => n,
            Err(e) => return e.into_response(),
        };
    let home = s.settings.default_market.clone();
    register(s, home, |token_hash| command(name, token_hash)).await
}

async fn create_dealer(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_admin(&s, &headers) {
        return forbidden();
    }
    let b: DealerBody = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let checked = crate::api::routes::check_name(&b.name).and_then(|name| {
        let deposit = crate::api::routes::check_amount(b.deposit, "deposit")?;
        let linked = crate::api::routes::seller_ids(&b.linked_sellers)?;
        Ok((name, deposit, linked))
    });
    let (name, deposit, linked_sellers) = match checked {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let home = b
        .home_market
        .unwrap_or_else(|| s.settings.default_market.clone());
    if !s.settings.markets.contains(&home) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_market",
            format!("home_market {home:?} is not a market of this cluster"),
        );
    }
    register(&s, home, |token_hash| auction::Command::RegisterDealer {
        name,
        deposit,
        linked_sellers,
        token_hash,
    })
    .await
}

/// Appends the registration to the control stream and waits for its home market to have
/// applied it: `201 {id, token}`, or `202 {token, entry}` if the home market is changing
/// hands (the account will exist in every market once it has; the token is valid then).
async fn register(
    s: &FrontState,
    home: String,
    command: impl FnOnce([u8; 32]) -> auction::Command,
) -> Response {
    let (token, token_hash) = new_token();
    let entry = ControlEntry::Account {
        command: Command::Auction(command(token_hash)),
        home: home.clone(),
    };
    let id = match append_entry(s, &entry).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let deadline = tokio::time::Instant::now() + s.wait;
    let Some(result) = await_result(s, &id, deadline).await else {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"token": token, "home_market": home, "entry": id, "pending": true})),
        )
            .into_response();
    };
    if let Some(refused) = result.get("refused") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            refused.to_string(),
        );
    }
    let account = result.get("id").cloned().unwrap_or(Value::Null);
    (
        StatusCode::CREATED,
        Json(json!({"id": account, "token": token, "home_market": home})),
    )
        .into_response()
}

/// Appends `entry` to the control stream within the op timeout: its stream id, or `503
/// unavailable` (nothing happened).
async fn append_entry(s: &FrontState, entry: &ControlEntry) -> Result<String, ApiError> {
    let keys = ControlKeys::new(&s.settings.prefix);
    let mut conn = s.conn.clone();
    match tokio::time::timeout(
        s.settings.op_timeout(),
        control::append(&mut conn, &keys, entry),
    )
    .await
    {
        Ok(Ok(id)) => Ok(id),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the control stream could not be written; nothing happened, retry",
        )),
    }
}

/// Polls the control stream's results for `field` until `deadline`: the result a market
/// published, or `None` if none did in time.
async fn await_result(
    s: &FrontState,
    field: &str,
    deadline: tokio::time::Instant,
) -> Option<Value> {
    let keys = ControlKeys::new(&s.settings.prefix);
    let mut conn = s.conn.clone();
    while tokio::time::Instant::now() < deadline {
        let got: Option<String> = redis::cmd("HGET")
            .arg(&keys.results)
            .arg(field)
            .query_async(&mut conn)
            .await
            .unwrap_or(None);
        if let Some(v) = got.and_then(|r| serde_json::from_str::<Value>(&r).ok()) {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: DealerStatus,
    #[serde(default)]
    reason: String,
}

/// An operator's status change, applied by every market (`202`: it is on the control
/// stream; each market applies it as it reads it).
async fn set_status(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !is_admin(&s, &headers) {
        return forbidden();
    }
    let b: StatusBody = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(dealer) = id.parse::<DealerId>() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such dealer");
    };
    let entry = ControlEntry::Status {
        dealer,
        status: b.status,
        reason: b.reason.chars().take(1000).collect(),
        origin: "operator".to_owned(),
    };
    match append_entry(&s, &entry).await {
        Ok(entry) => (StatusCode::ACCEPTED, Json(json!({"entry": entry}))).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// The client's id for this transfer (a retry with the same id moves nothing twice);
    /// made up when absent.
    #[serde(default)]
    transfer: Option<String>,
    dealer: String,
    from: String,
    to: String,
    amount: u64,
}

/// Moves part of a dealer's deposit from one market to another through the control
/// stream, and waits (bounded) for both halves: `200` with both results once the deposit
/// arrived, `409 transfer_exceeds_free` (with `free`) if it could not leave, `202` with
/// `state: "pending"` if a market was changing hands for the whole wait (the transfer
/// completes when it is back; send the same `transfer` id again to ask).
async fn transfer(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_admin(&s, &headers) {
        return forbidden();
    }
    let b: TransferBody = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(dealer) = b
        .dealer
        .trim_start_matches('D')
        .parse::<DealerId>()
        .or_else(|_| b.dealer.parse())
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such dealer");
    };
    for m in [&b.from, &b.to] {
        if !s.settings.markets.contains(m) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_market",
                format!("no market {m:?}"),
            );
        }
    }
    if b.from == b.to {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "from and to are the same market",
        );
    }
    if let Err(e) = crate::api::routes::check_amount(b.amount, "amount") {
        return e.into_response();
    }
    if b.amount == 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "amount must be at least 1 fen",
        );
    }
    let id = match b.transfer {
        Some(t) if !t.is_empty() && t.len() <= auction::MAX_TRANSFER_ID_BYTES => t,
        Some(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "transfer must be 1 to 64 bytes",
            )
        }
        None => format!("t-{}", hex::encode(rand::random::<[u8; 12]>())),
    };
    let entry = ControlEntry::Transfer {
        transfer: id.clone(),
        dealer,
        from: b.from,
        to: b.to,
        amount: b.amount,
    };
    let entry = match append_entry(&s, &entry).await {
        Ok(entry) => entry,
        Err(e) => return e.into_response(),
    };
    let pending = |state: &str| {
        (
            StatusCode::ACCEPTED,
            Json(json!({"transfer": id, "entry": entry, "state": state})),
        )
            .into_response()
    };
    let deadline = tokio::time::Instant::now() + s.wait;
    let Some(out) = await_result(&s, &entry, deadline).await else {
        return pending("pending");
    };
    if out.get("accepted") != Some(&Value::Bool(true)) {
        let reason = out
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("refused");
        let mut body = json!({"error": {"code": reason, "message": "the deposit could not leave that market; nothing moved"}, "transfer": id});
        if let Some(free) = out.get("free") {
            body["error"]["free"] = free.clone();
        }
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    let Some(arrived) = await_result(&s, &control::in_field(&entry), deadline).await else {
        return pending("in_flight");
    };
    Json(json!({"transfer": id, "state": "done", "out": out, "in": arrived})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::NodeInfo;
    use std::collections::BTreeMap;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            node_id: "a".into(),
            markets: vec!["north".into(), "west".into()],
            cities: BTreeMap::new(),
            default_market: "north".into(),
            alliance_market: "west".into(),
            lease_ttl_ms: 1000,
            heartbeat_ms: 200,
            market_listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            prefix: "gavel".into(),
            redis_url: "redis://127.0.0.1/".into(),
            redis_cluster: vec![],
            op_timeout_ms: 1000,
        }
    }

    #[test]
    fn a_served_market_is_a_307_an_unserved_one_a_503_and_an_unknown_one_a_404() {
        let routes = RouteTable::default();
        let info = NodeInfo {
            url: "http://127.0.0.1:1".into(),
            markets: [("north".to_owned(), "http://127.0.0.1:2".to_owned())].into(),
        };
        routes.update(&[("b".to_owned(), info)].into());
        let s = settings();
        let r = redirect_to(&s, &routes, "north", "/v1/auctions?limit=5");
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            r.headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("http://127.0.0.1:2/v1/auctions?limit=5")
        );
        let r = redirect_to(&s, &routes, "west", "/v1/auctions");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            redirect_to(&s, &routes, "atlantis", "/").status(),
            StatusCode::NOT_FOUND
        );
    }
}
