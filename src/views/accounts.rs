//! Every account as the API reads it: names, and each dealer's status, deposit, credit
//! line and exposure (so its buying power left), its loans, and the last status change
//! the server has seen.
//!
//! Kept from durable events only: registrations (the name comes from the registering
//! command), `DealerChanged` (an operator's or the alliance's change of status or deposit),
//! and every move of a dealer's exposure: on the bid path the `Bid` (the bidder's) and
//! `Outbid` (the displaced leader's) events carry it, elsewhere `ExposureChanged` (a close,
//! a decision, a settle, a cancel); `CreditChanged` and `LoanChanged` for the line.
//! Rebuilt from the book after every recovery.

use crate::auction::{Command, Loan};
use crate::market::{self, Market};
use crate::store::Entry;
use crate::vocab::{DealerId, DealerStatus, Fen, LoanId, SellerId, ServiceId};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A dealer as the operator and the dealer itself see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealerView {
    /// Its id.
    pub id: DealerId,
    /// Display name.
    pub name: String,
    /// Whether it may bid.
    pub status: DealerStatus,
    /// Deposit, fen.
    pub deposit: Fen,
    /// Sum of its leading maxima and its sold-but-unpaid prices, fen.
    pub exposure: Fen,
    /// Its credit limit, fen (0: no line).
    pub credit_limit: Fen,
    /// The principal of its open loans, fen.
    pub drawn: Fen,
    /// The last status change seen since this server started (the book keeps the status,
    /// not the history, so after a restart this is `None` until the next change).
    pub last_change: Option<StatusChange>,
}

/// A change of a dealer's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status it changed to.
    pub status: DealerStatus,
    /// When (engine time, ms).
    pub at: u64,
    /// The operator's reason, or what the alliance's rules did.
    pub reason: String,
}

impl DealerView {
    /// What is left of its credit line: the limit less what is drawn, never below zero.
    pub fn available_credit(&self) -> Fen {
        self.credit_limit.saturating_sub(self.drawn)
    }

    /// Deposit × leverage + available credit, saturating (an over-the-cap figure is no
    /// real money); the book's `Book::buying_power`.
    pub fn buying_power(&self, leverage: u64) -> Fen {
        self.deposit
            .checked_mul(leverage)
            .unwrap_or(Fen::MAX)
            .saturating_add(self.available_credit())
    }

    /// What is left to bid with: buying power less exposure, never below zero.
    pub fn buying_power_left(&self, leverage: u64) -> Fen {
        self.buying_power(leverage).saturating_sub(self.exposure)
    }
}

#[derive(Default)]
struct State {
    dealers: BTreeMap<DealerId, DealerView>,
    loans: BTreeMap<LoanId, Loan>,
    sellers: BTreeMap<SellerId, String>,
    services: BTreeMap<ServiceId, String>,
}

/// Every account's name, and every dealer's standing in the book.
#[derive(Default)]
pub struct Accounts {
    state: RwLock<State>,
}

impl Accounts {
    /// Empty (filled by the engine's first `reset`).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// One dealer.
    pub fn dealer(&self, id: DealerId) -> Option<DealerView> {
        self.state.read().dealers.get(&id).cloned()
    }

