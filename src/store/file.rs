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
//! swapped. The price is about 40 bytes per `PlaceBid` (the field names), which the
//! benchmark shows does not matter next to the fsync. Names also let recovery decode only
//! the sequence numbers of each batch, skipping the commands, to check continuity cheaply.
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

use super::{check_order, Batch, Journal, Snapshot, StoreError};
use serde::Deserialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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

/// Snapshots kept on disk: the newest, and one to fall back on if the newest is damaged.
const SNAPSHOTS_KEPT: usize = 2;
/// Bytes of a frame header: length and CRC.
const HEADER: usize = 8;
/// Bytes of a snapshot per `save_snapshot_part`: the appends queued behind a part wait
/// for its write and fsync, a few ms, instead of for the whole book's.
const SNAPSHOT_PART_BYTES: usize = 1 << 20;
/// Read buffer for scanning and replaying segments.
const READ_BUF: usize = 256 << 10;
/// Upper bound on the CRC work spent looking for a valid frame after a bad one (see
/// `valid_frame_after`); past it the bad frame is treated as corruption, not a torn tail.
const RESYNC_BUDGET: u64 = 256 << 20;

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

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the async handle asks of the I/O thread.
enum Request {
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

impl Journal for FileJournal {
    fn close(self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        // The inherent `close`, which releases the lock/lease before returning.
        FileJournal::close(self)
    }

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

