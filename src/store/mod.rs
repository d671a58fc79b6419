//! Durable storage of the command log, the outcomes stream and snapshots.
//!
//! Owns the bytes on disk or in Redis and nothing else: it never applies a command and
//! never decides what a command means. The engine hands it whole batches (one group
//! commit each) and learns when they are durable; recovery reads them back in order.
//!
//! Implementations: `redis` (production), `file` (the embedded default), `memory` (unit
//! tests of the engine only).

pub mod redis;

use crate::auction::{self, Outcome};
use crate::market::{Command, Event};

use crate::vocab::{DealerId, LotId, SellerId};
use serde::{Deserialize, Serialize};
use std::future::Future;

pub mod file;
pub mod memory;

pub use self::redis::{Durability, Persistence, RedisJournal, RedisJournalConfig, RedisLog};

/// One sequenced command: the only inputs the book ever sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number (consecutive, from 1).
    pub seq: u64,
    /// The engine's clock reading when it sequenced the command.
    pub now_ms: u64,
    /// The command.
    pub command: Command,
}

/// A closing outcome, published for downstream consumers (the alliance pipeline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// Sequence number of the command that produced it.
    pub seq: u64,
    /// The lot.
    pub lot: LotId,
    /// What happened (a `pending_seller` is followed by a second record when decided).
    pub outcome: Outcome,
    /// Price, if any bid was accepted.
    pub price: Option<u64>,
    /// The buyer (sold) or the best bidder (pending).
    pub dealer: Option<DealerId>,
    /// The seller.
    pub seller: SellerId,
}

impl OutcomeRecord {
    /// The record an event publishes, if it is a closing outcome (a close, a seller's
    /// decision, a lapsed window). The live engine and `replay --verify` both build
    /// records with this, so what is compared is made the same way.
    pub fn from_event(seq: u64, event: &Event) -> Option<Self> {
        match *event {
            Event::Auction(auction::Event::Closed {
                lot,
                outcome,
                price,
                leader,
                seller,
            }) => Some(Self {
                seq,
                lot,
                outcome,
                price,
                dealer: leader,
                seller,
            }),
            _ => None,
        }
    }
}

/// One group commit: consecutive entries and the outcomes they produced. Written and
/// read back as a unit: a batch is durable whole or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The entries, with consecutive `seq`.
    pub entries: Vec<Entry>,
    /// The outcomes the entries produced, in order.
    pub outcomes: Vec<OutcomeRecord>,
}

impl Batch {
    /// Sequence number of the first entry (0 for an empty batch).
    pub fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }

    /// Sequence number of the last entry (0 for an empty batch).
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }
}

/// A serialized `Book` and the last sequence number it includes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The book reflects every entry up to and including this one.
    pub seq: u64,
    /// `rmp_serde` bytes of the `Book`.
    pub bytes: Vec<u8>,
}

/// What went wrong in storage. Every variant means "not durable": the engine must not
/// acknowledge anything in the batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is unreachable or an I/O call failed; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another engine holds the journal (or took it over): this one must stop writing.
    #[error("journal owned by another engine: {0}")]
    Fenced(String),
    /// An append did not follow the last durable sequence number.
    #[error("out-of-order append: expected seq {expected}, got {got}")]
    OutOfOrder {
        /// The seq the journal expected next.
        expected: u64,
        /// The seq it was given.
        got: u64,
    },
    /// Stored bytes do not decode; recovery cannot go past them.
    #[error("corrupt journal: {0}")]
    Corrupt(String),
    /// The store's settings do not meet what the configuration requires.
    #[error("storage misconfigured: {0}")]
    Misconfigured(String),
    /// A read-only view was asked for a journal that does not exist there.
    #[error("no journal: {0}")]
    NoJournal(String),
}

/// Where a journal publishes its outcomes for consumers outside the engine.
#[derive(Clone, PartialEq, Eq)]
pub struct OutcomeStream {
    /// The Redis URL (may hold a password: never log it unredacted).
    pub url: String,
    /// The seeds of the Redis Cluster the stream is on; empty: one Redis at `url`. (May
    /// hold passwords too.)
    pub cluster_urls: Vec<String>,
    /// The stream's key (`{prefix}:outcomes`): one entry per `OutcomeRecord`, field `o`.
    pub key: String,
}

impl std::fmt::Debug for OutcomeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeStream")
            .field("url", &self::redis::redact_url(&self.url))
            .field(
                "cluster_urls",
                &self
                    .cluster_urls
                    .iter()
                    .map(|u| self::redis::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("key", &self.key)
            .finish()
    }
}

