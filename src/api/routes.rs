//! HTTP routes for sellers, dealers, operators, health and metrics.
//!
//! Every state change is a command through the engine, answered only once durable; reads
//! come from the durable views (`crate::views`). Errors are `{error: {code, message}}` with a fitting
//! status and never carry internal detail.

use super::validate::{validate_listing, ListingBounds, ValidationErrors};
use crate::auction::{Canceller, Command, Event, LotStatus, Refusal, TokenHash};
use crate::directory::token::new_token;
use crate::directory::{self, Directory, Principal};
use crate::engine::EngineHandle;
use crate::market;
use crate::metrics::Counter;
use crate::views::{Accounts, AllianceBoard, Lots, MarketData, Viewer};
use crate::vocab::{DealerId, DealerStatus, LotId, SellerId, MAX_AMOUNT};
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the HTTP handlers share: the API's part of the server's application state.
pub struct ApiState {
    /// Where commands go.
    pub engine: EngineHandle,
    /// Who a bearer token is.
    pub directory: Arc<Directory>,
    /// The lots' durable public state.
    pub lots: Arc<Lots>,
    /// The alliance's durable read view.
    pub alliance: Arc<AllianceBoard>,
    /// Account names and dealers' money.
    pub accounts: Arc<Accounts>,
    /// Statistics of closed auctions, for members.
    pub market_data: Arc<MarketData>,
    /// Shortest listing a seller may choose, in seconds (`auction.min_duration_s`).
    pub bounds_min_duration_s: u64,
    /// Longest listing (`auction.max_duration_s`).
    pub bounds_max_duration_s: u64,
    /// Shortest, longest and default preview, in seconds (`auction.*_preview_s`).
    pub bounds_preview_s: PreviewBounds,
    /// The audit routes' journal reader and settings.
    pub audit: super::audit::AuditState,
    /// The API's own measurements.
    pub api_metrics: Arc<ApiMetrics>,
    /// Prometheus text of every part of the server, for `/metrics`.
    pub metrics: Arc<dyn Fn(&mut String) + Send + Sync>,
    /// A cluster's market server takes accounts only from the cluster's control stream
    /// (every market must give an account the same id), so its own account routes refuse.
    pub accounts_from_cluster: bool,
    /// The cluster market this server serves (`None` for `gavel serve`): the market of its
    /// own sales among the alliance's items.
    pub market: Option<String>,
}

/// The API's measurements.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Requests refused `401` (no or unknown token): refused before the engine, so in no
    /// journal and no audit trail; counted here and logged at debug, without the token.
    pub unauthorized: Counter,
}

/// Renders the API's measurements in Prometheus text.
pub fn render_metrics(m: &ApiMetrics, out: &mut String) {
    crate::metrics::render_value(
        out,
        "gavel_http_unauthorized_total",
        "counter",
        "HTTP requests refused 401 (no or unknown token), before the engine.",
        m.unauthorized.get(),
    );
}

/// The API's state as handlers extract it, from any application state that holds one.
pub type AppState = Arc<ApiState>;

/// An HTTP error as the contract shapes it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Fields beside `code` and `message` that a client can act on (documented per code).
    extra: serde_json::Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// Adds a field to the error object.
    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the engine could not make this durable in time; nothing happened, retry",
        )
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not do that",
        )
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = self.extra;
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::UnknownLot => Self::not_found("auction"),
            Refusal::UnknownDealer => Self::not_found("dealer"),
            Refusal::UnknownSeller => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_seller",
                "a linked seller does not exist",
            ),
            Refusal::NotAllowed => Self::forbidden(),
            Refusal::WrongState => Self::new(
                StatusCode::CONFLICT,
                "wrong_state",
                "the auction is not in a state that allows this",
            ),
            Refusal::InvalidListing | Refusal::InvalidAmount => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the request breaks an auction rule",
            ),
            Refusal::OutOfOrder => Self::unavailable(),
            Refusal::UnknownLoan => Self::not_found("loan"),
            Refusal::CreditLimit => Self::new(
                StatusCode::CONFLICT,
                "credit_limit",
                "the dealer's available credit does not cover the price",
            ),
        }
    }
}

