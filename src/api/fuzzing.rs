//! The HTTP API's decoders as the fuzz harness (`fuzz/`, crate `gavel-fuzz`) reaches them:
//! a body's bytes, or a query string, through the same decode and the same checks the
//! handlers make before anything reaches the engine (the handlers call those checks
//! themselves; only the choice of route is made here). Hidden: not part of the API.

use super::alliance::{self, InventoryQuery};
use super::reads::{self, ComplaintQuery, PageQuery};
use super::routes::{self, ApiError, ListQuery};
use crate::alliance::ItemId;
use crate::vocab::DealerId;
use axum::extract::Query;
use axum::http::Uri;
use serde::de::DeserializeOwned;

/// The routes whose JSON body [`check_body`] knows, by a short name (`POST /v1/listings`
/// is `validate::validate_listing`, already public).
pub const BODY_ROUTES: &[&str] = &[
    "sellers",
    "service-tokens",
    "dealers",
    "dealer-links",
    "dealer-deposit",
    "dealer-status",
    "decision",
    "retail",
    "return",
    "dispose",
    "complaints",
    "resolve",
    "ratings",
];

/// The routes whose query string [`check_query`] knows.
pub const QUERY_ROUTES: &[&str] = &[
    "auctions",
    "inventory",
    "complaints",
    "dealers",
    "catalogue",
];

/// A body for `route` (one of [`BODY_ROUTES`]): `Ok` when the handler would go on to the
/// engine, the contract's error otherwise.
pub fn check_body(route: &str, bytes: &[u8]) -> Result<(), ApiError> {
    routes::check_body(route, bytes)
        .or_else(|| alliance::check_body(route, bytes))
        .unwrap_or_else(|| Err(ApiError::bad_request(format!("no route {route:?}"))))
}

/// A query string (what follows `?`) for `route` (one of [`QUERY_ROUTES`]), read as axum's
/// `Query` reads it and checked as the handler checks it. A string that is no URI's query
/// never reaches a handler: it is refused here as it would be by the HTTP layer.
pub fn check_query(route: &str, query: &str) -> Result<(), ApiError> {
    let uri: Uri = format!("/q?{query}")
        .parse()
        .map_err(|_| ApiError::bad_request("not a URI's query"))?;
    match route {
        "auctions" => routes::check_auctions_query(&read::<ListQuery>(&uri)?),
        "inventory" => alliance::check_inventory_query(&read::<InventoryQuery>(&uri)?),
        "complaints" => reads::check_complaints_query(&read::<ComplaintQuery>(&uri)?),
        "dealers" => {
            let q = read::<PageQuery>(&uri)?;
            q.limit()?;
            q.after::<DealerId>("dealer").map(drop)
        }
        "catalogue" => {
            let q = read::<PageQuery>(&uri)?;
            q.limit()?;
            q.after::<ItemId>("inventory item").map(drop)
        }
        other => Err(ApiError::bad_request(format!("no route {other:?}"))),
    }
}

/// The query as axum's `Query` extractor reads it (its rejection is a 400).
fn read<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}
