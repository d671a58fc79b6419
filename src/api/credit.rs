//! HTTP routes of the dealer credit line (车商贷): an operator sets a dealer's limit and
//! records repayments, the buyer (or an operator) finances a won car, and the dealer and
//! operators read the line with its loans (docs/protocol.md, "Credit lines").
//!
//! Every change is a journaled auction command through the engine, answered once durable
//! from the durable views (`crate::views::Accounts`), which the engine publishes to before
//! it answers.

use super::reads::PageQuery;
use super::routes::{
    check_amount, parse_id, require_admin, submit, ApiError, AppState, Body, Caller,
};
use crate::auction::{Borrower, Command, Loan};
use crate::directory::Principal;
use crate::vocab::{DealerId, LoanId, LotId};
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The credit line's routes, for any application state that holds the API's.
pub fn router<S>() -> Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/dealers/{id}/credit", post(set_limit).get(line))
        .route("/v1/auctions/{id}/finance", post(finance))
        .route("/v1/loans/{id}/repay", post(repay))
}

/// A loan as the wire shows it.
pub(crate) fn loan_json(l: &Loan) -> Value {
    json!({
        "id": l.id.to_string(),
        "auction": l.lot.to_string(),
        "dealer": l.dealer.to_string(),
        "principal": l.principal,
        "drawn_at": l.drawn_at,
        "due_at": l.due_at,
        "status": match (l.repaid_at, l.overdue) {
            (Some(_), _) => "repaid",
            (None, true) => "overdue",
            (None, false) => "open",
        },
        "overdue": l.overdue,
        "repaid_at": l.repaid_at,
    })
}

/// The dealer's line: its money as `/v1/me` shows it, and a page of its loans.
fn line_json(s: &AppState, dealer: DealerId, page: &PageQuery) -> Result<Value, ApiError> {
    let limit = page.limit()?;
    let after: Option<LoanId> = page.after("loan")?;
    let d = s
        .accounts
        .dealer(dealer)
        .ok_or_else(|| ApiError::not_found("dealer"))?;
    let loans = s.accounts.loans(dealer, after, limit);
    let next = match loans.last() {
        Some(l) if loans.len() == limit => Value::String(l.id.to_string()),
        _ => Value::Null,
    };
    let mut v = super::reads::dealer_json(&d, s.lots.leverage());
    v["loans"] = loans.iter().map(loan_json).collect();
    v["next"] = next;
    Ok(v)
}

#[derive(Deserialize)]
struct LimitBody {
    limit: u64,
}

/// `POST /v1/dealers/{id}/credit` (admin): grant, change or withdraw (0) the limit.
async fn set_limit(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<LimitBody>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let dealer: DealerId = parse_id(&id, "dealer")?;
    let limit = check_amount(b.limit, "limit")?;
    submit(&s, Command::SetCreditLimit { dealer, limit }).await?;
    line_json(&s, dealer, &PageQuery::first()).map(Json)
}

/// `GET /v1/dealers/{id}/credit` (the dealer itself, admin): the line and its loans.
async fn line(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let dealer: DealerId = parse_id(&id, "dealer")?;
    match caller.0 {
        Principal::Admin => {}
        Principal::Dealer(d) if d == dealer => {}
        _ => return Err(ApiError::forbidden()),
    }
    line_json(&s, dealer, &q).map(Json)
}

/// `POST /v1/auctions/{id}/finance` (the buyer, admin): pay for a won car from the
/// buyer's line; answered with the loan.
async fn finance(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let lot: LotId = parse_id(&id, "auction")?;
    let by = match caller.0 {
        Principal::Admin => Borrower::Admin,
        Principal::Dealer(d) => Borrower::Dealer(d),
        _ => return Err(ApiError::forbidden()),
    };
    let (_, events) = submit(&s, Command::Finance { lot, by }).await?;
    let loan = loan_of(&events)?;
    Ok((StatusCode::CREATED, Json(loan_json(&loan))))
}

/// `POST /v1/loans/{id}/repay` (admin): the loan was repaid in full.
async fn repay(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let loan: LoanId = parse_id(&id, "loan")?;
    let (_, events) = submit(&s, Command::Repay { loan }).await?;
    Ok(Json(loan_json(&loan_of(&events)?)))
}

/// The loan a step's events carry.
fn loan_of(events: &[crate::auction::Event]) -> Result<Loan, ApiError> {
    events
        .iter()
        .find_map(|e| match e {
            crate::auction::Event::LoanChanged(l) => Some((**l).clone()),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the loan changed but could not be read; read the line back",
            )
        })
}