/// The caller, from `Authorization: Bearer T`.
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let refuse = |message: &'static str| {
            state.api_metrics.unauthorized.inc();
            // The path only: the token is a secret, whatever it is.
            tracing::debug!(path = %parts.uri.path(), message, "refused before the engine");
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        };
        let Some(token) = directory::bearer(&parts.headers) else {
            return Err(refuse("a bearer token is required"));
        };
        state
            .directory
            .authenticate(token)
            .map(Caller)
            .ok_or_else(|| refuse("unknown token"))
    }
}

/// A JSON body whose decoding failure is a contract-shaped 400.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("the body could not be read"))?;
        decode_body(&bytes).map(Body)
    }
}

/// A JSON body as [`Body`] reads it: a contract-shaped 400 when it does not decode.
pub(crate) fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// The checks this file's handlers make of a body, from its bytes: [`Body`]'s decode, then
/// what the handler checks before it submits anything (no state, no caller). `None` for a
/// route with no body here. Reached only by the fuzz harness (`crate::api::fuzzing`); the
/// handlers call the same functions.
pub(crate) fn check_body(route: &str, bytes: &[u8]) -> Option<Result<(), ApiError>> {
    let checked = match route {
        "sellers" | "service-tokens" => {
            decode_body::<NameBody>(bytes).and_then(|b| check_name(&b.name).map(drop))
        }
        "dealers" => decode_body::<DealerBody>(bytes).and_then(|b| b.check().map(drop)),
        "dealer-links" => {
            decode_body::<LinksBody>(bytes).and_then(|b| seller_ids(&b.linked_sellers).map(drop))
        }
        "dealer-deposit" => decode_body::<DepositBody>(bytes)
            .and_then(|b| check_amount(b.deposit, "deposit").map(drop)),
        "dealer-status" => decode_body::<StatusBody>(bytes).map(|b| drop(b.reason())),
        "decision" => decode_body::<DecisionBody>(bytes).map(drop),
        _ => return None,
    };
    Some(checked)
}

/// The checks `GET /v1/auctions` makes of its query string (see [`check_body`]).
pub(crate) fn check_auctions_query(q: &ListQuery) -> Result<(), ApiError> {
    if let Some(who) = q.seller.as_deref() {
        ListQuery::seller_is_me(who)?;
        return q.seller_page().map(drop);
    }
    q.status().map(drop)
}

/// The routes of the HTTP API (the WebSocket route is the gateway's), for any application
/// state that holds the API's.
pub fn router<S>() -> Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/sellers", post(create_seller))
        .route(
            "/v1/dealers",
            post(create_dealer).get(super::reads::list_dealers),
        )
        .route("/v1/dealers/{id}/deposit", post(set_deposit))
        .route("/v1/dealers/{id}/status", post(set_status))
        .route("/v1/dealers/{id}/links", post(set_links))
        .route("/v1/service-tokens", post(create_service))
        .route("/v1/listings", post(create_listing))
        .route("/v1/auctions", get(list_auctions))
        .route("/v1/auctions/{id}", get(get_auction))
        .route("/v1/auctions/{id}/decision", post(decide))
        .route("/v1/auctions/{id}/cancel", post(cancel))
        .route("/v1/auctions/{id}/settle", post(settle))
        .route("/v1/time", get(super::reads::time))
        .route("/v1/me", get(super::reads::me))
        .route("/v1/catalogue", get(super::reads::catalogue))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// Submits an auction command; the book's events once durable, or its refusal as an error.
pub(crate) async fn submit(
    state: &ApiState,
    command: Command,
) -> Result<(u64, Vec<Event>), ApiError> {
    let applied = state
        .engine
        .submit(command)
        .await
        .map_err(|_| ApiError::unavailable())?;
    let events: Vec<Event> = applied
        .events
        .into_iter()
        .filter_map(market::Event::into_auction)
        .collect();
    if let Some(Event::Refused(r)) = events.first() {
        return Err((*r).into());
    }
    Ok((applied.seq, events))
}

