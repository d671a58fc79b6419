//! The control stream: what every market must apply, in one order — accounts, dealer
//! status changes, the alliance's warnings, the loans markets made on the cars they sold,
//! and transfers of buying power between markets.
//!
//! Keys (`{prefix}` is the registry's hash tag; `{prefix:market}` a market's):
//!
//! | key                              | type   | holds |
//! |----------------------------------|--------|-------|
//! | `{prefix}:cluster:control`       | stream | one [`ControlEntry`] per entry, field `c` = MessagePack |
//! | `{prefix}:cluster:results`       | hash   | entry id → JSON result, written by the entry's *home* market once applied (for a transfer: the market it leaves; `<entry id>:in` by the market it arrives in) |
//! | `{prefix:market}:control_cursor` | string | the last control entry id `market` has applied |
//!
//! Why one stream: a dealer's id is its position among registrations, and every market
//! must give it the same id, so every market applies registrations in the same order. The
//! markets' journals stay separate; each applies the stream's entries as ordinary
//! journaled commands, in stream order, and remembers how far it got. An entry applied
//! twice (a crash between applying it and saving the cursor) changes nothing: a
//! registration whose token is known is skipped, a status already in force is skipped,
//! and a transfer half is idempotent by its id.
//!
//! A dealer's deposit is its allocation in its *home* market (`home`); the other markets
//! register it with none, until a transfer moves some there. Credit lines are granted in
//! the home market only (the market servers' own routes), so no line is counted twice.

use super::registry::Conn;
use crate::alliance::{AllianceCommand, WarningId};
use crate::auction::{self, Event as AuctionEvent};
use crate::market::{Command, Event};
use crate::server::Running;
use crate::views::DealerView;
use crate::vocab::{DealerId, DealerStatus};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;

/// One entry of the control stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControlEntry {
    /// Create an account in every market (`RegisterSeller`, `RegisterDealer` or
    /// `RegisterService`); `home` holds a dealer's deposit and answers the request.
    Account {
        /// The registration, as the single-node API would submit it.
        command: Command,
        /// The market that keeps the deposit and writes the result.
        home: String,
    },
    /// A dealer's status changed in `origin` (a market's sanction, or `operator`): every
    /// other market applies it.
    Status {
        /// The dealer.
        dealer: DealerId,
        /// Its new status.
        status: DealerStatus,
        /// Why, as the origin said it.
        reason: String,
        /// The market it happened in, or `operator`.
        origin: String,
    },
    /// `origin` issued `dealer` a warning, or corrected one: every other market notes it,
    /// so it counts toward expulsion there too.
    Warning {
        /// The dealer warned.
        dealer: DealerId,
        /// The market that issued it.
        origin: String,
        /// Its id in `origin`.
        warning: WarningId,
        /// When `origin` issued it.
        issued_at: u64,
        /// When `origin` corrected it, if it has.
        corrected_at: Option<u64>,
    },
    /// `origin` financed its sold auction `auction` with `dealer`'s `loan`, or (`repaid`)
    /// the loan was repaid: every other market notes it, so that the alliance market,
    /// which holds the car, can tell a car sold out of trust.
    Loan {
        /// The market whose book holds the loan and the auction.
        origin: String,
        /// The auction the loan paid for.
        auction: crate::vocab::LotId,
        /// The loan's id in `origin`.
        loan: crate::vocab::LoanId,
        /// The borrower.
        dealer: DealerId,
        /// Whether it has been repaid.
        repaid: bool,
    },
    /// Move `amount` of `dealer`'s deposit from market `from` to market `to`: `from`
    /// applies `TransferOut` and publishes its result; `to` waits for that result and,
    /// if the deposit left, applies `TransferIn`. Both halves are idempotent by `transfer`.
    Transfer {
        /// The transfer's id (both halves carry it).
        transfer: String,
        /// The dealer.
        dealer: DealerId,
        /// The market the deposit leaves.
        from: String,
        /// The market it arrives in.
        to: String,
        /// How much, fen.
        amount: crate::vocab::Fen,
    },
}

