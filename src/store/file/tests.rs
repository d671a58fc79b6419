//! File journal tests: every one works on real files in a temporary directory and damages
//! them the way crashes and bad disks do.

use super::directory::{list_seqs, segment_name, snapshot_name, temp_snapshot_path};
use super::frame::HEADER;
use super::*;
use crate::auction::Command as AuctionCommand;
use crate::market::Command;
use crate::store::Entry;
use crate::vocab::{DealerId, LotId};
use std::fs;
use tempfile::TempDir;

fn bid_batch(first: u64, n: u64) -> Batch {
    Batch {
        entries: (first..first + n)
            .map(|seq| Entry {
                seq,
                now_ms: 1_760_000_000_000 + seq * 7,
                command: Command::Auction(AuctionCommand::PlaceBid {
                    dealer: DealerId(1 + (seq % 50) as u32),
                    lot: LotId(1 + (seq % 7) as u32),
                    amount: 8_000_000 + seq * 20_000,
                    max: seq.is_multiple_of(3).then_some(9_000_000),
                    bid_id: format!("b-{seq:08x}-7f3c-4c1e-9a51-3e2f1c0b8d77").into(),
                }),
            })
            .collect(),
        outcomes: Vec::new(),
    }
}

fn tmp() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Segments small enough that a few batches roll them.
fn small() -> FileJournalConfig {
    FileJournalConfig {
        segment_bytes: 1024,
        ..FileJournalConfig::default()
    }
}

async fn open(dir: &Path) -> FileJournal {
    FileJournal::open(dir, FileJournalConfig::default())
        .await
        .expect("open")
}

/// Reads the whole log with small pages, as a replay would.
async fn read_all(j: &mut FileJournal) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    loop {
        let after = out.last().map_or(0, Batch::last_seq);
        let page = j.read_after(after, 3).await.expect("read_after");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Byte offsets at which the frames of a segment start.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += HEADER + len;
    }
    assert_eq!(at, bytes.len());
    starts
}

/// Writes `batches` in one segment with the default config, closes, and returns the
/// segment's name and bytes.
async fn one_segment(batches: &[Batch]) -> (String, Vec<u8>) {
    let dir = tmp();
    let mut j = open(dir.path()).await;
    for b in batches {
        j.append(b).await.unwrap();
    }
    j.close().await.unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    (name, fs::read(&files[0]).unwrap())
}

fn write_segment(bytes: &[u8], name: &str) -> TempDir {
    let dir = tmp();
    fs::write(dir.path().join(name), bytes).unwrap();
    dir
}

fn three_batches() -> Vec<Batch> {
    vec![bid_batch(1, 2), bid_batch(3, 1), bid_batch(4, 3)]
}

#[tokio::test]
async fn round_trip_across_segment_rolls() {
    let dir = tmp();
    let mut j = FileJournal::open(dir.path(), small()).await.unwrap();
    let mut written = Vec::new();
    let mut seq = 1;
    for i in 0..60 {
        let b = bid_batch(seq, 1 + i % 5);
        seq = b.last_seq() + 1;
        j.append(&b).await.unwrap();
        written.push(b);
    }
    assert_eq!(j.last_seq(), seq - 1);
    assert!(segment_files(dir.path()).len() > 5, "segments must roll");
    assert_eq!(read_all(&mut j).await, written);

    // A batch that straddles `after` comes back whole; a fresh position works mid-log.
    for (i, b) in written.iter().enumerate() {
        let page = j.read_after(b.first_seq(), 2).await.unwrap();
        let expected: Vec<Batch> = if b.entries.len() > 1 {
            written[i..].iter().take(2).cloned().collect()
        } else {
            written[i + 1..].iter().take(2).cloned().collect()
        };
        assert_eq!(page, expected, "read_after({})", b.first_seq());
    }

    // Reading to the end, appending, and continuing picks up the new batch.
    let tail = j.read_after(seq - 1, 10).await.unwrap();
    assert!(tail.is_empty());
    let b = bid_batch(seq, 2);
    j.append(&b).await.unwrap();
    assert_eq!(j.read_after(seq - 1, 10).await.unwrap(), vec![b.clone()]);
    written.push(b);

    drop(j);
    let mut j = FileJournal::open(dir.path(), small()).await.unwrap();
    assert_eq!(read_all(&mut j).await, written);
}

