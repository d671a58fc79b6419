//! The book: every lot and every dealer, and the one function that changes them.
//!
//! `apply(seq, now_ms, command)` is the whole interface that changes state. It reads no
//! clock and no random source, does no I/O and never lets hash-map order reach its output,
//! so the same command log always yields the same state and the same events. The market
//! (`crate::market`) owns the only live `Book` and is its only writer; the book also keeps
//! the market's sequence number and clock, which every command of the market passes
//! through ([`Book::stamp`]).
//!
//! This file holds the state, the reads and the dispatch of each command; the rest of
//! `impl Book` lives by job beside it: `bidding.rs` (a bid decided, pre-bids), `close.rs`
//! (timers, closes, the seller's decision, cancel, settle, `Resume`), `credit.rs`
//! (credit lines and loans) and `transfer.rs` (deposit moved between markets).

use super::bidding::Bid;
use super::command::{Command, Listing, TokenHash};
use super::credit::{CreditLine, Loan};
use super::event::{Event, LotStatus, Refusal};
use super::lot::Lot;
use super::membership::{ActiveIsMember, Membership};
use super::receipts::{Digest, Receipts};
use super::rules::Rules;
use super::transfer::{Direction, TransferTerms, Transfers};
use crate::vocab::{
    DealerId, DealerStatus, Fen, LoanId, LotId, SellerId, ServiceId, FEN_PER_YUAN, MAX_AMOUNT,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How often (in book time) a `Tick` looks for receipts past their retention. Pruning
/// scans every receipt, so it runs rarely; memory holds at most an hour's worth extra.
pub(super) const PRUNE_EVERY_MS: u64 = 3_600_000;

/// A dealer of the alliance and its standing in the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dealer {
    /// Its id.
    pub id: DealerId,
    /// Display name.
    pub name: String,
    /// Only `active` dealers may bid.
    pub status: DealerStatus,
    /// Deposit in fen.
    pub deposit: Fen,
    /// Sellers whose cars this dealer may not bid on (sorted, deduplicated).
    pub linked_sellers: Vec<SellerId>,
    /// Sum of this dealer's leading maxima, its pre-bid maxima and its sold-but-unpaid prices.
    pub exposure: Fen,
    /// Digest of its token.
    pub token_hash: TokenHash,
    /// First result of every `bid_id` this dealer used. Serialized in key order so the
    /// snapshot bytes do not depend on hash order.
    ///
    /// Shared, copy on write: the copy of the book a snapshot takes costs a pointer per
    /// dealer, not a walk over every receipt, so the engine's task never pays for the
    /// receipts' number; while the snapshot still holds it a bid copies only the part of
    /// the map its `bid_id` falls in (see [`Receipts`]).
    pub receipts: Arc<Receipts>,
    /// Its credit line (车商贷). Last, and left out while empty, so a dealer without one
    /// is written as dealers were before credit existed.
    #[serde(default, skip_serializing_if = "CreditLine::is_empty")]
    pub credit: CreditLine,
}

impl Dealer {
    /// The key of this dealer's receipt digests: the first half of its token's digest.
    /// It comes from the journal (so every replay computes the same digests), it differs
    /// between dealers, and it is not shown to anyone.
    fn receipt_key(&self) -> [u8; 16] {
        let mut key = [0; 16];
        key.copy_from_slice(&self.token_hash[..16]);
        key
    }

    /// The digest this dealer's receipt for `bid_id` is kept under.
    pub fn receipt_digest(&self, bid_id: &str) -> Digest {
        Digest::of(&self.receipt_key(), self.id, bid_id)
    }
}

/// A private seller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// Its id.
    pub id: SellerId,
    /// Display name.
    pub name: String,
    /// Digest of its token.
    pub token_hash: TokenHash,
}

/// A service principal (the alliance's consumer site).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its id.
    pub id: ServiceId,
    /// Display name.
    pub name: String,
    /// Digest of its token.
    pub token_hash: TokenHash,
}

