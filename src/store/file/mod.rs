//! The embedded journal: append-only segment files and snapshots under one data directory,
//! so `gavel serve` runs with no Redis.
//!
//! Owns the files under its directory and nothing else: it never applies a command, it
//! only stores batches and hands them back in order. It must not acknowledge a batch
//! before the fsync policy says it is durable, and it must not start on a log it cannot
//! read back whole.
//!
//! # Layout
//!
//! ```text
//! {dir}/LOCK                            exclusive flock while a journal is open (holds the pid)
//! {dir}/journal-{first_seq:020}.seg     segments; the name is the seq of the first entry
//! {dir}/snapshot-{seq:020}.bin          the newest two snapshots
//! ```
//!
//! A segment is a sequence of frames, one per batch:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC32C(payload) | payload = rmp_serde::to_vec_named(&Batch)
//! ```
//!
//! A snapshot file is one frame whose payload is `u64 LE seq | the snapshot's bytes`. It is
//! written as `snapshot-{seq:020}.bin.tmp`, a MiB at a time with appends in between
//! (`save_snapshot_part`; the header goes last), and renamed into place once complete; a
//! `.tmp` left by an interrupted save is removed at open.
//!
//! # Encoding
//!
//! Payloads use MessagePack with field names (`to_vec_named`), not the positional form.
//! The journal is the audit trail and must stay readable by later versions of gavel: with
//! names, a field added with `#[serde(default)]` or reordered in the source still decodes,
//! whereas positional arrays can decode silently *wrong* after two same-typed fields are
//! swapped. The price is about 40 bytes per `PlaceBid` (the field names), small next to
//! the fsync every batch waits for. Names also let recovery decode only the sequence
//! numbers of each batch, skipping the commands, to check continuity cheaply.
//!
//! # Durability
//!
//! Each batch is written with one `write_all` of the whole frame and then, under the default
//! [`FsyncPolicy::Batch`], `fdatasync`ed before `append` returns: an acknowledged batch is on
//! disk. New segment files and snapshot renames are followed by an fsync of the directory, so
//! the name of the file survives as well as its contents. Under [`FsyncPolicy::Interval`] an
//! append returns once the frame is in the kernel's page cache, and a background timer
//! fdatasyncs: acknowledged batches then survive a crash of the gavel process but not a power
//! loss or kernel crash within the interval.
//!
//! If a write or an fdatasync fails, the journal cuts the file back to the last whole frame
//! and fdatasyncs that, so the batch is definitely not durable and a retry with the same seq
//! is accepted. If that cut fails too (or a background fdatasync fails), the journal is
//! *poisoned*: every later append fails with `Unavailable` until the process reopens it and
//! recovery reads what actually reached the disk. Retrying an fsync after an error is not
//! safe on Linux (the kernel may have dropped the dirty pages), so no retry is attempted.
//!
//! # Recovery
//!
//! [`FileJournal::open`] reads every segment in order and checks every frame's length and
//! CRC and the continuity of sequence numbers (within a batch, across frames, across segment
//! names). A torn or corrupt *last* frame (short header, zero length, length past the end of
//! the file, CRC mismatch) is what a crash during a write leaves behind: it is cut off, with a
//! warning naming the file and byte offset. A bad frame with anything valid after it is not a
//! torn write, and neither is a frame whose CRC is right but whose contents do not decode (a
//! version mismatch or a bug): both are [`StoreError::Corrupt`], because refusing to start
//! beats silently dropping acknowledged history.
//!
//! # Threads
//!
//! All file I/O runs on one dedicated thread (`gavel-journal`) that owns the files; the async
//! methods send it a request and await the reply, so no tokio worker ever blocks on a disk.
//! The batch is encoded on the caller's task before it is sent, so the thread only writes.
//! Dropping a [`FileJournal`] waits for that thread to finish its current request and a final
//! fdatasync, so the lock is free when `drop` returns.
//!
//! # Where the code is
//!
//! - this file: the settings and the async handle, [`FileJournal`], which only encodes a
//!   batch and sends requests to the I/O thread;
//! - `writer`: the I/O thread: recovery at open, appends and the fsync policy, rolling
//!   segments, reading batches back;
//! - `log`: the segments as found at open, and reading batches back (shared by the writer
//!   and the read-only [`FileLog`]);
//! - `frame`: the frame layout: encoding, reading, and the search for a valid frame after a
//!   bad one;
//! - `scan`: recovery's check of one segment, and the cut of a torn tail;
//! - `snapshot`: snapshot files: staging in parts, installing, pruning, retention, loading;
//! - `directory`: the lock, the file names, listing by seq, directory fsync, leftovers.

mod directory;
mod frame;
mod log;
mod scan;
mod snapshot;
mod writer;

use super::{check_order, Batch, Journal, JournalRead, Snapshot, StoreError};
use frame::encode_frame;
use snapshot::SNAPSHOT_PART_BYTES;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use writer::{Reply, Request, Writer};