    async fn ping(&mut self) -> Result<(), StoreError> {
        self.call(|reply| Request::Ping { reply }).await
    }
}

/// Builds a frame: header placeholder, payload written by `fill`, then length and CRC.
fn encode_frame<E: std::fmt::Display>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(&[0; HEADER]);
    fill(&mut buf).map_err(|e| StoreError::Unavailable(format!("cannot encode: {e}")))?;
    let payload_len = buf.len() - HEADER;
    let len = u32::try_from(payload_len).map_err(|_| {
        StoreError::Unavailable(format!(
            "frame of {payload_len} bytes exceeds the 4 GiB frame limit"
        ))
    })?;
    let crc = crc32c::crc32c(&buf[HEADER..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// What reading one frame found.
enum Frame {
    /// A whole frame with a matching CRC.
    Whole(Vec<u8>),
    /// The segment ends exactly here.
    End,
    /// Not a whole frame: what is wrong with it.
    Bad(String),
}

/// Reads one frame from `r`, which has `remaining` bytes left in its segment. I/O errors
/// are returned as such; damaged bytes are `Frame::Bad`.
fn read_frame(r: &mut impl Read, remaining: u64) -> io::Result<Frame> {
    if remaining == 0 {
        return Ok(Frame::End);
    }
    if remaining < HEADER as u64 {
        return Ok(Frame::Bad(format!(
            "short header ({remaining} bytes before the end of the file)"
        )));
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    let (len, crc) = parse_header(header);
    if len == 0 {
        // A zero-filled tail (the file grew but its blocks were never written) reads as
        // length 0 with CRC 0, which is the CRC of nothing: never a real frame.
        return Ok(Frame::Bad("zero-length frame".into()));
    }
    if u64::from(len) > remaining - HEADER as u64 {
        return Ok(Frame::Bad(format!(
            "frame length {len} runs past the end of the file ({} bytes left)",
            remaining - HEADER as u64
        )));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    if crc32c::crc32c(&payload) != crc {
        return Ok(Frame::Bad("CRC mismatch".into()));
    }
    Ok(Frame::Whole(payload))
}

fn parse_header(h: [u8; HEADER]) -> (u32, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// Whether `tail` (the bytes after a bad frame's first byte) holds a whole, CRC-valid
/// frame at any offset. Used to tell a torn last write (nothing valid can follow it: the
/// next frame is only written after this one) from damage in the middle of the log.
/// Returns `None` when the search would exceed its work budget: the caller then assumes
/// the worst.
fn valid_frame_after(tail: &[u8]) -> Option<Option<usize>> {
    let mut budget = RESYNC_BUDGET;
    for start in 0..tail.len().saturating_sub(HEADER) {
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&tail[start..start + HEADER]);
        let (len, crc) = parse_header(h);
        let body = start + HEADER;
        if len == 0 || len as usize > tail.len() - body {
            continue;
        }
        budget = budget.checked_sub(u64::from(len))?;
        if crc32c::crc32c(&tail[body..body + len as usize]) == crc {
            return Some(Some(start));
        }
    }
    Some(None)
}

/// The sequence numbers of a batch, decoded without the commands (field names let serde
/// skip the rest).
#[derive(Deserialize)]
struct BatchSeqs {
    entries: Vec<SeqOnly>,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// Seq of its first entry (also in its name).
    first_seq: u64,
    path: PathBuf,
    /// Bytes of whole frames in it.
    len: u64,
}

/// Where the last `read_after` stopped, so a replay that asks for the next batches
/// continues without rescanning the segment.
struct Cursor {
    /// The last seq of the last frame consumed.
    after: u64,
    /// Index into `Writer::segments`.
    segment: usize,
    /// Byte offset of the next frame in that segment.
    offset: u64,
    reader: BufReader<File>,
}

/// The I/O thread's state: owns every file of the journal.
struct Writer {
    dir: PathBuf,
    config: FileJournalConfig,
    /// Held open (and flocked) for the journal's lifetime.
    _lock: File,
    /// In seq order; the last one is being appended to. Never empty.
    segments: Vec<Segment>,
    /// The last segment, open for appending.
    current: File,
    /// The seq the next batch must start with.
    next_seq: u64,
    /// Published copy of `next_seq - 1`.
    last_seq: Arc<AtomicU64>,
    /// Under `Interval`: when the oldest unsynced write happened.
    dirty_since: Option<Instant>,
    /// Why appends are refused until the journal is reopened.
    poisoned: Option<String>,
    cursor: Option<Cursor>,
    /// The snapshot being written a part at a time, if any.
    staging: Option<Staging>,
}

/// A snapshot's temporary file while its parts arrive.
struct Staging {
    seq: u64,
    tmp: PathBuf,
    file: File,
    /// Bytes of the snapshot written so far (after the frame header and the seq).
    written: usize,
    /// CRC-32C of the frame's payload so far: the seq, then `written` bytes.
    crc: u32,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn segment_name(first_seq: u64) -> String {
    format!("journal-{first_seq:020}.seg")
}

fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

/// Where a snapshot is written before it is renamed into place (`remove_temp_files`
/// clears leftovers at open).
fn temp_snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{}.tmp", snapshot_name(seq)))
}

/// The seq in a file name `{prefix}{20 digits}{suffix}`.
fn parse_name(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// fsyncs a directory, so that files created, renamed or removed in it stay that way.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync directory", dir, e))
}

/// The seqs of the files in `dir` named `{prefix}{seq:020}{suffix}`, ascending.
fn list_seqs(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", dir, e))?;
        if let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, prefix, suffix))
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Takes the directory's lock or says who holds it.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err("cannot open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(StoreError::Fenced(format!(
                "{} is locked by another journal{holder}",
                dir.display()
            )));
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("cannot lock", &path, e)),
    }
    // The pid is for the operator reading the Fenced message; the lock is what counts.
    let pid = std::process::id().to_string();
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(pid.as_bytes()));
    Ok(file)
}

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
    fn recover(
        dir: PathBuf,
        config: FileJournalConfig,
        last_seq: Arc<AtomicU64>,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let lock = lock_dir(&dir)?;
        remove_temp_files(&dir)?;

        let mut segments: Vec<Segment> = Vec::new();
        let names = list_seqs(&dir, "journal-", ".seg")?;
        // The seq the next frame must start with; known once a segment is seen.
        let mut next_seq: Option<u64> = None;
        for (i, &first_seq) in names.iter().enumerate() {
            let path = dir.join(segment_name(first_seq));
            if let Some(expected) = next_seq {
                if first_seq != expected {
                    return Err(StoreError::Corrupt(format!(
                        "{} starts at seq {first_seq} but the log before it ends at {}",
                        path.display(),
                        expected - 1
                    )));
                }
            }
            let is_last = i + 1 == names.len();
            let scan = scan_segment(&path, first_seq)?;
            if let Some((offset, reason)) = &scan.bad {
                if !is_last {
                    return Err(StoreError::Corrupt(format!(
                        "{} at byte {offset}: {reason}, and later segments follow",
                        path.display()
                    )));
                }
                cut_torn_tail(&path, *offset, reason)?;
            }
            if scan.valid_len == 0 && !is_last {
                return Err(StoreError::Corrupt(format!(
                    "{} is empty but later segments follow",
                    path.display()
                )));
            }
            next_seq = Some(scan.next_seq);
            segments.push(Segment {
                first_seq,
                path,
                len: scan.valid_len,
            });
        }

        let next_seq = next_seq.unwrap_or(1);
        if segments.is_empty() {
            let path = dir.join(segment_name(next_seq));
            open_append(&path, true).map_err(|e| io_err("cannot create", &path, e))?;
            sync_dir(&dir)?;
            segments.push(Segment {
                first_seq: next_seq,
                path,
                len: 0,
            });
        }
        let current_path = &segments[segments.len() - 1].path;
        let current =
            open_append(current_path, false).map_err(|e| io_err("cannot open", current_path, e))?;
        last_seq.store(next_seq - 1, Ordering::Release);
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            last_seq = next_seq - 1,
            "file journal recovered"
        );
        Ok(Self {
            dir,
            config,
            _lock: lock,
            segments,
            current,
            next_seq,
            last_seq,
            dirty_since: None,
            poisoned: None,
            cursor: None,
            staging: None,
        })
    }

    /// Serves requests until the handle closes the channel or asks to close.
    fn run(mut self, rx: mpsc::Receiver<Request>) {
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
                    let _ = reply.send(self.read_after(after, max_batches));
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
    fn sync_now(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let path = &self.segments[self.segments.len() - 1].path;
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

    fn check_poisoned(&self) -> Result<(), StoreError> {
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
        if first_seq != self.next_seq {
            return Err(StoreError::OutOfOrder {
                expected: self.next_seq,
                got: first_seq,
            });
        }
        let frame_len = frame.len() as u64;
        let current_len = self.segments[self.segments.len() - 1].len;
        if current_len > 0 && current_len + frame_len > self.config.segment_bytes {
            self.roll(first_seq)?;
        }
        let idx = self.segments.len() - 1;
        let old_len = self.segments[idx].len;
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
        self.segments[idx].len = old_len + frame_len;
        self.next_seq = last_seq + 1;
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
        self.cursor = None;
        let path = self.segments[self.segments.len() - 1].path.clone();
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
        self.segments.push(Segment {
            first_seq,
            path,
            len: 0,
        });
        Ok(())
    }

    fn read_after(&mut self, after: u64, max_batches: usize) -> Result<Vec<Batch>, StoreError> {
        let last = self.next_seq - 1;
        if after >= last || max_batches == 0 {
            return Ok(Vec::new());
        }
        let start = self.segments[0].first_seq;
        if after + 1 < start {
            return Err(StoreError::Corrupt(format!(
                "entries after seq {after} were requested but the log in {} starts at seq \
                 {start} (older segments were removed by retention)",
                self.dir.display()
            )));
        }
        let mut cursor = match self.cursor.take() {
            Some(c) if c.after == after => c,
            _ => self.seek(after)?,
        };
        let mut out = Vec::new();
        while out.len() < max_batches {
            let segment = &self.segments[cursor.segment];
            let remaining = segment.len.saturating_sub(cursor.offset);
            if remaining == 0 {
                if cursor.segment + 1 == self.segments.len() {
                    break;
                }
                cursor = self.cursor_at(cursor.segment + 1, cursor.after)?;
                continue;
            }
            let frame_at = cursor.offset;
            let corrupt = |reason: &str| {
                StoreError::Corrupt(format!(
                    "{} at byte {frame_at}: {reason}",
                    segment.path.display()
                ))
            };
            let payload = match read_frame(&mut cursor.reader, remaining)
                .map_err(|e| io_err("cannot read", &segment.path, e))?
            {
                Frame::Whole(p) => p,
                Frame::End => break,
                Frame::Bad(reason) => return Err(corrupt(&reason)),
            };
            cursor.offset += (HEADER + payload.len()) as u64;
            if cursor.after < after {
                // Still positioning: only the seqs are needed to skip a frame.
                let seqs: BatchSeqs =
                    rmp_serde::from_slice(&payload).map_err(|e| corrupt(&e.to_string()))?;
                let frame_last = seqs.entries.last().map_or(cursor.after, |e| e.seq);
                if frame_last <= after {
                    cursor.after = frame_last;
                    continue;
                }
            }
            let batch: Batch =
                rmp_serde::from_slice(&payload).map_err(|e| corrupt(&e.to_string()))?;
            cursor.after = batch.last_seq();
            out.push(batch);
        }
        self.cursor = Some(cursor);
        Ok(out)
    }

    /// A cursor at the start of the segment that holds `after + 1`.
    fn seek(&self, after: u64) -> Result<Cursor, StoreError> {
        let segment = self
            .segments
            .partition_point(|s| s.first_seq <= after + 1)
            .saturating_sub(1);
        let before = self.segments[segment].first_seq - 1;
        self.cursor_at(segment, before)
    }

    fn cursor_at(&self, segment: usize, after: u64) -> Result<Cursor, StoreError> {
        let path = &self.segments[segment].path;
        let file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
        Ok(Cursor {
            after,
            segment,
            offset: 0,
            reader: BufReader::with_capacity(READ_BUF, file),
        })
    }

    /// One part of a snapshot (see `Journal::save_snapshot_part`). The file is one frame
    /// (see the module docs) whose header (length and CRC) is written last.
    fn save_snapshot_part(
        &mut self,
        seq: u64,
        from: usize,
        part: &[u8],
        total: usize,
    ) -> Result<usize, StoreError> {
        self.check_poisoned()?;
        let last = self.next_seq - 1;
        if seq > last {
            // A snapshot that claims entries the log does not hold would make recovery skip
            // them; refuse it rather than trust it.
            return Err(StoreError::OutOfOrder {
                expected: last,
                got: seq,
            });
        }
        let payload_len = u32::try_from(total.saturating_add(8)).map_err(|_| {
            StoreError::Unavailable(format!(
                "snapshot of {total} bytes exceeds the 4 GiB frame limit"
            ))
        })?;
        if from == 0 {
            self.discard_staging();
            let tmp = temp_snapshot_path(&self.dir, seq);
            let mut head = [0u8; HEADER + 8];
            head[HEADER..].copy_from_slice(&seq.to_le_bytes());
            let file = File::create(&tmp).and_then(|mut f| f.write_all(&head).map(|()| f));
            let file = file.map_err(|e| io_err("cannot write snapshot", &tmp, e))?;
            self.staging = Some(Staging {
                seq,
                tmp,
                file,
                written: 0,
                crc: crc32c::crc32c(&seq.to_le_bytes()),
            });
        }
        let follows = self
            .staging
            .as_ref()
            .is_some_and(|st| st.seq == seq && st.written == from);
        if !follows || from.saturating_add(part.len()) > total {
            return Err(StoreError::Unavailable(format!(
                "snapshot part at byte {from} of seq {seq} does not follow the staged parts"
            )));
        }
        let Some(mut st) = self.staging.take() else {
            return Err(StoreError::Unavailable("no snapshot staged".into()));
        };
        let step = (|| {
            st.file.write_all(part)?;
            st.crc = crc32c::crc32c_append(st.crc, part);
            st.written += part.len();
            if st.written < total {
                // Each part reaches the disk as it goes, so the last step's fsync is short.
                st.file.sync_data()?;
                return Ok(false);
            }
            let mut header = [0u8; HEADER];
            header[0..4].copy_from_slice(&payload_len.to_le_bytes());
            header[4..8].copy_from_slice(&st.crc.to_le_bytes());
            st.file.seek(SeekFrom::Start(0))?;
            st.file.write_all(&header)?;
            st.file.sync_all()?;
            Ok(true)
        })();
        match step {
            Ok(false) => {
                let written = st.written;
                self.staging = Some(st);
                Ok(written)
            }
            Ok(true) => {
                // The snapshot must never be more durable than the entries it covers.
                let path = self.dir.join(snapshot_name(seq));
                let installed = self.sync_now().and_then(|()| {
                    fs::rename(&st.tmp, &path)
                        .map_err(|e| io_err("cannot rename snapshot", &path, e))
                });
                if let Err(e) = installed {
                    let _ = fs::remove_file(&st.tmp);
                    return Err(e);
                }
                self.snapshot_installed()?;
                Ok(total)
            }
            Err(e) => {
                let _ = fs::remove_file(&st.tmp);
                Err(io_err("cannot write snapshot", &st.tmp, e))
            }
        }
    }

    /// Drops an unfinished snapshot: a new one starts, or the journal closes.
    fn discard_staging(&mut self) {
        if let Some(st) = self.staging.take() {
            drop(st.file);
            let _ = fs::remove_file(&st.tmp);
        }
    }

    /// After a snapshot file was renamed into place: makes the rename durable, then
    /// removes the snapshots and segments it makes unneeded.
    fn snapshot_installed(&mut self) -> Result<(), StoreError> {
        sync_dir(&self.dir)?;
        // Pruning and retention free space; failing at them loses nothing, so they only warn.
        if let Err(e) = self.prune_snapshots() {
            tracing::warn!(error = %e, "cannot remove old snapshots");
        }
        if let Err(e) = self.apply_retention() {
            tracing::warn!(error = %e, "cannot remove old segments");
        }
        Ok(())
    }

    fn prune_snapshots(&self) -> Result<(), StoreError> {
        let seqs = list_seqs(&self.dir, "snapshot-", ".bin")?;
        let old = seqs.len().saturating_sub(SNAPSHOTS_KEPT);
        for &seq in &seqs[..old] {
            let path = self.dir.join(snapshot_name(seq));
            fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
        }
        if old > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes segments that every kept snapshot covers, beyond the newest `n` of them.
    /// "Every kept snapshot" (not just the newest) so that falling back to the older
    /// snapshot, if the newest is found damaged, still has the log it needs.
    fn apply_retention(&mut self) -> Result<(), StoreError> {
        let Some(keep) = self.config.retain_segments_behind_snapshot else {
            return Ok(());
        };
        let seqs = list_seqs(&self.dir, "snapshot-", ".bin")?;
        let Some(&covered) = seqs.iter().rev().take(SNAPSHOTS_KEPT).min() else {
            return Ok(());
        };
        // Segment i (never the current one) is covered when the next one starts at or
        // before covered + 1.
        let covered_segments = self.segments[1..]
            .iter()
            .take_while(|next| next.first_seq <= covered + 1)
            .count();
        let delete = covered_segments.saturating_sub(keep);
        if delete == 0 {
            return Ok(());
        }
        self.cursor = None;
        let mut removed = 0;
        let mut result = Ok(());
        for segment in &self.segments[..delete] {
            tracing::info!(segment = %segment.path.display(), "retention: removing segment");
            if let Err(e) = fs::remove_file(&segment.path) {
                result = Err(io_err("cannot remove", &segment.path, e));
                break;
            }
            removed += 1;
        }
        // Forget only what is really gone, so the index never hides a file that exists.
        self.segments.drain(..removed);
        result.and_then(|()| sync_dir(&self.dir))
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let seqs = list_seqs(&self.dir, "snapshot-", ".bin")?;
        for &seq in seqs.iter().rev() {
            let path = self.dir.join(snapshot_name(seq));
            let bytes = fs::read(&path).map_err(|e| io_err("cannot read", &path, e))?;
            match decode_snapshot(&bytes, seq) {
                Ok(_) if seq > self.next_seq - 1 => tracing::warn!(
                    snapshot = %path.display(),
                    last_seq = self.next_seq - 1,
                    "snapshot is ahead of the log; ignoring it"
                ),
                Ok(snapshot) => return Ok(Some(snapshot)),
                Err(reason) => tracing::warn!(
                    snapshot = %path.display(),
                    reason,
                    "damaged snapshot; falling back to an older one"
                ),
            }
        }
        Ok(None)
    }
}

/// Checks a snapshot file's frame and its seq against the name.
fn decode_snapshot(bytes: &[u8], seq: u64) -> Result<Snapshot, String> {
    let header: [u8; HEADER] = bytes
        .get(..HEADER)
        .and_then(|h| h.try_into().ok())
        .ok_or("shorter than a frame header")?;
    let (len, crc) = parse_header(header);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != u64::from(len) {
        return Err(format!(
            "frame length {len} but {} bytes follow the header",
            payload.len()
        ));
    }
    if crc32c::crc32c(payload) != crc {
        return Err("CRC mismatch".into());
    }
    let stored: [u8; 8] = payload
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or("payload shorter than its seq")?;
    let stored = u64::from_le_bytes(stored);
    if stored != seq {
        return Err(format!("holds seq {stored} but is named for {seq}"));
    }
    Ok(Snapshot {
        seq,
        bytes: payload[8..].to_vec(),
    })
}

/// Removes `*.tmp` files: snapshots whose writing was interrupted before the rename.
fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("snapshot-") && name.ends_with(".tmp") {
            let path = entry.path();
            tracing::warn!(file = %path.display(), "removing an unfinished snapshot");
            fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
        }
    }
    Ok(())
}

