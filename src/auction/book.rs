//! The book: every lot and every dealer, and the one function that changes them.
//!
//! `apply(seq, now_ms, command)` is the whole interface that changes state. It reads no
//! clock and no random source, does no I/O and never lets hash-map order reach its output,
//! so the same command log always yields the same state and the same events. The market
//! (`crate::market`) owns the only live `Book` and is its only writer; the book also keeps
//! the market's sequence number and clock, which every command of the market passes
//! through ([`Book::stamp`]).

use super::command::{BidId, Canceller, Command, Listing, TokenHash};
use super::event::{BidOutcome, Event, LotStatus, Outcome, Refusal, Rejection};
use super::lot::{Lead, Lot, PreBid};
use super::membership::{ActiveIsMember, Membership};
use super::receipts::{Digest, Receipt, Receipts};
use super::rules::Rules;
use crate::vocab::{
    DealerId, DealerStatus, Fen, LotId, SellerId, ServiceId, FEN_PER_YUAN, MAX_AMOUNT,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How often (in book time) a `Tick` looks for receipts past their retention. Pruning
/// scans every receipt, so it runs rarely; memory holds at most an hour's worth extra.
const PRUNE_EVERY_MS: u64 = 3_600_000;

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
    rules: Rules,
    last_seq: u64,
    last_now: u64,
    /// Book time of the last receipt pruning.
    pruned_at: u64,
    lots: Vec<Lot>,
    dealers: Vec<Dealer>,
    sellers: Vec<Seller>,
    services: Vec<Service>,
    /// (deadline, lot) for every lot with a pending timer. Derived from `lots`.
    #[serde(skip)]
    timers: BTreeSet<(u64, LotId)>,
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
        Self {
            rules: d.rules,
            last_seq: d.last_seq,
            last_now: d.last_now,
            pruned_at: d.pruned_at,
            lots: d.lots,
            dealers: d.dealers,
            sellers: d.sellers,
            services: d.services,
            timers,
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
            timers: BTreeSet::new(),
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

    /// A dealer's buying power: deposit × leverage.
    pub fn buying_power(&self, dealer: &Dealer) -> Fen {
        self.rules.buying_power(dealer.deposit)
    }

    /// The earliest time a `Tick` has work to do, if any lot's timer is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(t, _)| t)
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

    fn place_bid<E: From<Event>>(
        &mut self,
        seq: u64,
        now: u64,
        bid: Bid,
        bid_id: BidId,
        members: &impl Membership,
        out: &mut Vec<E>,
    ) {
        let Bid { dealer, lot, .. } = bid;
        let Some(d) = self.dealers.get_mut(dealer.index()) else {
            // No account, so nowhere to remember the bid_id: the answer is the same anyway.
            out.push(E::from(Event::Bid {
                lot,
                dealer,
                outcome: BidOutcome::Rejected(Rejection::NotEligible),
                duplicate: false,
                exposure: 0,
            }));
            return;
        };
        let key = d.receipt_digest(&bid_id);
        if let Some(first) = d.receipts.get(&key) {
            out.push(E::from(Event::Bid {
                lot: first.lot,
                dealer,
                outcome: first.outcome,
                duplicate: true,
                exposure: d.exposure,
            }));
            return;
        }
        // The direct answer goes first; the bid's effects follow it.
        let at = out.len();
        let outcome = match self.try_bid(seq, now, bid, members, out) {
            Ok(accepted) => accepted,
            Err(rejection) => BidOutcome::Rejected(rejection),
        };
        let receipt = Receipt {
            lot,
            outcome,
            at: now,
        };
        let d = &mut self.dealers[dealer.index()];
        Arc::make_mut(&mut d.receipts).insert(key, receipt);
        out.insert(
            at,
            E::from(Event::Bid {
                lot,
                dealer,
                outcome,
                duplicate: false,
                exposure: d.exposure,
            }),
        );
    }

    /// Decides a bid and, when it is accepted, applies it. Checks come in the contract's
    /// order of precedence; nothing is changed before every check has passed.
    fn try_bid<E: From<Event>>(
        &mut self,
        seq: u64,
        now: u64,
        bid: Bid,
        members: &impl Membership,
        out: &mut Vec<E>,
    ) -> Result<BidOutcome, Rejection> {
        let Bid {
            dealer,
            lot: lot_id,
            amount,
            max,
        } = bid;
        let d = &self.dealers[dealer.index()];
        let lot = self
            .lots
            .get(lot_id.index())
            .ok_or(Rejection::UnknownAuction)?;
        if d.status != DealerStatus::Active {
            return Err(Rejection::NotEligible);
        }
        if d.linked_sellers.binary_search(&lot.seller).is_ok() {
            return Err(Rejection::OwnListing);
        }
        // A bid with a `max` on a lot in its preview is a pre-bid (rules version 3 on); a
        // plain bid there stays `not_live`. Like a bid at `ends_at`, one sequenced before
        // the opening tick counts, whatever its stamp.
        if let (LotStatus::Scheduled, Some(max), true) = (lot.status, max, self.rules.version >= 3)
        {
            let member = members.in_good_standing(d);
            return self.prebid(seq, dealer, lot_id, amount, max, member);
        }
        // A bid stamped at exactly `ends_at` still counts when it was sequenced before the
        // closing tick: order by seq decides a same-millisecond race.
        if lot.status != LotStatus::Live || now > lot.ends_at {
            return Err(Rejection::NotLive);
        }
        let power = self.rules.buying_power(d.deposit);
        let exposure = d.exposure;
        let inc = &self.rules.increments;
        let reserve = lot.reserve();

        if let Some(lead) = lot.lead.filter(|l| l.dealer == dealer) {
            // The leader raises its max: `amount` is otherwise ignored (but over the cap it
            // is `invalid`, like any amount), the price moves only to meet the reserve, and
            // the close is not extended. Without a `max` there is nothing to raise. (Both
            // refusals from rules version 2; before, `amount` was ignored whole and a raise
            // without `max` was `invalid`.)
            let v2 = self.rules.version >= 2;
            if v2 && amount > MAX_AMOUNT {
                return Err(Rejection::Invalid);
            }
            let nothing_to_raise = if v2 {
                Rejection::AlreadyLeading { max: lead.max }
            } else {
                Rejection::Invalid
            };
            let new_max = max.ok_or(nothing_to_raise)?;
            if new_max <= lead.max || new_max > MAX_AMOUNT {
                return Err(Rejection::Invalid);
            }
            if exposure - lead.max + new_max > power {
                return Err(Rejection::ExposureLimit);
            }
            let lot = &mut self.lots[lot_id.index()];
            let price_before = lot.price;
            lot.lead = Some(Lead {
                max: new_max,
                ..lead
            });
            if new_max >= reserve {
                lot.price = lot.price.map(|p| p.max(reserve));
            }
            lot.bids += 1;
            let (price, ends_at) = (lot.price.unwrap_or(0), lot.ends_at);
            self.dealers[dealer.index()].exposure = exposure - lead.max + new_max;
            let lot = &self.lots[lot_id.index()];
            debug_assert!(lot.price >= price_before);
            out.push(E::from(Event::Updated(lot.update(inc))));
            return Ok(BidOutcome::Accepted {
                price,
                leading: true,
                ends_at,
                seq,
            });
        }

        if amount == 0 || amount > MAX_AMOUNT {
            return Err(Rejection::Invalid);
        }
        let new_max = max.unwrap_or(amount);
        if new_max < amount || new_max > MAX_AMOUNT {
            return Err(Rejection::Invalid);
        }

        if let Some(buy_now) = lot.buy_now().filter(|&b| amount >= b) {
            if exposure.saturating_add(buy_now) > power {
                return Err(Rejection::ExposureLimit);
            }
            return Ok(self.buy_now(seq, lot_id, dealer, buy_now, out));
        }

        let min_next = lot.min_next(inc);
        if amount < min_next {
            return Err(Rejection::BelowMinimum { min_next });
        }
        if exposure.saturating_add(new_max) > power {
            // Checked against the bid's own max whether or not it would lead: the answer
            // must not reveal where the leader's hidden max lies.
            return Err(Rejection::ExposureLimit);
        }

        // Accepted. Work out the new lead and price.
        let old_lead = lot.lead;
        let (lead, price, displaced) = match old_lead {
            None => {
                let price = amount;
                (
                    Lead {
                        dealer,
                        max: new_max,
                        amount,
                    },
                    price,
                    None,
                )
            }
            Some(old) if new_max > old.max => {
                // The challenger takes the lead; the old leader's max is the runner-up's.
                let over_runner_up = old.max.saturating_add(inc.increment(old.max));
                let price = amount.max(over_runner_up.min(new_max));
                (
                    Lead {
                        dealer,
                        max: new_max,
                        amount,
                    },
                    price,
                    Some(old.dealer),
                )
            }
            Some(old) => {
                // The leader's proxy answers; equal maxima go to the earlier bid, at that max.
                let over_runner_up = new_max.saturating_add(inc.increment(new_max));
                let price = old.amount.max(over_runner_up.min(old.max));
                (old, price, None)
            }
        };
        let price = if lead.max >= reserve {
            price.max(reserve)
        } else {
            price
        };

        let extend_window = self.rules.extend_window_ms;
        let extend_by = self.rules.extend_by_ms;
        let max_extensions = self.rules.max_extensions;
        let lot = &mut self.lots[lot_id.index()];
        debug_assert!(lot.price.is_none_or(|p| price > p), "price must rise");
        lot.price = Some(price);
        lot.lead = Some(lead);
        lot.bids += 1;

        // Soft close: this bid changed the price (every accepted challenger does).
        let mut extended = None;
        if now.saturating_add(extend_window) >= lot.ends_at && lot.extensions < max_extensions {
            let new_end = lot.ends_at.max(now.saturating_add(extend_by));
            if new_end != lot.ends_at {
                extended = Some((lot.ends_at, new_end));
                lot.ends_at = new_end;
                lot.extensions += 1;
            }
        }
        let update = lot.update(inc);
        let extensions = lot.extensions;

        if let Some(old) = old_lead {
            self.dealers[old.dealer.index()].exposure -= old.max;
        }
        self.dealers[lead.dealer.index()].exposure += lead.max;
        if let Some((old_end, new_end)) = extended {
            self.timers.remove(&(old_end, lot_id));
            self.timers.insert((new_end, lot_id));
            out.push(E::from(Event::Extended {
                lot: lot_id,
                ends_at: new_end,
                extensions,
            }));
        }
        if let Some(loser) = displaced {
            out.push(E::from(Event::Outbid {
                lot: lot_id,
                dealer: loser,
                price,
                min_next: update.min_next,
                exposure: self.dealers[loser.index()].exposure,
            }));
        }
        out.push(E::from(Event::Updated(update)));
        Ok(BidOutcome::Accepted {
            price,
            leading: lead.dealer == dealer,
            ends_at: update.ends_at,
            seq,
        })
    }

    /// Decides a pre-bid and, when it is accepted, holds it. Its max counts against the
    /// dealer's buying power from now on, exactly as a leading max does: if this pre-bid
    /// wins the opening its max becomes the leader's max, so the hold never grows at the
    /// start, and the invariant stays one (exposure = leading maxima + pre-bid maxima +
    /// sold-but-unpaid prices ≤ buying power). Pre-bids are sealed: the answer is
    /// `accepted` at the start price and not `leading`, whatever the others hold, and no
    /// public update follows.
    fn prebid(
        &mut self,
        seq: u64,
        dealer: DealerId,
        lot_id: LotId,
        amount: Fen,
        max: Fen,
        member: bool,
    ) -> Result<BidOutcome, Rejection> {
        if !member {
            return Err(Rejection::NotInGoodStanding);
        }
        if amount == 0 || amount > MAX_AMOUNT || max < amount || max > MAX_AMOUNT {
            return Err(Rejection::Invalid);
        }
        let d = &self.dealers[dealer.index()];
        let lot = &self.lots[lot_id.index()];
        let start = lot.listing.start_price;
        if amount < start {
            return Err(Rejection::BelowMinimum { min_next: start });
        }
        let held = lot.prebid_exposure(dealer);
        if max < held {
            return Err(Rejection::PrebidLowered { max: held });
        }
        if max == held {
            // Not a raise: as for a leader's max, only a higher one changes anything.
            return Err(Rejection::Invalid);
        }
        // `held` is part of `exposure`, so this never underflows.
        let exposure = d.exposure - held + max;
        if exposure > self.buying_power(d) {
            return Err(Rejection::ExposureLimit);
        }
        let ends_at = lot.ends_at;
        let lot = &mut self.lots[lot_id.index()];
        match lot.prebids.iter_mut().find(|p| p.dealer == dealer) {
            Some(p) => {
                p.max = max;
                p.seq = seq;
            }
            None => lot.prebids.push(PreBid { dealer, max, seq }),
        }
        self.dealers[dealer.index()].exposure = exposure;
        Ok(BidOutcome::Accepted {
            price: start,
            leading: false,
            ends_at,
            seq,
        })
    }

    /// Resolves a lot's pre-bids as it opens, by the proxy rules of live bidding: the
    /// highest max leads (the earliest to reach it on equal maxima) and the price is the
    /// runner-up's max plus its increment, capped at the leader's max (the start price
    /// with a single pre-bid), raised to the reserve when the leader's max reaches it.
    /// The leader's max stays held as its lead; every other pre-bid is released and its
    /// dealer told `Outbid`, as a live bidder would be. The caller has made the lot live.
    fn open_prebids<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
        let inc = &self.rules.increments;
        let lot = &mut self.lots[lot_id.index()];
        if lot.prebids.is_empty() {
            return;
        }
        let mut prebids = std::mem::take(&mut lot.prebids);
        prebids.sort_by(|a, b| b.max.cmp(&a.max).then(a.seq.cmp(&b.seq)));
        let (first, rest) = prebids.split_first().expect("not empty");
        let start = lot.listing.start_price;
        let mut price = rest.first().map_or(start, |r| {
            r.max.saturating_add(inc.increment(r.max)).min(first.max)
        });
        if first.max >= lot.reserve() {
            price = price.max(lot.reserve());
        }
        lot.lead = Some(Lead {
            dealer: first.dealer,
            max: first.max,
            amount: start,
        });
        lot.price = Some(price);
        // One pre-bid per dealer, so at most one per dealer on record.
        lot.bids = u32::try_from(prebids.len()).unwrap_or(u32::MAX);
        let min_next = lot.min_next(inc);
        for p in rest {
            let d = &mut self.dealers[p.dealer.index()];
            d.exposure -= p.max;
            out.push(E::from(Event::Outbid {
                lot: lot_id,
                dealer: p.dealer,
                price,
                min_next,
                exposure: d.exposure,
            }));
        }
    }

    /// Releases the pre-bids of a lot that will not open (cancelled in its preview).
    fn release_prebids<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
        for p in std::mem::take(&mut self.lots[lot_id.index()].prebids) {
            self.dealers[p.dealer.index()].exposure -= p.max;
            self.exposure_changed(p.dealer, out);
        }
    }

    /// A bid reached the buy-now price: sold at once to the bidder at that price.
    fn buy_now<E: From<Event>>(
        &mut self,
        seq: u64,
        lot_id: LotId,
        dealer: DealerId,
        buy_now: Fen,
        out: &mut Vec<E>,
    ) -> BidOutcome {
        let idx = lot_id.index();
        let lot = &mut self.lots[idx];
        let old_exposure = lot.leader_exposure();
        let old_leader = lot.lead.map(|l| l.dealer);
        self.timers.remove(&(lot.ends_at, lot_id));
        lot.lead = Some(Lead {
            dealer,
            max: buy_now,
            amount: buy_now,
        });
        lot.price = Some(buy_now);
        lot.bids += 1;
        lot.status = LotStatus::Sold;
        let (seller, ends_at) = (lot.seller, lot.ends_at);
        if let Some(old) = old_leader {
            self.dealers[old.index()].exposure -= old_exposure;
        }
        self.dealers[dealer.index()].exposure += buy_now;
        out.push(E::from(Event::Updated(
            self.lots[idx].update(&self.rules.increments),
        )));
        // The buyer's exposure rides on its `Bid`; a displaced leader gets no `Outbid`.
        if let Some(old) = old_leader.filter(|&old| old != dealer) {
            self.exposure_changed(old, out);
        }
        out.push(E::from(Event::Closed {
            lot: lot_id,
            outcome: Outcome::Sold,
            price: Some(buy_now),
            leader: Some(dealer),
            seller,
        }));
        BidOutcome::Accepted {
            price: buy_now,
            leading: true,
            ends_at,
            seq,
        }
    }

    /// Moves a lot to a new status (or settles it) and keeps its leader's exposure and the
    /// timer index in step with the change.
    #[must_use]
    fn transition(&mut self, lot_id: LotId, change: impl FnOnce(&mut Lot)) -> Moved {
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
    fn report<E: From<Event>>(&self, moved: Moved, out: &mut Vec<E>) {
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

    fn exposure_changed<E: From<Event>>(&self, dealer: DealerId, out: &mut Vec<E>) {
        out.push(E::from(Event::ExposureChanged {
            dealer,
            exposure: self.dealers[dealer.index()].exposure,
        }));
    }

    fn tick<E: From<Event>>(&mut self, now: u64, out: &mut Vec<E>) {
        while let Some(&(deadline, lot_id)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.fire(lot_id, out);
        }
        if now >= self.pruned_at.saturating_add(PRUNE_EVERY_MS) {
            self.prune_receipts(now);
        }
    }

    /// Forgets `bid_id`s older than the retention whose lot takes no more bids (final, or
    /// a lot that does not exist), so memory does not grow with every bid ever placed. A
    /// retry of a forgotten `bid_id` is a fresh attempt; its lot is closed, so it changes
    /// nothing. Receipts of lots still open are kept whatever their age.
    fn prune_receipts(&mut self, now: u64) {
        self.pruned_at = now;
        let cutoff = now.saturating_sub(self.rules.bid_id_retention_ms);
        let lots = &self.lots;
        let keep = |r: &Receipt| {
            r.at > cutoff
                || lots
                    .get(r.lot.index())
                    .is_some_and(|l| matches!(l.status, LotStatus::Scheduled | LotStatus::Live))
        };
        for d in &mut self.dealers {
            // Only a map that loses receipts is written, so one shared with a snapshot's
            // copy is not copied for nothing.
            if !d.receipts.iter().all(|(_, r)| keep(&r)) {
                Arc::make_mut(&mut d.receipts).retain(keep);
            }
        }
    }

    /// Runs the timer of one due lot: open it, close it, or lapse its decision window.
    fn fire<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
        let decision_window = self.rules.decision_window_ms;
        let lot = &self.lots[lot_id.index()];
        let moved = match lot.status {
            LotStatus::Scheduled => {
                let moved = self.transition(lot_id, |l| l.status = LotStatus::Live);
                self.open_prebids(lot_id, out);
                moved
            }
            LotStatus::Live => {
                let outcome = match lot.lead {
                    None => Outcome::NoSale,
                    Some(_) if lot.reserve_met() => Outcome::Sold,
                    Some(_) => Outcome::PendingSeller,
                };
                let moved = self.transition(lot_id, |l| match outcome {
                    Outcome::NoSale => l.status = LotStatus::NoSale,
                    Outcome::Sold => l.status = LotStatus::Sold,
                    Outcome::PendingSeller => {
                        l.status = LotStatus::PendingSeller;
                        // From the scheduled close, not from when the tick ran.
                        l.decision_deadline = Some(l.ends_at.saturating_add(decision_window));
                    }
                });
                self.push_closed(lot_id, outcome, out);
                moved
            }
            LotStatus::PendingSeller => {
                let moved = self.transition(lot_id, |l| l.status = LotStatus::NoSale);
                self.push_closed(lot_id, Outcome::NoSale, out);
                moved
            }
            LotStatus::Sold | LotStatus::NoSale | LotStatus::Cancelled => {
                // A final lot has no timer; drop a stale entry rather than loop on it.
                debug_assert!(false, "timer on a final lot");
                self.timers.retain(|&(_, id)| id != lot_id);
                return;
            }
        };
        out.push(E::from(Event::Updated(
            self.lots[lot_id.index()].update(&self.rules.increments),
        )));
        self.report(moved, out);
    }

    fn push_closed<E: From<Event>>(&self, lot_id: LotId, outcome: Outcome, out: &mut Vec<E>) {
        let lot = &self.lots[lot_id.index()];
        out.push(E::from(Event::Closed {
            lot: lot_id,
            outcome,
            price: lot.price,
            leader: lot.lead.map(|l| l.dealer),
            seller: lot.seller,
        }));
    }

    fn resume<E: From<Event>>(&mut self, now: u64, out: &mut Vec<E>) {
        let until = self.rules.after_outage(now);
        let due: Vec<LotId> = self
            .timers
            .range(..=(now, LotId(u32::MAX)))
            .map(|&(_, id)| id)
            .collect();
        for lot_id in due {
            let opens = self.lots[lot_id.index()].status == LotStatus::Scheduled;
            let moved = self.transition(lot_id, |l| {
                if l.status == LotStatus::Scheduled {
                    l.status = LotStatus::Live;
                }
                match l.status {
                    LotStatus::Live if l.ends_at <= now => l.ends_at = until,
                    LotStatus::PendingSeller => l.decision_deadline = Some(until),
                    _ => {}
                }
            });
            if opens {
                self.open_prebids(lot_id, out);
            }
            let lot = &self.lots[lot_id.index()];
            if lot.status == LotStatus::Live && lot.ends_at == until {
                out.push(E::from(Event::Extended {
                    lot: lot_id,
                    ends_at: until,
                    extensions: lot.extensions,
                }));
            }
            out.push(E::from(Event::Updated(lot.update(&self.rules.increments))));
            self.report(moved, out);
        }
    }

    fn cancel<E: From<Event>>(&mut self, lot_id: LotId, by: Canceller, out: &mut Vec<E>) {
        let Some(lot) = self.lot(lot_id) else {
            out.push(E::from(Event::Refused(Refusal::UnknownLot)));
            return;
        };
        let refusal = match by {
            _ if lot.status.is_final() => Some(Refusal::WrongState),
            Canceller::Seller(s) if s != lot.seller => Some(Refusal::NotAllowed),
            Canceller::Seller(_) if lot.status == LotStatus::PendingSeller => {
                Some(Refusal::WrongState)
            }
            // A pre-bid binds the seller as a bid does (rules version 3 on: none before).
            Canceller::Seller(_) if lot.bids > 0 || !lot.prebids.is_empty() => {
                Some(Refusal::NotAllowed)
            }
            _ => None,
        };
        if let Some(r) = refusal {
            out.push(E::from(Event::Refused(r)));
            return;
        }
        let moved = self.transition(lot_id, |l| l.status = LotStatus::Cancelled);
        out.push(E::from(Event::Cancelled { lot: lot_id }));
        out.push(E::from(Event::Updated(
            self.lots[lot_id.index()].update(&self.rules.increments),
        )));
        self.report(moved, out);
        self.release_prebids(lot_id, out);
    }

    fn decide<E: From<Event>>(
        &mut self,
        now: u64,
        lot_id: LotId,
        seller: SellerId,
        accept: bool,
        out: &mut Vec<E>,
    ) {
        let Some(lot) = self.lot(lot_id) else {
            out.push(E::from(Event::Refused(Refusal::UnknownLot)));
            return;
        };
        if lot.seller != seller {
            out.push(E::from(Event::Refused(Refusal::NotAllowed)));
            return;
        }
        // The window is closed once its deadline has passed, whether or not the lapse timer
        // has run yet: as with a bid at `ends_at`, a decision stamped at the deadline itself
        // counts when it is sequenced before the lapse tick.
        if lot.status != LotStatus::PendingSeller || lot.decision_deadline.is_some_and(|t| now > t)
        {
            out.push(E::from(Event::Refused(Refusal::WrongState)));
            return;
        }
        let (status, outcome) = if accept {
            (LotStatus::Sold, Outcome::Sold)
        } else {
            (LotStatus::NoSale, Outcome::NoSale)
        };
        let moved = self.transition(lot_id, |l| {
            l.status = status;
            l.decision_deadline = None;
        });
        self.push_closed(lot_id, outcome, out);
        out.push(E::from(Event::Updated(
            self.lots[lot_id.index()].update(&self.rules.increments),
        )));
        self.report(moved, out);
    }

    fn settle<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
        let Some(lot) = self.lot(lot_id) else {
            out.push(E::from(Event::Refused(Refusal::UnknownLot)));
            return;
        };
        let (LotStatus::Sold, false, Some(lead)) = (lot.status, lot.settled, lot.lead) else {
            out.push(E::from(Event::Refused(Refusal::WrongState)));
            return;
        };
        let moved = self.transition(lot_id, |l| l.settled = true);
        out.push(E::from(Event::Settled {
            lot: lot_id,
            dealer: lead.dealer,
        }));
        self.report(moved, out);
    }
}

/// One `PlaceBid`'s terms (its `bid_id` travels apart: only the receipt needs it).
#[derive(Clone, Copy)]
struct Bid {
    dealer: DealerId,
    lot: LotId,
    amount: Fen,
    max: Option<Fen>,
}

/// What a lot's transition moved that others hear of (see `Book::report`).
struct Moved {
    lot: LotId,
    /// The new or moved decision window.
    window: Option<u64>,
    /// The leader whose exposure moved.
    exposure: Option<DealerId>,
}

/// The next id for a table of `len` entries (ids start at 1). Four billion entries of any
/// kind is far beyond one engine; reaching it is a bug worth stopping for.
fn next_id(len: usize) -> u32 {
    u32::try_from(len + 1).expect("id space exhausted")
}
