//! An in-memory journal for unit tests of the engine. Nothing here survives the process.
//!
//! It keeps the same contract as the real journals (batches in seq order, `OutOfOrder` on a
//! gap or a duplicate, read-back in order) so the engine's tests exercise the same rules, and
//! it can be told to fail or to slow down appends and snapshot saves so the engine's
//! failure paths (nothing acknowledged before durable, `unavailable` after a bounded wait,
//! resume after recovery) can be tested without a disk or a Redis. It must never be used to serve real traffic.

use super::{check_order, Batch, Entry, Journal, JournalRead, Snapshot, StoreError};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// How a write that landed fails all the same (see [`MemoryJournal::land_then_fail_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandThenFail {
    /// The answer was lost: `Unavailable`, and the journal works on.
    Unavailable,
    /// The journal was taken over: `Fenced`, now and for every later append.
    Fenced,
}

/// A journal held in memory. Cloning gives another handle to the same journal, so a test
/// can keep one handle to inspect what the engine wrote and to inject faults while the
/// engine owns the other.
#[derive(Clone, Debug, Default)]
pub struct MemoryJournal {
    /// Shared state; the lock is never held across an `.await`.
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every batch appended successfully, in order.
    batches: Vec<Batch>,
    /// The newest snapshot saved.
    snapshot: Option<Snapshot>,
    /// Every snapshot saved, oldest first: a test checks each one against the log, not
    /// only the newest (a wrong snapshot later overwritten would still have been a bug).
    saved: Vec<Snapshot>,
    /// How many of the next appends fail with `Unavailable` (each failure uses one up).
    fail_next: usize,
    /// How the next append fails after storing its batch, as a journal that applied a
    /// write and lost the answer (`Unavailable`) or its ownership (`Fenced`) does.
    land_then_fail: Option<LandThenFail>,
    /// Set by `fence`: every later append fails with `Fenced`, as for a stale owner.
    fenced: bool,
    /// How long each append waits (on the tokio clock) before it takes effect.
    delay: Option<Duration>,
    /// Appends attempted, failed ones included.
    attempts: u64,
    /// How long each snapshot save (or each part of one) waits (on the tokio clock)
    /// before it takes effect.
    snapshot_delay: Option<Duration>,
    /// Set by `split_snapshots`: `save_snapshot_part` saves this many parts per snapshot.
    snapshot_parts: Option<usize>,
    /// The parts of the snapshot being saved so far, concatenated.
    staged: Vec<u8>,
    /// Snapshot parts stored, over all snapshots.
    parts_saved: u64,
}

impl Inner {
    fn last_seq(&self) -> u64 {
        self.batches.last().map_or(0, Batch::last_seq)
    }

    fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let last = self.last_seq();
        if snapshot.seq > last {
            // A snapshot must not claim entries that are not durable (same rule as the file
            // journal).
            return Err(StoreError::OutOfOrder {
                expected: last,
                got: snapshot.seq,
            });
        }
        self.snapshot = Some(snapshot.clone());
        self.saved.push(snapshot);
        Ok(())
    }
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` appends fail with `StoreError::Unavailable` without storing
    /// anything. Replaces any count still pending.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().fail_next = n;
    }

    /// Makes the next append store its batch and then fail anyway, as a journal that
    /// applied the write and died (or lost its ownership) before answering does.
    pub fn land_then_fail_next(&self, how: LandThenFail) {
        self.inner.lock().land_then_fail = Some(how);
    }

    /// Makes every later append fail with `StoreError::Fenced`, as if another engine had
    /// taken the journal over.
    pub fn fence(&self) {
        self.inner.lock().fenced = true;
    }

    /// Makes each later append wait `delay` (a `tokio::time::sleep`, so a test on a paused
    /// clock controls it) before it takes effect; `None` removes the delay. An append whose
    /// future is dropped during the wait stores nothing.
    pub fn delay_appends(&self, delay: Option<Duration>) {
        self.inner.lock().delay = delay;
    }

    /// Makes each later snapshot save wait `delay` (a `tokio::time::sleep`) before it
    /// checks and stores the snapshot; `None` removes the delay. A save whose future is
    /// dropped during the wait stores nothing.
    pub fn delay_snapshots(&self, delay: Option<Duration>) {
        self.inner.lock().snapshot_delay = delay;
    }

    /// Makes `save_snapshot_part` save each later snapshot in `parts` parts (each waiting
    /// the `delay_snapshots` delay), as the file and Redis journals do; `None` saves it whole.
    pub fn split_snapshots(&self, parts: Option<usize>) {
        self.inner.lock().snapshot_parts = parts.map(|n| n.max(1));
    }

    /// Snapshot parts stored so far (with `split_snapshots`).
    pub fn snapshot_parts_saved(&self) -> u64 {
        self.inner.lock().parts_saved
    }

    /// A copy of every batch stored, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.inner.lock().batches.clone()
    }

    /// A copy of every entry stored, in order.
    pub fn entries(&self) -> Vec<Entry> {
        let inner = self.inner.lock();
        inner
            .batches
            .iter()
            .flat_map(|b| b.entries.iter().cloned())
            .collect()
    }

    /// The last stored seq (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().last_seq()
    }

    /// The newest snapshot saved, if any.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.inner.lock().snapshot.clone()
    }

    /// Every snapshot saved so far, oldest first.
    pub fn saved_snapshots(&self) -> Vec<Snapshot> {
        self.inner.lock().saved.clone()
    }

    /// Appends attempted so far, failed ones included.
    pub fn append_attempts(&self) -> u64 {
        self.inner.lock().attempts
    }
}

impl JournalRead for MemoryJournal {
    fn describe(&self) -> String {
        "memory (tests only: nothing is durable)".to_owned()
    }

    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .batches
            .iter()
            .filter(|b| b.last_seq() > after)
            .take(max_batches)
            .cloned()
            .collect())
    }
}

impl Journal for MemoryJournal {
    async fn append(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let delay = {
            let mut inner = self.inner.lock();
            inner.attempts += 1;
            inner.delay
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let mut inner = self.inner.lock();
        if inner.fenced {
            return Err(StoreError::Fenced(
                "memory journal fenced by the test".into(),
            ));
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        check_order(inner.last_seq(), batch)?;
        inner.batches.push(batch.clone());
        match inner.land_then_fail.take() {
            None => Ok(()),
            Some(LandThenFail::Unavailable) => Err(StoreError::Unavailable(
                "injected failure after the batch was stored".into(),
            )),
            Some(LandThenFail::Fenced) => {
                inner.fenced = true;
                Err(StoreError::Fenced(
                    "memory journal fenced by the test after the batch was stored".into(),
                ))
            }
        }
    }

    async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let delay = self.inner.lock().snapshot_delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.inner.lock().store_snapshot(snapshot.clone())
    }

    async fn save_snapshot_part(
        &mut self,
        snapshot: &Snapshot,
        from: usize,
    ) -> Result<usize, StoreError> {
        let (parts, delay) = {
            let inner = self.inner.lock();
            (inner.snapshot_parts, inner.snapshot_delay)
        };
        let Some(parts) = parts else {
            self.save_snapshot(snapshot).await?;
            return Ok(snapshot.bytes.len());
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let len = snapshot.bytes.len();
        let end = from.saturating_add(len.div_ceil(parts).max(1)).min(len);
        let mut inner = self.inner.lock();
        if from == 0 {
            inner.staged.clear();
        }
        if inner.staged.len() != from || from > len {
            return Err(StoreError::Unavailable(format!(
                "snapshot part at {from}, but {} bytes are staged",
                inner.staged.len()
            )));
        }
        inner.staged.extend_from_slice(&snapshot.bytes[from..end]);
        inner.parts_saved += 1;
        if end == len {
            let bytes = std::mem::take(&mut inner.staged);
            inner.store_snapshot(Snapshot {
                seq: snapshot.seq,
                bytes,
            })?;
        }
        Ok(end)
    }

    async fn load_snapshot(&mut self) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.inner.lock().snapshot.clone())
    }

    async fn ping(&mut self) -> Result<(), StoreError> {
        if self.inner.lock().fenced {
            return Err(StoreError::Fenced(
                "memory journal fenced by the test".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::Command as AuctionCommand;
    use crate::market::Command;
    use crate::vocab::{DealerId, LotId};

    fn batch(first: u64, n: u64) -> Batch {
        Batch {
            entries: (first..first + n)
                .map(|seq| Entry {
                    seq,
                    now_ms: 1_700_000_000_000 + seq,
                    command: Command::Auction(AuctionCommand::PlaceBid {
                        dealer: DealerId(1),
                        lot: LotId(1),
                        amount: 1_000_000 + seq,
                        max: None,
                        bid_id: format!("b{seq}").into(),
                    }),
                })
                .collect(),
            outcomes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn round_trip_and_order() {
        let mut j = MemoryJournal::new();
        let view = j.clone();
        j.append(&batch(1, 3)).await.unwrap();
        j.append(&batch(4, 2)).await.unwrap();
        assert!(matches!(
            j.append(&batch(4, 1)).await,
            Err(StoreError::OutOfOrder {
                expected: 6,
                got: 4
            })
        ));
        assert!(matches!(
            j.append(&batch(7, 1)).await,
            Err(StoreError::OutOfOrder {
                expected: 6,
                got: 7
            })
        ));
        assert!(matches!(
            j.append(&batch(6, 0)).await,
            Err(StoreError::OutOfOrder { .. })
        ));
        assert_eq!(view.last_seq(), 5);
        assert_eq!(view.entries().len(), 5);
        let got = j.read_after(3, 10).await.unwrap();
        assert_eq!(got, vec![batch(4, 2)]);
        let got = j.read_after(2, 1).await.unwrap();
        assert_eq!(
            got,
            vec![batch(1, 3)],
            "a straddling batch is returned whole"
        );
        assert!(j.read_after(5, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn fail_next_fails_exactly_n_and_stores_nothing() {
        let mut j = MemoryJournal::new();
        let view = j.clone();
        view.fail_next(2);
        for _ in 0..2 {
            assert!(matches!(
                j.append(&batch(1, 1)).await,
                Err(StoreError::Unavailable(_))
            ));
        }
        assert_eq!(view.last_seq(), 0);
        j.append(&batch(1, 1)).await.unwrap();
        assert_eq!(view.last_seq(), 1);
        assert_eq!(view.append_attempts(), 3);
    }

    #[tokio::test]
    async fn fence_fails_every_later_append() {
        let mut j = MemoryJournal::new();
        j.append(&batch(1, 1)).await.unwrap();
        j.clone().fence();
        assert!(matches!(
            j.append(&batch(2, 1)).await,
            Err(StoreError::Fenced(_))
        ));
        assert!(matches!(j.ping().await, Err(StoreError::Fenced(_))));
        assert_eq!(j.last_seq(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_holds_the_append_and_a_dropped_append_stores_nothing() {
        let mut j = MemoryJournal::new();
        let view = j.clone();
        view.delay_appends(Some(Duration::from_millis(50)));
        let start = tokio::time::Instant::now();
        j.append(&batch(1, 1)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(50));

        let timed_out =
            tokio::time::timeout(Duration::from_millis(10), j.append(&batch(2, 1))).await;
        assert!(timed_out.is_err());
        assert_eq!(view.last_seq(), 1, "an abandoned append must not be stored");

        view.delay_appends(None);
        j.append(&batch(2, 1)).await.unwrap();
        assert_eq!(view.last_seq(), 2);
    }

    #[tokio::test]
    async fn snapshot_must_not_pass_the_log() {
        let mut j = MemoryJournal::new();
        j.append(&batch(1, 2)).await.unwrap();
        let snap = Snapshot {
            seq: 3,
            bytes: vec![1],
        };
        assert!(matches!(
            j.save_snapshot(&snap).await,
            Err(StoreError::OutOfOrder { .. })
        ));
        let snap = Snapshot {
            seq: 2,
            bytes: vec![1, 2],
        };
        j.save_snapshot(&snap).await.unwrap();
        assert_eq!(j.load_snapshot().await.unwrap(), Some(snap.clone()));
        assert_eq!(j.saved_snapshots(), vec![snap]);
    }

    #[tokio::test]
    async fn a_split_snapshot_is_stored_by_its_last_part() {
        let mut j = MemoryJournal::new();
        j.append(&batch(1, 2)).await.unwrap();
        j.split_snapshots(Some(3));
        let snap = Snapshot {
            seq: 2,
            bytes: (0..10u8).collect(),
        };
        assert_eq!(j.save_snapshot_part(&snap, 0).await.unwrap(), 4);
        assert_eq!(j.save_snapshot_part(&snap, 4).await.unwrap(), 8);
        assert_eq!(j.snapshot(), None, "stored before its last part");
        assert_eq!(j.save_snapshot_part(&snap, 8).await.unwrap(), 10);
        assert_eq!(j.snapshot(), Some(snap.clone()));
        assert_eq!(j.snapshot_parts_saved(), 3);
        // A part that does not follow the staged ones is refused; from 0 starts over.
        assert!(j.save_snapshot_part(&snap, 4).await.is_err());
        assert_eq!(j.save_snapshot_part(&snap, 0).await.unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_delay_holds_the_save() {
        let mut j = MemoryJournal::new();
        j.append(&batch(1, 2)).await.unwrap();
        j.delay_snapshots(Some(Duration::from_millis(50)));
        let snap = Snapshot {
            seq: 2,
            bytes: vec![1],
        };
        let timed_out =
            tokio::time::timeout(Duration::from_millis(10), j.save_snapshot(&snap)).await;
        assert!(timed_out.is_err());
        assert_eq!(j.snapshot(), None, "an abandoned save must not be stored");
        let start = tokio::time::Instant::now();
        j.save_snapshot(&snap).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        assert_eq!(j.snapshot(), Some(snap));
    }
}