/// All auction state. The timer index is derived and rebuilt on load; the market's
/// snapshot stores the rest ([`BookParts`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "BookParts")]
pub struct Book {
    pub(super) rules: Rules,
    pub(super) last_seq: u64,
    pub(super) last_now: u64,
    /// Book time of the last receipt pruning.
    pub(super) pruned_at: u64,
    pub(super) lots: Vec<Lot>,
    pub(super) dealers: Vec<Dealer>,
    pub(super) sellers: Vec<Seller>,
    pub(super) services: Vec<Service>,
    /// Every loan drawn on a credit line, in id order (see `super::credit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) loans: Vec<Loan>,
    /// Every transfer's half applied here, kept for good (see `super::transfer`).
    #[serde(default, skip_serializing_if = "Transfers::is_empty")]
    pub(super) transfers: Transfers,
    /// (deadline, lot) for every lot with a pending timer. Derived from `lots`.
    #[serde(skip)]
    pub(super) timers: BTreeSet<(u64, LotId)>,
    /// (due_at, loan) for every open loan not yet overdue. Derived from `loans`.
    #[serde(skip)]
    pub(super) loan_due: BTreeSet<(u64, LoanId)>,
    /// The loan that paid for each financed lot. Derived from `loans`.
    #[serde(skip)]
    pub(super) loan_of: BTreeMap<LotId, LoanId>,
}

/// A `Book` as stored: everything but the derived indexes.
#[derive(Clone, Debug, Deserialize)]
pub struct BookParts {
    /// The rules in force.
    pub rules: Rules,
    /// Sequence number of the last command applied.
    pub last_seq: u64,
    /// The book's time: the latest `now_ms` it was given.
    pub last_now: u64,
    /// Book time of the last receipt pruning (absent before pruning existed).
    #[serde(default)]
    pub pruned_at: u64,
    /// Every lot, in id order.
    pub lots: Vec<Lot>,
    /// Every dealer, in id order.
    pub dealers: Vec<Dealer>,
    /// Every seller, in id order.
    pub sellers: Vec<Seller>,
    /// Every service principal, in id order.
    pub services: Vec<Service>,
    /// Every loan, in id order (absent before credit lines existed).
    #[serde(default)]
    pub loans: Vec<Loan>,
    /// Every transfer's half applied, in key order (absent before transfers existed).
    #[serde(default)]
    pub transfers: Transfers,
}

impl From<BookParts> for Book {
    fn from(mut d: BookParts) -> Self {
        // Receipts from a snapshot written before digests come keyed by `bid_id`; only
        // here is each dealer's key at hand to turn them into digests.
        for dealer in &mut d.dealers {
            if dealer.receipts.has_legacy() {
                let key = dealer.receipt_key();
                let id = dealer.id;
                Arc::make_mut(&mut dealer.receipts)
                    .adopt_legacy(|bid_id| Digest::of(&key, id, bid_id));
            }
        }
        let timers = d
            .lots
            .iter()
            .filter_map(|l| l.deadline().map(|t| (t, l.id)))
            .collect();
        let loan_due = d
            .loans
            .iter()
            .filter(|l| l.is_open() && !l.overdue)
            .map(|l| (l.due_at, l.id))
            .collect();
        let loan_of = d.loans.iter().map(|l| (l.lot, l.id)).collect();
        Self {
            rules: d.rules,
            last_seq: d.last_seq,
            last_now: d.last_now,
            pruned_at: d.pruned_at,
            lots: d.lots,
            dealers: d.dealers,
            sellers: d.sellers,
            services: d.services,
            loans: d.loans,
            transfers: d.transfers,
            timers,
            loan_due,
            loan_of,
        }
    }
}

impl PartialEq for Book {
    fn eq(&self, other: &Self) -> bool {
        // The timer index is derived from the lots, so it need not be compared.
        self.rules == other.rules
            && self.last_seq == other.last_seq
            && self.last_now == other.last_now
            && self.pruned_at == other.pruned_at
            && self.lots == other.lots
            && self.dealers == other.dealers
            && self.sellers == other.sellers
            && self.services == other.services
            && self.loans == other.loans
            && self.transfers == other.transfers
    }
}

