//! Reads added for the web console (issue 22), each a backward-compatible part of the v1
//! contract (docs/protocol.md, "Reads for the console"): server time, the caller's own
//! account, the operator's dealer list, the public certified catalogue, and complaint
//! reads for dealers, the consumer site and the operator.
//!
//! Every list that can grow is paged (`limit`, at most [`MAX_LIMIT`]; `after`, the last
//! id of the previous page) and says where the next page starts (`next`, `null` at the
//! end). Everything comes from `crate::views`: nothing here asks the engine.

use super::alliance::{complaint_json, inspection_json, standing_json, MAX_REF_CHARS};
use super::routes::{parse_id, ApiError, AppState, Caller};
use crate::alliance::{Complaint, ComplaintId, ComplaintStatus, Item, ItemId};
use crate::directory::Principal;
use crate::views::DealerView;
use crate::vocab::DealerId;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// A page's size when the caller names none.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: usize = 500;
/// "Due within an hour", for the operator's complaint list.
const DUE_SOON_MS: u64 = 3_600_000;

/// `limit` and `after` of a paged list.
#[derive(Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) limit: Option<usize>,
    pub(crate) after: Option<String>,
}

impl PageQuery {
    /// The first page, at the default size.
    pub(crate) fn first() -> Self {
        Self {
            limit: None,
            after: None,
        }
    }

    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            ))),
        }
    }

    pub(crate) fn after<T: std::str::FromStr>(&self, what: &str) -> Result<Option<T>, ApiError> {
        self.after
            .as_deref()
            .map(|raw| {
                raw.parse()
                    .map_err(|_| ApiError::bad_request(format!("after must be a {what} id")))
            })
            .transpose()
    }
}

/// `next`: the last id of a full page (more may follow), else `null`.
fn next<T: std::fmt::Display>(page: &[T], limit: usize) -> Value {
    match page.last() {
        Some(last) if page.len() == limit => Value::String(last.to_string()),
        _ => Value::Null,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `GET /v1/time`: the server's clock, for a client to estimate its own clock's offset
/// (countdowns must not trust a browser's clock). No token; never cached.
pub(crate) async fn time() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "now": now_ms() })),
    )
}

/// A dealer's identity and money as the book has it: buying power is deposit ×
/// leverage + available credit.
pub(crate) fn dealer_json(d: &DealerView, leverage: u64) -> Value {
    json!({
        "id": d.id.to_string(),
        "name": d.name,
        "status": d.status,
        "deposit": d.deposit,
        "buying_power": d.buying_power(leverage),
        "exposure": d.exposure,
        "buying_power_left": d.buying_power_left(leverage),
        "credit_limit": d.credit_limit,
        "credit_drawn": d.drawn,
        "credit_available": d.available_credit(),
    })
}

/// `GET /v1/me`: who the token is; for a dealer, its money as the book has it.
pub(crate) async fn me(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let leverage = s.lots.leverage();
    let body = match caller.0 {
        Principal::Admin => json!({"role": "admin", "id": null, "name": "operator"}),
        Principal::Seller(id) => json!({
            "role": "seller",
            "id": id.to_string(),
            "name": s.accounts.seller_name(id),
        }),
        Principal::Service(id) => json!({
            "role": "service",
            "id": id.to_string(),
            "name": s.accounts.service_name(id),
        }),
        Principal::Dealer(id) => {
            let d = s
                .accounts
                .dealer(id)
                .ok_or_else(|| ApiError::not_found("dealer"))?;
            let mut v = dealer_json(&d, leverage);
            v["role"] = "dealer".into();
            v
        }
    };
    Ok(Json(body))
}

/// `GET /v1/dealers` (admin): every dealer with its money and standing, paged.
pub(crate) async fn list_dealers(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    if caller.0 != Principal::Admin {
        return Err(ApiError::forbidden());
    }
    let limit = q.limit()?;
    let after: Option<DealerId> = q.after("dealer")?;
    let leverage = s.lots.leverage();
    let page = s.accounts.dealers(after, limit);
    let dealers: Vec<Value> = page
        .iter()
        .map(|d| {
            let standing = s.alliance.standing(d.id);
            let mut v = dealer_json(d, leverage);
            v["score"] = json!(standing.as_ref().and_then(|s| s.score()));
            v["ratings"] = json!(standing.as_ref().map_or(0, |s| s.ratings));
            v["violations"] = json!(standing.as_ref().map_or(0, |s| s.violations));
            v["warnings"] = standing
                .as_ref()
                .map(|s| {
                    s.warnings
                        .iter()
                        .map(super::alliance::warning_json)
                        .collect()
                })
                .unwrap_or_else(|| json!([]));
            v["status_change"] = Value::Null;
            if let Some(c) = &d.last_change {
                v["status_change"] = json!({"status": c.status, "at": c.at, "reason": c.reason});
            }
            v
        })
        .collect();
    let ids: Vec<DealerId> = page.iter().map(|d| d.id).collect();
    Ok(Json(
        json!({ "dealers": dealers, "next": next(&ids, limit) }),
    ))
}

