//! The admin's audit reads (`/v1/audit/…`): every attempt on an auction, a dealer's
//! attempts in a time range, a `bid_id`'s fate, an auction's leader at a moment, and the
//! shill report.
//!
//! Each request re-reads the journal read-only from its first command (`crate::audit`),
//! on a blocking thread, one audit at a time: the engine and the sessions never wait for
//! an audit, and the answer is exact as of the last durable batch when the request came.
//! No index is kept beside the engine: the trail's attempts are results of a replay, and
//! a second copy of them in memory, kept current batch by batch, would cost the bid path
//! and the heap for reads an operator makes a few times a day. The cost, measured on a
//! journal of 1,000,000 commands, is in docs/protocol.md ("Audit").

use super::routes::{require_admin, ApiError, AppState, Caller};
use crate::audit::render::{attempt_json, leader_json, row_json};
use crate::audit::shill::ShillSink;
use crate::audit::time::parse_time;
use crate::audit::trail::{BidFate, ByAuction, ByDealer, LeaderAt, Page};
use crate::audit::{AuditSink, AuditSource, Scanned, ShillParams};
use crate::vocab::{DealerId, LotId};
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A page's size when the caller names none.
const DEFAULT_LIMIT: usize = 100;
/// The largest page (and the most report rows) a caller may ask for.
const MAX_LIMIT: usize = 500;

/// What the audit routes need: the journal's read side and the report's settings.
pub struct AuditState {
    /// The journal, opened read-only per request.
    pub source: Arc<AuditSource>,
    /// `[audit]`'s thresholds; `from` and `to` are set per request.
    pub shill: ShillParams,
    /// The default window's length (ms).
    pub window_ms: u64,
    /// One audit at a time: each is a whole replay (CPU and the journal's read side).
    pub gate: Arc<Semaphore>,
}

/// The query parameters of every audit route, as strings so a bad one is a
/// contract-shaped `400` naming it.
#[derive(Deserialize)]
struct Params {
    after: Option<String>,
    limit: Option<String>,
    from: Option<String>,
    to: Option<String>,
    at: Option<String>,
    window_s: Option<String>,
}

impl Params {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit must be from 1 to {MAX_LIMIT}"))
                }),
        }
    }

    fn after(&self) -> Result<u64, ApiError> {
        self.after.as_deref().map_or(Ok(0), |raw| {
            raw.parse().map_err(|_| {
                ApiError::bad_request("after must be a seq (the previous page's next)")
            })
        })
    }

    fn time(raw: &Option<String>, name: &str) -> Result<Option<u64>, ApiError> {
        raw.as_deref()
            .map(|t| parse_time(t).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
            .transpose()
    }
}

/// The audit routes, for any application state that holds the API's.
pub fn router<S>() -> Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/audit/auctions/{id}/attempts", get(auction_attempts))
        .route("/v1/audit/auctions/{id}/leader", get(leader))
        .route("/v1/audit/dealers/{id}/attempts", get(dealer_attempts))
        .route("/v1/audit/bids/{dealer}/{bid_id}", get(bid))
        .route("/v1/audit/shill", get(shill))
}

/// Scans the journal into `sink` on a blocking thread, after checking the caller is the
/// admin; `429 busy` while another audit runs.
async fn scan<S: AuditSink + Send + 'static>(
    s: &AppState,
    caller: &Caller,
    sink: S,
) -> Result<(S, Scanned), ApiError> {
    require_admin(caller)?;
    let audit = &s.audit;
    let Ok(_permit) = audit.gate.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            "another audit is reading the journal; retry when it is done",
        ));
    };
    audit.source.clone().scan_blocking(sink).await.map_err(|e| {
        tracing::warn!(error = %e, "audit: the journal could not be read");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the journal could not be read for the audit; retry",
        )
    })
}

/// `{attempts, next, scanned}` and the fields naming what was asked for.
fn page_json(asked: Value, page: &Page, scanned: &Scanned) -> Value {
    let mut body = asked;
    body["attempts"] = page.attempts.iter().map(attempt_json).collect();
    body["next"] = page.next.map_or(Value::Null, Value::from);
    body["scanned"] = json!({"commands": scanned.commands, "last_seq": scanned.last_seq});
    body
}

