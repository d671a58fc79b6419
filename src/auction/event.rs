//! Events: what applying a command did.
//!
//! Events are small, self-contained values (no references into the book), so the engine
//! can hand them to the fan-out and the journal's consumers after the book has moved on.

use super::credit::Loan;
use super::transfer::Transfer;
use crate::vocab::{DealerId, DealerStatus, Fen, LoanId, LotId, SellerId, ServiceId};
use serde::{Deserialize, Serialize};

/// Where a lot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    /// Listed, bidding not yet open.
    Scheduled,
    /// Taking bids.
    Live,
    /// Closed under the reserve with bids: waiting for the seller.
    PendingSeller,
    /// Sold (final).
    Sold,
    /// Not sold (final).
    NoSale,
    /// Cancelled (final).
    Cancelled,
}

impl LotStatus {
    /// Whether the lot can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sold | Self::NoSale | Self::Cancelled)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::PendingSeller => "pending_seller",
            Self::Sold => "sold",
            Self::NoSale => "no_sale",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a lot's bidding ended (or the seller's later decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sold to the leader at the price.
    Sold,
    /// Not sold.
    NoSale,
    /// Under the reserve: the seller decides.
    PendingSeller,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sold => "sold",
            Self::NoSale => "no_sale",
            Self::PendingSeller => "pending_seller",
        }
    }
}

/// Why a bid was not accepted. The names are the contract's `reason` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Below `min_next`.
    BelowMinimum {
        /// The lowest acceptable amount.
        min_next: Fen,
    },
    /// Not started (a plain bid, or any bid before rules version 3), closed, pending or
    /// cancelled.
    NotLive,
    /// No such lot.
    UnknownAuction,
    /// Not an active dealer.
    NotEligible,
    /// The dealer is linked to the car's seller.
    OwnListing,
    /// Buying power exceeded.
    ExposureLimit,
    /// Decoded, but breaks a rule (amount 0, max < amount, amount over the cap, a leader's
    /// raise that does not raise).
    Invalid,
    /// A plain bid (no `max`) from the dealer who leads: it can only raise its own max.
    AlreadyLeading {
        /// The leader's current max, so it can offer a higher one.
        max: Fen,
    },
    /// A pre-bid from a dealer not in the alliance's good standing (rules version 3 on).
    NotInGoodStanding,
    /// A pre-bid under the dealer's own standing pre-bid on the lot: a pre-bid can be
    /// raised, never lowered (rules version 3 on).
    PrebidLowered {
        /// The dealer's standing pre-bid max.
        max: Fen,
    },
}

impl Rejection {
    /// The contract's `reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            Self::BelowMinimum { .. } => "below_minimum",
            Self::NotLive => "not_live",
            Self::UnknownAuction => "unknown_auction",
            Self::NotEligible => "not_eligible",
            Self::OwnListing => "own_listing",
            Self::ExposureLimit => "exposure_limit",
            Self::Invalid => "invalid",
            Self::AlreadyLeading { .. } => "already_leading",
            Self::NotInGoodStanding => "not_in_good_standing",
            Self::PrebidLowered { .. } => "prebid_lowered",
        }
    }
}

/// The result of a bid, as first decided. A repeated `bid_id` gets this again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BidOutcome {
    /// Accepted.
    Accepted {
        /// The price right after the bid.
        price: Fen,
        /// Whether the bidder leads right after the bid.
        leading: bool,
        /// `ends_at` right after the bid.
        ends_at: u64,
        /// Sequence number of the accepting command.
        seq: u64,
    },
    /// Not accepted; nothing changed.
    Rejected(Rejection),
}

/// Why a non-bid command was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No such lot.
    UnknownLot,
    /// No such dealer.
    UnknownDealer,
    /// No such seller.
    UnknownSeller,
    /// The actor may not do this to this lot (not its seller, or bids already placed).
    NotAllowed,
    /// The lot is not in a state where this applies.
    WrongState,
    /// A listing breaks a rule the API should have caught (duration, price order, caps).
    InvalidListing,
    /// An amount over the cap.
    InvalidAmount,
    /// A command with a sequence number not above the last one applied.
    OutOfOrder,
    /// No such loan.
    UnknownLoan,
    /// The buyer's available credit does not cover the price.
    CreditLimit,
}

/// The public state of a lot after a change: what every subscriber's `update` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotUpdate {
    /// The lot.
    pub lot: LotId,
    /// Status.
    pub status: LotStatus,
    /// Current price (`None` before the first accepted bid).
    pub price: Option<Fen>,
    /// Lowest acceptable next bid.
    pub min_next: Fen,
    /// Count of accepted bids.
    pub bids: u32,
    /// Whether the price has reached the reserve.
    pub reserve_met: bool,
    /// Who leads (never sent to other dealers; the gateway turns it into `leading`).
    pub leader: Option<DealerId>,
    /// When bidding closes.
    pub ends_at: u64,
}