/// The results-hash field of a transfer's second half (the first half's is the entry id).
pub fn in_field(entry: &str) -> String {
    format!("{entry}:in")
}

/// A transfer half's event as the results hash keeps it.
fn transfer_json(events: &[Event]) -> serde_json::Value {
    for e in events {
        if let Event::Auction(AuctionEvent::Transfer {
            record, deposit, ..
        }) = e
        {
            return match record.outcome {
                auction::TransferOutcome::Accepted => {
                    serde_json::json!({"accepted": true, "deposit": deposit})
                }
                auction::TransferOutcome::Refused(r) => {
                    let mut v = serde_json::json!({"accepted": false, "reason": r.reason()});
                    if let auction::TransferRefusal::ExceedsFree { free } = r {
                        v["free"] = free.into();
                    }
                    v
                }
            };
        }
    }
    serde_json::json!({"accepted": false, "reason": "refused"})
}

/// The prefix every relayed status reason carries, so a relayed change is not relayed
/// back (markets relay only changes whose reason lacks it).
pub const RELAYED: &str = "cluster: ";

/// The control stream's keys.
#[derive(Clone, Debug)]
pub struct ControlKeys {
    /// The stream.
    pub stream: String,
    /// Results by entry id.
    pub results: String,
}

impl ControlKeys {
    /// Under the registry's `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{{{prefix}}}:cluster:control"),
            results: format!("{{{prefix}}}:cluster:results"),
        }
    }
}

/// Appends `entry`; returns its stream id.
pub async fn append(
    conn: &mut Conn,
    keys: &ControlKeys,
    entry: &ControlEntry,
) -> redis::RedisResult<String> {
    let bytes = rmp_serde::to_vec_named(entry).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::TypeError, "encode", e.to_string()))
    })?;
    conn.xadd(&keys.stream, "*", &[("c", bytes)]).await
}

/// What `market` did with an entry, for the home market to publish.
fn result_json(events: &[Event]) -> serde_json::Value {
    for e in events {
        match e {
            Event::Auction(AuctionEvent::SellerRegistered { seller }) => {
                return serde_json::json!({"id": seller.to_string()})
            }
            Event::Auction(AuctionEvent::DealerRegistered { dealer }) => {
                return serde_json::json!({"id": dealer.to_string()})
            }
            Event::Auction(AuctionEvent::ServiceRegistered { service }) => {
                return serde_json::json!({"id": service.to_string()})
            }
            Event::Auction(AuctionEvent::Refused(r)) => {
                return serde_json::json!({"refused": format!("{r:?}")})
            }
            _ => {}
        }
    }
    serde_json::json!({"applied": true})
}

/// Applies the control stream to one market this node serves, from its cursor on, until
/// `stop` or the market's server stops. Entries are applied one at a time and the cursor
/// saved after each: an engine that cannot make one durable is asked again.
pub async fn ingest(
    mut conn: Conn,
    keys: ControlKeys,
    market: String,
    market_prefix: String,
    running: RunningParts,
    mut stop: watch::Receiver<bool>,
) {
    let cursor_key = cursor_key(&market_prefix);
    let mut cursor: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if cursor.is_none() {
            match conn.get::<_, Option<String>>(&cursor_key).await {
                Ok(c) => cursor = Some(c.unwrap_or_else(|| "0-0".to_owned())),
                Err(e) => {
                    tracing::warn!(%market, error = %e, "control cursor unreadable");
                    pause(&mut stop).await;
                    continue;
                }
            }
        }
        let from = cursor.clone().unwrap_or_else(|| "0-0".to_owned());
        let opts = StreamReadOptions::default().count(64).block(200);
        let reply: StreamReadReply =
            match conn.xread_options(&[&keys.stream], &[&from], &opts).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%market, error = %e, "control stream unreadable");
                    pause(&mut stop).await;
                    continue;
                }
            };
        for key in reply.keys {
            for entry in key.ids {
                let Some(redis::Value::BulkString(bytes)) = entry.map.get("c") else {
                    tracing::error!(%market, id = %entry.id, "control entry without a body; skipped");
                    cursor = Some(entry.id.clone());
                    continue;
                };
                let decoded: ControlEntry = match rmp_serde::from_slice(bytes) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(%market, id = %entry.id, error = %e, "control entry undecodable; skipped");
                        cursor = Some(entry.id.clone());
                        continue;
                    }
                };
                match apply(&running, &market, decoded, &mut conn, &keys, &entry.id).await {
                    Applied::Done(result) => {
                        if let Some((field, result)) = result {
                            // Published before the cursor moves: a market waiting for
                            // this result must find it, so a failed write applies the
                            // entry again (idempotent) rather than skip it.
                            let published: redis::RedisResult<()> =
                                conn.hset(&keys.results, field, result.to_string()).await;
                            if let Err(e) = published {
                                tracing::warn!(%market, error = %e, "control result not published; applying the entry again");
                                pause(&mut stop).await;
                                break;
                            }
                        }
                        let saved: redis::RedisResult<()> = conn.set(&cursor_key, &entry.id).await;
                        if let Err(e) = saved {
                            tracing::warn!(%market, error = %e, "control cursor not saved; the entry will be seen again");
                        }
                        cursor = Some(entry.id.clone());
                    }
                    Applied::Retry => {
                        pause(&mut stop).await;
                        break;
                    }
                }
            }
        }
        if running.stopped() {
            return;
        }
    }
}

