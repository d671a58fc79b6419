//! The alliance state machine: inventory, complaints, warnings, records.
//!
//! `apply(now, rules, command, registry, out)` and `tick(now, registry, out)` are the only
//! ways it changes. Every check comes before the first change, so a refused command
//! changes nothing; maps are `BTreeMap`s, so iteration order (and thus event order and
//! snapshot bytes) never depends on a hasher.

use super::certify::{certify, inspection_sha256};
use super::command::{
    Actor, AllianceCommand, AllianceEvent, AllianceRefusal, AllianceRules, HandOffRecord,
    RefusedRetail, Registry, ReturnReason,
};
use super::model::{
    Cause, Channel, Complaint, ComplaintId, ComplaintStatus, Disposal, Finding, Item, ItemId,
    ItemStatus, Reason, Record, RemoteLoan, RemoteWarning, RetailSale, ReturnClaim, SoldElsewhere,
    Standing, Warning, WarningId, MAX_MARKET_NAME,
};
use crate::vocab::{DealerId, DealerStatus, Fen, LoanId, LotId, Vehicle, MAX_AMOUNT};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

type Outcome = Result<(), AllianceRefusal>;

/// All alliance state. Lives inside the `Book` (and so in its snapshots).
///
/// Written field by field in declaration order (snapshots are positional): see its
/// `Serialize` for which trailing fields are left out while empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Alliance {
    items: BTreeMap<ItemId, Item>,
    /// This market's auction → its item: what makes a hand-off idempotent. Local lots
    /// only; items from other markets are in `from_markets`.
    by_auction: BTreeMap<LotId, ItemId>,
    complaints: BTreeMap<ComplaintId, Complaint>,
    warnings: BTreeMap<WarningId, Warning>,
    records: BTreeMap<DealerId, Record>,
    /// (due_at, complaint) of every open complaint: the alliance's timers.
    due: BTreeSet<(u64, ComplaintId)>,
    /// Warnings other markets of the cluster issued, per dealer, sorted by (market, id),
    /// so the state is the same whatever order the notes came in. Left out while empty
    /// (and every later field is), so an alliance without one is written as before they
    /// existed.
    #[serde(default)]
    remote: BTreeMap<DealerId, Vec<RemoteWarning>>,
    /// Selling market → its auction → the item it was handed off as: items other markets
    /// of the cluster sold, and what makes their hand-offs idempotent. Keyed by market
    /// because every market numbers its lots from 1. Left out while empty (and
    /// `remote_loans` is).
    #[serde(default)]
    from_markets: BTreeMap<String, BTreeMap<LotId, SoldElsewhere>>,
    /// Selling market → its auction → the loan that market made on the car: what retail
    /// asks of a car from another market instead of this book's loans, filed under the
    /// same key as `from_markets` (the note may come before the car). Last, and left out
    /// while empty.
    #[serde(default)]
    remote_loans: BTreeMap<String, BTreeMap<LotId, RemoteLoan>>,
}

impl Serialize for Alliance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The snapshot is positional: a trailing field needs every place before it
        // written, empty or not. While all three are empty the alliance is written as
        // before any existed (six fields), with remote warnings alone as before hand-offs
        // from other markets (seven), and without remote loans as before them (eight), so
        // older snapshots keep their bytes.
        let loans = !self.remote_loans.is_empty();
        let from = loans || !self.from_markets.is_empty();
        let remote = from || !self.remote.is_empty();
        let fields = 6 + usize::from(remote) + usize::from(from) + usize::from(loans);
        let mut a = s.serialize_struct("Alliance", fields)?;
        a.serialize_field("items", &self.items)?;
        a.serialize_field("by_auction", &self.by_auction)?;
        a.serialize_field("complaints", &self.complaints)?;
        a.serialize_field("warnings", &self.warnings)?;
        a.serialize_field("records", &self.records)?;
        a.serialize_field("due", &self.due)?;
        if remote {
            a.serialize_field("remote", &self.remote)?;
        } else {
            a.skip_field("remote")?;
        }
        if from {
            a.serialize_field("from_markets", &self.from_markets)?;
        } else {
            a.skip_field("from_markets")?;
        }
        if loans {
            a.serialize_field("remote_loans", &self.remote_loans)?;
        } else {
            a.skip_field("remote_loans")?;
        }
        a.end()
    }
}

impl Alliance {
    /// An item by id.
    pub fn item(&self, id: ItemId) -> Option<&Item> {
        self.items.get(&id)
    }

    /// The item handed off from an auction of this market's book, if it was. Local lots
    /// only: an item another market sold is found with [`Self::item_from`].
    pub fn item_for_auction(&self, lot: LotId) -> Option<&Item> {
        self.by_auction.get(&lot).and_then(|id| self.items.get(id))
    }

