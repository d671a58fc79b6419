//! The engine: one sequencer task that owns the `Book`.
//!
//! It stamps every command with the next sequence number and its clock reading, applies
//! it to the book, fires timers from `Book::next_deadline`, and hands whole batches to the
//! journal. Nothing a command did — its reply, its broadcast, its outcome — leaves the
//! engine before the batch holding it is durable. While one batch is being written, new
//! commands collect into the next (group commit), so one round trip serves many bids.
//!
//! If a write fails the engine answers every command that was not yet durable with
//! `unavailable`, throws its in-memory book away and rebuilds it from the journal: the
//! journal is the truth, so a command is either durable and applied, or not applied.
//! Must not: block on anything but the journal, or let an unbounded queue form.

mod background;
mod recovery;
mod sequencer;
mod verify;

#[cfg(test)]
mod tests;

pub use recovery::{recover, Recovered, ReplayObserver};
pub use sequencer::{
    render_metrics, spawn, Applied, EngineConfig, EngineHandle, EngineMetrics, Publisher,
    Unavailable,
};
pub use verify::{digests, verify, Verification};