#[tokio::test]
async fn reopen_after_clean_close_continues_the_log() {
    let dir = tmp();
    let mut j = open(dir.path()).await;
    j.append(&bid_batch(1, 4)).await.unwrap();
    j.close().await.unwrap();

    let mut j = open(dir.path()).await;
    assert_eq!(j.last_seq(), 4);
    assert!(matches!(
        j.append(&bid_batch(1, 1)).await,
        Err(StoreError::OutOfOrder {
            expected: 5,
            got: 1
        })
    ));
    j.append(&bid_batch(5, 1)).await.unwrap();
    drop(j); // drop without close releases the lock too

    let mut j = open(dir.path()).await;
    assert_eq!(
        read_all(&mut j).await,
        vec![bid_batch(1, 4), bid_batch(5, 1)]
    );
    j.ping().await.unwrap();
}

#[tokio::test]
async fn empty_directory_is_created_and_starts_at_seq_1() {
    let dir = tmp();
    let path = dir.path().join("nested/data");
    let mut j = open(&path).await;
    assert_eq!(j.last_seq(), 0);
    assert!(j.read_after(0, 10).await.unwrap().is_empty());
    assert!(matches!(
        j.append(&bid_batch(2, 1)).await,
        Err(StoreError::OutOfOrder {
            expected: 1,
            got: 2
        })
    ));
    j.append(&bid_batch(1, 1)).await.unwrap();
}

#[tokio::test]
async fn out_of_order_and_duplicate_appends_are_refused() {
    let dir = tmp();
    let mut j = open(dir.path()).await;
    j.append(&bid_batch(1, 3)).await.unwrap();
    let refused = |r: Result<(), StoreError>, expected: u64, got: u64| match r {
        Err(StoreError::OutOfOrder {
            expected: e,
            got: g,
        }) => {
            assert_eq!((e, g), (expected, got));
        }
        other => panic!("expected OutOfOrder, got {other:?}"),
    };
    refused(j.append(&bid_batch(3, 1)).await, 4, 3); // duplicate tail
    refused(j.append(&bid_batch(1, 3)).await, 4, 1); // duplicate batch
    refused(j.append(&bid_batch(5, 1)).await, 4, 5); // gap
    let mut inner_gap = bid_batch(4, 2);
    inner_gap.entries[1].seq = 6;
    refused(j.append(&inner_gap).await, 5, 6);
    let empty = Batch {
        entries: Vec::new(),
        outcomes: Vec::new(),
    };
    refused(j.append(&empty).await, 4, 0);

    // None of that was written, and the right batch still goes in.
    j.append(&bid_batch(4, 1)).await.unwrap();
    drop(j);
    let mut j = open(dir.path()).await;
    assert_eq!(
        read_all(&mut j).await,
        vec![bid_batch(1, 3), bid_batch(4, 1)]
    );
}

#[tokio::test]
async fn torn_last_frame_is_cut_at_every_offset() {
    let batches = three_batches();
    let (name, bytes) = one_segment(&batches).await;
    let last_start = frame_starts(&bytes)[2];
    for cut in last_start..bytes.len() {
        let dir = write_segment(&bytes[..cut], &name);
        let mut j = open(dir.path()).await;
        assert_eq!(j.last_seq(), 3, "cut at {cut}");
        assert_eq!(read_all(&mut j).await, batches[..2], "cut at {cut}");
        let seg = dir.path().join(&name);
        assert_eq!(fs::metadata(&seg).unwrap().len(), last_start as u64);
        // The journal accepts the next seq, and it survives a reopen.
        j.append(&batches[2]).await.unwrap();
        drop(j);
        let mut j = open(dir.path()).await;
        assert_eq!(read_all(&mut j).await, batches, "cut at {cut}");
    }
}