pub(crate) fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller.0 {
        Principal::Admin => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "name must be 1 to 200 characters",
        ));
    }
    Ok(name.to_string())
}

pub(crate) fn check_amount(v: u64, field: &str) -> Result<u64, ApiError> {
    if v > MAX_AMOUNT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("{field} is above 10^12 fen"),
        ));
    }
    Ok(v)
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn create_seller(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&caller)?;
    let name = check_name(&b.name)?;
    register(&s, |token_hash| Command::RegisterSeller {
        name,
        token_hash,
    })
    .await
}

/// Creates an account: a fresh token, the command built around its digest, and
/// `201 {id, token}` once durable — the only time the token is ever shown.
async fn register(
    s: &ApiState,
    command: impl FnOnce(TokenHash) -> Command,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if s.accounts_from_cluster {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "register_at_front_door",
            "this server is one market of a cluster: create accounts through a node's front \
             door, so that every market gives the account the same id",
        ));
    }
    let (token, token_hash) = new_token();
    let (_, events) = submit(s, command(token_hash)).await?;
    let id = events.iter().find_map(|e| match e {
        Event::SellerRegistered { seller } => Some(seller.to_string()),
        Event::DealerRegistered { dealer } => Some(dealer.to_string()),
        Event::ServiceRegistered { service } => Some(service.to_string()),
        _ => None,
    });
    Ok((StatusCode::CREATED, Json(json!({"id": id, "token": token}))))
}

async fn create_service(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<NameBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&caller)?;
    let name = check_name(&b.name)?;
    register(&s, |token_hash| Command::RegisterService {
        name,
        token_hash,
    })
    .await
}

#[derive(Deserialize)]
struct DealerBody {
    name: String,
    deposit: u64,
    #[serde(default)]
    linked_sellers: Vec<String>,
}

async fn create_dealer(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<DealerBody>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&caller)?;
    let (name, deposit, linked_sellers) = b.check()?;
    register(&s, |token_hash| Command::RegisterDealer {
        name,
        deposit,
        linked_sellers,
        token_hash,
    })
    .await
}

impl DealerBody {
    /// Name, deposit and linked sellers, checked (the links first).
    fn check(&self) -> Result<(String, u64, Vec<SellerId>), ApiError> {
        let linked_sellers = seller_ids(&self.linked_sellers)?;
        let name = check_name(&self.name)?;
        let deposit = check_amount(self.deposit, "deposit")?;
        Ok((name, deposit, linked_sellers))
    }
}

/// Most sellers one dealer may be linked to: a bound on the command, far above any real
/// dealer's relatives and partners.
pub const MAX_LINKED_SELLERS: usize = 1_000;

/// A dealer's linked sellers as a request names them.
pub(crate) fn seller_ids(raw: &[String]) -> Result<Vec<SellerId>, ApiError> {
    if raw.len() > MAX_LINKED_SELLERS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("linked_sellers holds at most {MAX_LINKED_SELLERS} sellers"),
        ));
    }
    raw.iter()
        .map(|raw| {
            raw.parse::<SellerId>().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_seller",
                    format!("{raw:?} is not a seller id"),
                )
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct LinksBody {
    linked_sellers: Vec<String>,
}

/// Replaces a dealer's links to sellers; answers the links now on record and the open
/// lots of those sellers the dealer leads (its leads stand; an operator may cancel them).
async fn set_links(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<LinksBody>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let dealer: DealerId = parse_id(&id, "dealer")?;
    let linked_sellers = seller_ids(&b.linked_sellers)?;
    let (_, events) = submit(
        &s,
        Command::SetDealerLinks {
            dealer,
            linked_sellers,
        },
    )
    .await?;
    events
        .iter()
        .find_map(|e| match e {
            Event::LinksChanged {
                dealer,
                linked_sellers,
                leading,
            } => Some(Json(json!({
                "dealer": dealer.to_string(),
                "linked_sellers": linked_sellers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "leading": leading.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }))),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the links were changed but the change could not be read; read them back",
            )
        })
}

#[derive(Deserialize)]
struct DepositBody {
    deposit: u64,
}

