//! The auction core: pure, synchronous, deterministic.
//!
//! Owns the rules of bidding (increments, proxy bids, reserve, buy-now, soft close,
//! buying power, idempotency) and the state of every lot and dealer. It must not read a
//! clock, draw a random number, touch a socket or a file, or let hash-map order reach its
//! output: time and order come in as arguments (`Book::apply(seq, now_ms, command)`), and
//! the next timer is a query (`Book::next_deadline`). The engine drives it.

mod book;
mod command;
mod event;
mod ids;
mod lot;
mod money;
mod receipts;
mod rules;

pub use book::{Book, Dealer, Seller, Service};
pub use command::{
    BidId, Canceller, Command, DealerStatus, Inspection, Listing, TokenHash, Vehicle,
};
pub use event::{BidOutcome, Event, LotStatus, LotUpdate, Outcome, Refusal, Rejection};
pub(crate) use ids::id_type;
pub use ids::{DealerId, LotId, ParseIdError, SellerId, ServiceId};
pub use lot::{Lead, Lot};
pub use money::{Fen, Increments, IncrementsError, Tier, FEN_PER_YUAN, MAX_AMOUNT};
pub use receipts::{Key as ReceiptKey, Receipt, Receipts};
pub use rules::Rules;

#[cfg(test)]
mod tests;