/// One catalogue entry: what a consumer may know about a car on offer. No price the
/// dealer paid, no consumer reference, no return details.
fn catalogue_json(s: &AppState, i: &Item) -> Value {
    let standing = s.alliance.standing(i.dealer);
    // A car another market sold: its auction id is that market's, not one of the lots
    // here, so its vehicle is the one it was handed off with.
    let (market, vehicle) = match s.alliance.sold_elsewhere(i.id) {
        Some((market, vehicle)) => (Some(market), Some(vehicle)),
        None => (s.market.clone(), s.lots.vehicle_of(i.auction)),
    };
    let mut v = json!({
        "id": i.id.to_string(),
        "vin": i.vin,
        "status": i.status.as_str(),
        "delivered_at": i.delivered_at,
        "inspection": inspection_json(&i.inspection),
        "inspection_sha256": hex::encode(i.inspection_sha256),
        "certified": i.certified,
        "reasons": i.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "dealer": {
            "id": i.dealer.to_string(),
            "name": s.accounts.dealer_name(i.dealer),
            "standing": standing.as_ref().map(standing_json),
        },
    });
    if let Some(market) = market {
        v["market"] = market.into();
    }
    if let Some(car) = vehicle {
        v["vehicle"] = json!({
            "make": car.make, "model": car.model, "year": car.year,
            "mileage_km": car.mileage_km, "city": car.city,
        });
    }
    if let Some(r) = &i.retail {
        v["retail_at"] = r.at.into();
        v["return_until"] = r.return_until.into();
    }
    v
}

/// The catalogue's query: a page, and whether to include cars sold not certified.
#[derive(Deserialize)]
pub(crate) struct CatalogueQuery {
    limit: Option<usize>,
    after: Option<String>,
    include: Option<String>,
}

/// `GET /v1/catalogue` (no token): the alliance's certified cars still with a dealer or
/// sold to a consumer (not returned or refunded), paged; with `include=not_certified`
/// also the retailable cars that are not certified, each with its `reasons`.
pub(crate) async fn catalogue(
    State(s): State<AppState>,
    Query(q): Query<CatalogueQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let not_certified = match q.include.as_deref() {
        None => false,
        Some("not_certified") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "include must be not_certified (or left out)",
            ))
        }
    };
    let q = PageQuery {
        limit: q.limit,
        after: q.after,
    };
    let limit = q.limit()?;
    let after: Option<ItemId> = q.after("inventory item")?;
    let page = s
        .alliance
        .items_page(|i| i.in_catalogue(not_certified), after, limit);
    let items: Vec<Value> = page.iter().map(|i| catalogue_json(&s, i)).collect();
    let ids: Vec<ItemId> = page.iter().map(|i| i.id).collect();
    Ok((
        [(header::CACHE_CONTROL, "no-cache")],
        Json(json!({
            "items": items,
            "next": next(&ids, limit),
            "promises": {"return_window_h": 120, "complaint_due_h": 24},
        })),
    ))
}

/// A complaint as its reader may see it: the dealer sees the text it must answer; the
/// consumer site and the operator also see the consumer reference and the resolution.
fn complaint_for(c: &Complaint, caller: Principal) -> Value {
    let mut v = complaint_json(c);
    v["text"] = c.text.clone().into();
    v["resolution"] = c.resolution.clone().into();
    if matches!(caller, Principal::Service(_) | Principal::Admin) {
        v["consumer_ref"] = c.consumer_ref.clone().into();
    }
    v
}

#[derive(Deserialize)]
pub(crate) struct ComplaintQuery {
    state: Option<String>,
    consumer_ref: Option<String>,
    dealer: Option<String>,
    // Not a flattened `PageQuery`: serde's flatten reads query numbers as strings.
    limit: Option<usize>,
    after: Option<String>,
}

