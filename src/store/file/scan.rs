//! Recovery's check of one segment: every frame's length and CRC, and the continuity of
//! the seqs inside; and the cut of a torn tail.
//!
//! Owns the rule that tells a torn last write (what a crash leaves, to be cut with a
//! warning) from damage that cannot be one (`Corrupt`). A scan only reports: it must not
//! decide to cut, since only the last segment can end in a torn write and only
//! `Writer::recover` knows which segment is last; `cut_torn_tail` cuts at the offset a
//! scan reported, never elsewhere.

use super::frame::{read_frame, valid_frame_after, Frame, HEADER};
use super::io_err;
use crate::store::StoreError;
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Read buffer for scanning and replaying segments.
pub(super) const READ_BUF: usize = 256 << 10;

/// The sequence numbers of a batch, decoded without the commands (field names let serde
/// skip the rest).
#[derive(Deserialize)]
pub(super) struct BatchSeqs {
    pub(super) entries: Vec<SeqOnly>,
}

#[derive(Deserialize)]
pub(super) struct SeqOnly {
    pub(super) seq: u64,
}

/// What scanning one segment found.
pub(super) struct Scan {
    /// Bytes of whole, valid frames from the start.
    pub(super) valid_len: u64,
    /// The seq after the last valid frame (the segment's first seq if none).
    pub(super) next_seq: u64,
    /// The first damaged frame, if any, when it may be a torn tail: its offset and why.
    pub(super) bad: Option<(u64, String)>,
}

/// Checks every frame of a segment. Damage that cannot be a torn write (a valid frame
/// after a bad one, a CRC-valid frame that does not decode, a seq gap) is `Corrupt`.
pub(super) fn scan_segment(path: &Path, first_seq: u64) -> Result<Scan, StoreError> {
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
            // The largest seq has no successor for the log to continue with; no real log
            // reaches it, so holding it is damage.
            next_seq = next_seq.checked_add(1).ok_or_else(|| {
                corrupt(
                    offset,
                    format!("seq {} leaves no seq to follow it", entry.seq),
                )
            })?;
        }
        offset += (HEADER + payload.len()) as u64;
    }
}

/// Truncates a segment to its last whole frame and makes that durable.
pub(super) fn cut_torn_tail(path: &Path, offset: u64, reason: &str) -> Result<(), StoreError> {
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