/// When an appended batch is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` every batch before `append` returns: an acknowledged bid is on disk and
    /// survives a power loss. The default. Group commit keeps the cost at one fdatasync per
    /// batch, not per command.
    Batch,
    /// Return once the batch is written to the OS and `fdatasync` in the background at most
    /// this long after the first unsynced write. Acknowledged batches survive a crash of the
    /// gavel process but NOT a power loss or kernel crash within the interval. After such a
    /// power loss the lost frames may be followed by frames that did reach the disk; recovery
    /// then refuses to start (`Corrupt`) rather than guess which history to keep.
    Interval(Duration),
}

/// Settings of the file journal. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileJournalConfig {
    /// When appends become durable. Default [`FsyncPolicy::Batch`].
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started when the next frame would take it past
    /// this many bytes (a single larger frame still gets a segment of its own). Default
    /// 64 MiB: large enough that rolling is rare, small enough that retention can free
    /// space in useful steps and a damaged file holds a bounded part of the history.
    pub segment_bytes: u64,
    /// `None` (the default) keeps every segment forever: the log is the audit trail that
    /// settles bid disputes. `Some(n)` deletes, after each snapshot, the segments whose
    /// entries every kept snapshot already covers, except the newest `n` of them.
    pub retain_segments_behind_snapshot: Option<usize>,
}

impl Default for FileJournalConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Batch,
            segment_bytes: 64 << 20,
            retain_segments_behind_snapshot: None,
        }
    }
}

impl FileJournalConfig {
    /// Checks the settings; every problem is reported in one error.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut problems = Vec::new();
        if self.segment_bytes == 0 {
            problems.push("segment_bytes must be at least 1".to_owned());
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            problems.push("the fsync interval must be longer than 0 ms".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Misconfigured(problems.join("; ")))
        }
    }
}

/// The file journal. See the module documentation for the format and the guarantees.
#[derive(Debug)]
pub struct FileJournal {
    /// The data directory, for `describe` and errors.
    dir: PathBuf,
    /// The settings it was opened with, for `describe`.
    config: FileJournalConfig,
    /// Requests to the I/O thread; `None` only while dropping.
    tx: Option<mpsc::Sender<Request>>,
    /// The I/O thread, joined on drop so the lock is released when drop returns.
    thread: Option<JoinHandle<()>>,
    /// The last seq the thread has stored (durable under the policy), published after each
    /// append so the owner can read it without a round trip.
    last_seq: Arc<AtomicU64>,
}

impl FileJournal {
    /// Opens (creating if needed) the journal in `dir`: takes the directory's lock, then
    /// recovers — every frame is checked, a torn tail is cut, anything else unreadable is
    /// `Corrupt`. Fails with `Fenced` if another journal holds the directory.
    pub async fn open(
        dir: impl Into<PathBuf>,
        config: FileJournalConfig,
    ) -> Result<Self, StoreError> {
        config.validate()?;
        let dir = dir.into();
        let last_seq = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = {
            let dir = dir.clone();
            let config = config.clone();
            let last_seq = last_seq.clone();
            std::thread::Builder::new()
                .name("gavel-journal".into())
                .spawn(move || match Writer::recover(dir, config, last_seq) {
                    Ok(writer) => {
                        let _ = ready_tx.send(Ok(()));
                        writer.run(rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot start the journal thread: {e}"))
                })?
        };
        let ready = ready_rx.await;
        match ready {
            Ok(Ok(())) => Ok(Self {
                dir,
                config,
                tx: Some(tx),
                thread: Some(thread),
                last_seq,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StoreError::Unavailable(format!(
                    "journal thread for {} stopped during recovery",
                    dir.display()
                )))
            }
        }
    }

    /// The last seq stored: durable under the fsync policy (0 for an empty journal).
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes everything written durable (whatever the policy), then stops the I/O thread
    /// and releases the lock. Dropping the journal does the same but cannot report an error.
    pub async fn close(mut self) -> Result<(), StoreError> {
        let result = self.call(|reply| Request::Close { reply }).await;
        self.shutdown();
        result
    }

    /// Sends one request and awaits its reply.
    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || {
            StoreError::Unavailable(format!(
                "journal thread for {} has stopped",
                self.dir.display()
            ))
        };
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(request(reply)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    fn shutdown(&mut self) {
        // Closing the channel tells the thread to sync and exit; joining waits for it, so
        // the LOCK is free once this returns (a reopen in the same process then works).
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "journal thread panicked");
            }
        }
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A file journal opened read-only: for `gavel replay` and audits, beside a running engine
/// or not. It takes no lock, repairs nothing, creates nothing, and reads the log as it was
/// when opened: a frame being appended at that moment (or left torn by a crash) ends it.
pub struct FileLog {
    log: log::Log,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.log.dir)
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

impl FileLog {
    /// Opens the journal in `dir` for reading. A directory that does not exist, or holds no
    /// segment, is `NoJournal`: nothing is created in its place.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(StoreError::NoJournal(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let log = log::Log::scan(dir, false)?;
        if log.segments.is_empty() {
            return Err(StoreError::NoJournal(format!(
                "{} holds no journal segment (journal-*.seg)",
                dir.display()
            )));
        }
        Ok(Self { log })
    }

    /// The last seq in the log as opened (0 for a journal that holds no command yet).
    pub fn last_seq(&self) -> u64 {
        self.log.next_seq - 1
    }
}

impl JournalRead for FileLog {
    fn describe(&self) -> String {
        format!("file journal in {} (read-only)", self.log.dir.display())
    }

