//! The task that owns the journal: appends batches in order, saves snapshots a part at a
//! time between them, rebuilds the book on request and answers readiness pings.
//!
//! A snapshot is saved only after the batch it covers is durable and acknowledged, and
//! only if no append failed in between: after a failure the book is rebuilt from the
//! journal and the lost seqs are handed out again, so an older copy may hold commands the
//! journal never got. The save goes a part at a time (`Journal::save_snapshot_part`) with
//! appends in between, so an append waits for one part at most.
//! Must not: hold up an acknowledgement for a snapshot, or save one the journal does
//! not back.

use super::metrics::EngineMetrics;
use super::recovery::{recover, Recovered};
use super::snapshot::{PendingSnapshot, Serialized};
use crate::store::{Batch, Journal, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A readiness check: answered with whether the journal answers now.
pub(super) type Ping = oneshot::Sender<Result<(), StoreError>>;

/// Work for the task that owns the journal.
pub(super) enum Job {
    Append {
        batch: Arc<Batch>,
        /// The book as of `batch.last_seq()`. Saved only if this append succeeds and no
        /// later one fails before the bytes are ready: only then is every entry it covers
        /// durable *and* the same as the entries the book applied (after a failure the
        /// sequencer rebuilds from the journal and reuses the seqs that were lost).
        snapshot: Option<PendingSnapshot>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Recover {
        done: oneshot::Sender<Result<Recovered, StoreError>>,
    },
    /// Whether the journal holds `batch`, entry for entry (after a failed append whose
    /// outcome the engine cannot otherwise learn: it lost the journal to another engine).
    Holds {
        batch: Arc<Batch>,
        done: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// Asks the writer to rebuild the market from the journal.
pub(super) async fn recover_via(jobs: &mpsc::Sender<Job>) -> Result<Recovered, StoreError> {
    let (done, rx) = oneshot::channel();
    jobs.send(Job::Recover { done })
        .await
        .map_err(|_| StoreError::Unavailable("journal writer stopped".into()))?;
    rx.await
        .map_err(|_| StoreError::Unavailable("journal writer stopped".into()))?
}

/// Owns the journal: appends batches in order, saves snapshots once the batch they cover
/// is durable and acknowledged, and rebuilds the book on request.
pub(super) async fn run<J: Journal>(
    mut journal: J,
    mut jobs: mpsc::Receiver<Job>,
    mut pings: mpsc::Receiver<Ping>,
    timeout: Duration,
    metrics: Arc<EngineMetrics>,
) {
    // A snapshot whose batch is durable, still being serialized, and then one being saved.
    // At most one of the two exists (the sequencer's permit travels with the snapshot).
    let mut snapshot: Option<PendingSnapshot> = None;
    let mut saving: Option<Saving> = None;
    loop {
        let job = tokio::select! {
            biased;
            // First, so a steady stream of appends cannot starve it. The save never holds
            // up the acknowledgement of the batch it covers: that was sent before.
            ready = async { snapshot.as_mut().expect("guarded").await }, if snapshot.is_some() => {
                snapshot = None;
                // `Err`: no bytes are coming (the serializer logged why).
                let Ok(ready) = ready else { continue };
                if jobs.is_closed() {
                    // Shutting down: the sequencer has seen its last append durable and
                    // dropped its sender. Saving a whole book now would only delay
                    // `close`, and shutdown runs to a deadline past which the journal is
                    // left unclosed (a Redis lease then blocks the restart for its TTL).
                    // Without it the restart replays a longer tail from the previous
                    // snapshot.
                    tracing::info!(seq = ready.snapshot.seq, "shutting down; snapshot dropped");
                    continue;
                }
                saving = Some(Saving::new(ready));
                continue;
            }
            job = jobs.recv() => match job {
                Some(job) => job,
                // Shutting down: an unfinished save is dropped with `saving` (see above);
                // the journal still holds the previous snapshot.
                None => break,
            },
            Some(done) = pings.recv() => {
                let res = match tokio::time::timeout(timeout, journal.ping()).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Unavailable("journal ping timed out".into())),
                };
                let _ = done.send(res);
                continue;
            }
            // Last: when idle, the next part. An append that arrives meanwhile waits for one
            // part, not for the whole book: a large book saved in one call would hold every
            // acknowledgement behind it for as long as the save takes.
            () = std::future::ready(()), if saving.is_some() => {
                let Some(current) = saving.take() else { continue };
                saving = current.save_next_part(&mut journal, &metrics).await;
                continue;
            }
        };
        match job {
            Job::Append {
                batch,
                snapshot: covered,
                done,
            } => {
                let res = match tokio::time::timeout(timeout, journal.append(&batch)).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "journal write took longer than {timeout:?}"
                    ))),
                };
                if res.is_ok() {
                    if covered.is_some() {
                        snapshot = covered;
                    }
                } else {
                    // The sequencer will answer `unavailable`, rebuild the book from the
                    // journal and hand out the lost seqs again, to other commands: a book
                    // copied before this moment must never be saved. (One whose own batch
                    // did land would still be right, but keeping that apart is not worth a
                    // snapshot that only shortens a replay.) Dropping the receiver also
                    // stops its serialization.
                    snapshot = None;
                    saving = None;
                }
                let _ = done.send(res);
                // One part after every append while a save is under way, even when the
                // next append is already waiting: a busy engine still finishes its
                // snapshot, and an append still waits for one part at most.
                if let Some(current) = saving.take() {
                    saving = current.save_next_part(&mut journal, &metrics).await;
                }
            }
            Job::Recover { done } => {
                // Only ever after a failed append, which dropped any snapshot already.
                snapshot = None;
                saving = None;
                let res = recover(&mut journal, true, &mut ()).await;
                let _ = done.send(res);
            }
            Job::Holds { batch, done } => {
                let after = batch.first_seq().saturating_sub(1);
                let read = tokio::time::timeout(timeout, journal.read_after(after, 1)).await;
                let res = match read {
                    Ok(Ok(found)) => Ok(found.first().is_some_and(|b| b.entries == batch.entries)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "reading the journal back took longer than {timeout:?}"
                    ))),
                };
                let _ = done.send(res);
            }
        }
    }
    // The sequencer is gone (shutdown, or a fatal error): release the journal so another
    // engine, or this process restarting, can open it at once. A snapshot still being
    // serialized is dropped with `snapshot` (see above for why), which stops the
    // serializer at its next check rather than holding the runtime's shutdown.
    drop(snapshot);
    drop(saving);
    if let Err(e) = journal.close().await {
        tracing::warn!(error = %e, "journal did not close cleanly");
    }
}