/// What scanning one segment found.
struct Scan {
    /// Bytes of whole, valid frames from the start.
    valid_len: u64,
    /// The seq after the last valid frame (the segment's first seq if none).
    next_seq: u64,
    /// The first damaged frame, if any, when it may be a torn tail: its offset and why.
    bad: Option<(u64, String)>,
}

/// Checks every frame of a segment. Damage that cannot be a torn write (a valid frame
/// after a bad one, a CRC-valid frame that does not decode, a seq gap) is `Corrupt`.
fn scan_segment(path: &Path, first_seq: u64) -> Result<Scan, StoreError> {
    let file = File::open(path).map_err(|e| io_err("cannot open", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| io_err("cannot stat", path, e))?
        .len();
    let mut reader = BufReader::with_capacity(READ_BUF, file);
    let mut offset = 0u64;
    let mut next_seq = first_seq;
    let corrupt = |offset: u64, reason: String| {
        StoreError::Corrupt(format!("{} at byte {offset}: {reason}", path.display()))
    };
    loop {
        let frame = read_frame(&mut reader, file_len - offset)
            .map_err(|e| io_err("cannot read", path, e))?;
        let payload = match frame {
            Frame::Whole(p) => p,
            Frame::End => {
                return Ok(Scan {
                    valid_len: offset,
                    next_seq,
                    bad: None,
                })
            }
            Frame::Bad(reason) => {
                // Torn tail or damage in the middle? A torn write is the last thing in the
                // file; if a valid frame follows, acknowledged history is damaged.
                let mut tail = Vec::new();
                let mut file = reader.into_inner();
                file.seek(SeekFrom::Start(offset + 1))
                    .and_then(|_| file.read_to_end(&mut tail))
                    .map_err(|e| io_err("cannot read", path, e))?;
                return match valid_frame_after(&tail) {
                    Some(None) => Ok(Scan {
                        valid_len: offset,
                        next_seq,
                        bad: Some((offset, reason)),
                    }),
                    Some(Some(at)) => Err(corrupt(
                        offset,
                        format!(
                            "{reason}, followed by a valid frame at byte {}",
                            offset + 1 + at as u64
                        ),
                    )),
                    None => Err(corrupt(
                        offset,
                        format!("{reason}, and the rest of the file could not be checked"),
                    )),
                };
            }
        };
        let seqs: BatchSeqs = rmp_serde::from_slice(&payload).map_err(|e| {
            corrupt(
                offset,
                format!("the frame's CRC is valid but it does not decode ({e}); written by another version?"),
            )
        })?;
        if seqs.entries.is_empty() {
            return Err(corrupt(offset, "empty batch".into()));
        }
        for entry in &seqs.entries {
            if entry.seq != next_seq {
                return Err(corrupt(
                    offset,
                    format!("expected seq {next_seq}, found {}", entry.seq),
                ));
            }
            next_seq += 1;
        }
        offset += (HEADER + payload.len()) as u64;
    }
}

/// Truncates a segment to its last whole frame and makes that durable.
fn cut_torn_tail(path: &Path, offset: u64, reason: &str) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err("cannot stat", path, e))?
        .len();
    tracing::warn!(
        segment = %path.display(),
        offset,
        dropped_bytes = len - offset,
        reason,
        "cutting a torn last frame (a write interrupted by a crash; it was never acknowledged \
         under fsync=batch)"
    );
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err("cannot truncate", path, e))
}

#[cfg(test)]
mod tests;
