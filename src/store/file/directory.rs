//! The data directory: its lock, the names of its files, listing them by seq, making
//! changes to the directory itself durable, and clearing what an interrupted save left.
//!
//! Owns the naming scheme (`journal-{seq:020}.seg`, `snapshot-{seq:020}.bin`, `.tmp`):
//! names are built and parsed here, the callers only pass the prefix and suffix of the kind
//! they list. Owns the `LOCK` file too. It must not read or write what is inside a segment
//! or a snapshot.

use super::io_err;
use crate::store::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("journal-{first_seq:020}.seg")
}

pub(super) fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

/// Where a snapshot is written before it is renamed into place (`remove_temp_files`
/// clears leftovers at open).
pub(super) fn temp_snapshot_path(dir: &Path, seq: u64) -> PathBuf {
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
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync directory", dir, e))
}

/// The seqs of the files in `dir` named `{prefix}{seq:020}{suffix}`, ascending.
pub(super) fn list_seqs(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, StoreError> {
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
pub(super) fn lock_dir(dir: &Path) -> Result<File, StoreError> {
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

/// Removes `*.tmp` files: snapshots whose writing was interrupted before the rename.
pub(super) fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
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
