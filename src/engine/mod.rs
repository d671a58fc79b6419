//! The engine: one sequencer task that owns the `Market`.
//!
//! It stamps every command with the next sequence number and its clock reading, applies
//! it to the book, fires timers from `Market::next_deadline`, and hands whole batches to the
//! journal. Nothing a command did — its reply, its broadcast, its outcome — leaves the
//! engine before the batch holding it is durable. While one batch is being written, new
//! commands collect into the next (group commit), so one round trip serves many bids.
//!
//! If a write fails the engine throws its in-memory market away and rebuilds it from the
//! journal: the journal is the truth, so a command is either durable and applied, or not
//! applied. Commands applied after the failed batch were never sent and are answered
//! `unavailable` at once. The failed batch itself may have landed (a journal that applied
//! it and failed before answering), so its commands wait for the rebuild and are answered
//! from what the journal holds: `unavailable` always means that nothing happened.
//! Must not: block on anything but the journal, or let an unbounded queue form.
//!
//! Module map:
//! - `sequencer`: `spawn` and the sequencing loop, which owns the book and does the I/O.
//! - `policy`: the loop's rulebook (clock, batching, timers, snapshots, retries), with no
//!   I/O and no clock of its own.
//! - `writer`: the task that owns the journal (appends, snapshot saves, recovery, pings).
//! - `snapshot`: serializing a copy of the book on a background thread.
//! - `handle`: `EngineHandle` and how results reach the submitter.
//! - `config`, `metrics`, `publisher`: the settings, the measurements, the durable output.
//! - `recovery`, `verify`: rebuilding a book from the journal, and checking a journal.
//! - `clock`, `background`: the engine's only clock reads, and low-priority threads.

mod background;
mod clock;
mod config;
mod handle;
mod metrics;
mod policy;
mod publisher;
mod recovery;
mod sequencer;
mod snapshot;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use config::EngineConfig;
pub use handle::{Applied, EngineHandle, Unavailable};
pub use metrics::{render_metrics, EngineMetrics};
pub use publisher::Publisher;
pub use recovery::{market_from_snapshot, recover, replay, Recovered, ReplayObserver};
pub use sequencer::spawn;
pub use verify::{digests, verify, Verification};