async fn set_deposit(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<DepositBody>,
) -> Result<impl IntoResponse, ApiError> {
    let deposit = check_amount(b.deposit, "deposit")?;
    change_dealer(&s, &caller, &id, |dealer| Command::SetDeposit {
        dealer,
        deposit,
    })
    .await
}

/// An operator's change to one dealer, answered with the dealer as it now stands.
async fn change_dealer(
    s: &ApiState,
    caller: &Caller,
    id: &str,
    command: impl FnOnce(DealerId) -> Command,
) -> Result<Json<Value>, ApiError> {
    require_admin(caller)?;
    let dealer: DealerId = parse_id(id, "dealer")?;
    submit(s, command(dealer)).await?;
    // The views are published before the engine answers, so this is the dealer as the
    // change left it: its money as `/v1/me` shows it.
    let view = s
        .accounts
        .dealer(dealer)
        .ok_or_else(|| ApiError::not_found("dealer"))?;
    Ok(Json(super::reads::dealer_json(&view, s.lots.leverage())))
}

#[derive(Deserialize)]
struct StatusBody {
    status: DealerStatus,
    #[serde(default)]
    reason: String,
}

impl StatusBody {
    /// Kept for the audit trail; bounded so an operator's paste cannot bloat the journal.
    fn reason(&self) -> String {
        self.reason.chars().take(1000).collect()
    }
}

async fn set_status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<StatusBody>,
) -> Result<impl IntoResponse, ApiError> {
    let reason = b.reason();
    change_dealer(&s, &caller, &id, |dealer| Command::SetDealerStatus {
        dealer,
        status: b.status,
        reason,
    })
    .await
}

