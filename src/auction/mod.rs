//! The auction core: pure, synchronous, deterministic.
//!
//! Owns the rules of bidding (increments, proxy bids, reserve, buy-now, soft close,
//! buying power, idempotency), a dealer's deposit moved in and out by transfers between
//! markets, and the state of every lot and dealer. It must not read a
//! clock, draw a random number, touch a socket or a file, or let hash-map order reach its
//! output: time and order come in as arguments (`Book::apply(seq, now_ms, command)`), and
//! the next timer is a query (`Book::next_deadline`). It speaks the shared vocabulary
//! (`crate::vocab`) and knows nothing of the alliance; `crate::market` holds both and is
//! what the engine drives.

mod bidding;
mod book;
mod close;
mod command;
mod credit;
mod event;
mod increments;
mod lot;
mod membership;
mod receipts;
mod rules;
mod transfer;

pub use book::{Book, BookParts, Dealer, Seller, Service};
pub use command::{BidId, Canceller, Command, Listing, TokenHash};
pub use credit::{Borrower, CreditLine, Loan};
pub use event::{BidOutcome, Event, LotStatus, LotUpdate, Outcome, Refusal, Rejection};
pub use increments::{Increments, IncrementsError, Tier};
pub use lot::{Lead, Lot, PreBid};
pub use membership::{ActiveIsMember, Membership};
pub use receipts::{Digest as ReceiptDigest, Receipt, Receipts};
pub use rules::Rules;
pub(crate) use rules::{default_bid_id_retention_ms, default_credit_due_ms, first_version};
pub use transfer::{
    Direction, Transfer, TransferId, TransferOutcome, TransferRefusal, Transfers,
    MAX_MARKET_NAME_BYTES, MAX_TRANSFER_ID_BYTES,
};

#[cfg(test)]
mod tests;