async fn pause(stop: &mut watch::Receiver<bool>) {
    let _ = tokio::time::timeout(Duration::from_millis(200), stop.changed()).await;
}

/// The parts of a market's server the control stream needs.
#[derive(Clone)]
pub struct RunningParts {
    /// Submit commands.
    pub engine: crate::engine::EngineHandle,
    /// Who a token digest is.
    pub directory: std::sync::Arc<crate::directory::Directory>,
    /// Dealers' statuses.
    pub accounts: std::sync::Arc<crate::views::Accounts>,
    /// The alliance: the warnings this market issued, and those it noted.
    pub alliance: std::sync::Arc<crate::views::AllianceBoard>,
    /// Turns true when the engine has stopped.
    pub done: watch::Receiver<bool>,
}

impl RunningParts {
    /// From a running market server.
    pub fn of(running: &Running) -> Self {
        Self {
            engine: running.engine.clone(),
            directory: running.directory.clone(),
            accounts: running.accounts.clone(),
            alliance: running.alliance.clone(),
            done: running.done(),
        }
    }

    fn stopped(&self) -> bool {
        *self.done.borrow()
    }
}

enum Applied {
    /// Applied (or nothing to do); the result to publish (results-hash field and value),
    /// if this market publishes one.
    Done(Option<(String, serde_json::Value)>),
    /// The engine could not make it durable now.
    Retry,
}

