//! The audit trail and shill detection: read-only analyses of the journal.
//!
//! The journal holds commands, not results: a bid's result and reason are decided by the
//! deterministic core, so the audit replays the journal through a fresh
//! [`Market`](crate::market::Market) (the same replay as `gavel replay --verify`) and
//! records, per `PlaceBid`, what the core decided (see [`scan`]). Everything here reads
//! through [`JournalRead`](crate::store::JournalRead): no lock, no lease, no write, so it
//! runs beside a live engine.
//!
//! Only what reached the engine is in the trail. Refusals decided before the engine
//! (`rate_limited`, a bid from a token that is not a dealer's, an auction string that is
//! no auction id, an unknown token, an undecodable frame) are counted in `/metrics` and
//! logged, never journaled.
//!
//! - [`scan`]: the replay, one [`Attempt`] per bid command, handed to an [`AuditSink`].
//! - [`trail`]: the dispute queries (by auction, by dealer and time, a `bid_id`'s fate,
//!   the leader at a moment), each a sink that keeps one page.
//! - [`shill`]: the per-dealer and per dealer–seller measures and the flags, pure
//!   functions of the attempts, the window and the thresholds.
//! - [`probe`]: the "discover-and-stop" probe of a proxy maximum.
//! - [`render`]: a table for people and JSON lines for tools.
//! - [`time`]: UTC timestamps in and out (ms since the epoch or RFC 3339).
//! - [`source`]: which journal to read (file or Redis) and reading it off the runtime.
//!
//! Must not: write to a journal, read a clock (a window's end is the journal's last
//! time or an argument), or hold more than one page of a query's answer.

pub mod probe;
pub mod render;
pub mod scan;
pub mod shill;
pub mod source;
pub mod time;
pub mod trail;

pub use scan::{scan, Attempt, AttemptResult, AuditSink, Scanned};
pub use shill::{ShillParams, ShillReport};
pub use source::AuditSource;
