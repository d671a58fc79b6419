//! The log's segments as found on disk, and reading batches back from them.
//!
//! Shared by the writer (which scans at open, cutting a torn tail, and then appends) and
//! by [`FileLog`](super::FileLog), the read-only view that `gavel replay` and audits open
//! beside a running engine. Owns the order of the segments, the length of their whole
//! frames, and the cursor of a replay in progress. Must not write anything unless asked
//! to repair at open.

use super::directory::{list_seqs, segment_name};
use super::frame::{read_frame, Frame, HEADER};
use super::io_err;
use super::scan::{cut_torn_tail, scan_segment, BatchSeqs, READ_BUF};
use crate::store::{Batch, StoreError};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// One segment file.
#[derive(Debug)]
pub(super) struct Segment {
    /// Seq of its first entry (also in its name).
    pub(super) first_seq: u64,
    pub(super) path: PathBuf,
    /// Bytes of whole frames in it.
    pub(super) len: u64,
}

/// Where the last `read_after` stopped, so a replay that asks for the next batches
/// continues without rescanning the segment.
pub(super) struct Cursor {
    /// The last seq of the last frame consumed.
    after: u64,
    /// Index into `Log::segments`.
    segment: usize,
    /// Byte offset of the next frame in that segment.
    offset: u64,
    reader: BufReader<File>,
}

/// The segments of one journal directory, in seq order.
pub(super) struct Log {
    pub(super) dir: PathBuf,
    /// In seq order. Empty only for a journal that holds nothing yet.
    pub(super) segments: Vec<Segment>,
    /// The seq the next batch must start with.
    pub(super) next_seq: u64,
    /// Where the last `read_after` stopped.
    pub(super) cursor: Option<Cursor>,
}

impl Log {
    /// Checks every segment of `dir` in order: every frame's length and CRC, and the
    /// continuity of sequence numbers within and across segments. A bad last frame of the
    /// last segment is what a crash (or a write in progress) leaves behind: with `repair`
    /// (the writer, which holds the directory's lock) it is cut off; without (a reader
    /// beside a running writer) the log simply ends before it. Damage anywhere else is
    /// `Corrupt`, naming the file and the byte offset.
    pub(super) fn scan(dir: &Path, repair: bool) -> Result<Self, StoreError> {
        let mut segments: Vec<Segment> = Vec::new();
        let names = list_seqs(dir, "journal-", ".seg")?;
        // The seq the next frame must start with; known once a segment is seen.
        let mut next_seq: Option<u64> = None;
        for (i, &first_seq) in names.iter().enumerate() {
            let path = dir.join(segment_name(first_seq));
            if first_seq == 0 {
                // Seqs start at 1: no segment can start before the first.
                return Err(StoreError::Corrupt(format!(
                    "{} is named for seq 0, but seqs start at 1",
                    path.display()
                )));
            }
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
                if repair {
                    cut_torn_tail(&path, *offset, reason)?;
                }
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
        Ok(Self {
            dir: dir.to_path_buf(),
            segments,
            next_seq: next_seq.unwrap_or(1),
            cursor: None,
        })
    }

    /// Batches holding entries after `after`, at most `max_batches` (see
    /// `Journal::read_after`).
    pub(super) fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
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
}