async fn apply(
    running: &RunningParts,
    market: &str,
    entry: ControlEntry,
    conn: &mut Conn,
    keys: &ControlKeys,
    entry_id: &str,
) -> Applied {
    let publish = |v: serde_json::Value| Some((entry_id.to_owned(), v));
    match entry {
        ControlEntry::Account { command, home } => {
            let is_home = home == market;
            let Command::Auction(mut c) = command else {
                return Applied::Done(None);
            };
            let digest = match &mut c {
                auction::Command::RegisterSeller { token_hash, .. }
                | auction::Command::RegisterService { token_hash, .. } => *token_hash,
                auction::Command::RegisterDealer {
                    token_hash,
                    deposit,
                    ..
                } => {
                    if !is_home {
                        *deposit = 0;
                    }
                    *token_hash
                }
                _ => return Applied::Done(None),
            };
            if let Some(p) = running.directory.principal(&digest) {
                // Applied before (a crash between applying and saving the cursor).
                let id = match p {
                    crate::directory::Principal::Seller(s) => s.to_string(),
                    crate::directory::Principal::Dealer(d) => d.to_string(),
                    crate::directory::Principal::Service(s) => s.to_string(),
                    crate::directory::Principal::Admin => String::new(),
                };
                return Applied::Done(if is_home {
                    publish(serde_json::json!({ "id": id }))
                } else {
                    None
                });
            }
            match running.engine.submit(Command::Auction(c)).await {
                Ok(applied) if is_home => Applied::Done(publish(result_json(&applied.events))),
                Ok(_) => Applied::Done(None),
                Err(_) => Applied::Retry,
            }
        }
        ControlEntry::Status {
            dealer,
            status,
            reason,
            origin,
        } => {
            if origin == market {
                return Applied::Done(None);
            }
            if running
                .accounts
                .dealer(dealer)
                .is_some_and(|d| d.status == status)
            {
                return Applied::Done(None);
            }
            let command = auction::Command::SetDealerStatus {
                dealer,
                status,
                reason: format!("{RELAYED}{origin}: {reason}"),
            };
            match running.engine.submit(Command::Auction(command)).await {
                Ok(_) => Applied::Done(None),
                Err(_) => Applied::Retry,
            }
        }
        ControlEntry::Warning {
            dealer,
            origin,
            warning,
            issued_at,
            corrected_at,
        } => {
            if origin == market {
                return Applied::Done(None);
            }
            let known = running.alliance.remote_warning(dealer, &origin, warning);
            if known.is_some_and(|w| w.covers(issued_at, corrected_at)) {
                return Applied::Done(None); // noted before, or restated: nothing new
            }
            let command = AllianceCommand::NoteRemoteWarning {
                dealer,
                market: origin,
                warning,
                issued_at,
                corrected_at,
            };
            note(running, market, command).await
        }
        ControlEntry::Loan {
            origin,
            auction,
            loan,
            dealer,
            repaid,
        } => {
            if origin == market {
                return Applied::Done(None);
            }
            let known = running.alliance.remote_loan(&origin, auction);
            if known.is_some_and(|l| l.covers(loan, repaid)) {
                return Applied::Done(None); // noted before, or relayed again: nothing new
            }
            let command = AllianceCommand::NoteRemoteLoan {
                market: origin,
                auction,
                loan,
                dealer,
                repaid,
            };
            note(running, market, command).await
        }
        ControlEntry::Transfer {
            transfer,
            dealer,
            from,
            to,
            amount,
        } => {
            if from == market {
                let command = auction::Command::TransferOut {
                    transfer: transfer.into(),
                    dealer,
                    to,
                    amount,
                };
                return match running.engine.submit(Command::Auction(command)).await {
                    Ok(applied) => Applied::Done(publish(transfer_json(&applied.events))),
                    Err(_) => Applied::Retry,
                };
            }
            if to != market {
                return Applied::Done(None);
            }
            // The deposit arrives only once it has left: wait (holding this market's
            // place in the stream) for the first half's result.
            let out: Option<String> = conn.hget(&keys.results, entry_id).await.unwrap_or(None);
            let Some(out) = out.and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
            else {
                return Applied::Retry;
            };
            if out.get("accepted") != Some(&serde_json::Value::Bool(true)) {
                return Applied::Done(None);
            }
            let command = auction::Command::TransferIn {
                transfer: transfer.into(),
                dealer,
                from,
                amount,
            };
            match running.engine.submit(Command::Auction(command)).await {
                Ok(applied) => {
                    Applied::Done(Some((in_field(entry_id), transfer_json(&applied.events))))
                }
                Err(_) => Applied::Retry,
            }
        }
    }
}

/// Waits until this market has applied the control stream up to its end as of now, then
/// appends an expulsion for every dealer expelled here (see `relay_status`).
async fn restate_expulsions(
    conn: &mut Conn,
    keys: &ControlKeys,
    market: &str,
    market_prefix: &str,
    running: &RunningParts,
    stop: &mut watch::Receiver<bool>,
) {
    let last: redis::streams::StreamRangeReply = loop {
        match conn.xrevrange_count(&keys.stream, "+", "-", 1).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(%market, error = %e, "control stream unreadable; restating later");
                pause(stop).await;
                if *stop.borrow() || running.stopped() {
                    return;
                }
            }
        }
    };
    let Some(end) = last.ids.first().and_then(|e| stream_id(&e.id)) else {
        return; // an empty stream: nobody was ever registered
    };
    let cursor_key = cursor_key(market_prefix);
    loop {
        let cursor: Option<String> = conn.get(&cursor_key).await.unwrap_or(None);
        if cursor
            .as_deref()
            .and_then(stream_id)
            .is_some_and(|c| c >= end)
        {
            break;
        }
        pause(stop).await;
        if *stop.borrow() || running.stopped() {
            return;
        }
    }
    for d in every_dealer(running) {
        if d.status != DealerStatus::Expelled {
            continue;
        }
        let entry = ControlEntry::Status {
            dealer: d.id,
            status: DealerStatus::Expelled,
            reason: format!("restated by {market} when it changed hands"),
            origin: market.to_owned(),
        };
        if let Err(e) = append(conn, keys, &entry).await {
            tracing::warn!(%market, error = %e, "expulsion not restated");
        }
    }
}