/// A serialized snapshot being saved a part at a time, between appends.
struct Saving {
    ready: Serialized,
    /// Where the next part starts.
    next: usize,
    /// How long the serialization took, for the log line.
    serialized: Duration,
    since: Instant,
    parts: u32,
}

impl Saving {
    fn new(ready: Serialized) -> Self {
        Self {
            serialized: ready.started.elapsed(),
            ready,
            next: 0,
            since: Instant::now(),
            parts: 0,
        }
    }

    /// Saves the next part; `Some` while parts remain. A failed snapshot costs only
    /// replay time at the next start, so it is logged and dropped.
    async fn save_next_part<J: Journal>(
        mut self,
        journal: &mut J,
        metrics: &EngineMetrics,
    ) -> Option<Self> {
        let seq = self.ready.snapshot.seq;
        let bytes = self.ready.snapshot.bytes.len();
        match journal
            .save_snapshot_part(&self.ready.snapshot, self.next)
            .await
        {
            Ok(next) if next >= bytes => {
                metrics.snapshots_saved.inc();
                metrics.snapshot_bytes.set(bytes as u64);
                tracing::info!(
                    seq,
                    bytes,
                    parts = self.parts + 1,
                    serialize_ms = self.serialized.as_millis() as u64,
                    save_ms = self.since.elapsed().as_millis() as u64,
                    "snapshot saved"
                );
                None
            }
            Ok(next) if next > self.next => {
                self.next = next;
                self.parts += 1;
                Some(self)
            }
            Ok(next) => {
                tracing::error!(
                    seq,
                    from = self.next,
                    next,
                    "snapshot save made no progress"
                );
                None
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "snapshot not saved");
                None
            }
        }
    }
}