impl Eq for Book {}

impl Default for Book {
    fn default() -> Self {
        Self::new(Rules::default())
    }
}

impl Book {
    /// An empty book under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            last_seq: 0,
            last_now: 0,
            pruned_at: 0,
            lots: Vec::new(),
            dealers: Vec::new(),
            sellers: Vec::new(),
            services: Vec::new(),
            loans: Vec::new(),
            transfers: Transfers::default(),
            timers: BTreeSet::new(),
            loan_due: BTreeSet::new(),
            loan_of: BTreeMap::new(),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the rules from now on.
    pub fn configure(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// Sequence number of the last command applied (0 for an empty book).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The book's time: the latest `now_ms` it was given.
    pub fn last_now(&self) -> u64 {
        self.last_now
    }

    /// Book time of the last receipt pruning.
    pub fn pruned_at(&self) -> u64 {
        self.pruned_at
    }

    /// A lot by id.
    pub fn lot(&self, id: LotId) -> Option<&Lot> {
        self.lots.get(id.index())
    }

    /// All lots, in id order.
    pub fn lots(&self) -> &[Lot] {
        &self.lots
    }

    /// A dealer by id.
    pub fn dealer(&self, id: DealerId) -> Option<&Dealer> {
        self.dealers.get(id.index())
    }

    /// All dealers, in id order.
    pub fn dealers(&self) -> &[Dealer] {
        &self.dealers
    }

    /// A seller by id.
    pub fn seller(&self, id: SellerId) -> Option<&Seller> {
        self.sellers.get(id.index())
    }

    /// All sellers, in id order.
    pub fn sellers(&self) -> &[Seller] {
        &self.sellers
    }

    /// All service principals, in id order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// A dealer's buying power: deposit × leverage + available credit. Saturating: a
    /// deposit × leverage that does not fit is already "no cap" (`Rules::buying_power`).
    pub fn buying_power(&self, dealer: &Dealer) -> Fen {
        self.buying_power_with(dealer, dealer.deposit)
    }

    /// The buying power `dealer` would have with `deposit` instead of its own: the one
    /// computation both a bid and a transfer out are decided by.
    pub fn buying_power_with(&self, dealer: &Dealer, deposit: Fen) -> Fen {
        self.rules
            .buying_power(deposit)
            .saturating_add(dealer.credit.available())
    }

    /// Every transfer's half applied here (see `super::transfer`).
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// A loan by id.
    pub fn loan(&self, id: LoanId) -> Option<&Loan> {
        self.loans.get(id.index())
    }

    /// Every loan, in id order.
    pub fn loans(&self) -> &[Loan] {
        &self.loans
    }

    /// The loan that paid for a lot, if it was financed.
    pub fn loan_for_lot(&self, lot: LotId) -> Option<&Loan> {
        self.loan_of.get(&lot).and_then(|id| self.loan(*id))
    }

    /// The earliest time a `Tick` has work to do: a lot's timer, or an open loan's due
    /// time.
    pub fn next_deadline(&self) -> Option<u64> {
        let lot = self.timers.first().map(|&(t, _)| t);
        let loan = self.loan_due.first().map(|&(t, _)| t);
        match (lot, loan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies one command and returns what it did.
    pub fn apply(&mut self, seq: u64, now_ms: u64, command: Command) -> Vec<Event> {
        let mut out = Vec::new();
        self.apply_into(seq, now_ms, command, &mut out);
        out
    }

    /// Applies one command, appending its events to `out` (the hot path: `out` is reused).
    ///
    /// `seq` must exceed the last applied sequence number, else the command is refused
    /// whole. Time never runs backwards in the book: a `now_ms` below the latest one seen
    /// is read as the latest one, so a clock step back on the engine's host cannot reopen
    /// a closed window.
    pub fn apply_into<E: From<Event>>(
        &mut self,
        seq: u64,
        now_ms: u64,
        command: Command,
        out: &mut Vec<E>,
    ) {
        match self.stamp(seq, now_ms) {
            Some(now) => self.run(seq, now, command, out),
            None => out.push(E::from(Event::Refused(Refusal::OutOfOrder))),
        }
    }

    /// Takes the next command's sequence number and time: `None` (and no change) when
    /// `seq` is not above the last one; otherwise the time the command runs at, which is
    /// never before the latest time seen. Every command of the market, the alliance's
    /// too, passes through here, so the book's `last_seq` is the market's.
    pub fn stamp(&mut self, seq: u64, now_ms: u64) -> Option<u64> {
        if seq <= self.last_seq {
            return None;
        }
        self.last_seq = seq;
        self.last_now = now_ms.max(self.last_now);
        Some(self.last_now)
    }

    /// Applies one command already stamped: `seq` and `now` as [`Book::stamp`] gave them.
    /// Every active dealer counts as in good standing (see [`Book::run_among`]).
    pub fn run<E: From<Event>>(&mut self, seq: u64, now: u64, command: Command, out: &mut Vec<E>) {
        self.run_among(seq, now, command, &ActiveIsMember, out)
    }

    /// [`Book::run`], with `members` saying who is in good standing (who may pre-bid).
    pub fn run_among<E: From<Event>>(
        &mut self,
        seq: u64,
        now: u64,
        command: Command,
        members: &impl Membership,
        out: &mut Vec<E>,
    ) {
        match command {
            Command::PlaceBid {
                dealer,
                lot,
                amount,
                max,
                bid_id,
            } => {
                let bid = Bid {
                    dealer,
                    lot,
                    amount,
                    max,
                };
                self.place_bid(seq, now, bid, bid_id, members, out)
            }
            Command::Tick => self.tick(now, out),
            Command::RegisterSeller { name, token_hash } => {
                let id = SellerId(next_id(self.sellers.len()));
                self.sellers.push(Seller {
                    id,
                    name,
                    token_hash,
                });
                out.push(E::from(Event::SellerRegistered { seller: id }));
            }
            Command::RegisterService { name, token_hash } => {
                let id = ServiceId(next_id(self.services.len()));
                self.services.push(Service {
                    id,
                    name,
                    token_hash,
                });
                out.push(E::from(Event::ServiceRegistered { service: id }));
            }
            Command::RegisterDealer {
                name,
                deposit,
                linked_sellers,
                token_hash,
            } => {
                if deposit > MAX_AMOUNT {
                    out.push(E::from(Event::Refused(Refusal::InvalidAmount)));
                    return;
                }
                let linked_sellers = match self.on_record(linked_sellers) {
                    Ok(sellers) => sellers,
                    Err(refusal) => return out.push(E::from(Event::Refused(refusal))),
                };
                let id = DealerId(next_id(self.dealers.len()));
                self.dealers.push(Dealer {
                    id,
                    name,
                    status: DealerStatus::Active,
                    deposit,
                    linked_sellers,
                    exposure: 0,
                    token_hash,
                    receipts: Arc::default(),
                    credit: CreditLine::default(),
                });
                out.push(E::from(Event::DealerRegistered { dealer: id }));
            }
            Command::SetDeposit { dealer, deposit } => {
                if deposit > MAX_AMOUNT {
                    out.push(E::from(Event::Refused(Refusal::InvalidAmount)));
                    return;
                }
                self.change_dealer(dealer, out, |d| d.deposit = deposit);
            }
            Command::SetDealerStatus { dealer, status, .. } => {
                self.set_dealer_status(dealer, status, out)
            }
            Command::ListCar { seller, listing } => self.list(now, seller, listing, out),
            Command::CancelLot { lot, by } => self.cancel(lot, by, out),
            Command::Decide {
                lot,
                seller,
                accept,
            } => self.decide(now, lot, seller, accept, out),
            Command::Settle { lot } => self.settle(lot, out),
            Command::Resume => self.resume(now, out),
            Command::SetDealerLinks {
                dealer,
                linked_sellers,
            } => self.set_links(dealer, linked_sellers, out),
            Command::SetCreditLimit { dealer, limit } => self.set_credit_limit(dealer, limit, out),
            Command::Finance { lot, by } => self.finance(now, lot, by, out),
            Command::Repay { loan } => self.repay(now, loan, out),
            Command::TransferOut {
                transfer,
                dealer,
                to,
                amount,
            } => {
                let terms = TransferTerms {
                    id: transfer,
                    direction: Direction::Out,
                    dealer,
                    peer: to,
                    amount,
                };
                self.transfer(seq, now, terms, out)
            }
            Command::TransferIn {
                transfer,
                dealer,
                from,
                amount,
            } => {
                let terms = TransferTerms {
                    id: transfer,
                    direction: Direction::In,
                    dealer,
                    peer: from,
                    amount,
                };
                self.transfer(seq, now, terms, out)
            }
        }
    }

    /// A dealer's links as the book keeps them (sorted, no repeats, for the binary search
    /// of every bid), or `UnknownSeller` if one names no seller.
    fn on_record(&self, mut sellers: Vec<SellerId>) -> Result<Vec<SellerId>, Refusal> {
        if sellers.iter().any(|s| self.seller(*s).is_none()) {
            return Err(Refusal::UnknownSeller);
        }
        sellers.sort_unstable();
        sellers.dedup();
        Ok(sellers)
    }

    /// Replaces a dealer's links to sellers. Bids are checked against the links when they
    /// are placed, so from now on the dealer's bids on a newly linked seller's cars are
    /// `own_listing`. A lead it already holds on such a car stands, as a suspended
    /// dealer's does: the book keeps only a lot's current lead, so withdrawing it would
    /// leave no runner-up to fall back to, and the bid was placed under the links then on
    /// record. The event names those lots, so an operator can cancel any of them.
    fn set_links<E: From<Event>>(
        &mut self,
        dealer: DealerId,
        linked_sellers: Vec<SellerId>,
        out: &mut Vec<E>,
    ) {
        if self.dealer(dealer).is_none() {
            return out.push(E::from(Event::Refused(Refusal::UnknownDealer)));
        }
        let linked_sellers = match self.on_record(linked_sellers) {
            Ok(sellers) => sellers,
            Err(refusal) => return out.push(E::from(Event::Refused(refusal))),
        };
        let leading = self
            .lots
            .iter()
            .filter(|l| matches!(l.status, LotStatus::Live | LotStatus::PendingSeller))
            .filter(|l| l.lead.is_some_and(|lead| lead.dealer == dealer))
            .filter(|l| linked_sellers.binary_search(&l.seller).is_ok())
            .map(|l| l.id)
            .collect();
        if let Some(d) = self.dealers.get_mut(dealer.index()) {
            d.linked_sellers.clone_from(&linked_sellers);
        }
        out.push(E::from(Event::LinksChanged {
            dealer,
            linked_sellers,
            leading,
        }));
    }

    /// Changes a dealer's status (an operator's command, or the alliance's sanction).
    /// Open leading bids of a suspended or expelled dealer stand (the alliance's default):
    /// the dealer committed to them while in good standing.
    pub fn set_dealer_status<E: From<Event>>(
        &mut self,
        dealer: DealerId,
        status: DealerStatus,
        out: &mut Vec<E>,
    ) {
        self.change_dealer(dealer, out, |d| d.status = status);
    }

    fn change_dealer<E: From<Event>>(
        &mut self,
        id: DealerId,
        out: &mut Vec<E>,
        change: impl FnOnce(&mut Dealer),
    ) {
        let Some(d) = self.dealers.get_mut(id.index()) else {
            out.push(E::from(Event::Refused(Refusal::UnknownDealer)));
            return;
        };
        change(d);
        out.push(E::from(Event::DealerChanged {
            dealer: id,
            status: d.status,
            deposit: d.deposit,
            exposure: d.exposure,
        }));
    }

    fn list<E: From<Event>>(
        &mut self,
        now: u64,
        seller: SellerId,
        listing: Box<Listing>,
        out: &mut Vec<E>,
    ) {
        if self.seller(seller).is_none() {
            out.push(E::from(Event::Refused(Refusal::UnknownSeller)));
            return;
        }
        let r = &self.rules;
        let duration = listing.duration_ms.unwrap_or(r.default_duration_ms);
        let starts_at = listing.starts_at.unwrap_or(now).max(now);
        let prices_ok = listing.start_price >= FEN_PER_YUAN
            && listing.start_price <= listing.reserve
            && listing.reserve <= MAX_AMOUNT
            && listing
                .buy_now
                .is_none_or(|b| listing.reserve <= b && b <= MAX_AMOUNT);
        let ends_at = starts_at.checked_add(duration);
        let (true, Some(ends_at), true) = (
            prices_ok,
            ends_at,
            (r.min_duration_ms..=r.max_duration_ms).contains(&duration),
        ) else {
            out.push(E::from(Event::Refused(Refusal::InvalidListing)));
            return;
        };
        let id = LotId(next_id(self.lots.len()));
        let status = if starts_at <= now {
            LotStatus::Live
        } else {
            LotStatus::Scheduled
        };
        let lot = Lot {
            id,
            seller,
            listing: Arc::from(listing),
            status,
            starts_at,
            ends_at,
            decision_deadline: None,
            extensions: 0,
            bids: 0,
            price: None,
            lead: None,
            settled: false,
            prebids: Vec::new(),
        };
        if let Some(t) = lot.deadline() {
            self.timers.insert((t, id));
        }
        self.lots.push(lot);
        out.push(E::from(Event::Listed {
            lot: id,
            status,
            starts_at,
            ends_at,
        }));
    }

    /// Moves a lot to a new status (or settles it) and keeps its leader's exposure and the
    /// timer index in step with the change.
    #[must_use]
    pub(super) fn transition(&mut self, lot_id: LotId, change: impl FnOnce(&mut Lot)) -> Moved {
        let lot = &mut self.lots[lot_id.index()];
        let (exposure_before, deadline_before) = (lot.leader_exposure(), lot.deadline());
        let window_before = lot.decision_deadline;
        change(lot);
        let (exposure_after, deadline_after) = (lot.leader_exposure(), lot.deadline());
        let moved = Moved {
            lot: lot_id,
            window: lot
                .decision_deadline
                .filter(|_| lot.decision_deadline != window_before),
            exposure: lot
                .lead
                .map(|l| l.dealer)
                .filter(|_| exposure_before != exposure_after),
        };
        if let Some(lead) = lot.lead {
            let d = &mut self.dealers[lead.dealer.index()];
            d.exposure = d.exposure - exposure_before + exposure_after;
        }
        if deadline_before != deadline_after {
            if let Some(t) = deadline_before {
                self.timers.remove(&(t, lot_id));
            }
            if let Some(t) = deadline_after {
                self.timers.insert((t, lot_id));
            }
        }
        moved
    }

    /// Reports what a [`Self::transition`] moved, after the step's own events: a new or
    /// moved decision window, and the leader's exposure.
    pub(super) fn report<E: From<Event>>(&self, moved: Moved, out: &mut Vec<E>) {
        if let Some(until) = moved.window {
            out.push(E::from(Event::DecisionWindow {
                lot: moved.lot,
                until,
            }));
        }
        if let Some(dealer) = moved.exposure {
            self.exposure_changed(dealer, out);
        }
    }

    pub(super) fn exposure_changed<E: From<Event>>(&self, dealer: DealerId, out: &mut Vec<E>) {
        out.push(E::from(Event::ExposureChanged {
            dealer,
            exposure: self.dealers[dealer.index()].exposure,
        }));
    }
}

/// What a lot's transition moved that others hear of (see `Book::report`).
pub(super) struct Moved {
    lot: LotId,
    /// The new or moved decision window.
    window: Option<u64>,
    /// The leader whose exposure moved.
    exposure: Option<DealerId>,
}

/// The next id for a table of `len` entries (ids start at 1). Four billion entries of any
/// kind is far beyond one engine; reaching it is a bug worth stopping for.
pub(super) fn next_id(len: usize) -> u32 {
    u32::try_from(len + 1).expect("id space exhausted")
}
