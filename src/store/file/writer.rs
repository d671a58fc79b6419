//! The I/O thread (`gavel-journal`): it owns every open file of the journal and serves
//! the handle's requests one at a time, in the order they were sent.
//!
//! Owns recovery at open (lock, check every segment, cut a torn tail), the append path
//! (write the frame, fdatasync under the policy, undo a failed write, roll to a new
//! segment), the interval timer, poisoning, and reading batches back for replay. Snapshot
//! requests are served here too, by the methods in `snapshot`.
//!
//! It must not acknowledge a batch before the fsync policy makes it durable, must not retry
//! an fdatasync that failed (it poisons the journal instead), and must not run on a tokio
//! worker: every call here blocks on the disk.

use super::directory::{lock_dir, remove_temp_files, segment_name, sync_dir};
use super::log::{Log, Segment};
use super::snapshot::Staging;
use super::{io_err, FileJournalConfig, FsyncPolicy};
use crate::store::{Batch, Snapshot, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;
use tokio::sync::oneshot;

/// Where the thread sends a request's result.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the async handle asks of the I/O thread.
pub(super) enum Request {
    Append {
        frame: Vec<u8>,
        first_seq: u64,
        last_seq: u64,
        reply: Reply<()>,
    },
    ReadAfter {
        after: u64,
        max_batches: usize,
        reply: Reply<Vec<Batch>>,
    },
    /// `part` is the snapshot's bytes from `from`; `total` its whole length. Replies with
    /// where the next part starts.
    SnapshotPart {
        seq: u64,
        from: usize,
        part: Vec<u8>,
        total: usize,
        reply: Reply<usize>,
    },
    LoadSnapshot {
        reply: Reply<Option<Snapshot>>,
    },
    Ping {
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

/// The I/O thread's state: owns every file of the journal.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) config: FileJournalConfig,
    /// Held open (and flocked) for the journal's lifetime.
    _lock: File,
    /// The segments, in seq order; the last one is being appended to. Never empty.
    pub(super) log: Log,
    /// The last segment, open for appending.
    current: File,
    /// Published copy of `log.next_seq - 1`.
    last_seq: Arc<AtomicU64>,
    /// Under `Interval`: when the oldest unsynced write happened.
    dirty_since: Option<Instant>,
    /// Why appends are refused until the journal is reopened.
    poisoned: Option<String>,
    /// The snapshot being written a part at a time, if any.
    pub(super) staging: Option<Staging>,
}

/// Opens a segment for appending; `create_new` for a new one, which must not exist yet.
fn open_append(path: &Path, create_new: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(create_new)
        .open(path)
}

impl Writer {
    /// Locks `dir`, checks every segment, cuts a torn tail and opens the last segment for
    /// appending.
    pub(super) fn recover(
        dir: PathBuf,
        config: FileJournalConfig,
        last_seq: Arc<AtomicU64>,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let lock = lock_dir(&dir)?;
        remove_temp_files(&dir)?;
        let mut log = Log::scan(&dir, true)?;
        if log.segments.is_empty() {
            let path = dir.join(segment_name(log.next_seq));
            open_append(&path, true).map_err(|e| io_err("cannot create", &path, e))?;
            sync_dir(&dir)?;
            log.segments.push(Segment {
                first_seq: log.next_seq,
                path,
                len: 0,
            });
        }
        let current_path = &log.segments[log.segments.len() - 1].path;
        let current =
            open_append(current_path, false).map_err(|e| io_err("cannot open", current_path, e))?;
        last_seq.store(log.next_seq - 1, Ordering::Release);
        tracing::info!(
            dir = %dir.display(),
            segments = log.segments.len(),
            last_seq = log.next_seq - 1,
            "file journal recovered"
        );
        Ok(Self {
            dir,
            config,
            _lock: lock,
            log,
            current,
            last_seq,
            dirty_since: None,
            poisoned: None,
            staging: None,
        })
    }

    /// Serves requests until the handle closes the channel or asks to close.
    /// The recovered log, letting go of the lock and the open segment (see
    /// `recover_for_fuzzing`).
    pub(super) fn into_log(self) -> Log {
        self.log
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let request = match self.sync_deadline() {
                None => match rx.recv() {
                    Ok(r) => r,
                    Err(mpsc::RecvError) => break,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(r) => r,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.background_sync();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match request {
                Request::Append {
                    frame,
                    first_seq,
                    last_seq,
                    reply,
                } => {
                    let _ = reply.send(self.append(&frame, first_seq, last_seq));
                }
                Request::ReadAfter {
                    after,
                    max_batches,
                    reply,
                } => {
                    let _ = reply.send(self.log.read_after(after, max_batches));
                }
                Request::SnapshotPart {
                    seq,
                    from,
                    part,
                    total,
                    reply,
                } => {
                    let _ = reply.send(self.save_snapshot_part(seq, from, &part, total));
                }
                Request::LoadSnapshot { reply } => {
                    let _ = reply.send(self.load_snapshot());
                }
                Request::Ping { reply } => {
                    let _ = reply.send(self.ping());
                }
                Request::Close { reply } => {
                    self.discard_staging();
                    let _ = reply.send(self.sync_now());
                    return;
                }
            }
            if self.sync_deadline().is_some_and(|d| Instant::now() >= d) {
                self.background_sync();
            }
        }
        if let Err(e) = self.sync_now() {
            tracing::error!(dir = %self.dir.display(), error = %e, "final journal sync failed");
        }
    }

    fn sync_deadline(&self) -> Option<Instant> {
        match self.config.fsync {
            FsyncPolicy::Interval(every) => self.dirty_since.map(|t| t + every),
            FsyncPolicy::Batch => None,
        }
    }

    /// The interval timer fired.
    fn background_sync(&mut self) {
        if let Err(e) = self.sync_now() {
            tracing::error!(dir = %self.dir.display(), error = %e, "background fdatasync failed");
        }
    }

    /// fdatasyncs the current segment if anything is unsynced. A failure poisons the
    /// journal: acknowledged batches may not be on disk, and retrying the fsync would not
    /// tell (the kernel may already have dropped the pages).
    pub(super) fn sync_now(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let path = &self.log.segments[self.log.segments.len() - 1].path;
        match self.current.sync_data() {
            Ok(()) => {
                self.dirty_since = None;
                Ok(())
            }
            Err(e) => {
                let msg = format!(
                    "fdatasync of {} failed ({e}); batches acknowledged since the last sync \
                     may not be on disk; reopen the journal to recover",
                    path.display()
                );
                self.poisoned = Some(msg.clone());
                Err(StoreError::Unavailable(msg))
            }
        }
    }

    pub(super) fn check_poisoned(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(why) => Err(StoreError::Unavailable(why.clone())),
            None => Ok(()),
        }
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.check_poisoned()?;
        fs::metadata(&self.dir)
            .map(|_| ())
            .map_err(|e| io_err("cannot stat", &self.dir, e))
    }

    fn append(&mut self, frame: &[u8], first_seq: u64, last_seq: u64) -> Result<(), StoreError> {
        self.check_poisoned()?;
        if first_seq != self.log.next_seq {
            return Err(StoreError::OutOfOrder {
                expected: self.log.next_seq,
                got: first_seq,
            });
        }
        let frame_len = frame.len() as u64;
        let current_len = self.log.segments[self.log.segments.len() - 1].len;
        if current_len > 0 && current_len + frame_len > self.config.segment_bytes {
            self.roll(first_seq)?;
        }
        let idx = self.log.segments.len() - 1;
        let old_len = self.log.segments[idx].len;
        let written = self.current.write_all(frame).and_then(|()| {
            if self.config.fsync == FsyncPolicy::Batch {
                self.current.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            return Err(self.undo_append(old_len, e));
        }
        self.log.segments[idx].len = old_len + frame_len;
        self.log.next_seq = last_seq + 1;
        self.last_seq.store(last_seq, Ordering::Release);
        if let FsyncPolicy::Interval(_) = self.config.fsync {
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// A write or fdatasync of a frame failed: cut the file back to the last whole frame and
    /// make that durable, so the batch is definitely absent and the next append does not land
    /// behind a partial frame (which recovery would rightly call corruption).
    fn undo_append(&mut self, old_len: u64, cause: io::Error) -> StoreError {
        self.log.cursor = None;
        let path = self.log.segments[self.log.segments.len() - 1].path.clone();
        let undone = self
            .current
            .set_len(old_len)
            .and_then(|()| self.current.sync_data());
        match undone {
            Ok(()) => {
                // Under Interval that sync also covered the earlier unsynced batches.
                self.dirty_since = None;
                StoreError::Unavailable(format!(
                    "append to {} failed: {cause}; the batch was not stored",
                    path.display()
                ))
            }
            Err(e) => {
                let msg = format!(
                    "append to {} failed ({cause}) and the partial frame could not be removed \
                     ({e}); reopen the journal to recover",
                    path.display()
                );
                self.poisoned = Some(msg.clone());
                StoreError::Unavailable(msg)
            }
        }
    }

    /// Closes the current segment and starts `journal-{first_seq}.seg`.
    fn roll(&mut self, first_seq: u64) -> Result<(), StoreError> {
        // Under Interval the old segment's tail may be unsynced; the timer only syncs the
        // current file, so sync it now.
        self.sync_now()?;
        let path = self.dir.join(segment_name(first_seq));
        let file = open_append(&path, true).map_err(|e| io_err("cannot create", &path, e))?;
        if let Err(e) = sync_dir(&self.dir) {
            self.poisoned = Some(format!("after creating {}: {e}", path.display()));
            return Err(e);
        }
        self.current = file;
        self.log.segments.push(Segment {
            first_seq,
            path,
            len: 0,
        });
        Ok(())
    }
}
