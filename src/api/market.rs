//! Market data for members (issue 24 §3), a backward-compatible part of the v1 contract
//! (docs/protocol.md, "Market data"): `GET /v1/market/prices` and `GET /v1/market/history`.
//!
//! A member's resource: dealers in good standing and the operator read both; any other
//! dealer gets 403 `not_in_good_standing`. A seller reads only the price history of the
//! model of a car it listed (`history?lot=`). Everything comes from
//! [`crate::views::MarketData`], kept as lots close: a read sorts at most one group's
//! window and never walks the history.

use super::routes::{parse_id, ApiError, AppState, Caller};
use super::validate::check_name;
use crate::directory::Principal;
use crate::views::market_data::{fold, Filter, Key, PriceRow, Sale};
use crate::views::MarketDataConfig;
use crate::vocab::LotId;
use axum::extract::{FromRef, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Rows of a prices page when the caller names no `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The largest page, of rows or of sales.
const MAX_LIMIT: usize = 500;
/// Longest `after` cursor accepted: the hex of a key of four bounded names, with room.
const MAX_CURSOR_CHARS: usize = 4_096;

/// The market data's routes.
pub fn router<S>() -> axum::Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/market/prices", get(prices))
        .route("/v1/market/history", get(history))
}

/// A member may read market data: the operator, or a dealer in good standing.
fn member(s: &AppState, caller: &Caller) -> Result<(), ApiError> {
    match caller.0 {
        Principal::Admin => Ok(()),
        Principal::Dealer(d) if s.alliance.good_standing(d) => Ok(()),
        Principal::Dealer(_) => Err(not_in_good_standing()),
        Principal::Seller(_) | Principal::Service(_) => Err(ApiError::forbidden()),
    }
}

fn not_in_good_standing() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_in_good_standing",
        "market data is for dealers in good standing: active, no uncorrected warning, \
         and not rated below the alliance's threshold",
    )
}

/// Every query parameter as text, checked by hand so each problem is a contract-shaped
/// 400 naming the parameter.
#[derive(Deserialize)]
struct MarketQuery {
    make: Option<String>,
    model: Option<String>,
    year_band: Option<String>,
    year: Option<String>,
    city: Option<String>,
    lot: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// A name parameter: absent, or checked as a listing's and folded as market data keys are.
fn name(raw: Option<&str>, param: &str) -> Result<Option<String>, ApiError> {
    raw.map(|v| {
        check_name(v)
            .map(fold)
            .map_err(|m| ApiError::bad_request(format!("{param} {m}")))
    })
    .transpose()
}

fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// The band's first year, from `year_band=2019-2021` (a band as configured) or `year=2020`
/// (the band it falls in).
fn band(q: &MarketQuery, config: &MarketDataConfig) -> Result<Option<u16>, ApiError> {
    let year = |raw: &str, what: &str| {
        raw.parse::<u16>()
            .map_err(|_| ApiError::bad_request(format!("{what} must be a model year")))
    };
    match (q.year_band.as_deref(), q.year.as_deref()) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::bad_request("give year_band or year, not both")),
        (None, Some(y)) => Ok(Some(config.band_of(year(y, "year")?))),
        (Some(b), None) => {
            let (from, to) = b
                .split_once('-')
                .ok_or_else(|| ApiError::bad_request("year_band must be FROM-TO, as 2019-2021"))?;
            let from = year(from, "year_band")?;
            let to = year(to, "year_band")?;
            if config.band_of(from) != from || config.band_end(from) != to {
                let (f, t) = (config.band_of(from), config.band_end(config.band_of(from)));
                return Err(ApiError::bad_request(format!(
                    "year_band must be a band of {} model years, as {f}-{t}",
                    config.year_band_years
                )));
            }
            Ok(Some(from))
        }
    }
}

/// The opaque `next` cursor: the hex of the last row's key as a JSON array.
fn cursor(key: &Key) -> String {
    let parts = json!([key.make, key.model, key.band, key.city]);
    hex::encode(parts.to_string())
}

fn parse_cursor(raw: &str) -> Result<Key, ApiError> {
    let bad = || ApiError::bad_request("after must be the next cursor of a previous page");
    if raw.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let bytes = hex::decode(raw).map_err(|_| bad())?;
    let (make, model, band, city): (String, String, u16, Option<String>) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok(Key {
        make,
        model,
        band,
        city,
    })
}

/// One row of `prices`, as the contract shapes it (`gavel replay --market-data` prints the
/// same).
pub fn row_json(r: &PriceRow, config: &MarketDataConfig) -> Value {
    let c = &r.counts;
    json!({
        "make": r.key.make,
        "model": r.key.model,
        "year_band": {"from": r.key.band, "to": config.band_end(r.key.band)},
        "city": r.key.city,
        "closed": c.closed(),
        "sold": c.sold_total(),
        "sold_below_reserve": c.sold_below_reserve,
        "declined": c.declined,
        "no_bids": c.no_bids,
        "sell_through_permille": c.sell_through_permille(),
        "recent": {
            "closed": r.window_closed,
            "sold": r.window_sold,
            "median_price": r.median_price,
            "min_price": r.min_price,
            "max_price": r.max_price,
            "median_bids": r.median_bids,
            "median_extensions": r.median_extensions,
            "last_ended_at": r.last_ended_at,
        },
    })
}

/// A model's `history` body: `{make, model, sales}`, the sales newest first.
pub fn history_json(make: &str, model: &str, sales: &[Sale]) -> Value {
    let sales: Vec<Value> = sales.iter().map(sale_json).collect();
    json!({ "make": make, "model": model, "sales": sales })
}

fn sale_json(s: &Sale) -> Value {
    json!({
        "lot": s.lot.to_string(),
        "ended_at": s.ended_at,
        "price": s.price,
        "year": s.year,
        "city": s.city,
        "below_reserve": s.below_reserve,
    })
}

/// A body that changes as lots close: revalidated on every use.
fn fresh(body: Value) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Json(body))
}

/// `GET /v1/market/prices`: one row per (make, model, year band, city) the filters keep
/// (`make`, `model`, `year_band` or `year`, `city`; each optional), in that order, paged
/// by `limit` and the opaque `after`.
async fn prices(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<MarketQuery>,
) -> Result<impl IntoResponse, ApiError> {
    member(&s, &caller)?;
    if q.lot.is_some() {
        return Err(ApiError::bad_request("lot is a parameter of the history"));
    }
    let limit = limit(q.limit.as_deref())?;
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    let (rows, config) = s.market_data.read(|m| {
        let config = *m.config();
        band(&q, &config).map(|band| {
            let filter = Filter {
                make: name(q.make.as_deref(), "make")?,
                model: name(q.model.as_deref(), "model")?,
                band,
                city: name(q.city.as_deref(), "city")?,
            };
            Ok::<_, ApiError>((m.prices(&filter, after.as_ref(), limit), config))
        })
    })??;
    let next = match rows.last() {
        Some(last) if rows.len() == limit => Value::String(cursor(&last.key)),
        _ => Value::Null,
    };
    let rows: Vec<Value> = rows.iter().map(|r| row_json(r, &config)).collect();
    Ok(fresh(json!({
        "prices": rows,
        "next": next,
        "year_band_years": config.year_band_years,
        "window": config.window,
    })))
}

/// `GET /v1/market/history`: a model's most recent sales, newest first: by `make` and
/// `model` for members, or by `lot` for members and that lot's seller.
async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<MarketQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = limit(q.limit.as_deref())?;
    let (make, model) = match (q.lot.as_deref(), &q.make, &q.model) {
        (Some(raw), None, None) => {
            let lot: LotId = parse_id(raw, "auction")?;
            let seller = s
                .lots
                .seller_of(lot)
                .ok_or_else(|| ApiError::not_found("auction"))?;
            match caller.0 {
                Principal::Seller(me) if me == seller => {}
                _ => member(&s, &caller)?,
            }
            let listing = s
                .lots
                .listing(lot)
                .ok_or_else(|| ApiError::not_found("auction"))?;
            (fold(&listing.vehicle.make), fold(&listing.vehicle.model))
        }
        (None, Some(make), Some(model)) => {
            member(&s, &caller)?;
            let make = name(Some(make), "make")?.unwrap_or_default();
            let model = name(Some(model), "model")?.unwrap_or_default();
            (make, model)
        }
        _ => {
            return Err(ApiError::bad_request(
                "name the model by make and model, or by lot",
            ))
        }
    };
    let sales = s.market_data.read(|m| m.history(&make, &model, limit));
    Ok(fresh(history_json(&make, &model, &sales)))
}