/// Parses a path id; the admin check comes first, so a non-admin learns nothing.
fn id<T: std::str::FromStr>(caller: &Caller, raw: &str, what: &str) -> Result<T, ApiError> {
    require_admin(caller)?;
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// `GET /v1/audit/auctions/{id}/attempts?after=&limit=` (admin).
async fn auction_attempts(
    State(s): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let lot: LotId = id(&caller, &raw, "auction")?;
    let sink = ByAuction::new(lot, q.after()?, q.limit()?);
    let (found, scanned) = scan(&s, &caller, sink).await?;
    if !found.listed {
        return Err(ApiError::not_found("auction"));
    }
    let asked = json!({"auction": lot.to_string()});
    Ok(Json(page_json(asked, &found.page(), &scanned)))
}

/// `GET /v1/audit/auctions/{id}/leader?at=` (admin).
async fn leader(
    State(s): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let lot: LotId = id(&caller, &raw, "auction")?;
    let at = Params::time(&q.at, "at")?
        .ok_or_else(|| ApiError::bad_request("at is required (ms, or 2026-12-07T12:00:00Z)"))?;
    let (found, _) = scan(&s, &caller, LeaderAt::new(lot, at)).await?;
    let state = found.state.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such auction at that moment",
        )
    })?;
    Ok(Json(leader_json(&state)))
}

/// `GET /v1/audit/dealers/{id}/attempts?from=&to=&after=&limit=` (admin).
async fn dealer_attempts(
    State(s): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let dealer: DealerId = id(&caller, &raw, "dealer")?;
    let from = Params::time(&q.from, "from")?.unwrap_or(0);
    let to = Params::time(&q.to, "to")?.unwrap_or(u64::MAX);
    let sink = ByDealer::new(dealer, from, to, q.after()?, q.limit()?);
    let (found, scanned) = scan(&s, &caller, sink).await?;
    let asked = json!({
        "dealer": dealer.to_string(),
        "from": from,
        "to": (to != u64::MAX).then_some(to),
    });
    Ok(Json(page_json(asked, &found.page(), &scanned)))
}

/// `GET /v1/audit/bids/{dealer}/{bid_id}` (admin): `404` if the engine never saw it.
async fn bid(
    State(s): State<AppState>,
    caller: Caller,
    Path((raw, bid_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dealer: DealerId = id(&caller, &raw, "dealer")?;
    let (found, scanned) = scan(&s, &caller, BidFate::new(dealer, &bid_id, MAX_LIMIT)).await?;
    let page = found.page();
    if page.attempts.is_empty() {
        return Err(ApiError::not_found("bid"));
    }
    let asked = json!({"dealer": dealer.to_string(), "bid_id": bid_id});
    Ok(Json(page_json(asked, &page, &scanned)))
}

/// `GET /v1/audit/shill?from=&to=&window_s=&limit=` (admin): the ranked report, at most
/// `limit` rows of pairs and of dealers.
async fn shill(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let limit = q.limit()?;
    let to = match Params::time(&q.to, "to")? {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let window_ms = match q.window_s.as_deref() {
        None => s.audit.window_ms,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|&w| w > 0)
            .and_then(|w| w.checked_mul(1000))
            .ok_or_else(|| {
                ApiError::bad_request("window_s must be a positive number of seconds")
            })?,
    };
    let from = Params::time(&q.from, "from")?.unwrap_or_else(|| to.saturating_sub(window_ms));
    let params = ShillParams {
        from,
        to,
        ..s.audit.shill.clone()
    };
    let (sink, scanned) = scan(&s, &caller, ShillSink::new(params)).await?;
    let report = sink.report();
    let rows = |rows: &[crate::audit::shill::Row]| -> Vec<Value> {
        rows.iter().take(limit).map(row_json).collect()
    };
    Ok(Json(json!({
        "from": report.from,
        "to": report.to,
        "lots": report.lots,
        "pairs": rows(&report.pairs),
        "dealers": rows(&report.dealers),
        "scanned": {"commands": scanned.commands, "last_seq": scanned.last_seq},
    })))
}
