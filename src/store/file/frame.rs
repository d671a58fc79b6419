//! The frame, the unit of every journal file: `u32 LE payload length | u32 LE
//! CRC32C(payload) | payload`. A segment is a sequence of frames; a snapshot file is one.
//!
//! Owns the byte layout: building a frame, reading one back, parsing a header, and the
//! search for a valid frame after a bad one that tells a torn tail from damage in the
//! middle. It must not know what a payload holds or touch the file system: it reads the
//! reader and bytes it is given, and reports damage as data (`Frame::Bad`), leaving the
//! verdict (cut it, or `Corrupt`) to its callers.

use crate::store::StoreError;
use std::io::{self, Read};

/// Bytes of a frame header: length and CRC.
pub(super) const HEADER: usize = 8;
/// Upper bound on the CRC work spent looking for a valid frame after a bad one (see
/// `valid_frame_after`); past it the bad frame is treated as corruption, not a torn tail.
const RESYNC_BUDGET: u64 = 256 << 20;

/// Builds a frame: header placeholder, payload written by `fill`, then length and CRC.
pub(super) fn encode_frame<E: std::fmt::Display>(
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
pub(super) enum Frame {
    /// A whole frame with a matching CRC.
    Whole(Vec<u8>),
    /// The segment ends exactly here.
    End,
    /// Not a whole frame: what is wrong with it.
    Bad(String),
}

/// Reads one frame from `r`, which has `remaining` bytes left in its segment. I/O errors
/// are returned as such; damaged bytes are `Frame::Bad`.
pub(super) fn read_frame(r: &mut impl Read, remaining: u64) -> io::Result<Frame> {
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

pub(super) fn parse_header(h: [u8; HEADER]) -> (u32, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// Whether `tail` (the bytes after a bad frame's first byte) holds a whole, CRC-valid
/// frame at any offset. Used to tell a torn last write (nothing valid can follow it: the
/// next frame is only written after this one) from damage in the middle of the log.
/// Returns `None` when the search would exceed its work budget: the caller then assumes
/// the worst.
pub(super) fn valid_frame_after(tail: &[u8]) -> Option<Option<usize>> {
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