    // Reads on the caller's thread: a read-only view serves a command-line tool, which has
    // nothing else for the thread to do meanwhile.
    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        self.log.read_after(after, max_batches)
    }
}

impl JournalRead for FileJournal {
    fn describe(&self) -> String {
        let fsync = match self.config.fsync {
            FsyncPolicy::Batch => "fsync=batch (ack after fdatasync)".to_owned(),
            FsyncPolicy::Interval(d) => format!(
                "fsync=interval {} ms (acks survive a process crash, not a power loss)",
                d.as_millis()
            ),
        };
        let retain = match self.config.retain_segments_behind_snapshot {
            None => "retain=all".to_owned(),
            Some(n) => format!("retain={n} segments behind the snapshot"),
        };
        format!(
            "file:{} {fsync} segment_bytes={} {retain}",
            self.dir.display(),
            self.config.segment_bytes
        )
    }

    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        self.call(|reply| Request::ReadAfter {
            after,
            max_batches,
            reply,
        })
        .await
    }
}

impl Journal for FileJournal {
    fn close(self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        // The inherent `close`, which releases the lock/lease before returning.
        FileJournal::close(self)
    }

    async fn append(&mut self, batch: &Batch) -> Result<(), StoreError> {
        // Checked here as well as on the thread: a malformed batch is refused before it is
        // encoded; the thread checks the first seq against what is actually stored.
        if batch.entries.is_empty() {
            return Err(StoreError::OutOfOrder {
                expected: self.last_seq() + 1,
                got: 0,
            });
        }
        check_order(batch.first_seq() - 1, batch)?;
        let frame = encode_frame(|buf| rmp_serde::encode::write_named(buf, batch))?;
        let (first_seq, last_seq) = (batch.first_seq(), batch.last_seq());
        self.call(|reply| Request::Append {
            frame,
            first_seq,
            last_seq,
            reply,
        })
        .await
    }

    /// The whole snapshot, a part at a time (see `save_snapshot_part`).
    async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        super::save_all_parts(self, snapshot).await
    }

    /// Parts of [`SNAPSHOT_PART_BYTES`], each written and fsynced to the snapshot's
    /// temporary file by the journal's thread; the last one finishes the frame's header,
    /// fsyncs the file and renames it into place. Appends go between the parts.
    async fn save_snapshot_part(
        &mut self,
        snapshot: &Snapshot,
        from: usize,
    ) -> Result<usize, StoreError> {
        let total = snapshot.bytes.len();
        let end = from.saturating_add(SNAPSHOT_PART_BYTES).min(total);
        let part = snapshot.bytes.get(from..end).unwrap_or_default().to_vec();
        let seq = snapshot.seq;
        self.call(|reply| Request::SnapshotPart {
            seq,
            from,
            part,
            total,
            reply,
        })
        .await
    }

    async fn load_snapshot(&mut self) -> Result<Option<Snapshot>, StoreError> {
        self.call(|reply| Request::LoadSnapshot { reply }).await
    }

    fn snapshot_origin(&self, seq: u64) -> String {
        self.dir
            .join(directory::snapshot_name(seq))
            .display()
            .to_string()
    }

    async fn ping(&mut self) -> Result<(), StoreError> {
        self.call(|reply| Request::Ping { reply }).await
    }
}

/// Recovery exactly as [`FileJournal::open`] runs it (lock the directory, remove unfinished
/// snapshots, check every segment and cut a torn tail, open the last segment, load the
/// newest readable snapshot), but on the caller's thread and without starting the I/O
/// thread; the recovered log is handed back read-only. For the fuzz harness (`fuzz/`),
/// which runs recovery millions of times: not part of the API.
#[doc(hidden)]
pub fn recover_for_fuzzing(dir: &Path) -> Result<(FileLog, Option<Snapshot>), StoreError> {
    let writer = Writer::recover(
        dir.to_path_buf(),
        FileJournalConfig::default(),
        Arc::new(AtomicU64::new(0)),
    )?;
    let snapshot = writer.load_snapshot()?;
    Ok((
        FileLog {
            log: writer.into_log(),
        },
        snapshot,
    ))
}

/// A snapshot file's bytes as recovery reads them (frame, CRC, the seq against the file's
/// name), for the fuzz harness: not part of the API.
#[doc(hidden)]
pub fn decode_snapshot_file(bytes: &[u8], seq: u64) -> Result<Snapshot, String> {
    snapshot::decode_snapshot(bytes, seq)
}

/// An I/O error on `path` as the journal reports it: `Unavailable`, saying what failed where.
fn io_err(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