#[tokio::test]
async fn zero_filled_or_garbage_tail_is_cut() {
    let batches = three_batches();
    let (name, bytes) = one_segment(&batches).await;
    for tail in [
        vec![0u8; 4096],
        vec![0u8; 3],
        b"\x07\x00\x00\x00garbage!".to_vec(),
    ] {
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(&tail);
        let dir = write_segment(&damaged, &name);
        let mut j = open(dir.path()).await;
        assert_eq!(read_all(&mut j).await, batches);
        assert_eq!(
            fs::metadata(dir.path().join(&name)).unwrap().len(),
            bytes.len() as u64
        );
    }
}

#[tokio::test]
async fn flipped_byte_in_last_frame_is_cut() {
    let batches = three_batches();
    let (name, bytes) = one_segment(&batches).await;
    let last_start = frame_starts(&bytes)[2];
    // Every byte of the last frame, header included.
    for at in last_start..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        let dir = write_segment(&damaged, &name);
        let mut j = open(dir.path()).await;
        assert_eq!(read_all(&mut j).await, batches[..2], "flip at {at}");
        assert_eq!(
            fs::metadata(dir.path().join(&name)).unwrap().len(),
            last_start as u64,
            "flip at {at}"
        );
    }
}

#[tokio::test]
async fn flipped_byte_in_a_middle_frame_is_corrupt() {
    let mut batches = three_batches();
    batches.push(bid_batch(7, 1));
    let (name, bytes) = one_segment(&batches).await;
    let starts = frame_starts(&bytes);
    for at in starts[1]..starts[2] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        let dir = write_segment(&damaged, &name);
        match FileJournal::open(dir.path(), FileJournalConfig::default()).await {
            Err(StoreError::Corrupt(msg)) => assert!(msg.contains(&name), "{msg}"),
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
        // Nothing was cut: refusing must not destroy evidence.
        assert_eq!(fs::read(dir.path().join(&name)).unwrap(), damaged);
    }
}

