//! Transfers of a dealer's deposit between markets: the two journaled halves
//! (`TransferOut` here, `TransferIn` in the peer market) that move part of a dealer's
//! allocation from one market's book to another's.
//!
//! In a cluster each market's book holds, as the dealer's deposit, the dealer's
//! *allocation* in that market, and enforces buying power against it alone: the bid path
//! needs no other market. What keeps the dealer's total honest is this file's two rules:
//!
//! - a `TransferOut` lowers the deposit here only if what remains still covers the
//!   dealer's exposure here (leading maxima, pre-bid maxima, won-unpaid prices), by the
//!   very computation a bid is accepted by ([`Book::buying_power_with`]); credit lines
//!   stay where they are and are never transferred;
//! - each half is applied at most once per transfer id, whatever is redelivered: the
//!   first result of an id is kept and answered again, refusals included (a refusal
//!   forgotten could be turned into an acceptance by a late retry that the coordinator no
//!   longer expects, debiting or crediting twice).
//!
//! So for every dealer, Σ over markets of deposits + Σ of transfers out but not yet in
//! equals its total deposit at every step, and since each market keeps exposure ≤ its own
//! buying power, the dealer's exposure summed over markets never passes its total
//! deposit × leverage plus its credit lines.
//!
//! Remembered transfers are never pruned: they live in the snapshot for good. Transfers
//! are rare (an operator or the cluster rebalancing a dealer's buying power, not a bid),
//! a record is about a hundred bytes, and forgetting one would let a redelivery after any
//! delay apply twice, which is exactly the failure this file exists to rule out.
//!
//! A dealer's status does not matter: a suspended or expelled dealer's allocation may
//! still move, as long as what remains covers what it holds here (its leads stand).
//!
//! Must not: read a clock (time is the command's), or know which market it is (the peer
//! market's name is only recorded; routing the matching half is the cluster's job).

use super::book::{Book, Dealer};
use super::event::Event;
use crate::vocab::{DealerId, Fen, MAX_AMOUNT};
use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A client-chosen transfer id: 1 to [`MAX_TRANSFER_ID_BYTES`] bytes of UTF-8, unique per
/// transfer across the cluster (both halves of one transfer carry the same id). A string,
/// like a `bid_id`, so a coordinator can name a transfer after what caused it and an
/// operator can read it in the journal.
pub type TransferId = Arc<str>;

/// The longest transfer id, in bytes (as for a `bid_id`).
pub const MAX_TRANSFER_ID_BYTES: usize = 64;

/// The longest market name a transfer may name, in bytes.
pub const MAX_MARKET_NAME_BYTES: usize = 32;

/// Which half of a transfer this market applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Deposit left this market (`TransferOut`).
    Out,
    /// Deposit arrived in this market (`TransferIn`).
    In,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::In => "in",
        }
    }
}

/// Why a transfer's half was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferRefusal {
    /// No such dealer in this market.
    UnknownDealer,
    /// An amount of 0 or over the cap, an id or a market name empty or too long.
    Invalid,
    /// A `TransferOut` of more than the dealer's free deposit here: what would remain
    /// would not cover its exposure here.
    ExceedsFree {
        /// The most that could have left this market at that moment.
        free: Fen,
    },
    /// A `TransferIn` that would raise the deposit here past the cap on any amount. It
    /// cannot happen while the dealer's total deposit is within the cap.
    DepositOverCap,
}

impl TransferRefusal {
    /// The `reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownDealer => "unknown_dealer",
            Self::Invalid => "invalid",
            Self::ExceedsFree { .. } => "transfer_exceeds_free",
            Self::DepositOverCap => "deposit_over_cap",
        }
    }
}

/// The result of a transfer's half, as first decided. A repeated id gets this again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferOutcome {
    /// Applied: the deposit moved by the amount.
    Accepted,
    /// Not applied; nothing changed.
    Refused(TransferRefusal),
}

/// One transfer's half as this market first applied it: its terms and its outcome. What
/// a repeat of its id is answered with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id.
    pub id: TransferId,
    /// Which half.
    pub direction: Direction,
    /// The dealer whose deposit moved.
    pub dealer: DealerId,
    /// The other market: where the deposit went (out) or came from (in).
    pub peer: String,
    /// How much, fen.
    pub amount: Fen,
    /// What happened.
    pub outcome: TransferOutcome,
    /// Sequence number of the command that first applied it.
    pub seq: u64,
    /// When.
    pub at: u64,
}

/// A transfer's half as a command asks for it (before any rule was applied).
pub(super) struct TransferTerms {
    pub(super) id: TransferId,
    pub(super) direction: Direction,
    pub(super) dealer: DealerId,
    pub(super) peer: String,
    pub(super) amount: Fen,
}

/// Every transfer's half this market applied, by direction and id. Written as the list
/// of records in key order, so the snapshot's bytes do not depend on insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transfers(BTreeMap<(Direction, TransferId), Transfer>);