    /// Dealers in id order, from after `after`, at most `limit`.
    pub fn dealers(&self, after: Option<DealerId>, limit: usize) -> Vec<DealerView> {
        let s = self.state.read();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        s.dealers
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// A dealer's loans in id order, from after `after`, at most `limit`.
    pub fn loans(&self, dealer: DealerId, after: Option<LoanId>, limit: usize) -> Vec<Loan> {
        self.loans_where(after, limit, |l| l.dealer == dealer)
    }

    /// Every dealer's loans in id order, from after `after`, at most `limit`.
    pub fn every_loan(&self, after: Option<LoanId>, limit: usize) -> Vec<Loan> {
        self.loans_where(after, limit, |_| true)
    }

    fn loans_where(
        &self,
        after: Option<LoanId>,
        limit: usize,
        keep: impl Fn(&Loan) -> bool,
    ) -> Vec<Loan> {
        let s = self.state.read();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        s.loans
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, l)| l)
            .filter(|l| keep(l))
            .take(limit)
            .cloned()
            .collect()
    }

    /// A loan.
    pub fn loan(&self, id: LoanId) -> Option<Loan> {
        self.state.read().loans.get(&id).cloned()
    }

    /// A dealer's name.
    pub fn dealer_name(&self, id: DealerId) -> Option<String> {
        self.state.read().dealers.get(&id).map(|d| d.name.clone())
    }

    /// A seller's name.
    pub fn seller_name(&self, id: SellerId) -> Option<String> {
        self.state.read().sellers.get(&id).cloned()
    }

    /// A service principal's name.
    pub fn service_name(&self, id: ServiceId) -> Option<String> {
        self.state.read().services.get(&id).cloned()
    }

    pub(super) fn reset(&self, market: &Market) {
        let book = market.book();
        let mut s = self.state.write();
        s.dealers = book
            .dealers()
            .iter()
            .map(|d| {
                let view = DealerView {
                    id: d.id,
                    name: d.name.clone(),
                    status: d.status,
                    deposit: d.deposit,
                    exposure: d.exposure,
                    credit_limit: d.credit.limit,
                    drawn: d.credit.drawn,
                    last_change: None,
                };
                (d.id, view)
            })
            .collect();
        s.loans = book.loans().iter().map(|l| (l.id, l.clone())).collect();
        s.sellers = book
            .sellers()
            .iter()
            .map(|x| (x.id, x.name.clone()))
            .collect();
        s.services = book
            .services()
            .iter()
            .map(|x| (x.id, x.name.clone()))
            .collect();
    }

    pub(super) fn registered_dealer(&self, entry: &Entry, id: DealerId) {
        if let Some(Command::RegisterDealer { name, deposit, .. }) = auction_command(entry) {
            self.state.write().dealers.insert(
                id,
                DealerView {
                    id,
                    name: name.clone(),
                    status: DealerStatus::Active,
                    deposit: *deposit,
                    exposure: 0,
                    credit_limit: 0,
                    drawn: 0,
                    last_change: None,
                },
            );
        }
    }

    pub(super) fn registered_seller(&self, entry: &Entry, id: SellerId) {
        if let Some(Command::RegisterSeller { name, .. }) = auction_command(entry) {
            self.state.write().sellers.insert(id, name.clone());
        }
    }

    pub(super) fn registered_service(&self, entry: &Entry, id: ServiceId) {
        if let Some(Command::RegisterService { name, .. }) = auction_command(entry) {
            self.state.write().services.insert(id, name.clone());
        }
    }

    /// A `DealerChanged`: status and deposit as they now are; a status that moved is
    /// recorded with the operator's reason, or `alliance` when the rules did it.
    pub(super) fn changed(
        &self,
        entry: &Entry,
        id: DealerId,
        status: DealerStatus,
        deposit: Fen,
        exposure: Fen,
    ) {
        let mut s = self.state.write();
        let Some(d) = s.dealers.get_mut(&id) else {
            return;
        };
        if d.status != status {
            let reason = match auction_command(entry) {
                Some(Command::SetDealerStatus { reason, .. }) => reason.clone(),
                _ => "alliance rules: a violation with two uncorrected warnings".to_string(),
            };
            d.last_change = Some(StatusChange {
                status,
                at: entry.now_ms,
                reason,
            });
        }
        d.status = status;
        d.deposit = deposit;
        d.exposure = exposure;
    }

    pub(super) fn exposure(&self, id: DealerId, exposure: Fen) {
        if let Some(d) = self.state.write().dealers.get_mut(&id) {
            d.exposure = exposure;
        }
    }

    /// A `CreditChanged`: the line as it now is.
    pub(super) fn credit(&self, id: DealerId, limit: Fen, drawn: Fen) {
        if let Some(d) = self.state.write().dealers.get_mut(&id) {
            d.credit_limit = limit;
            d.drawn = drawn;
        }
    }

    /// A `LoanChanged`: the loan as it now is.
    pub(super) fn loan_changed(&self, loan: &Loan) {
        self.state.write().loans.insert(loan.id, loan.clone());
    }
}

/// The auction command a journal entry holds, if it holds one.
fn auction_command(entry: &Entry) -> Option<&Command> {
    match &entry.command {
        market::Command::Auction(c) => Some(c),
        _ => None,
    }
}
