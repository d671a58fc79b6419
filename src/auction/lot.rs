//! One car's lot: its listing, its bidding state and what it commits its leader to.

use super::command::Listing;
use super::event::{LotStatus, LotUpdate};
use super::increments::Increments;
use crate::vocab::{DealerId, Fen, LotId, SellerId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The dealer currently winning a lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    /// The leader.
    pub dealer: DealerId,
    /// The leader's proxy ceiling (its amount when it gave no `max`).
    pub max: Fen,
    /// The amount of the bid that made it leader: the price is never below it.
    pub amount: Fen,
}

/// A dealer's pre-bid: a hidden proxy max placed while the lot is in its preview (rules
/// version 3 on). It can be raised, never lowered or withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreBid {
    /// The dealer (one pre-bid per dealer and lot: a second one raises the first).
    pub dealer: DealerId,
    /// Its proxy ceiling.
    pub max: Fen,
    /// Sequence number of the command that set this max: the earlier of equal maxima
    /// wins, and a raise reaches its new max when it is placed.
    pub seq: u64,
}

/// A lot and its bidding state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Its id.
    pub id: LotId,
    /// Who listed it.
    pub seller: SellerId,
    /// The listing as the seller gave it (shared: snapshots and views need not copy it).
    pub listing: Arc<Listing>,
    /// Where it is in its life.
    pub status: LotStatus,
    /// When bidding opens.
    pub starts_at: u64,
    /// When bidding closes (moved later by soft-close extensions, never earlier).
    pub ends_at: u64,
    /// While `pending_seller`: when the seller's decision window lapses.
    pub decision_deadline: Option<u64>,
    /// Soft-close extensions so far.
    pub extensions: u32,
    /// Accepted bids.
    pub bids: u32,
    /// Current price; `None` before the first accepted bid.
    pub price: Option<Fen>,
    /// Who leads.
    pub lead: Option<Lead>,
    /// Whether a sold lot has been paid for (it then stops counting against the buyer).
    pub settled: bool,
    /// While `scheduled`: the pre-bids, in the order first placed. Each holds its max in
    /// its dealer's exposure until the lot opens (the winner's then held as the leader's
    /// max, the others released) or is cancelled. Absent from snapshots of lots without
    /// any, so those stay the bytes they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prebids: Vec<PreBid>,
}

impl Lot {
    /// The hidden reserve.
    pub fn reserve(&self) -> Fen {
        self.listing.reserve
    }

    /// Whether the price has reached the reserve.
    pub fn reserve_met(&self) -> bool {
        self.listing.reserve_met_at(self.price)
    }

    /// The buy-now price while it is still on offer (it is withdrawn once the reserve is met).
    pub fn buy_now(&self) -> Option<Fen> {
        self.listing.buy_now_at(self.price)
    }

    /// Lowest acceptable next bid: the start price, then price + increment(price).
    pub fn min_next(&self, increments: &Increments) -> Fen {
        self.listing.min_next_after(self.price, increments)
    }

    /// The next time a timer must look at this lot, if any.
    pub fn deadline(&self) -> Option<u64> {
        match self.status {
            LotStatus::Scheduled => Some(self.starts_at),
            LotStatus::Live => Some(self.ends_at),
            LotStatus::PendingSeller => self.decision_deadline,
            LotStatus::Sold | LotStatus::NoSale | LotStatus::Cancelled => None,
        }
    }

    /// What this lot adds to its leader's exposure: the leader's max while live; the price
    /// while waiting for the seller or sold and unpaid; nothing otherwise.
    pub fn leader_exposure(&self) -> Fen {
        match (self.status, self.lead) {
            (LotStatus::Live, Some(lead)) => lead.max,
            (LotStatus::PendingSeller, Some(_)) => self.price.unwrap_or(0),
            (LotStatus::Sold, Some(_)) if !self.settled => self.price.unwrap_or(0),
            _ => 0,
        }
    }

    /// What this lot adds to `dealer`'s exposure through its pre-bid (while scheduled).
    pub fn prebid_exposure(&self, dealer: DealerId) -> Fen {
        self.prebids
            .iter()
            .find(|p| p.dealer == dealer)
            .map_or(0, |p| p.max)
    }

    /// The public state every subscriber sees (with the leader, which the gateway hides).
    pub fn update(&self, increments: &Increments) -> LotUpdate {
        LotUpdate {
            lot: self.id,
            status: self.status,
            price: self.price,
            min_next: self.min_next(increments),
            bids: self.bids,
            reserve_met: self.reserve_met(),
            leader: self.lead.map(|l| l.dealer),
            ends_at: self.ends_at,
        }
    }
}
