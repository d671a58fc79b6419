//! Commands: every input that can change the book.
//!
//! A command is what a client, an operator or a timer asked for, before any rule was
//! applied. The sequencer stamps it with a sequence number and a time and journals it (as
//! part of a `crate::market::Command`); the book applies it. Commands are imperative
//! (`PlaceBid`), events past tense.

use super::credit::Borrower;
use super::increments::Increments;
use super::transfer::TransferId;
use crate::vocab::{DealerId, DealerStatus, Fen, Inspection, LoanId, LotId, SellerId, Vehicle};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A SHA-256 digest of a bearer token. The book stores only digests, never tokens.
pub type TokenHash = [u8; 32];

/// A client-chosen bid id (at most 64 bytes, checked at decode time by the gateway).
pub type BidId = Arc<str>;

/// Who asked to cancel a lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Canceller {
    /// The lot's own seller: allowed only before the first accepted bid.
    Seller(SellerId),
    /// An operator: allowed until the lot has an outcome.
    Admin,
}

/// A seller's listing, as validated by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The car.
    pub vehicle: Vehicle,
    /// Its inspection.
    pub inspection: Inspection,
    /// First bid must be at least this.
    pub start_price: Fen,
    /// Hidden from dealers; the lot sells outright only at or above it.
    pub reserve: Fen,
    /// Optional price that closes the lot at once.
    pub buy_now: Option<Fen>,
    /// When bidding opens; `None` or a past time opens it at once.
    pub starts_at: Option<u64>,
    /// Auction length; `None` takes the configured default.
    pub duration_ms: Option<u64>,
}

impl Listing {
    /// Whether a lot of this listing at `price` has reached its reserve.
    pub fn reserve_met_at(&self, price: Option<Fen>) -> bool {
        price.is_some_and(|p| p >= self.reserve)
    }

    /// The buy-now price while it is still on offer at `price` (it is withdrawn once the
    /// reserve is met).
    pub fn buy_now_at(&self, price: Option<Fen>) -> Option<Fen> {
        self.buy_now.filter(|_| !self.reserve_met_at(price))
    }

    /// Lowest acceptable next bid at `price`: the start price, then price +
    /// increment(price).
    pub fn min_next_after(&self, price: Option<Fen>, increments: &Increments) -> Fen {
        match price {
            None => self.start_price,
            // Prices are capped at MAX_AMOUNT, far below u64::MAX, so this never saturates.
            Some(p) => p.saturating_add(increments.increment(p)),
        }
    }
}

/// Every input to the book. The variants' names are part of the journal's format (see
/// `crate::market::durable`): never rename one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create a seller account.
    RegisterSeller {
        /// Display name.
        name: String,
        /// Digest of the seller's token.
        token_hash: TokenHash,
    },
    /// Create a dealer account.
    RegisterDealer {
        /// Display name.
        name: String,
        /// Deposit in fen; buying power is deposit × leverage.
        deposit: Fen,
        /// Sellers whose cars this dealer may not bid on.
        linked_sellers: Vec<SellerId>,
        /// Digest of the dealer's token.
        token_hash: TokenHash,
    },
    /// Create a service principal (the consumer site of the alliance).
    RegisterService {
        /// Display name.
        name: String,
        /// Digest of the service's token.
        token_hash: TokenHash,
    },
    /// Set a dealer's deposit.
    SetDeposit {
        /// The dealer.
        dealer: DealerId,
        /// New deposit in fen.
        deposit: Fen,
    },
    /// Change a dealer's standing (admin, or the alliance's sanctions).
    SetDealerStatus {
        /// The dealer.
        dealer: DealerId,
        /// New status.
        status: DealerStatus,
        /// Why, for the audit trail.
        reason: String,
    },
    /// List a car.
    ListCar {
        /// The seller listing it.
        seller: SellerId,
        /// What is listed.
        listing: Box<Listing>,
    },
    /// A dealer's bid (plain, or proxy with `max`).
    PlaceBid {
        /// The bidder.
        dealer: DealerId,
        /// The lot.
        lot: LotId,
        /// Placed amount in fen.
        amount: Fen,
        /// Proxy ceiling in fen.
        max: Option<Fen>,
        /// Client-chosen id, unique per dealer.
        bid_id: BidId,
    },
    /// Cancel a lot.
    CancelLot {
        /// The lot.
        lot: LotId,
        /// Who asks.
        by: Canceller,
    },
    /// The seller's answer to a best offer under the reserve.
    Decide {
        /// The lot.
        lot: LotId,
        /// The seller answering.
        seller: SellerId,
        /// Sell at the price (true) or not.
        accept: bool,
    },
    /// The buyer paid: a sold lot no longer counts against the buyer's buying power.
    Settle {
        /// The lot.
        lot: LotId,
    },
    /// Fire every timer due at or before the command's time.
    Tick,
    /// First command after a restart: lots whose close (or decision deadline) passed while
    /// the engine was down get `outage_grace_ms` more, instead of closing unseen; so do
    /// open complaints whose due time passed (a dealer could not answer them meanwhile).
    Resume,
    /// Replace the sellers a dealer is linked to (an operator's command): cars of linked
    /// sellers are `own_listing` for the dealer from this command on. A lead the dealer
    /// already holds on such a car stands (see `Book::set_links`).
    SetDealerLinks {
        /// The dealer.
        dealer: DealerId,
        /// Every seller it is linked to now (any order, repeats ignored).
        linked_sellers: Vec<SellerId>,
    },
    /// Grant, change or withdraw (0) a dealer's credit limit (an operator's command). A
    /// limit below what is drawn is allowed: it leaves no credit available until enough is
    /// repaid (see `super::credit`).
    SetCreditLimit {
        /// The dealer.
        dealer: DealerId,
        /// The new limit in fen (at most 10^12).
        limit: Fen,
    },
    /// Pay for a sold, unpaid lot from its buyer's credit line instead of settling it:
    /// the price is drawn, due after the rules' `credit_due_ms`.
    Finance {
        /// The lot.
        lot: LotId,
        /// Who asks: the buyer, or an operator.
        by: Borrower,
    },
    /// A loan was repaid in full (an operator records it): the line is restored.
    Repay {
        /// The loan.
        loan: LoanId,
    },
    /// One market's half of moving part of a dealer's deposit to another market (the
    /// cluster's, or an operator's command): the deposit here falls by `amount` only if
    /// what remains still covers the dealer's exposure here. The first result of a
    /// `transfer` id is final: a repeat is answered with it and changes nothing (see
    /// `super::transfer`).
    TransferOut {
        /// Client-chosen id, 1 to 64 bytes; the matching `TransferIn` carries the same.
        transfer: TransferId,
        /// The dealer.
        dealer: DealerId,
        /// The market the deposit goes to (1 to 32 bytes; recorded, not checked).
        to: String,
        /// How much, fen (1 to 10^12).
        amount: Fen,
    },
    /// The other half: the deposit here rises by `amount`, once per `transfer` id.
    TransferIn {
        /// The id its `TransferOut` carried.
        transfer: TransferId,
        /// The dealer.
        dealer: DealerId,
        /// The market the deposit comes from (1 to 32 bytes; recorded, not checked).
        from: String,
        /// How much, fen (1 to 10^12).
        amount: Fen,
    },
}
