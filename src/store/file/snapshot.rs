//! Snapshot files: staging one a part at a time, installing it, pruning the old ones,
//! retention of the segments they cover, and loading the newest readable one.
//!
//! Owns `snapshot-{seq:020}.bin` and its `.tmp`, and the snapshot side of the I/O thread
//! (methods of `Writer`). A snapshot file is one frame whose payload is `u64 LE seq | the
//! snapshot's bytes`; its header is written last, so a partial file never passes as whole.
//!
//! It must not make a snapshot more durable than the entries it covers (the log is synced
//! before the rename), must not install one before the whole file is on disk, and must not
//! delete a segment that a kept snapshot still needs.

use super::directory::{list_seqs, snapshot_name, sync_dir, temp_snapshot_path};
use super::frame::{parse_header, HEADER};
use super::io_err;
use super::writer::Writer;
use crate::store::{Snapshot, StoreError};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Snapshots kept on disk: the newest, and one to fall back on if the newest is damaged.
const SNAPSHOTS_KEPT: usize = 2;
/// Bytes of a snapshot per `save_snapshot_part`: the appends queued behind a part wait
/// for its write and fsync, a few ms, instead of for the whole book's.
pub(super) const SNAPSHOT_PART_BYTES: usize = 1 << 20;

/// A snapshot's temporary file while its parts arrive.
pub(super) struct Staging {
    seq: u64,
    tmp: PathBuf,
    file: File,
    /// Bytes of the snapshot written so far (after the frame header and the seq).
    written: usize,
    /// CRC-32C of the frame's payload so far: the seq, then `written` bytes.
    crc: u32,
}

impl Writer {
    /// One part of a snapshot (see `Journal::save_snapshot_part`). The file is one frame
    /// (see the module docs) whose header (length and CRC) is written last.
    pub(super) fn save_snapshot_part(
        &mut self,
        seq: u64,
        from: usize,
        part: &[u8],
        total: usize,
    ) -> Result<usize, StoreError> {
        self.check_poisoned()?;
        let last = self.log.next_seq - 1;
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
    pub(super) fn discard_staging(&mut self) {
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
        let covered_segments = self.log.segments[1..]
            .iter()
            .take_while(|next| next.first_seq <= covered + 1)
            .count();
        let delete = covered_segments.saturating_sub(keep);
        if delete == 0 {
            return Ok(());
        }
        self.log.cursor = None;
        let mut removed = 0;
        let mut result = Ok(());
        for segment in &self.log.segments[..delete] {
            tracing::info!(segment = %segment.path.display(), "retention: removing segment");
            if let Err(e) = fs::remove_file(&segment.path) {
                result = Err(io_err("cannot remove", &segment.path, e));
                break;
            }
            removed += 1;
        }
        // Forget only what is really gone, so the index never hides a file that exists.
        self.log.segments.drain(..removed);
        result.and_then(|()| sync_dir(&self.dir))
    }

    pub(super) fn load_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let seqs = list_seqs(&self.dir, "snapshot-", ".bin")?;
        for &seq in seqs.iter().rev() {
            let path = self.dir.join(snapshot_name(seq));
            let bytes = fs::read(&path).map_err(|e| io_err("cannot read", &path, e))?;
            match decode_snapshot(&bytes, seq) {
                Ok(_) if seq > self.log.next_seq - 1 => tracing::warn!(
                    snapshot = %path.display(),
                    last_seq = self.log.next_seq - 1,
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
pub(super) fn decode_snapshot(bytes: &[u8], seq: u64) -> Result<Snapshot, String> {
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
