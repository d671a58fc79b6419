//! The alliance's rules: certification, certified inventory, returns, complaints,
//! ratings, warnings and expulsion.
//!
//! Pure and deterministic, like the auction core it lives beside: time comes in as an
//! argument (`now_ms`), deadlines are a query ([`Alliance::next_deadline`]), and nothing
//! here reads a clock, touches a socket or iterates a hash map. The [`Market`] owns the
//! only live [`Alliance`] and applies [`AllianceCommand`]s through the journal like every
//! other command, so the alliance's state is journaled, snapshotted and replayed with the
//! auctions, and a sanction (an expulsion) changes the dealer's standing in the same
//! journaled step as the violation that caused it. What the alliance needs to know of the
//! auctions (a sale, a dealer's status) it asks through [`Registry`], so it depends on
//! nothing but the shared vocabulary (`crate::vocab`).
//!
//! Must not: do I/O, decide who may call an endpoint (the API does; only "its dealer"
//! checks, which need this state, live here), know how a hand-off record reached it
//! (`crate::pipeline` does that), or import `crate::auction`.
//!
//! - [`certify`](mod@certify): the certification rules and the inspection report's SHA-256.
//! - [`model`]: items, complaints, warnings, dealer records and standings.
//! - [`command`]: commands, events, refusals, rules, the hand-off record.
//! - [`state`]: the [`Alliance`] state machine.
//!
//! [`Market`]: crate::market::Market

pub mod certify;
pub mod command;
pub mod model;
pub mod state;

pub use certify::{canonical_inspection, certify, inspection_sha256};
pub use command::{
    Actor, AllianceCommand, AllianceEvent, AllianceRefusal, AllianceRules, HandOffRecord,
    RefusedRetail, Registry, ReturnReason, Sale,
};
pub use model::{
    Cause, Channel, Complaint, ComplaintId, ComplaintStatus, Disposal, Finding, Item, ItemId,
    ItemStatus, Reason, Record, RemoteLoan, RemoteWarning, RetailSale, ReturnClaim, SoldElsewhere,
    Standing, Warning, WarningId, MAX_MARKET_NAME,
};
pub use state::Alliance;

#[cfg(test)]
pub(crate) mod tests;
