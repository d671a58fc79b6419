//! The admin route that applies one half of a transfer of a dealer's deposit between
//! markets (docs/protocol.md, "Cluster: buying power across markets"):
//! `POST /v1/admin/transfers`.
//!
//! The cluster's coordinator (or an operator) calls it on the market the deposit leaves
//! (`direction: out`) and, once that is accepted, on the market it goes to (`in`), with
//! the same transfer id. The answer is the journaled decision of that id in this market,
//! durable before it is sent: a decided transfer, accepted or refused, first or repeated,
//! is a 200 with its result, so a coordinator retrying after a lost answer reads the same
//! shape. Only a request that never reached the engine gets an error.

use super::routes::{require_admin, submit, ApiError, AppState, Body, Caller};
use crate::auction::{
    Command, Event, TransferOutcome, TransferRefusal, MAX_MARKET_NAME_BYTES, MAX_TRANSFER_ID_BYTES,
};
use crate::vocab::{DealerId, Fen, MAX_AMOUNT};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The transfer route, for any application state that holds the API's.
pub fn router<S>() -> Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/v1/admin/transfers", post(transfer))
}

/// A dealer as the body names it: `7` or `"D7"` (ids are the same in every market).
#[derive(Deserialize)]
#[serde(untagged)]
enum DealerRef {
    Number(u32),
    Id(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Way {
    Out,
    In,
}

#[derive(Deserialize)]
struct TransferBody {
    transfer: String,
    dealer: DealerRef,
    direction: Way,
    /// The peer market: where the deposit goes (out) or comes from (in).
    market: String,
    amount: u64,
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

/// The body as a command, or why it is not one.
fn command(b: TransferBody) -> Result<Command, ApiError> {
    if b.transfer.is_empty() || b.transfer.len() > MAX_TRANSFER_ID_BYTES {
        return Err(invalid("transfer must be 1 to 64 bytes"));
    }
    if b.market.is_empty() || b.market.len() > MAX_MARKET_NAME_BYTES {
        return Err(invalid("market must be 1 to 32 bytes"));
    }
    if b.amount == 0 || b.amount > MAX_AMOUNT {
        return Err(invalid("amount must be 1 to 10^12 fen"));
    }
    let dealer = match b.dealer {
        DealerRef::Number(n) => DealerId(n),
        DealerRef::Id(s) => s.parse().map_err(|_| ApiError::not_found("dealer"))?,
    };
    let (transfer, amount) = (b.transfer.into(), b.amount);
    Ok(match b.direction {
        Way::Out => Command::TransferOut {
            transfer,
            dealer,
            to: b.market,
            amount,
        },
        Way::In => Command::TransferIn {
            transfer,
            dealer,
            from: b.market,
            amount,
        },
    })
}

/// `POST /v1/admin/transfers` (admin): one half of a transfer; answered with its result.
async fn transfer(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<TransferBody>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    if s.accounts_from_cluster {
        // One half applied on its own would create or destroy buying power: in a cluster
        // both halves come from the control stream, in order.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "transfer_at_front_door",
            "this server is one market of a cluster: move a deposit with POST \
             /v1/cluster/transfers on a node's front door, which applies both halves",
        ));
    }
    let command = command(b)?;
    let (_, events) = submit(&s, command).await?;
    match events.first() {
        Some(Event::Transfer {
            record,
            duplicate,
            deposit,
        }) => Ok(Json(result_json(record, *duplicate, *deposit))),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the transfer was applied but its answer could not be read; send it again",
        )),
    }
}

/// A transfer's result as the wire shows it: the half as first decided (its terms, for a
/// repeat, are the first request's), and the dealer's deposit here now.
fn result_json(t: &crate::auction::Transfer, duplicate: bool, deposit: Fen) -> Value {
    let mut v = json!({
        "transfer": &*t.id,
        "direction": t.direction.as_str(),
        "dealer": t.dealer.to_string(),
        "market": t.peer,
        "amount": t.amount,
        "outcome": match t.outcome {
            TransferOutcome::Accepted => "accepted",
            TransferOutcome::Refused(_) => "refused",
        },
        "duplicate": duplicate,
        "deposit": deposit,
        "seq": t.seq,
    });
    if let TransferOutcome::Refused(r) = t.outcome {
        v["reason"] = r.reason().into();
        if let TransferRefusal::ExceedsFree { free } = r {
            v["free"] = free.into();
        }
    }
    v
}