async fn create_listing(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Principal::Seller(seller) = caller.0 else {
        return Err(ApiError::forbidden());
    };
    let bounds = ListingBounds {
        current_year: current_year(),
        min_duration_s: s.bounds_min_duration_s,
        max_duration_s: s.bounds_max_duration_s,
        min_preview_s: s.bounds_preview_s.min,
        max_preview_s: s.bounds_preview_s.max,
        default_preview_s: s.bounds_preview_s.default,
        now_ms: now_ms(),
    };
    let listing = match validate_listing(&body, &bounds) {
        Ok(l) => l,
        Err(errors) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(ValidationErrors { errors }),
            )
                .into_response())
        }
    };
    let command = Command::ListCar {
        seller,
        listing: Box::new(listing),
    };
    let (_, events) = submit(&s, command).await?;
    let body = events.iter().find_map(|e| match e {
        Event::Listed {
            lot,
            status,
            starts_at,
            ends_at,
        } => Some(json!({
            "auction": lot.to_string(),
            "status": status,
            "starts_at": starts_at,
            "ends_at": ends_at,
        })),
        _ => None,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn view_of(s: &ApiState, lot: LotId, viewer: Viewer) -> Result<Json<Value>, ApiError> {
    let view = s
        .lots
        .view_for(lot, viewer, s.alliance.sees_previews(viewer))
        .ok_or_else(|| ApiError::not_found("auction"))?;
    Ok(Json(serde_json::to_value(view).unwrap_or(Value::Null)))
}

async fn get_auction(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lot: LotId = parse_id(&id, "auction")?;
    view_of(&s, lot, caller.0.into())
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    /// `me`: the calling seller's own lots (extension for the console).
    seller: Option<String>,
    limit: Option<usize>,
    /// For `seller=me`: the page after this auction id (newest first).
    before: Option<String>,
}

async fn list_auctions(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(who) = q.seller.as_deref() {
        return seller_lots(&s, &caller, who, &q);
    }
    let status = q.status()?;
    let viewer = caller.0.into();
    let previews = s.alliance.sees_previews(viewer);
    let views = s.lots.views(viewer, |l| {
        status.is_none_or(|st| l.status == st) && l.visible_to(viewer, previews)
    });
    Ok(Json(json!({ "auctions": views })))
}

impl ListQuery {
    /// `status`, when the query names one.
    fn status(&self) -> Result<Option<LotStatus>, ApiError> {
        self.status
            .as_deref()
            .map(|raw| {
                serde_json::from_value::<LotStatus>(Value::String(raw.to_string()))
                    .map_err(|_| ApiError::bad_request(format!("unknown status {raw:?}")))
            })
            .transpose()
    }

    /// `seller=…` must say `me`.
    fn seller_is_me(who: &str) -> Result<(), ApiError> {
        if who != "me" {
            return Err(ApiError::bad_request("seller must be \"me\""));
        }
        Ok(())
    }

    /// For `seller=me`: the page size and where the page starts.
    fn seller_page(&self) -> Result<(usize, Option<LotId>), ApiError> {
        let page = super::reads::PageQuery {
            limit: self.limit,
            after: self.before.clone(),
        };
        Ok((page.limit()?, page.after("auction")?))
    }
}

/// `GET /v1/auctions?seller=me`: the calling seller's lots, newest first, each with its
/// reserve and, while `pending_seller`, `decide_by`; paged by `limit` and `before`.
fn seller_lots(
    s: &ApiState,
    caller: &Caller,
    who: &str,
    q: &ListQuery,
) -> Result<Json<Value>, ApiError> {
    ListQuery::seller_is_me(who)?;
    let Principal::Seller(seller) = caller.0 else {
        return Err(ApiError::forbidden());
    };
    let (limit, before) = q.seller_page()?;
    let lots = s.lots.of_seller(seller, before, limit);
    let next = match lots.last() {
        Some((v, _)) if lots.len() == limit => Value::String(v.id.to_string()),
        _ => Value::Null,
    };
    let auctions: Vec<Value> = lots
        .into_iter()
        .map(|(view, decide_by)| {
            let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
            if let (Some(t), Some(m)) = (decide_by, v.as_object_mut()) {
                m.insert("decide_by".into(), t.into());
            }
            v
        })
        .collect();
    Ok(Json(json!({ "auctions": auctions, "next": next })))
}

#[derive(Deserialize)]
struct DecisionBody {
    accept: bool,
}

async fn decide(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let lot: LotId = parse_id(&id, "auction")?;
    let Principal::Seller(seller) = caller.0 else {
        return Err(ApiError::forbidden());
    };
    submit(
        &s,
        Command::Decide {
            lot,
            seller,
            accept: b.accept,
        },
    )
    .await?;
    view_of(&s, lot, caller.0.into())
}

async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lot: LotId = parse_id(&id, "auction")?;
    let by = match caller.0 {
        Principal::Admin => Canceller::Admin,
        Principal::Seller(seller) => Canceller::Seller(seller),
        _ => return Err(ApiError::forbidden()),
    };
    submit(&s, Command::CancelLot { lot, by }).await?;
    view_of(&s, lot, caller.0.into())
}

async fn settle(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let lot: LotId = parse_id(&id, "auction")?;
    submit(&s, Command::Settle { lot }).await?;
    view_of(&s, lot, caller.0.into())
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.engine.ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "journal unavailable\n").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    (s.metrics)(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// This calendar year (UTC), for the model-year bound.
fn current_year() -> u16 {
    year_of(now_ms())
}

/// The wall clock in ms since the epoch (a listing's preview starts now; the engine stamps
/// the listing itself with its own clock a moment later).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The preview a seller may choose, in seconds (`auction.min_preview_s`,
/// `auction.max_preview_s`), and the one a listing gets when it names none
/// (`auction.default_preview_s`, 0 for none).
#[derive(Clone, Copy, Debug)]
pub struct PreviewBounds {
    /// Shortest.
    pub min: u64,
    /// Longest.
    pub max: u64,
    /// Default.
    pub default: u64,
}

/// The UTC calendar year of a Unix time in ms (proleptic Gregorian, days-from-civil).
pub fn year_of(ms: u64) -> u16 {
    let days = (ms / 86_400_000) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u16::try_from(year).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::year_of;

    #[test]
    fn year_of_known_instants() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_767_225_599_999), 2025); // 2025-12-31T23:59:59.999Z
        assert_eq!(year_of(1_767_225_600_000), 2026); // 2026-01-01T00:00:00Z
        assert_eq!(year_of(951_782_400_000), 2000); // 2000-02-29
    }
}