/// What a complaint query asks for, checked.
struct ComplaintFilters<'q> {
    limit: usize,
    after: Option<ComplaintId>,
    state: Option<&'q str>,
    dealer: Option<DealerId>,
}

impl ComplaintQuery {
    /// Every parameter, checked in the contract's order.
    fn filters(&self) -> Result<ComplaintFilters<'_>, ApiError> {
        let page = PageQuery {
            limit: self.limit,
            after: self.after.clone(),
        };
        let limit = page.limit()?;
        let after: Option<ComplaintId> = page.after("complaint")?;
        let state = match self.state.as_deref() {
            None => None,
            Some(st @ ("open" | "due_soon" | "overdue" | "resolved")) => Some(st),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "state must be open, due_soon, overdue or resolved, not {other:?}"
                )))
            }
        };
        let dealer: Option<DealerId> = match self.dealer.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a dealer id")))?,
            ),
        };
        if let Some(r) = &self.consumer_ref {
            if r.chars().count() > MAX_REF_CHARS {
                return Err(ApiError::bad_request("consumer_ref is too long"));
            }
        }
        Ok(ComplaintFilters {
            limit,
            after,
            state,
            dealer,
        })
    }
}

/// The checks `GET /v1/complaints` makes of its query string.
pub(crate) fn check_complaints_query(q: &ComplaintQuery) -> Result<(), ApiError> {
    q.filters().map(drop)
}

/// `GET /v1/complaints`: a dealer's own; the consumer site's by `consumer_ref`; the
/// operator's by `state` (`open`, `due_soon`: open and due within an hour, `overdue`,
/// `resolved`) and `dealer`. Paged, in id order.
pub(crate) async fn list_complaints(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ComplaintQuery>,
) -> Result<Json<Value>, ApiError> {
    let ComplaintFilters {
        limit,
        after,
        state,
        dealer: dealer_filter,
    } = q.filters()?;
    let now = now_ms();
    let dealer = match caller.0 {
        Principal::Dealer(d) => {
            if dealer_filter.is_some_and(|f| f != d) {
                return Err(ApiError::forbidden());
            }
            Some(d)
        }
        // The consumer site reads one consumer's complaints, never the whole list.
        Principal::Service(_) if q.consumer_ref.is_none() => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the consumer site reads complaints by consumer_ref or by id",
            ))
        }
        Principal::Service(_) | Principal::Admin => dealer_filter,
        Principal::Seller(_) => return Err(ApiError::forbidden()),
    };
    let in_state = |c: &Complaint| match state {
        None => true,
        Some("open") => c.status == ComplaintStatus::Open,
        Some("due_soon") => {
            c.status == ComplaintStatus::Open && c.due_at.saturating_sub(now) <= DUE_SOON_MS
        }
        Some("overdue") => c.status == ComplaintStatus::Overdue,
        Some(_) => c.status == ComplaintStatus::Resolved,
    };
    let page = s.alliance.complaints_page(
        |c| {
            dealer.is_none_or(|d| c.dealer == d)
                && q.consumer_ref
                    .as_deref()
                    .is_none_or(|r| c.consumer_ref == r)
                && in_state(c)
        },
        after,
        limit,
    );
    let complaints: Vec<Value> = page.iter().map(|c| complaint_for(c, caller.0)).collect();
    let ids: Vec<ComplaintId> = page.iter().map(|c| c.id).collect();
    Ok(Json(json!({
        "complaints": complaints,
        "next": next(&ids, limit),
        "now": now,
    })))
}

/// `GET /v1/complaints/{id}`: its dealer, the consumer site, the operator.
pub(crate) async fn get_complaint(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: ComplaintId = parse_id(&id, "complaint")?;
    let c = s
        .alliance
        .complaint(id)
        .ok_or_else(|| ApiError::not_found("complaint"))?;
    match caller.0 {
        Principal::Service(_) | Principal::Admin => {}
        // Another dealer's complaint does not exist, as far as this dealer can tell.
        Principal::Dealer(d) if d == c.dealer => {}
        Principal::Dealer(_) => return Err(ApiError::not_found("complaint")),
        Principal::Seller(_) => return Err(ApiError::forbidden()),
    }
    Ok(Json(complaint_for(&c, caller.0)))
}
