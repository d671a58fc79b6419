//! Bidding on the book: a `PlaceBid` decided (plain and proxy bids, a leader's raise,
//! buy-now, buying power, the receipt that makes a `bid_id` idempotent), and pre-bids in a
//! lot's preview, placed and resolved when the lot opens.

use super::book::Book;
use super::command::BidId;
use super::event::{BidOutcome, Event, LotStatus, Outcome, Rejection};
use super::lot::{Lead, PreBid};
use super::membership::Membership;
use super::receipts::Receipt;
use crate::vocab::{DealerId, DealerStatus, Fen, LotId, MAX_AMOUNT};
use std::sync::Arc;

impl Book {
    pub(super) fn place_bid<E: From<Event>>(
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
    pub(super) fn try_bid<E: From<Event>>(
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
        let power = self.buying_power(d);
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
    pub(super) fn prebid(
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
    pub(super) fn open_prebids<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
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
    pub(super) fn release_prebids<E: From<Event>>(&mut self, lot_id: LotId, out: &mut Vec<E>) {
        for p in std::mem::take(&mut self.lots[lot_id.index()].prebids) {
            self.dealers[p.dealer.index()].exposure -= p.max;
            self.exposure_changed(p.dealer, out);
        }
    }

    /// A bid reached the buy-now price: sold at once to the bidder at that price.
    pub(super) fn buy_now<E: From<Event>>(
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
}

/// One `PlaceBid`'s terms (its `bid_id` travels apart: only the receipt needs it).
#[derive(Clone, Copy)]
pub(super) struct Bid {
    pub(super) dealer: DealerId,
    pub(super) lot: LotId,
    pub(super) amount: Fen,
    pub(super) max: Option<Fen>,
}