/// Everything the book reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A seller account exists.
    SellerRegistered {
        /// Its id.
        seller: SellerId,
    },
    /// A dealer account exists.
    DealerRegistered {
        /// Its id.
        dealer: DealerId,
    },
    /// A service principal exists.
    ServiceRegistered {
        /// Its id.
        service: ServiceId,
    },
    /// A dealer's status or deposit changed.
    DealerChanged {
        /// The dealer.
        dealer: DealerId,
        /// Status now.
        status: DealerStatus,
        /// Deposit now.
        deposit: Fen,
        /// Exposure now.
        exposure: Fen,
    },
    /// A dealer's links to sellers were replaced.
    LinksChanged {
        /// The dealer.
        dealer: DealerId,
        /// Every seller it is linked to now, in id order.
        linked_sellers: Vec<SellerId>,
        /// Lots of those sellers, still open (live, or awaiting the seller's decision),
        /// that the dealer leads: its leads stand, and an operator may cancel the lot.
        leading: Vec<LotId>,
    },
    /// A dealer's exposure moved outside the bid path's own events (a lot closed, sold,
    /// settled or cancelled; a buy-now that displaced a leader). On the bid path the
    /// exposure rides on [`Event::Bid`] (the bidder) and [`Event::Outbid`] (the displaced
    /// leader), which are pushed anyway. Lean and separate from [`Event::DealerChanged`],
    /// an operator's or the alliance's change of status or deposit. Its only readers are
    /// the views (a dealer's buying power left); the gateway sends it to no one: a
    /// dealer's exposure holds its own hidden maxima.
    ExposureChanged {
        /// The dealer.
        dealer: DealerId,
        /// Exposure now.
        exposure: Fen,
    },
    /// A lot's seller-decision window opened or moved (the lot is `pending_seller` until
    /// then). Kept out of [`LotUpdate`], whose fields are exactly the wire `update`'s.
    DecisionWindow {
        /// The lot.
        lot: LotId,
        /// The last moment the seller may accept or decline.
        until: u64,
    },
    /// A lot was listed.
    Listed {
        /// The new lot.
        lot: LotId,
        /// `scheduled` or `live`.
        status: LotStatus,
        /// When bidding opens.
        starts_at: u64,
        /// When bidding closes.
        ends_at: u64,
    },
    /// The direct answer to a `PlaceBid`.
    Bid {
        /// The lot named by the bid.
        lot: LotId,
        /// The bidder.
        dealer: DealerId,
        /// The result (the first one, for a repeat).
        outcome: BidOutcome,
        /// True when this `bid_id` was seen before and nothing was applied.
        duplicate: bool,
        /// The bidder's exposure after this step (unchanged unless the bid was accepted).
        /// Carried here rather than in an event of its own: this event is already on the
        /// bid path, another one would cost a push per bid. Never sent to anyone.
        exposure: Fen,
    },
    /// A dealer lost the lead.
    Outbid {
        /// The lot.
        lot: LotId,
        /// The dealer who lost the lead.
        dealer: DealerId,
        /// Price now.
        price: Fen,
        /// Lowest acceptable next bid.
        min_next: Fen,
        /// That dealer's exposure now (its max no longer counts). Never sent: the wire
        /// `outbid` has price and `min_next` only.
        exposure: Fen,
    },
    /// A soft-close extension.
    Extended {
        /// The lot.
        lot: LotId,
        /// New close time.
        ends_at: u64,
        /// Extensions so far.
        extensions: u32,
    },
    /// A lot's public state changed.
    Updated(LotUpdate),
    /// A lot closed, or its seller decided, or the decision window lapsed.
    Closed {
        /// The lot.
        lot: LotId,
        /// What happened.
        outcome: Outcome,
        /// The price (the buy-now price for a buy-now sale), if any bid was accepted.
        price: Option<Fen>,
        /// The buyer of a `sold` outcome, or the best bidder while `pending_seller`.
        leader: Option<DealerId>,
        /// The seller.
        seller: SellerId,
    },
    /// A lot was cancelled.
    Cancelled {
        /// The lot.
        lot: LotId,
    },
    /// A sold lot was paid for.
    Settled {
        /// The lot.
        lot: LotId,
        /// The buyer.
        dealer: DealerId,
    },
    /// A dealer's credit line changed (its limit set, a loan drawn or repaid).
    CreditChanged {
        /// The dealer.
        dealer: DealerId,
        /// Limit now.
        limit: Fen,
        /// Drawn now.
        drawn: Fen,
    },
    /// A loan was drawn or changed; as it is now.
    LoanChanged(Box<Loan>),
    /// A loan's due time passed before it was repaid (seen by a tick, or by a late
    /// repayment): a violation of the alliance's rules, which the market records.
    LoanOverdue {
        /// The loan.
        loan: LoanId,
        /// The borrower.
        dealer: DealerId,
    },
    /// A loan was repaid: the market lets the alliance correct what it caused.
    LoanRepaid {
        /// The loan.
        loan: LoanId,
        /// The borrower.
        dealer: DealerId,
        /// The lot it paid for.
        lot: LotId,
    },
    /// The direct answer to a `TransferOut` or a `TransferIn`. An accepted half is followed
    /// by the dealer's [`Event::DealerChanged`] (its new deposit).
    Transfer {
        /// The half as first applied: its terms and outcome (a repeat gets the first
        /// one's, whatever it asked).
        record: Box<Transfer>,
        /// True when this id was seen before in this direction and nothing was applied.
        duplicate: bool,
        /// The dealer's deposit here after this step (0 for an unknown dealer).
        deposit: Fen,
    },
    /// A non-bid command changed nothing.
    Refused(Refusal),
}