    /// The item handed off from `market`'s auction `auction` (a `HandOffFrom`), if it was.
    pub fn item_from(&self, market: &str, auction: LotId) -> Option<&Item> {
        self.from_markets
            .get(market)
            .and_then(|lots| lots.get(&auction))
            .and_then(|f| self.items.get(&f.item))
    }

    /// The market and its auction an item was handed off from, for an item another market
    /// sold; `None` for a local item (its auction is this book's) or no such item.
    pub fn origin(&self, item: ItemId) -> Option<(&str, LotId)> {
        self.sold_elsewhere(item)
            .map(|(market, auction, _)| (market, auction))
    }

    /// For an item another market sold: that market, its auction, and the car as its
    /// seller described it (this book holds no listing of it).
    pub fn sold_elsewhere(&self, item: ItemId) -> Option<(&str, LotId, &Vehicle)> {
        let auction = self.items.get(&item)?.auction;
        self.origin_of(item, auction)
    }

    /// The market that filed `item` under `auction`, if one did. A scan of the markets,
    /// which are few (a cluster's), each a lookup by auction: no reverse index to keep in
    /// step or in the snapshot.
    fn origin_of(&self, item: ItemId, auction: LotId) -> Option<(&str, LotId, &Vehicle)> {
        self.from_markets.iter().find_map(|(market, lots)| {
            lots.get(&auction)
                .filter(|f| f.item == item)
                .map(|f| (market.as_str(), auction, &f.vehicle))
        })
    }