/// Reading a journal back in order: all a replay needs. The engine's journal reads (it is a
/// [`Journal`]); a read-only view (`file::FileLog`, `redis::RedisLog`) only reads, writes
/// nothing, takes no lock or lease, and may be opened beside a running engine.
pub trait JournalRead: Send + 'static {
    /// A one-line description for the startup banner: where the journal is and what
    /// durability it gives (e.g. "redis://… appendfsync=always").
    fn describe(&self) -> String;

    /// Batches holding entries with `seq > after`, in order, at most `max_batches` of
    /// them; an empty vector means the end of the log. A batch that straddles `after` is
    /// returned whole; the caller skips entries it already has.
    fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> impl Future<Output = Result<Vec<Batch>, StoreError>> + Send;
}

/// The durable log behind the engine. One owner at a time; methods are called from one
/// task, in order. Futures are `Send` so the journal can live on its own task;
/// implementations may write `async fn` for these methods.
pub trait Journal: JournalRead {
    /// Appends one batch and returns once it is durable under the journal's policy.
    /// `batch.first_seq()` must be the last durable seq + 1, and the entries consecutive;
    /// otherwise (an empty batch included) nothing is written and the result is
    /// `OutOfOrder`. If the returned future is dropped before it completes, the batch may
    /// or may not have become durable: appending it again then tells (`OutOfOrder` if it
    /// landed), and reading the tail back says what is there.
    fn append(&mut self, batch: &Batch) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a snapshot. Older snapshots may be dropped; the log is kept unless the
    /// retention configuration says otherwise.
    fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a snapshot a part at a time: saves the part starting at byte `from` and
    /// returns where the next one starts. The call that returns `snapshot.bytes.len()`
    /// has stored the snapshot, as `save_snapshot` would; until then `load_snapshot` still
    /// returns the previous one. `from == 0` starts over, discarding any unfinished save.
    ///
    /// The engine's writer appends batches between the calls, so a large book does not
    /// hold up the appends queued behind it for longer than one part. The file and Redis
    /// journals save a MiB per call; the default saves the whole snapshot in one.
    fn save_snapshot_part(
        &mut self,
        snapshot: &Snapshot,
        from: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = from;
        async move {
            self.save_snapshot(snapshot).await?;
            Ok(snapshot.bytes.len())
        }
    }

    /// Where the snapshot of `seq` is kept, for errors about it (a file journal names the
    /// file). The default names the journal.
    fn snapshot_origin(&self, seq: u64) -> String {
        format!("the snapshot of seq {seq} in {}", self.describe())
    }

    /// The newest snapshot, if any.
    fn load_snapshot(
        &mut self,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Whether the journal is reachable now (for `/readyz`).
    fn ping(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stream its outcomes are published on for outside consumers, if it has one
    /// (Redis). A journal without one (file, memory) keeps outcomes inside its batches
    /// only; the alliance then takes them from the engine's durable publication.
    fn outcome_stream(&self) -> Option<OutcomeStream> {
        None
    }

    /// Lets go of the journal once the engine is done with it: files closed, the
    /// directory lock or the Redis lease released, so another engine can open it at once
    /// (without this a Redis lease would block a restart for its whole TTL).
    fn close(self) -> impl Future<Output = Result<(), StoreError>> + Send
    where
        Self: Sized,
    {
        async move {
            drop(self);
            Ok(())
        }
    }
}

/// Checks that `batch` is non-empty, internally consecutive and starts right after
/// `last_seq`. Shared by the journals so they refuse the same things.
pub(crate) fn check_order(last_seq: u64, batch: &Batch) -> Result<(), StoreError> {
    if batch.entries.is_empty() {
        // An empty batch has nothing to make durable; it can only be a caller bug, and it
        // is reported as such rather than silently "succeeding".
        return Err(StoreError::OutOfOrder {
            expected: last_seq + 1,
            got: 0,
        });
    }
    for (expected, entry) in (last_seq + 1..).zip(&batch.entries) {
        if entry.seq != expected {
            return Err(StoreError::OutOfOrder {
                expected,
                got: entry.seq,
            });
        }
    }
    Ok(())
}

/// `Journal::save_snapshot` for a journal that saves in parts: every part in turn, with
/// nothing in between.
async fn save_all_parts<J: Journal>(
    journal: &mut J,
    snapshot: &Snapshot,
) -> Result<(), StoreError> {
    let mut from = 0;
    loop {
        from = journal.save_snapshot_part(snapshot, from).await?;
        if from >= snapshot.bytes.len() {
            return Ok(());
        }
    }
}
