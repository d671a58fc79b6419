//! A lot's life after bidding: the timers (close, soft-close, decision window, receipt
//! pruning), the close and its outcome, recovery after an outage (`Resume`), the seller's
//! decision under the reserve, cancellation, and settlement.

use super::book::{Book, PRUNE_EVERY_MS};
use super::command::Canceller;
use super::event::{Event, LotStatus, Outcome, Refusal};
use super::receipts::Receipt;
use crate::vocab::{LotId, SellerId};
use std::sync::Arc;

impl Book {
    pub(super) fn tick<E: From<Event>>(&mut self, now: u64, out: &mut Vec<E>) {
        while let Some(&(deadline, lot_id)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.fire(lot_id, out);
        }
        // Lots first, then loans: a car sold in this tick is not yet financed.
        if self.loan_due.first().is_some_and(|&(t, _)| t <= now) {
            self.loans_due(now, out);
        }
        if now >= self.pruned_at.saturating_add(PRUNE_EVERY_MS) {
            self.prune_receipts(now);
        }
    }

    /// Forgets `bid_id`s older than the retention whose lot takes no more bids (final, or
    /// a lot that does not exist), so memory does not grow with every bid ever placed. A
    /// retry of a forgotten `bid_id` is a fresh attempt; its lot is closed, so it changes
    /// nothing. Receipts of lots still open are kept whatever their age.
    pub(super) fn prune_receipts(&mut self, now: u64) {
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
    pub(super) fn fire<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
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

    pub(super) fn push_closed<E: From<Event>>(
        &self,
        lot_id: LotId,
        outcome: Outcome,
        out: &mut Vec<E>,
    ) {
        let lot = &self.lots[lot_id.index()];
        out.push(E::from(Event::Closed {
            lot: lot_id,
            outcome,
            price: lot.price,
            leader: lot.lead.map(|l| l.dealer),
            seller: lot.seller,
        }));
    }

    pub(super) fn resume<E: From<Event>>(&mut self, now: u64, out: &mut Vec<E>) {
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
        self.loans_resume(now, until, out);
    }

    pub(super) fn cancel<E: From<Event>>(
        &mut self,
        lot_id: LotId,
        by: Canceller,
        out: &mut Vec<E>,
    ) {
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

    pub(super) fn decide<E: From<Event>>(
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

    pub(super) fn settle<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
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