/// The key of `market_prefix`'s market's control cursor: the last entry it applied.
fn cursor_key(market_prefix: &str) -> String {
    format!("{market_prefix}:control_cursor")
}

/// Every dealer of the market's accounts view, page by page.
fn every_dealer(running: &RunningParts) -> Vec<DealerView> {
    let mut all: Vec<DealerView> = Vec::new();
    loop {
        let page = running.accounts.dealers(all.last().map(|d| d.id), 1000);
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// A stream id (`<ms>-<seq>`) as a pair that orders as Redis orders ids.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Relays the status changes a market made by itself (its alliance's sanctions, an
/// operator on the market's own server), the warnings its alliance issued or corrected,
/// and its loans as they are opened and repaid to the control stream, until `stop` or the market stops. Polls the market's
/// accounts and alliance views; a change is relayed once per change seen by this server.
///
/// A server knows the changes it saw, not those of the server before it (the view keeps
/// no history across a restart), so a change made just before a node died could go
/// unrelayed. Expulsion must reach every market, so a new owner restates every expulsion
/// its market holds once its market has applied the control stream as far as it went
/// when the owner started (so an operator's reinstatement already on the stream is not
/// overridden; one appended in the moment between that catch-up and the restatement
/// would be, and the operator sees the restated expulsion on every market and can
/// reinstate again). Other markets skip a status they already have. A suspension made
/// in that last instant is not restated: it is not final, and the operator sees it on
/// the market that made it.
///
/// Warnings need no such care: a new owner starts having seen none, so after the same
/// catch-up it relays every warning its market issued, as it now is. Other markets skip
/// what they have noted already, and a note can neither un-correct a warning nor be
/// overridden by anything else on the stream.
pub async fn relay_status(
    mut conn: Conn,
    keys: ControlKeys,
    market: String,
    market_prefix: String,
    running: RunningParts,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen: std::collections::BTreeMap<DealerId, u64> = Default::default();
    let mut warned = std::collections::BTreeMap::new();
    let mut lent = std::collections::BTreeMap::new();
    restate_expulsions(
        &mut conn,
        &keys,
        &market,
        &market_prefix,
        &running,
        &mut stop,
    )
    .await;
    loop {
        pause(&mut stop).await;
        if *stop.borrow() || running.stopped() {
            return;
        }
        for d in every_dealer(&running) {
            let Some(change) = &d.last_change else {
                continue;
            };
            if change.reason.starts_with(RELAYED) || seen.get(&d.id) == Some(&change.at) {
                continue;
            }
            let entry = ControlEntry::Status {
                dealer: d.id,
                status: change.status,
                reason: change.reason.clone(),
                origin: market.clone(),
            };
            match append(&mut conn, &keys, &entry).await {
                Ok(_) => {
                    seen.insert(d.id, change.at);
                }
                Err(e) => {
                    tracing::warn!(%market, error = %e, "status relay failed; will retry")
                }
            }
        }
        relay_warnings(&mut conn, &keys, &market, &running, &mut warned).await;
        relay_loans(&mut conn, &keys, &market, &running, &mut lent).await;
    }
}

/// Appends every loan of this market's book that `relayed` does not hold as it now is (by
/// id: whether it is repaid), and records what was appended. A new owner starts having
/// relayed none, so it relays every loan again; other markets skip what they noted.
async fn relay_loans(
    conn: &mut Conn,
    keys: &ControlKeys,
    market: &str,
    running: &RunningParts,
    relayed: &mut std::collections::BTreeMap<crate::vocab::LoanId, bool>,
) {
    let mut after = None;
    loop {
        let page = running.accounts.every_loan(after, 1000);
        let Some(last) = page.last() else { return };
        after = Some(last.id);
        for l in page {
            let repaid = !l.is_open();
            if relayed.get(&l.id) == Some(&repaid) {
                continue;
            }
            let entry = ControlEntry::Loan {
                origin: market.to_owned(),
                auction: l.lot,
                loan: l.id,
                dealer: l.dealer,
                repaid,
            };
            match append(conn, keys, &entry).await {
                Ok(_) => {
                    relayed.insert(l.id, repaid);
                }
                Err(e) => {
                    tracing::warn!(%market, error = %e, "loan relay failed; will retry");
                    return;
                }
            }
        }
    }
}

/// Submits another market's note (a warning, a loan). A refused note (an origin name too
/// long, a dealer unknown here) is the origin's mistake, and retrying it would hold up
/// this market's stream: it is logged and passed.
async fn note(running: &RunningParts, market: &str, command: AllianceCommand) -> Applied {
    let what = format!("{command:?}");
    match running.engine.submit(Command::Alliance(command)).await {
        Ok(applied) => {
            for e in &applied.events {
                if let Event::Alliance(crate::alliance::AllianceEvent::Refused(r)) = e {
                    tracing::warn!(%market, note = %what, refusal = r.code(), "another market's note not taken");
                }
            }
            Applied::Done(None)
        }
        Err(_) => Applied::Retry,
    }
}

/// Appends every warning this market issued that `relayed` does not hold as it now is
/// (by id: whether it is corrected), and records what was appended.
async fn relay_warnings(
    conn: &mut Conn,
    keys: &ControlKeys,
    market: &str,
    running: &RunningParts,
    relayed: &mut std::collections::BTreeMap<WarningId, bool>,
) {
    let mut after = None;
    loop {
        let page = running.alliance.warnings_page(after, 1000);
        let Some(last) = page.last() else { return };
        after = Some(last.id);
        for w in page {
            if relayed.get(&w.id) == Some(&w.corrected()) {
                continue;
            }
            let entry = ControlEntry::Warning {
                dealer: w.dealer,
                origin: market.to_owned(),
                warning: w.id,
                issued_at: w.issued_at,
                corrected_at: w.corrected_at,
            };
            match append(conn, keys, &entry).await {
                Ok(_) => {
                    relayed.insert(w.id, w.corrected());
                }
                Err(e) => {
                    tracing::warn!(%market, error = %e, "warning relay failed; will retry");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{stream_id, ControlEntry};
    use crate::alliance::WarningId;
    use crate::vocab::DealerId;

    #[test]
    fn a_warning_entry_is_written_by_name_and_read_back() {
        let entry = ControlEntry::Warning {
            dealer: DealerId(3),
            origin: "east".into(),
            warning: WarningId(2),
            issued_at: 1_700_000_000_000,
            corrected_at: Some(1_700_000_001_000),
        };
        let bytes = rmp_serde::to_vec_named(&entry).expect("encodes");
        assert_eq!(
            &bytes[..9],
            b"\x81\xa7Warning",
            "named, as the other entries"
        );
        match rmp_serde::from_slice(&bytes).expect("decodes") {
            ControlEntry::Warning {
                dealer,
                origin,
                warning,
                corrected_at,
                ..
            } => assert_eq!(
                (dealer, origin.as_str(), warning, corrected_at),
                (DealerId(3), "east", WarningId(2), Some(1_700_000_001_000))
            ),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn stream_ids_order_as_redis_orders_them() {
        assert!(stream_id("1700000000000-10") > stream_id("1700000000000-9"));
        assert!(stream_id("1700000000001-0") > stream_id("1700000000000-99"));
        assert_eq!(stream_id("0-0"), Some((0, 0)));
        assert_eq!(stream_id("nonsense"), None);
    }
}
