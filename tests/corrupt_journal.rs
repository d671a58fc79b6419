//! A damaged file journal fails recovery with an error that names the segment file and the
//! byte offset of the damage, and never panics; a torn write at the very end of the last
//! segment (what a crash leaves) is cut and recovery goes on, as `store/file` documents.
//! A damaged snapshot is passed over for the log (its CRC fails) or, if it is whole but
//! unreadable, refused naming the file. Each case through the library and through the
//! `gavel` binary (`serve` refuses to start, `replay --verify` exits non-zero).

mod support;

use gavel::auction::Command as AuctionCommand;
use gavel::engine::recover;
use gavel::market::Command;
use gavel::store::file::{FileJournal, FileJournalConfig, FileLog};
use gavel::store::{Batch, Entry, Journal, Snapshot, StoreError};
use std::fs;
use std::path::{Path, PathBuf};
use support::gavel::{replay_verify, Gavel, GavelOpts, JournalArg};
use tempfile::TempDir;

/// `n` clock ticks from `first`: journaled commands like any other, which replay onto an
/// empty book without a refusal.
fn ticks(first: u64, n: u64) -> Batch {
    let entry = |seq| Entry {
        seq,
        now_ms: 1_760_000_000_000 + seq * 1_000,
        command: Command::Auction(AuctionCommand::Tick),
    };
    Batch {
        entries: (first..first + n).map(entry).collect(),
        outcomes: Vec::new(),
    }
}

/// A journal of `batches` batches of 3 commands in `dir`, with segments of at most
/// `segment_bytes`.
async fn journal(dir: &Path, batches: u64, segment_bytes: u64) {
    let config = FileJournalConfig {
        segment_bytes,
        ..FileJournalConfig::default()
    };
    let mut j = FileJournal::open(dir, config).await.expect("a new journal");
    for i in 0..batches {
        j.append(&ticks(1 + i * 3, 3)).await.expect("append");
    }
    j.close().await.expect("close");
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir)
        .expect("the directory reads")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    s.sort();
    s
}

/// Where each frame of a segment starts.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        at += 8 + len as usize;
    }
    starts
}

fn name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("a file name")
        .to_owned()
}

/// Both ways recovery reads a file journal (the engine's, which repairs a torn tail, and
/// the read-only view of `replay`) refuse it with `Corrupt` naming `segment` and `offset`.
async fn assert_corrupt_at(dir: &Path, segment: &Path, offset: usize) {
    let want = format!("{} at byte {offset}", segment.display());
    match FileJournal::open(dir, FileJournalConfig::default()).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(&want), "{m:?} lacks {want:?}"),
        other => panic!("the engine's open: expected Corrupt at {want}, got {other:?}"),
    }
    match FileLog::open(dir) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(&want), "{m:?} lacks {want:?}"),
        other => panic!("the read-only open: expected Corrupt at {want}, got {other:?}"),
    }
}

/// `gavel serve` and `gavel replay --verify` on `dir` both fail, saying `expect`, and
/// neither panics.
async fn assert_binary_refuses(dir: &Path, expect: &[&str]) {
    let arg = JournalArg::File(dir.to_path_buf());
    let (status, out) = replay_verify(&arg);
    assert!(!status.success(), "replay --verify passed:\n{out}");
    for e in expect {
        assert!(
            out.contains(e),
            "replay --verify does not say {e:?}:\n{out}"
        );
    }
    assert!(
        !out.contains("panicked"),
        "replay --verify panicked:\n{out}"
    );
    assert_serve_refuses(dir, expect).await;
}

/// `gavel serve` on `dir` fails to start, saying `expect`, without a panic.
async fn assert_serve_refuses(dir: &Path, expect: &[&str]) {
    let arg = JournalArg::File(dir.to_path_buf());
    match Gavel::start(&GavelOpts::new(arg)).await {
        Ok(_) => panic!("gavel serve started on a corrupt journal"),
        Err(f) => {
            for e in expect {
                assert!(
                    f.output.contains(e),
                    "serve does not say {e:?}:\n{}",
                    f.output
                );
            }
            assert!(
                !f.output.contains("panicked"),
                "serve panicked:\n{}",
                f.output
            );
        }
    }
}

#[tokio::test]
async fn a_flipped_byte_mid_segment_names_the_segment_and_the_frames_offset() {
    let dir = TempDir::new().expect("a temporary directory");
    journal(dir.path(), 5, 64 << 20).await;
    let seg = segments(dir.path()).remove(0);
    let bytes = fs::read(&seg).expect("the segment reads");
    let starts = frame_starts(&bytes);
    // A byte inside the third frame's payload: valid frames follow, so this is damage to
    // acknowledged history, not a torn write.
    let mut damaged = bytes.clone();
    damaged[starts[2] + 20] ^= 0x40;
    fs::write(&seg, &damaged).expect("write");
    assert_corrupt_at(dir.path(), &seg, starts[2]).await;
    // Refusing changed nothing: the evidence is kept.
    assert_eq!(fs::read(&seg).expect("reads"), damaged);
    let at = format!("at byte {}", starts[2]);
    assert_binary_refuses(dir.path(), &[&name(&seg), &at, "CRC mismatch"]).await;
}