#[tokio::test]
async fn damage_in_an_earlier_segment_is_corrupt() {
    let dir = tmp();
    let mut j = FileJournal::open(dir.path(), small()).await.unwrap();
    for i in 0..20 {
        j.append(&bid_batch(1 + i * 3, 3)).await.unwrap();
    }
    drop(j);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    // The tail of the first segment: harmless-looking, but later segments follow it.
    let mut bytes = fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&files[0], &bytes).unwrap();
    assert!(matches!(
        FileJournal::open(dir.path(), small()).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn missing_segment_is_corrupt() {
    let dir = tmp();
    let mut j = FileJournal::open(dir.path(), small()).await.unwrap();
    for i in 0..20 {
        j.append(&bid_batch(1 + i * 3, 3)).await.unwrap();
    }
    drop(j);
    let files = segment_files(dir.path());
    fs::remove_file(&files[1]).unwrap();
    assert!(matches!(
        FileJournal::open(dir.path(), small()).await,
        Err(StoreError::Corrupt(_))
    ));
}

fn frame_of(batch: &Batch) -> Vec<u8> {
    encode_frame(|buf| rmp_serde::encode::write_named(buf, batch)).unwrap()
}

#[tokio::test]
async fn seq_gap_between_valid_frames_is_corrupt() {
    let mut bytes = frame_of(&bid_batch(1, 2));
    bytes.extend(frame_of(&bid_batch(4, 1)));
    let dir = write_segment(&bytes, &segment_name(1));
    assert!(matches!(
        FileJournal::open(dir.path(), FileJournalConfig::default()).await,
        Err(StoreError::Corrupt(_))
    ));

    // A segment whose name disagrees with its first frame.
    let dir = write_segment(&frame_of(&bid_batch(1, 2)), &segment_name(5));
    assert!(matches!(
        FileJournal::open(dir.path(), FileJournalConfig::default()).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn valid_crc_that_does_not_decode_is_corrupt_not_cut() {
    // A CRC-valid frame was written whole: if it does not decode, it is a version mismatch
    // or a bug, and cutting it would drop an acknowledged batch.
    let mut bytes = frame_of(&bid_batch(1, 2));
    // 0xc1 is the one byte MessagePack never uses.
    let undecodable = encode_frame(|buf| {
        buf.push(0xc1);
        Ok::<_, io::Error>(())
    });
    bytes.extend(undecodable.unwrap());
    let dir = write_segment(&bytes, &segment_name(1));
    assert!(matches!(
        FileJournal::open(dir.path(), FileJournalConfig::default()).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(fs::read(dir.path().join(segment_name(1))).unwrap(), bytes);
}

#[tokio::test]
async fn second_open_on_the_same_dir_is_fenced() {
    let dir = tmp();
    let mut first = open(dir.path()).await;
    first.append(&bid_batch(1, 1)).await.unwrap();
    match FileJournal::open(dir.path(), FileJournalConfig::default()).await {
        Err(StoreError::Fenced(msg)) => {
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
            assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    // The refused open changed nothing; the owner carries on.
    first.append(&bid_batch(2, 1)).await.unwrap();
    drop(first);
    let mut again = open(dir.path()).await;
    assert_eq!(again.last_seq(), 2);
    again.append(&bid_batch(3, 1)).await.unwrap();
}

fn snapshot_files(dir: &Path) -> Vec<u64> {
    list_seqs(dir, "snapshot-", ".bin").unwrap()
}

#[tokio::test]
async fn snapshots_keep_two_and_fall_back_past_a_torn_one() {
    let dir = tmp();
    let mut j = open(dir.path()).await;
    assert_eq!(j.load_snapshot().await.unwrap(), None);
    j.append(&bid_batch(1, 10)).await.unwrap();
    for seq in [3, 6, 9] {
        let snap = Snapshot {
            seq,
            bytes: vec![seq as u8; 1000 + seq as usize],
        };
        j.save_snapshot(&snap).await.unwrap();
        assert_eq!(j.load_snapshot().await.unwrap(), Some(snap));
    }
    assert_eq!(snapshot_files(dir.path()), vec![6, 9]);

    // A snapshot beyond the log is refused.
    let ahead = Snapshot {
        seq: 11,
        bytes: vec![1],
    };
    assert!(matches!(
        j.save_snapshot(&ahead).await,
        Err(StoreError::OutOfOrder { .. })
    ));
    drop(j);

    // Tear the newest: the previous one is loaded.
    let newest = dir.path().join(snapshot_name(9));
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() - 1]).unwrap();
    // A leftover temp file from an interrupted save is removed at open.
    let leftover = dir.path().join(format!("{}.tmp", snapshot_name(10)));
    fs::write(&leftover, b"half").unwrap();
    let mut j = open(dir.path()).await;
    assert!(!leftover.exists());
    let loaded = j.load_snapshot().await.unwrap().expect("older snapshot");
    assert_eq!(loaded.seq, 6);
    assert_eq!(loaded.bytes, vec![6u8; 1006]);

    // A flipped byte in the older one too: nothing usable.
    let older = dir.path().join(snapshot_name(6));
    let mut bytes = fs::read(&older).unwrap();
    bytes[20] ^= 1;
    fs::write(&older, &bytes).unwrap();
    assert_eq!(j.load_snapshot().await.unwrap(), None);
}

#[tokio::test]
async fn a_snapshot_saved_in_parts_is_one_frame_of_seq_and_bytes() {
    let parts_dir = tmp();
    let mut parts = open(parts_dir.path()).await;
    parts.append(&bid_batch(1, 10)).await.unwrap();
    let snap = Snapshot {
        seq: 8,
        bytes: (0..SNAPSHOT_PART_BYTES * 5 / 2)
            .map(|i| (i % 253) as u8)
            .collect(),
    };

    let mut from = 0;
    let mut next = 11;
    while from < snap.bytes.len() {
        from = parts.save_snapshot_part(&snap, from).await.unwrap();
        if from < snap.bytes.len() {
            assert_eq!(
                parts.load_snapshot().await.unwrap(),
                None,
                "loaded half saved"
            );
            // The log goes on between the parts.
            parts.append(&bid_batch(next, 1)).await.unwrap();
            next += 1;
        }
    }
    assert_eq!(from, snap.bytes.len());
    assert_eq!(parts.load_snapshot().await.unwrap(), Some(snap.clone()));
    let name = snapshot_name(8);
    let frame = encode_frame(|buf| {
        buf.extend_from_slice(&8u64.to_le_bytes());
        buf.extend_from_slice(&snap.bytes);
        Ok::<_, io::Error>(())
    })
    .unwrap();
    assert_eq!(
        fs::read(parts_dir.path().join(&name)).unwrap(),
        frame,
        "the part-by-part file is not the frame of the seq and the bytes"
    );

    // A part that does not follow the staged ones is refused.
    assert!(parts
        .save_snapshot_part(&snap, SNAPSHOT_PART_BYTES)
        .await
        .is_err());
    // An unfinished save leaves the finished one in place, and its file goes at open.
    let later = Snapshot {
        seq: 12,
        bytes: vec![7; SNAPSHOT_PART_BYTES + 1],
    };
    assert_eq!(
        parts.save_snapshot_part(&later, 0).await.unwrap(),
        SNAPSHOT_PART_BYTES
    );
    drop(parts);
    let mut parts = open(parts_dir.path()).await;
    assert!(!temp_snapshot_path(parts_dir.path(), 12).exists());
    assert_eq!(parts.load_snapshot().await.unwrap(), Some(snap));
    // An empty book is one step.
    let empty = Snapshot {
        seq: 12,
        bytes: Vec::new(),
    };
    assert_eq!(parts.save_snapshot_part(&empty, 0).await.unwrap(), 0);
    assert_eq!(parts.load_snapshot().await.unwrap(), Some(empty));
}

#[tokio::test]
async fn retention_keeps_everything_by_default() {
    let dir = tmp();
    let mut j = FileJournal::open(dir.path(), small()).await.unwrap();
    for i in 0..20 {
        j.append(&bid_batch(1 + i * 3, 3)).await.unwrap();
    }
    let before = segment_files(dir.path());
    for seq in [30, 60] {
        j.save_snapshot(&Snapshot { seq, bytes: vec![] })
            .await
            .unwrap();
    }
    assert_eq!(segment_files(dir.path()), before);
    assert_eq!(read_all(&mut j).await.len(), 20);
}

#[tokio::test]
async fn retention_removes_segments_covered_by_every_kept_snapshot() {
    let dir = tmp();
    let config = FileJournalConfig {
        retain_segments_behind_snapshot: Some(1),
        ..small()
    };
    let mut j = FileJournal::open(dir.path(), config.clone()).await.unwrap();
    let mut written = Vec::new();
    for i in 0..40 {
        let b = bid_batch(1 + i * 3, 3);
        j.append(&b).await.unwrap();
        written.push(b);
    }
    let all = segment_files(dir.path());
    let firsts: Vec<u64> = list_seqs(dir.path(), "journal-", ".seg").unwrap();

    j.save_snapshot(&Snapshot {
        seq: 60,
        bytes: vec![],
    })
    .await
    .unwrap();
    j.save_snapshot(&Snapshot {
        seq: 90,
        bytes: vec![],
    })
    .await
    .unwrap();
    // Covered by both snapshots: segments that end at or before seq 60.
    let covered = firsts[1..].iter().take_while(|&&f| f <= 61).count();
    assert!(covered >= 2, "test needs several covered segments");
    let left = segment_files(dir.path());
    assert_eq!(left, all[covered - 1..], "keeps the newest covered segment");

    // The log from the older snapshot on is complete; before it, the error says why.
    let from_60 = j.read_after(60, usize::MAX).await.unwrap();
    let expected: Vec<Batch> = written
        .iter()
        .filter(|b| b.last_seq() > 60)
        .cloned()
        .collect();
    assert_eq!(from_60, expected);
    assert!(matches!(
        j.read_after(0, 10).await,
        Err(StoreError::Corrupt(_))
    ));

    drop(j);
    let mut j = FileJournal::open(dir.path(), config).await.unwrap();
    assert_eq!(j.last_seq(), 120);
    assert_eq!(j.read_after(60, usize::MAX).await.unwrap(), expected);
    j.append(&bid_batch(121, 1)).await.unwrap();
}

#[tokio::test]
async fn interval_policy_round_trip() {
    let dir = tmp();
    let config = FileJournalConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(5)),
        ..small()
    };
    let mut j = FileJournal::open(dir.path(), config.clone()).await.unwrap();
    assert!(j.describe().contains("interval"), "{}", j.describe());
    let mut written = Vec::new();
    for i in 0..30 {
        let b = bid_batch(1 + i * 2, 2);
        j.append(&b).await.unwrap();
        written.push(b);
        if i == 10 {
            // Let the background sync fire between appends.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    j.save_snapshot(&Snapshot {
        seq: 60,
        bytes: vec![9],
    })
    .await
    .unwrap();
    j.close().await.unwrap();
    let mut j = FileJournal::open(dir.path(), config).await.unwrap();
    assert_eq!(read_all(&mut j).await, written);
}

#[tokio::test]
async fn bad_config_is_refused() {
    let config = FileJournalConfig {
        fsync: FsyncPolicy::Interval(Duration::ZERO),
        segment_bytes: 0,
        retain_segments_behind_snapshot: None,
    };
    match FileJournal::open(tmp().path(), config).await {
        Err(StoreError::Misconfigured(msg)) => {
            assert!(
                msg.contains("segment_bytes") && msg.contains("interval"),
                "{msg}"
            )
        }
        other => panic!("expected Misconfigured, got {other:?}"),
    }
}

#[test]
fn journal_futures_are_send() {
    // The engine may drive the journal from a spawned task.
    fn is_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tmp();
    let mut j = rt
        .block_on(FileJournal::open(dir.path(), FileJournalConfig::default()))
        .unwrap();
    let b = bid_batch(1, 1);
    is_send(&j.append(&b));
    is_send(&j.read_after(0, 1));
    is_send(&j.load_snapshot());
}

// Found by the fuzz harness (`fuzz/`, target file-journal): recovery panicked on both.

#[tokio::test]
async fn a_segment_named_for_seq_0_is_corrupt_not_a_panic() {
    // Empty (recovery computed the last seq as 0 - 1), and holding a batch at seq 0
    // (which replay would have skipped in silence).
    for bytes in [Vec::new(), frame_of(&bid_batch(0, 1))] {
        let dir = write_segment(&bytes, &segment_name(0));
        match FileJournal::open(dir.path(), FileJournalConfig::default()).await {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains(&segment_name(0)) && m.contains("seq 0"), "{m}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(
            FileLog::open(dir.path()),
            Err(StoreError::Corrupt(_))
        ));
    }
}

#[tokio::test]
async fn a_frame_at_the_largest_seq_is_corrupt_not_a_panic() {
    let mut batch = bid_batch(1, 1);
    batch.entries[0].seq = u64::MAX;
    let bytes = frame_of(&batch);
    let dir = write_segment(&bytes, &segment_name(u64::MAX));
    let want = format!("{} at byte 0", segment_name(u64::MAX));
    match FileJournal::open(dir.path(), FileJournalConfig::default()).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(&want), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        FileLog::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}
