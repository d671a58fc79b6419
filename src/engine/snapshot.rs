//! Snapshot serialization, off the engine's tasks.
//!
//! The sequencer copies the book at the end of a batch (`Snapshots::start`); a thread of
//! its own, at background priority, serializes the copy; the writer saves the bytes (see
//! `writer.rs` for when). One snapshot at a time: the permit travels with the copy and
//! then the bytes, and a due snapshot waits while the previous one still holds it.
//! Must not: block the sequencer for anything but the copy, or keep serializing a
//! snapshot nobody waits for.

use super::background;
use crate::market::Market;
use crate::store::Snapshot;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// A snapshot of the book as of the end of one batch, being serialized off the engine's
/// tasks. Resolves once the bytes are ready; an error means there will be none (the
/// serialization failed, or gave up because nobody was waiting any more).
pub(super) type PendingSnapshot = oneshot::Receiver<Serialized>;

/// A serialized book on its way to the journal.
pub(super) struct Serialized {
    pub(super) snapshot: Snapshot,
    /// When the sequencer took the copy, for the log line.
    pub(super) started: Instant,
    /// The engine's one snapshot permit, released when this is saved or dropped: at most
    /// one book copy and one set of snapshot bytes (77 MiB for a million receipts) are
    /// alive because of snapshots.
    _permit: OwnedSemaphorePermit,
}

/// Starts snapshots, one at a time.
pub(super) struct Snapshots {
    /// One permit: held from the book copy until its bytes are saved or dropped.
    permit: Arc<Semaphore>,
}

impl Snapshots {
    pub(super) fn new() -> Self {
        Self {
            permit: Arc::new(Semaphore::new(1)),
        }
    }

    /// Copies `book` (all it costs the caller: receipts are shared copy-on-write, so the
    /// copy does not grow with them) and serializes the copy on a thread of its own.
    /// `None` if the previous snapshot is still being serialized or saved: this one is
    /// deferred, not skipped, as the caller's count of commands keeps growing and the
    /// next write tries again.
    pub(super) fn start(&self, market: &Market) -> Option<PendingSnapshot> {
        let Ok(permit) = self.permit.clone().try_acquire_owned() else {
            tracing::debug!("previous snapshot still in flight; deferred");
            return None;
        };
        let started = Instant::now();
        let market = market.clone();
        let (to, pending) = oneshot::channel();
        // Not awaited: the writer takes the result through `pending`. On its own thread at
        // background priority, not tokio's blocking pool: lowering a pooled thread's
        // priority would stay with the thread, and raising it back needs privileges. A
        // thread that cannot start drops `to`, which the writer reads as "none".
        let spawned = background::spawn("gavel-snapshot", move || {
            serialize_snapshot(market, started, permit, to)
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the snapshot thread; snapshot skipped");
        }
        Some(pending)
    }
}

/// Bytes the serializer writes between two checks that its snapshot is still wanted.
const ABANDON_CHECK_BYTES: usize = 1 << 20;

/// Serializes `book` (on the snapshot thread, at background priority: the work grows with
/// the book, and the bytes are sorted so they do not depend on hash order) and sends the
/// result to `to`. Gives up early once `to` is closed, i.e. the writer dropped the
/// snapshot after a failed append or at shutdown, so an unwanted snapshot does not keep a
/// core busy.
fn serialize_snapshot(
    market: Market,
    started: Instant,
    permit: OwnedSemaphorePermit,
    to: oneshot::Sender<Serialized>,
) {
    let seq = market.last_seq();
    let mut out = Abandonable::new(&to);
    let res = rmp_serde::encode::write(&mut out, &market);
    let bytes = out.bytes;
    // The copy is freed here, before the bytes travel on, so the two are not both held
    // while the snapshot waits for the writer.
    drop(market);
    match res {
        Ok(()) => {
            let _ = to.send(Serialized {
                snapshot: Snapshot { seq, bytes },
                started,
                _permit: permit,
            });
        }
        Err(_) if to.is_closed() => tracing::debug!(seq, "snapshot no longer wanted"),
        Err(e) => tracing::error!(seq, error = %e, "market did not serialize; no snapshot"),
    }
}

/// The serializer's output: a `Vec` that fails the write once nobody wants the bytes.
struct Abandonable<'a> {
    bytes: Vec<u8>,
    wanted: &'a oneshot::Sender<Serialized>,
    /// Length at which to look at `wanted` again.
    next_check: usize,
}

impl<'a> Abandonable<'a> {
    fn new(wanted: &'a oneshot::Sender<Serialized>) -> Self {
        Self {
            bytes: Vec::new(),
            wanted,
            next_check: 0,
        }
    }
}

impl Write for Abandonable<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() >= self.next_check {
            if self.wanted.is_closed() {
                return Err(io::Error::other("snapshot no longer wanted"));
            }
            self.next_check = self.bytes.len() + ABANDON_CHECK_BYTES;
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serializer_stops_once_its_snapshot_is_unwanted() {
        let (to, pending) = tokio::sync::oneshot::channel();
        let mut out = Abandonable::new(&to);
        assert!(std::io::Write::write_all(&mut out, b"bytes").is_ok());
        drop(pending);
        // The next check (at the start of every MiB) sees nobody waits any more.
        let mut failed = false;
        for _ in 0..=(1 << 20) / 1024 + 1 {
            if std::io::Write::write_all(&mut out, &[0; 1024]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "the serializer kept writing an unwanted snapshot");
    }
}