    /// Every item, in id order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.values()
    }

    /// A complaint by id.
    pub fn complaint(&self, id: ComplaintId) -> Option<&Complaint> {
        self.complaints.get(&id)
    }

    /// Every complaint, in id order.
    pub fn complaints(&self) -> impl Iterator<Item = &Complaint> {
        self.complaints.values()
    }

    /// A warning by id.
    pub fn warning(&self, id: WarningId) -> Option<&Warning> {
        self.warnings.get(&id)
    }

    /// Every warning this market issued, in id order (not those noted from other
    /// markets: see [`Self::remote_warnings`]).
    pub fn warnings(&self) -> impl Iterator<Item = &Warning> {
        self.warnings.values()
    }

    /// A dealer's record (empty if it has none yet).
    pub fn record(&self, dealer: DealerId) -> Record {
        self.records.get(&dealer).cloned().unwrap_or_default()
    }

    /// A dealer's public standing, given its status in the book.
    pub fn standing(&self, dealer: DealerId, status: DealerStatus) -> Standing {
        let record = self.record(dealer);
        Standing {
            dealer,
            score_tenths: record.score_tenths(),
            ratings: record.ratings,
            violations: record.violations,
            refused_retail: record.refused_retail,
            warnings: record
                .warnings
                .iter()
                .filter_map(|w| self.warnings.get(w).cloned())
                .collect(),
            status,
            remote_warnings: self.remote_warnings(dealer).to_vec(),
        }
    }

    /// The warnings other markets issued to a dealer, by (market, id).
    pub fn remote_warnings(&self, dealer: DealerId) -> &[RemoteWarning] {
        self.remote.get(&dealer).map_or(&[], Vec::as_slice)
    }

    /// The loan `market` made on the car it sold at `auction`, as noted here, if one was.
    pub fn remote_loan(&self, market: &str, auction: LotId) -> Option<&RemoteLoan> {
        self.remote_loans.get(market)?.get(&auction)
    }

    /// Every loan noted from other markets, by (market, auction).
    pub fn remote_loans(&self) -> impl Iterator<Item = (&str, LotId, &RemoteLoan)> {
        self.remote_loans.iter().flat_map(|(market, lots)| {
            lots.iter()
                .map(move |(&auction, loan)| (market.as_str(), auction, loan))
        })
    }

    /// A dealer's uncorrected warnings across the cluster: this market's and those other
    /// markets issued. What the rules count toward expulsion.
    fn uncorrected(&self, dealer: DealerId) -> usize {
        let local = self
            .dealer_warnings(dealer)
            .filter(|w| !w.corrected())
            .count();
        let remote = self
            .remote_warnings(dealer)
            .iter()
            .filter(|w| !w.corrected())
            .count();
        local + remote
    }

    /// Whether a dealer is in good standing, the condition of a member's resources: active
    /// in the book, no uncorrected warning, and a score of at least the rules' threshold
    /// (or no rating yet: a new member is not held back for lack of consumers).
    pub fn good_standing(
        &self,
        dealer: DealerId,
        status: DealerStatus,
        rules: &AllianceRules,
    ) -> bool {
        if status != DealerStatus::Active || self.uncorrected(dealer) > 0 {
            return false;
        }
        self.records.get(&dealer).is_none_or(|record| {
            record
                .score_tenths()
                .is_none_or(|s| s >= rules.good_standing_min_score_tenths)
        })
    }

    /// The earliest time a tick has work to do: the first open complaint's due time.
    pub fn next_deadline(&self) -> Option<u64> {
        self.due.first().map(|&(t, _)| t)
    }

    /// Applies one command at `now`, appending what it did to `out` (a refusal is one
    /// `Refused` event and no change).
    pub fn apply(
        &mut self,
        now: u64,
        rules: &AllianceRules,
        command: AllianceCommand,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) {
        let result = match command {
            AllianceCommand::HandOff(record) => self.hand_off(now, *record, registry, out),
            AllianceCommand::Retail {
                item,
                by,
                consumer_ref,
                price,
            } => self.retail(now, rules, item, by, consumer_ref, price, registry, out),
            AllianceCommand::Return {
                item,
                consumer_ref,
                reason,
                details,
                findings,
            } => self.return_item(
                now,
                item,
                consumer_ref,
                reason,
                details,
                findings,
                registry,
                out,
            ),
            AllianceCommand::Refund { item } => self.refund(now, item, out),
            AllianceCommand::Dispose {
                item,
                by,
                channel,
                note,
            } => self.dispose(now, item, by, channel, note, out),
            AllianceCommand::OpenComplaint {
                dealer,
                item,
                consumer_ref,
                text,
            } => self.open_complaint(now, rules, dealer, item, consumer_ref, text, registry, out),
            AllianceCommand::ResolveComplaint {
                complaint,
                by,
                resolution,
            } => self.resolve(now, complaint, by, resolution, out),
            AllianceCommand::Rate {
                dealer,
                item,
                consumer_ref: _,
                condition,
                service,
            } => self.rate(dealer, item, condition, service, out),
            AllianceCommand::NoteRemoteWarning {
                dealer,
                market,
                warning,
                issued_at,
                corrected_at,
            } => {
                let note = RemoteWarning {
                    market,
                    warning,
                    issued_at,
                    corrected_at,
                };
                self.note_remote(dealer, note, registry, out)
            }
            AllianceCommand::HandOffFrom {
                market,
                record,
                vehicle,
            } => self.hand_off_from(now, market, *record, *vehicle, registry, out),
            AllianceCommand::NoteRemoteLoan {
                market,
                auction,
                loan,
                dealer,
                repaid,
            } => {
                let note = RemoteLoan {
                    loan,
                    dealer,
                    repaid,
                };
                self.note_remote_loan(now, market, auction, note, registry, out)
            }
        };
        if let Err(refusal) = result {
            out.push(AllianceEvent::Refused(refusal));
        }
    }

    /// Marks every open complaint whose due time is at or before `now` overdue: each is a
    /// violation.
    pub fn tick(&mut self, now: u64, registry: &impl Registry, out: &mut Vec<AllianceEvent>) {
        while let Some(&(due_at, id)) = self.due.first() {
            if due_at > now {
                break;
            }
            self.due.pop_first();
            let Some(dealer) = self.complaints.get(&id).map(|c| c.dealer) else {
                continue;
            };
            let warning = self.violate(
                now,
                dealer,
                Cause::OverdueComplaint { complaint: id },
                registry,
                out,
            );
            if let Some(c) = self.complaints.get_mut(&id) {
                c.status = ComplaintStatus::Overdue;
                c.warning = Some(warning);
                out.push(AllianceEvent::ComplaintChanged(Box::new(c.clone())));
            }
        }
    }

    /// A loan on the dealer's credit line passed its due time unrepaid (the book saw it):
    /// a violation.
    pub fn loan_overdue(
        &mut self,
        now: u64,
        dealer: DealerId,
        loan: LoanId,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) {
        self.violate(now, dealer, Cause::LateRepayment { loan }, registry, out);
    }

    /// A loan of this book was repaid: what it caused (a late repayment, a car sold out of
    /// trust) is corrected.
    pub fn loan_repaid(
        &mut self,
        now: u64,
        dealer: DealerId,
        loan: LoanId,
        out: &mut Vec<AllianceEvent>,
    ) {
        // Loan ids are per market: a car from another market was sold out of trust on
        // that market's loan, which may bear this one's id. Its repayment comes as a
        // `NoteRemoteLoan`; this one must not correct it.
        let from_elsewhere: BTreeSet<ItemId> = self
            .dealer_warnings(dealer)
            .filter_map(|w| w.cause.item())
            .filter(|&item| self.origin(item).is_some())
            .collect();
        self.correct(
            now,
            dealer,
            |w| {
                w.cause.corrected_by_repayment_of(loan)
                    && w.cause.item().is_none_or(|i| !from_elsewhere.contains(&i))
            },
            out,
        );
    }

    /// After an outage (the book's `Resume`): open complaints whose due time passed while
    /// the engine was down become due at `until` instead. A dealer could not record a
    /// resolution while gavel was down, and must not be sanctioned for gavel's downtime;
    /// this is the same grace the lots get.
    pub fn resume(&mut self, now: u64, until: u64, out: &mut Vec<AllianceEvent>) {
        let late: Vec<(u64, ComplaintId)> = self
            .due
            .range(..=(now, ComplaintId(u32::MAX)))
            .copied()
            .collect();
        for (due_at, id) in late {
            self.due.remove(&(due_at, id));
            if let Some(c) = self.complaints.get_mut(&id) {
                c.due_at = until;
                self.due.insert((until, id));
                out.push(AllianceEvent::ComplaintChanged(Box::new(c.clone())));
            }
        }
    }

    /// Takes in an event that `apply` or `tick` produced (on another copy), so a read view
    /// follows the live state without running the rules: objects are upserted whole.
    pub fn absorb(&mut self, event: &AllianceEvent) {
        match event {
            AllianceEvent::ItemChanged(item) => {
                // An item from another market was filed under it by its `ItemFrom`, which
                // comes first; its auction id is that market's, not this book's.
                if self.origin_of(item.id, item.auction).is_none() {
                    self.by_auction.insert(item.auction, item.id);
                }
                self.items.insert(item.id, (**item).clone());
            }
            AllianceEvent::ItemFrom {
                item,
                market,
                auction,
                vehicle,
            } => {
                let filed = SoldElsewhere {
                    item: *item,
                    vehicle: (**vehicle).clone(),
                };
                self.from_markets
                    .entry(market.clone())
                    .or_default()
                    .insert(*auction, filed);
            }
            AllianceEvent::ComplaintChanged(c) => {
                if let Some(old) = self.complaints.get(&c.id) {
                    self.due.remove(&(old.due_at, c.id));
                }
                if c.status == ComplaintStatus::Open {
                    self.due.insert((c.due_at, c.id));
                }
                self.complaints.insert(c.id, (**c).clone());
            }
            AllianceEvent::WarningChanged(w) => {
                self.warnings.insert(w.id, (**w).clone());
            }
            AllianceEvent::RecordChanged { dealer, record } => {
                self.records.insert(*dealer, record.clone());
            }
            AllianceEvent::RemoteWarningNoted { dealer, warning } => {
                let notes = self.remote.entry(*dealer).or_default();
                match find_remote(notes, warning) {
                    Ok(at) => notes[at] = warning.clone(),
                    Err(at) => notes.insert(at, warning.clone()),
                }
            }
            AllianceEvent::RemoteLoanNoted {
                market,
                auction,
                loan,
                dealer,
                repaid,
            } => {
                let noted = RemoteLoan {
                    loan: *loan,
                    dealer: *dealer,
                    repaid: *repaid,
                };
                self.remote_loans
                    .entry(market.clone())
                    .or_default()
                    .insert(*auction, noted);
            }
            AllianceEvent::HandedOff { .. }
            | AllianceEvent::RetailRefused { .. }
            | AllianceEvent::Expelled { .. }
            | AllianceEvent::Refused(_) => {}
        }
    }

    fn hand_off(
        &mut self,
        now: u64,
        record: HandOffRecord,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        // Idempotent by auction: at-least-once delivery upstream, one item here.
        if let Some(&item) = self.by_auction.get(&record.auction) {
            out.push(AllianceEvent::HandedOff {
                auction: record.auction,
                item,
                duplicate: true,
            });
            return Ok(());
        }
        let sale = registry
            .sale(record.auction)
            .ok_or(AllianceRefusal::NotSold)?;
        if (record.seller, record.dealer, record.price) != (sale.seller, sale.buyer, sale.price) {
            return Err(AllianceRefusal::RecordMismatch);
        }
        let reasons = certify(&record, sale.vin, sale.inspection);
        self.deliver(now, record, reasons, None, out);
        Ok(())
    }

    /// A sold auction of another market: checked there against that market's book, so
    /// here only what this market can check (the market's name, the buyer, the price)
    /// and the record's own certification.
    fn hand_off_from(
        &mut self,
        now: u64,
        market: String,
        record: HandOffRecord,
        vehicle: Vehicle,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        if !valid_market(&market) {
            return Err(AllianceRefusal::InvalidMarket);
        }
        // Idempotent by (market, auction), as `hand_off` is by auction.
        if let Some(item) = self
            .from_markets
            .get(&market)
            .and_then(|lots| lots.get(&record.auction))
            .map(|f| f.item)
        {
            out.push(AllianceEvent::HandedOff {
                auction: record.auction,
                item,
                duplicate: true,
            });
            return Ok(());
        }
        // Accounts exist in every market of a cluster: the buyer is known here too.
        registry
            .dealer_status(record.dealer)
            .ok_or(AllianceRefusal::UnknownDealer)?;
        if record.price == 0 || record.price > MAX_AMOUNT {
            return Err(AllianceRefusal::InvalidAmount);
        }
        // The listing is not in this book: the record is its own sale's listing. What it
        // can still fail is a report that bars the car, a bad VIN, and a claimed hash
        // that is not its report's (a record altered on its way).
        let reasons = certify(&record, &record.vin, &record.inspection);
        self.deliver(now, record, reasons, Some((market, vehicle)), out);
        Ok(())
    }

    /// Creates the item of a hand-off that passed its checks and files it under its
    /// auction: this book's (`elsewhere` is `None`) or the selling market's, with the car
    /// as its seller described it. The events that
    /// answer it: `HandedOff`, `ItemFrom` when it came from another market, then
    /// `ItemChanged`.
    fn deliver(
        &mut self,
        now: u64,
        record: HandOffRecord,
        reasons: Vec<Reason>,
        elsewhere: Option<(String, Vehicle)>,
        out: &mut Vec<AllianceEvent>,
    ) {
        let id = ItemId(next_id(self.items.len()));
        let item = Item {
            id,
            auction: record.auction,
            // The item keeps the hash of the report it carries, recomputed here: a record
            // whose claimed hash was wrong is not certified (`inspection_mismatch`), and
            // its item still shows the true fingerprint of what it carries.
            inspection_sha256: inspection_sha256(&record.inspection),
            vin: record.vin,
            seller: record.seller,
            dealer: record.dealer,
            price: record.price,
            inspection: record.inspection,
            certified: reasons.is_empty(),
            reasons,
            status: ItemStatus::InStock,
            delivered_at: now,
            retail: None,
            return_claim: None,
            refunded_at: None,
            rated: false,
            disposal: None,
        };
        out.push(AllianceEvent::HandedOff {
            auction: item.auction,
            item: id,
            duplicate: false,
        });
        match elsewhere {
            None => {
                self.by_auction.insert(item.auction, id);
            }
            Some((market, vehicle)) => {
                out.push(AllianceEvent::ItemFrom {
                    item: id,
                    market: market.clone(),
                    auction: item.auction,
                    vehicle: Box::new(vehicle.clone()),
                });
                let filed = SoldElsewhere { item: id, vehicle };
                self.from_markets
                    .entry(market)
                    .or_default()
                    .insert(item.auction, filed);
            }
        }
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        self.items.insert(id, item);
    }

    /// The holding dealer sold the car to a consumer. A car paid for from a credit line
    /// and not yet repaid is sold out of trust (a violation): for a car of this book, a
    /// loan of this book's; for a car handed off from another market (`from_markets`), the
    /// loan that market made on it, as noted here (`remote_loans`).
    #[allow(clippy::too_many_arguments)] // the fields of one Retail, unpacked
    fn retail(
        &mut self,
        now: u64,
        rules: &AllianceRules,
        id: ItemId,
        by: Actor,
        consumer_ref: String,
        price: Fen,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        let item = self.items.get(&id).ok_or(AllianceRefusal::UnknownItem)?;
        if by != Actor::Dealer(item.dealer) {
            return Err(AllianceRefusal::NotAllowed);
        }
        if item.status != ItemStatus::InStock {
            return Err(AllianceRefusal::WrongState);
        }
        if price == 0 || price > MAX_AMOUNT {
            return Err(AllianceRefusal::InvalidAmount);
        }
        let (dealer, title_ok) = (item.dealer, item.inspection.title_transferable);
        // The registry's loans are keyed by this book's lots. An item from another market
        // carries that market's auction id, which here names an unrelated local lot:
        // asking would find that lot's loan (a false "sold out of trust"). Its own loan is
        // the selling market's, as noted.
        let open_loan = match self.origin_of(id, item.auction) {
            Some((market, auction, _)) => self
                .remote_loan(market, auction)
                .filter(|l| !l.repaid)
                .map(|l| l.loan),
            None => registry.open_loan(item.auction),
        };
        if rules.version >= 2 {
            let barred: Vec<Reason> = item
                .reasons
                .iter()
                .copied()
                .filter(|r| r.is_zero_tolerance())
                .collect();
            if !barred.is_empty() {
                self.refuse_retail(now, rules, id, dealer, barred, registry, out);
                return Ok(());
            }
        }
        let item = self
            .items
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownItem)?;
        item.status = ItemStatus::Retailed;
        item.retail = Some(RetailSale {
            consumer_ref,
            price,
            at: now,
            return_until: now.saturating_add(rules.return_window_ms),
        });
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        // Selling a consumer a car whose title cannot pass to them breaks the alliance's
        // "real source" promise, whatever the report disclosed to the dealer. (From rules
        // version 2 such a sale is refused above instead.)
        if !title_ok {
            self.violate(
                now,
                dealer,
                Cause::TitleNotTransferable { item: id },
                registry,
                out,
            );
        }
        // A car paid for from the credit line and sold before the loan is repaid is sold
        // out of trust. The sale stands: the consumer bought a car the dealer held.
        if let Some(loan) = open_loan {
            self.violate(
                now,
                dealer,
                Cause::SoldOutOfTrust { item: id, loan },
                registry,
                out,
            );
        }
        Ok(())
    }

    /// A retail sale zero tolerance forbids: nothing is sold; the attempt is counted on the
    /// dealer's record and, as `rules.refused_retail` says, warned.
    #[allow(clippy::too_many_arguments)] // the refused Retail's facts, unpacked
    fn refuse_retail(
        &mut self,
        now: u64,
        rules: &AllianceRules,
        id: ItemId,
        dealer: DealerId,
        reasons: Vec<Reason>,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) {
        let cause = Cause::ZeroToleranceRetail { item: id };
        let warned_before = self.dealer_warnings(dealer).any(|w| w.cause == cause);
        let warn = match rules.refused_retail {
            RefusedRetail::WarnOncePerCar => !warned_before,
            RefusedRetail::CountOnly => false,
        };
        let record = self.records.entry(dealer).or_default();
        record.refused_retail = record.refused_retail.saturating_add(1);
        let record = record.clone();
        // The refusal first, so a reader meets the reason before its consequences.
        let at = out.len();
        out.push(AllianceEvent::RetailRefused {
            item: id,
            dealer,
            reasons,
            warning: None,
        });
        if warn {
            // `violate` reports the record, with this attempt counted.
            let warning = self.violate(now, dealer, cause, registry, out);
            if let Some(AllianceEvent::RetailRefused { warning: w, .. }) = out.get_mut(at) {
                *w = Some(warning);
            }
        } else {
            out.push(AllianceEvent::RecordChanged { dealer, record });
        }
    }

    /// The holding dealer (or an operator) records that the car left the alliance.
    fn dispose(
        &mut self,
        now: u64,
        id: ItemId,
        by: Actor,
        channel: Channel,
        note: String,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        let item = self
            .items
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownItem)?;
        match by {
            Actor::Admin => {}
            Actor::Dealer(d) if d == item.dealer => {}
            Actor::Dealer(_) | Actor::Service => return Err(AllianceRefusal::NotAllowed),
        }
        match item.status {
            // The dealer holds the car: never sold on, or taken back with a refund.
            ItemStatus::InStock | ItemStatus::Refunded => {}
            ItemStatus::Retailed | ItemStatus::Returned | ItemStatus::Disposed => {
                return Err(AllianceRefusal::WrongState)
            }
        }
        item.status = ItemStatus::Disposed;
        item.disposal = Some(Disposal {
            channel,
            note,
            at: now,
        });
        let dealer = item.dealer;
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        self.correct(now, dealer, |w| w.cause.corrected_by_disposal_of(id), out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the fields of one Return, unpacked
    fn return_item(
        &mut self,
        now: u64,
        id: ItemId,
        consumer_ref: String,
        reason: ReturnReason,
        details: String,
        mut findings: Vec<Finding>,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        let ReturnReason::NotAsDescribed = reason;
        let item = self.items.get(&id).ok_or(AllianceRefusal::UnknownItem)?;
        let retail = match (item.status, &item.retail) {
            (ItemStatus::InStock, _) | (_, None) => return Err(AllianceRefusal::NotRetailed),
            (ItemStatus::Returned, _) => return Err(AllianceRefusal::AlreadyReturned),
            (ItemStatus::Refunded | ItemStatus::Disposed, _) => {
                return Err(AllianceRefusal::WrongState)
            }
            (ItemStatus::Retailed, Some(r)) => r,
        };
        // The window is half-open: at exactly retail + 120 h it has closed.
        if now >= retail.return_until {
            return Err(AllianceRefusal::ReturnWindowClosed);
        }
        findings.sort_unstable();
        findings.dedup();
        // Zero tolerance applies to what the alliance certified: a certified car returned
        // with hidden damage (or a title that cannot pass) is the dealer's violation. One
        // return is one violation, named after its gravest finding.
        let cause = if !item.certified {
            None
        } else if findings.iter().any(|f| f.is_damage()) {
            Some(Cause::HiddenDamage { item: id })
        } else if findings.contains(&Finding::TitleNotTransferable) {
            Some(Cause::TitleNotTransferable { item: id })
        } else {
            None
        };
        let dealer = item.dealer;
        let item = self
            .items
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownItem)?;
        item.status = ItemStatus::Returned;
        item.return_claim = Some(ReturnClaim {
            consumer_ref,
            details,
            findings,
            at: now,
        });
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        if let Some(cause) = cause {
            self.violate(now, dealer, cause, registry, out);
        }
        Ok(())
    }

    fn refund(&mut self, now: u64, id: ItemId, out: &mut Vec<AllianceEvent>) -> Outcome {
        let item = self
            .items
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownItem)?;
        match item.status {
            // A refund unwinds a retail sale: after an accepted return (the usual case), or
            // directly, when the dealer takes back a car it should not have sold.
            ItemStatus::Returned | ItemStatus::Retailed => {}
            ItemStatus::InStock => return Err(AllianceRefusal::NotRetailed),
            ItemStatus::Refunded | ItemStatus::Disposed => return Err(AllianceRefusal::WrongState),
        }
        item.status = ItemStatus::Refunded;
        item.refunded_at = Some(now);
        let dealer = item.dealer;
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        self.correct(now, dealer, |w| w.cause.corrected_by_refund_of(id), out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the fields of one OpenComplaint, unpacked
    fn open_complaint(
        &mut self,
        now: u64,
        rules: &AllianceRules,
        dealer: DealerId,
        item: Option<ItemId>,
        consumer_ref: String,
        text: String,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        registry
            .dealer_status(dealer)
            .ok_or(AllianceRefusal::UnknownDealer)?;
        if let Some(item) = item {
            let it = self.items.get(&item).ok_or(AllianceRefusal::UnknownItem)?;
            if it.dealer != dealer {
                return Err(AllianceRefusal::WrongDealer);
            }
        }
        let id = ComplaintId(next_id(self.complaints.len()));
        let due_at = now.saturating_add(rules.complaint_due_ms);
        let complaint = Complaint {
            id,
            dealer,
            item,
            consumer_ref,
            text,
            opened_at: now,
            due_at,
            status: ComplaintStatus::Open,
            resolution: None,
            resolved_at: None,
            warning: None,
        };
        out.push(AllianceEvent::ComplaintChanged(Box::new(complaint.clone())));
        self.complaints.insert(id, complaint);
        self.due.insert((due_at, id));
        Ok(())
    }

    fn resolve(
        &mut self,
        now: u64,
        id: ComplaintId,
        by: Actor,
        resolution: String,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        let c = self
            .complaints
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownComplaint)?;
        match by {
            Actor::Admin => {}
            Actor::Dealer(d) if d == c.dealer => {}
            Actor::Dealer(_) | Actor::Service => return Err(AllianceRefusal::NotAllowed),
        }
        let was = c.status;
        if was == ComplaintStatus::Resolved {
            return Err(AllianceRefusal::AlreadyResolved);
        }
        c.status = ComplaintStatus::Resolved;
        c.resolution = Some(resolution);
        c.resolved_at = Some(now);
        let (dealer, due_at) = (c.dealer, c.due_at);
        out.push(AllianceEvent::ComplaintChanged(Box::new(c.clone())));
        self.due.remove(&(due_at, id));
        if was == ComplaintStatus::Overdue {
            let corrects = |w: &Warning| w.cause == Cause::OverdueComplaint { complaint: id };
            self.correct(now, dealer, corrects, out);
        }
        Ok(())
    }

    fn rate(
        &mut self,
        dealer: DealerId,
        id: ItemId,
        condition: u8,
        service: u8,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        if !(1..=5).contains(&condition) || !(1..=5).contains(&service) {
            return Err(AllianceRefusal::InvalidRating);
        }
        let item = self
            .items
            .get_mut(&id)
            .ok_or(AllianceRefusal::UnknownItem)?;
        if item.dealer != dealer {
            return Err(AllianceRefusal::WrongDealer);
        }
        if item.retail.is_none() {
            return Err(AllianceRefusal::NotRetailed);
        }
        if item.rated {
            return Err(AllianceRefusal::AlreadyRated);
        }
        item.rated = true;
        out.push(AllianceEvent::ItemChanged(Box::new(item.clone())));
        let record = self.records.entry(dealer).or_default();
        record.ratings += 1;
        record.marks += 2;
        record.marks_sum += u64::from(condition) + u64::from(service);
        out.push(AllianceEvent::RecordChanged {
            dealer,
            record: record.clone(),
        });
        Ok(())
    }

    /// Takes in a warning another market issued (or its correction). A note is not a
    /// violation here and never expels by itself: it is counted when the dealer next
    /// commits one (`violate`). The market that issued it decides expulsion for its own
    /// violation, counting this market's warnings the same way.
    fn note_remote(
        &mut self,
        dealer: DealerId,
        note: RemoteWarning,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        if !valid_market(&note.market) {
            return Err(AllianceRefusal::InvalidMarket);
        }
        registry
            .dealer_status(dealer)
            .ok_or(AllianceRefusal::UnknownDealer)?;
        // One (market, id) is one warning of one dealer: a note naming another dealer for
        // a warning already noted is a relay's mistake, and must not move the count.
        let elsewhere = self
            .remote
            .iter()
            .any(|(&d, notes)| d != dealer && find_remote(notes, &note).is_ok());
        if elsewhere {
            return Err(AllianceRefusal::WrongDealer);
        }
        let notes = self.remote.entry(dealer).or_default();
        let noted = match find_remote(notes, &note) {
            Ok(at) => {
                let w = &mut notes[at];
                w.merge(note.issued_at, note.corrected_at)
                    .then(|| w.clone())
            }
            Err(at) => {
                notes.insert(at, note.clone());
                Some(note)
            }
        };
        if let Some(warning) = noted {
            out.push(AllianceEvent::RemoteWarningNoted { dealer, warning });
        }
        Ok(())
    }

    /// Takes in another market's loan on a car it sold (or its repayment). A note is not a
    /// violation: it is asked when the car is retailed here. A repayment noted corrects
    /// the sale out of trust of that car, found by the item filed under (`market`,
    /// `auction`), never by the loan's id, which other books (this one too) also use.
    fn note_remote_loan(
        &mut self,
        now: u64,
        market: String,
        auction: LotId,
        note: RemoteLoan,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> Outcome {
        if !valid_market(&market) {
            return Err(AllianceRefusal::InvalidMarket);
        }
        registry
            .dealer_status(note.dealer)
            .ok_or(AllianceRefusal::UnknownDealer)?;
        let noted = self.remote_loan(&market, auction).copied();
        // A book finances an auction once: another loan or borrower for the same auction
        // is a relay's mistake, and must not replace the loan a sale is judged by.
        if noted.is_some_and(|n| (n.loan, n.dealer) != (note.loan, note.dealer)) {
            return Err(AllianceRefusal::RecordMismatch);
        }
        // Idempotent, and a repayment is final: only a new loan or open → repaid changes.
        if noted.is_some_and(|n| n.covers(note.loan, note.repaid)) {
            return Ok(());
        }
        // Past that check, a loan noted before is one this note repays.
        let repays = noted.is_some();
        self.remote_loans
            .entry(market.clone())
            .or_default()
            .insert(auction, note);
        let car = self.item_from(&market, auction).map(|i| (i.id, i.dealer));
        out.push(AllianceEvent::RemoteLoanNoted {
            market,
            auction,
            loan: note.loan,
            dealer: note.dealer,
            repaid: note.repaid,
        });
        // Only the holder of the car can have sold it out of trust (`retail`).
        if let (true, Some((item, holder))) = (repays, car) {
            let corrects =
                |w: &Warning| matches!(w.cause, Cause::SoldOutOfTrust { item: i, .. } if i == item);
            self.correct(now, holder, corrects, out);
        }
        Ok(())
    }

    /// Records a violation: one warning, and expulsion if the dealer already had two
    /// uncorrected warnings, in this market or (noted) in others of the cluster. Returns
    /// the warning's id.
    fn violate(
        &mut self,
        now: u64,
        dealer: DealerId,
        cause: Cause,
        registry: &impl Registry,
        out: &mut Vec<AllianceEvent>,
    ) -> WarningId {
        let id = WarningId(next_id(self.warnings.len()));
        let uncorrected_before = self.uncorrected(dealer);
        let record = self.records.entry(dealer).or_default();
        record.violations += 1;
        record.warnings.push(id);
        let warning = Warning {
            id,
            dealer,
            cause,
            issued_at: now,
            corrected_at: None,
        };
        out.push(AllianceEvent::WarningChanged(Box::new(warning.clone())));
        out.push(AllianceEvent::RecordChanged {
            dealer,
            record: record.clone(),
        });
        self.warnings.insert(id, warning);
        if uncorrected_before >= 2 && registry.dealer_status(dealer) != Some(DealerStatus::Expelled)
        {
            out.push(AllianceEvent::Expelled {
                dealer,
                warning: id,
            });
        }
        id
    }

    /// The warnings this market issued to `dealer`, oldest first.
    fn dealer_warnings(&self, dealer: DealerId) -> impl Iterator<Item = &Warning> {
        self.records
            .get(&dealer)
            .into_iter()
            .flat_map(|r| &r.warnings)
            .filter_map(|id| self.warnings.get(id))
    }

    /// Corrects the dealer's uncorrected warnings that `corrects` picks.
    fn correct(
        &mut self,
        now: u64,
        dealer: DealerId,
        corrects: impl Fn(&Warning) -> bool,
        out: &mut Vec<AllianceEvent>,
    ) {
        let Some(record) = self.records.get(&dealer) else {
            return;
        };
        for id in &record.warnings {
            if let Some(w) = self.warnings.get_mut(id) {
                if !w.corrected() && corrects(w) {
                    w.corrected_at = Some(now);
                    out.push(AllianceEvent::WarningChanged(Box::new(w.clone())));
                }
            }
        }
    }
}

/// Whether `name` may name another market of the cluster: not empty, at most
/// [`MAX_MARKET_NAME`] bytes.
fn valid_market(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_MARKET_NAME
}

/// Where `note`'s (market, id) is, or would go, in a dealer's notes sorted by that key.
fn find_remote(notes: &[RemoteWarning], note: &RemoteWarning) -> Result<usize, usize> {
    let key = (note.market.as_str(), note.warning);
    notes.binary_search_by(|w| (w.market.as_str(), w.warning).cmp(&key))
}

/// The next id for a table of `len` entries (ids start at 1).
fn next_id(len: usize) -> u32 {
    u32::try_from(len + 1).expect("id space exhausted")
}