impl Transfers {
    /// None applied.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many were applied.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first result of a transfer's half, if this market applied it.
    pub fn get(&self, direction: Direction, id: &str) -> Option<&Transfer> {
        // Keys are (direction, id); an `Arc<str>` for the lookup costs one allocation,
        // and transfers are rare.
        self.0.get(&(direction, Arc::from(id)))
    }

    /// Every record, in key order (direction, then id).
    pub fn iter(&self) -> impl Iterator<Item = &Transfer> {
        self.0.values()
    }
}

impl Serialize for Transfers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

impl<'de> Deserialize<'de> for Transfers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let records = Vec::<Transfer>::deserialize(d)?;
        // A key written twice keeps its first record, as the book would have.
        let mut map = BTreeMap::new();
        for t in records {
            map.entry((t.direction, Arc::clone(&t.id))).or_insert(t);
        }
        Ok(Self(map))
    }
}

impl Book {
    /// Applies one half of a transfer, or answers a repeat of its id with the first
    /// result. The direct answer ([`Event::Transfer`]) goes first; an accepted half is
    /// followed by the dealer's `DealerChanged` (its new deposit), which the views read.
    pub(super) fn transfer<E: From<Event>>(
        &mut self,
        seq: u64,
        now: u64,
        terms: TransferTerms,
        out: &mut Vec<E>,
    ) {
        let deposit_of =
            |book: &Self, dealer: DealerId| book.dealer(dealer).map_or(0, |d| d.deposit);
        if !valid_id(&terms.id) || !valid_market(&terms.peer) {
            // Not remembered: an id or a name the book will not keep is no key.
            let record = Transfer {
                id: terms.id,
                direction: terms.direction,
                dealer: terms.dealer,
                peer: String::new(),
                amount: terms.amount,
                outcome: TransferOutcome::Refused(TransferRefusal::Invalid),
                seq,
                at: now,
            };
            let deposit = deposit_of(self, record.dealer);
            return out.push(E::from(Event::Transfer {
                record: Box::new(record),
                duplicate: false,
                deposit,
            }));
        }
        let key = (terms.direction, Arc::clone(&terms.id));
        if let Some(first) = self.transfers.0.get(&key) {
            let deposit = deposit_of(self, first.dealer);
            return out.push(E::from(Event::Transfer {
                record: Box::new(first.clone()),
                duplicate: true,
                deposit,
            }));
        }
        let outcome = match self.try_transfer(&terms) {
            Ok(()) => TransferOutcome::Accepted,
            Err(refusal) => TransferOutcome::Refused(refusal),
        };
        let record = Transfer {
            id: terms.id,
            direction: terms.direction,
            dealer: terms.dealer,
            peer: terms.peer,
            amount: terms.amount,
            outcome,
            seq,
            at: now,
        };
        let dealer = record.dealer;
        self.transfers.0.insert(key, record.clone());
        out.push(E::from(Event::Transfer {
            record: Box::new(record),
            duplicate: false,
            deposit: deposit_of(self, dealer),
        }));
        if outcome == TransferOutcome::Accepted {
            let d = &self.dealers[dealer.index()];
            out.push(E::from(Event::DealerChanged {
                dealer,
                status: d.status,
                deposit: d.deposit,
                exposure: d.exposure,
            }));
        }
    }

    /// Decides a transfer's half and, when it is accepted, moves the deposit. Nothing is
    /// changed unless every check passed.
    fn try_transfer(&mut self, t: &TransferTerms) -> Result<(), TransferRefusal> {
        if t.amount == 0 || t.amount > MAX_AMOUNT {
            return Err(TransferRefusal::Invalid);
        }
        let d = self
            .dealers
            .get(t.dealer.index())
            .ok_or(TransferRefusal::UnknownDealer)?;
        let deposit = match t.direction {
            Direction::Out => {
                // What remains must cover the exposure here, by the bid path's own test.
                let remains = d.deposit.checked_sub(t.amount);
                match remains {
                    Some(r) if d.exposure <= self.buying_power_with(d, r) => r,
                    _ => {
                        return Err(TransferRefusal::ExceedsFree {
                            free: self.free_deposit(d),
                        })
                    }
                }
            }
            Direction::In => d
                .deposit
                .checked_add(t.amount)
                .filter(|&r| r <= MAX_AMOUNT)
                .ok_or(TransferRefusal::DepositOverCap)?,
        };
        self.dealers[t.dealer.index()].deposit = deposit;
        Ok(())
    }

    /// The most of a dealer's deposit that may leave this market now: its deposit less
    /// the least deposit whose buying power (with its available credit) still covers its
    /// exposure here. 0 when even the whole deposit no longer covers it (an operator
    /// lowered the deposit or the credit limit below what the dealer holds).
    pub fn free_deposit(&self, d: &Dealer) -> Fen {
        let need = d.exposure.saturating_sub(d.credit.available());
        if need == 0 {
            return d.deposit;
        }
        if self.rules.leverage == 0 {
            return 0;
        }
        d.deposit.saturating_sub(need.div_ceil(self.rules.leverage))
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_TRANSFER_ID_BYTES
}

fn valid_market(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_MARKET_NAME_BYTES
}