#[tokio::test]
async fn a_garbage_length_mid_segment_names_the_segment_and_the_frames_offset() {
    let dir = TempDir::new().expect("a temporary directory");
    journal(dir.path(), 5, 64 << 20).await;
    let seg = segments(dir.path()).remove(0);
    let mut bytes = fs::read(&seg).expect("the segment reads");
    let starts = frame_starts(&bytes);
    for garbage in [0xffff_fff0u32, 0, 3] {
        bytes[starts[1]..starts[1] + 4].copy_from_slice(&garbage.to_le_bytes());
        fs::write(&seg, &bytes).expect("write");
        assert_corrupt_at(dir.path(), &seg, starts[1]).await;
    }
    let at = format!("at byte {}", starts[1]);
    assert_binary_refuses(dir.path(), &[&name(&seg), &at]).await;
}

#[tokio::test]
async fn a_segment_truncated_mid_frame_with_segments_after_it_names_the_offset() {
    let dir = TempDir::new().expect("a temporary directory");
    // Segments of a few frames each.
    journal(dir.path(), 12, 400).await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let bytes = fs::read(&segs[0]).expect("the segment reads");
    let starts = frame_starts(&bytes);
    let last = *starts.last().expect("a frame");
    fs::write(&segs[0], &bytes[..last + 11]).expect("write");
    assert_corrupt_at(dir.path(), &segs[0], last).await;
    let at = format!("at byte {last}");
    assert_binary_refuses(dir.path(), &[&name(&segs[0]), &at, "later segments follow"]).await;
}

#[tokio::test]
async fn a_torn_tail_of_the_last_segment_is_cut_and_recovery_goes_on() {
    // Documented in `store/file`: a bad last frame of the last segment is what a crash
    // mid-write leaves; the engine cuts it (with a warning naming the file and offset),
    // the read-only view ends before it.
    for damage in ["truncate", "garbage length", "flip"] {
        let dir = TempDir::new().expect("a temporary directory");
        journal(dir.path(), 4, 64 << 20).await;
        let seg = segments(dir.path()).remove(0);
        let mut bytes = fs::read(&seg).expect("the segment reads");
        let last = *frame_starts(&bytes).last().expect("a frame");
        match damage {
            "truncate" => bytes.truncate(last + 13),
            "garbage length" => bytes[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes()),
            _ => bytes[last + 30] ^= 1,
        }
        fs::write(&seg, &bytes).expect("write");
        let log = FileLog::open(dir.path()).expect("the read-only view opens");
        assert_eq!(log.last_seq(), 9, "{damage}");
        assert_eq!(
            fs::read(&seg).expect("reads"),
            bytes,
            "{damage}: the reader cut"
        );
        let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{damage}: {e}"));
        assert_eq!(j.last_seq(), 9, "{damage}");
        assert_eq!(
            fs::metadata(&seg).expect("stat").len(),
            last as u64,
            "{damage}"
        );
        let recovered = recover(&mut j, true, &mut ()).await.expect("recovers");
        assert_eq!(recovered.market.last_seq(), 9, "{damage}");
        j.close().await.expect("close");
    }
}

/// A journal of 4 batches and a snapshot of the book after them; returns the snapshot's
/// file.
async fn journal_with_snapshot(dir: &Path) -> PathBuf {
    journal(dir, 4, 64 << 20).await;
    let mut j = FileJournal::open(dir, FileJournalConfig::default())
        .await
        .expect("reopens");
    let market = recover(&mut j, false, &mut ())
        .await
        .expect("recovers")
        .market;
    let bytes = rmp_serde::to_vec(&market).expect("the market serializes");
    j.save_snapshot(&Snapshot { seq: 12, bytes })
        .await
        .expect("the snapshot is saved");
    j.close().await.expect("close");
    dir.join(format!("snapshot-{:020}.bin", 12))
}

#[tokio::test]
async fn a_snapshot_with_a_bad_crc_is_passed_over_for_the_log() {
    let dir = TempDir::new().expect("a temporary directory");
    let snap = journal_with_snapshot(dir.path()).await;
    let mut bytes = fs::read(&snap).expect("the snapshot reads");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&snap, &bytes).expect("write");
    let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
        .await
        .expect("opens");
    let recovered = recover(&mut j, true, &mut ()).await.expect("recovers");
    assert_eq!(recovered.snapshot_seq, 0, "the damaged snapshot was used");
    assert_eq!(recovered.replayed, 12);
    j.close().await.expect("close");
}

#[tokio::test]
async fn a_whole_snapshot_that_does_not_decode_is_refused_naming_the_file() {
    let dir = TempDir::new().expect("a temporary directory");
    let snap = journal_with_snapshot(dir.path()).await;
    // A whole frame (right length and CRC) around bytes that are not a market: written by
    // another version, or a bug. Recovery must not guess.
    let mut payload = 12u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0x93, 0xc1, 0x00, 0x00]);
    let mut file = (payload.len() as u32).to_le_bytes().to_vec();
    file.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    file.extend_from_slice(&payload);
    fs::write(&snap, &file).expect("write");
    let mut j = FileJournal::open(dir.path(), FileJournalConfig::default())
        .await
        .expect("opens");
    match recover(&mut j, true, &mut ()).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(&name(&snap)), "{m}"),
        Err(e) => panic!("expected Corrupt naming {}, got {e}", snap.display()),
        Ok(_) => panic!("an undecodable snapshot was accepted"),
    }
    j.close().await.expect("close");
    // `replay --verify` reads the log alone, which is whole; the server starts from the
    // snapshot and must refuse.
    assert_serve_refuses(dir.path(), &[&name(&snap)]).await;
}
