//! The fuzz targets: each decoder that reads bytes from outside, called the way gavel
//! calls it, with its seeds, its frame limit and, where a checksum would stop every
//! mutation at the door, a fix-up that makes the mutated bytes pass it.
//!
//! A target reports whether the input got all the way through (accepted) or was refused
//! with an error; both are fine. A panic, an input that takes too long, or one that makes
//! the decoder hold too much memory is a failure (see `campaign`).

use crate::mutate;
use crate::rng::Rng;
use crate::seeds::{Golden, BODIES, QUERIES};
use futures_util::FutureExt;
use gavel::api::fuzzing::{check_body, check_query, BODY_ROUTES, QUERY_ROUTES};
use gavel::api::validate::{validate_listing, ListingBounds};
use gavel::engine::{market_from_snapshot, replay};
use gavel::gateway::codec::{decode, Format};
use gavel::market::{Market, Rules};
use gavel::store::file::{decode_snapshot_file, recover_for_fuzzing};
use gavel::store::redis::decode_entry;
use gavel::store::{Batch, JournalRead, StoreError};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The WebSocket frame limit (`gateway.max_message_bytes`'s default): no frame larger
/// reaches a decoder. The campaign makes inputs of at most this size for every target.
pub const MAX_FRAME: usize = 65_536;

/// The names of every target, in the order `--target all` runs them.
pub const NAMES: &[&str] = &[
    "ws-json",
    "ws-msgpack",
    "http-listing",
    "http-body",
    "http-query",
    "file-journal",
    "snapshot-file",
    "snapshot-redis",
    "redis-journal",
];

/// What a decoder made of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Decoded (and, for the journals, recovered) all the way.
    Accepted,
    /// Refused with an error.
    Refused,
}

impl<T, E> From<Result<T, E>> for Verdict {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(_) => Self::Accepted,
            Err(_) => Self::Refused,
        }
    }
}

type Run = Box<dyn FnMut(&[u8]) -> Verdict>;

/// One target: its seeds, how to generate and fix up inputs, and how to run one.
pub struct Target {
    /// Its name on the command line and under `fuzz/crashes/`.
    pub name: &'static str,
    /// The inputs mutations start from.
    pub seeds: Vec<Vec<u8>>,
    /// Structure-aware generation from nothing, where it is cheap.
    pub generate: Option<fn(&mut Rng) -> Vec<u8>>,
    /// Makes a mutated input pass a checksum or an id check, so the mutation reaches the
    /// decoder behind it (applied to most inputs, not all: the check itself is fuzzed too).
    pub fix_up: Option<fn(&mut Vec<u8>)>,
    run: Run,
}

impl Target {
    /// A target made of parts (the harness's own tests build failing ones).
    pub fn custom(name: &'static str, seeds: Vec<Vec<u8>>, run: Run) -> Self {
        Self {
            name,
            seeds,
            generate: None,
            fix_up: None,
            run,
        }
    }

    /// Runs one input.
    pub fn run(&mut self, input: &[u8]) -> Verdict {
        (self.run)(input)
    }

    /// The target named `name`, seeded from `golden`.
    pub fn named(name: &str, golden: &Golden) -> Option<Self> {
        let target = match name {
            "ws-json" => Self {
                name: "ws-json",
                seeds: golden.ws_json(),
                generate: Some(mutate::ws_json),
                fix_up: None,
                run: Box::new(|b: &[u8]| decode(Format::Json, b).into()),
            },
            "ws-msgpack" => Self {
                name: "ws-msgpack",
                seeds: golden.ws_msgpack(),
                generate: Some(mutate::ws_msgpack),
                fix_up: None,
                run: Box::new(|b: &[u8]| decode(Format::MsgPack, b).into()),
            },
            "http-listing" => Self::custom("http-listing", golden.listings(), {
                // The server's bounds with the default configuration, at a fixed time.
                let bounds = ListingBounds {
                    current_year: 2026,
                    min_duration_s: 60,
                    max_duration_s: 604_800,
                    min_preview_s: 600,
                    max_preview_s: 172_800,
                    default_preview_s: 0,
                    now_ms: 1_760_000_000_000,
                };
                Box::new(move |b: &[u8]| validate_listing(b, &bounds).into())
            }),
            "http-body" => Self::custom(
                "http-body",
                routed_seeds(BODIES, BODY_ROUTES),
                Box::new(http_body),
            ),
            "http-query" => Self::custom(
                "http-query",
                routed_seeds(QUERIES, QUERY_ROUTES),
                Box::new(http_query),
            ),
            "file-journal" => Self {
                name: "file-journal",
                seeds: file_journal_seeds(golden),
                generate: None,
                fix_up: Some(fix_file_journal),
                run: {
                    let dir = Scratch::new("file-journal");
                    Box::new(move |b: &[u8]| file_journal(&dir, b))
                },
            },
            "snapshot-file" => Self {
                name: "snapshot-file",
                seeds: golden
                    .snapshots()
                    .iter()
                    .map(|m| snapshot_file(m))
                    .collect(),
                generate: None,
                fix_up: Some(fix_snapshot_file),
                run: Box::new(|b: &[u8]| {
                    let seq = b.get(8..16).map_or(0, le_u64);
                    decode_snapshot_file(b, seq)
                        .map_err(StoreError::Corrupt)
                        .and_then(|s| market_from_snapshot(&s))
                        .into()
                }),
            },
            "snapshot-redis" => Self::custom(
                "snapshot-redis",
                golden
                    .snapshots()
                    .iter()
                    .map(|m| [&seq_of(m).to_le_bytes()[..], m].concat())
                    .collect(),
                Box::new(|b: &[u8]| {
                    // The hash's `seq` field and its `bytes` (or its parts, joined).
                    let (seq, bytes) = b.split_at(b.len().min(8));
                    let snapshot = gavel::store::Snapshot {
                        seq: le_u64(seq),
                        bytes: bytes.to_vec(),
                    };
                    market_from_snapshot(&snapshot).into()
                }),
            ),
            "redis-journal" => Self {
                name: "redis-journal",
                seeds: golden
                    .batches()
                    .into_iter()
                    .map(|b| {
                        let mut input = [&[0u8][..], &b[..]].concat();
                        fix_redis_id(&mut input);
                        input
                    })
                    .collect(),
                generate: None,
                fix_up: Some(fix_redis_id),
                run: {
                    // The sequel's batch replays onto the book it was written after.
                    let bases = vec![
                        Market::new(Rules::first()),
                        market_of(&golden.blob("snapshot-v1.msgpack.hex")),
                    ];
                    Box::new(move |b: &[u8]| redis_journal(&bases, b))
                },
            },
            _ => return None,
        };
        Some(target)
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    u64::from_le_bytes(a)
}

fn market_of(bytes: &[u8]) -> Market {
    rmp_serde::from_slice(bytes).expect("a golden snapshot decodes")
}

fn seq_of(snapshot: &[u8]) -> u64 {
    market_of(snapshot).last_seq()
}

// ---------------------------------------------------------------------------------------
// HTTP

/// `[route index][rest]`: the first byte chooses the route, by its index in `routes`.
fn routed_seeds(examples: &[(&str, &str)], routes: &[&str]) -> Vec<Vec<u8>> {
    examples
        .iter()
        .map(|(route, rest)| {
            let i = routes.iter().position(|r| r == route).expect("a route") as u8;
            [&[i][..], rest.as_bytes()].concat()
        })
        .collect()
}

fn http_body(b: &[u8]) -> Verdict {
    let Some((&i, body)) = b.split_first() else {
        return Verdict::Refused;
    };
    check_body(BODY_ROUTES[usize::from(i) % BODY_ROUTES.len()], body).into()
}

fn http_query(b: &[u8]) -> Verdict {
    let Some((&i, query)) = b.split_first() else {
        return Verdict::Refused;
    };
    // A request line is bytes, but a URI is text: bytes that are not UTF-8 never reach
    // the extractor (the HTTP layer refuses the request).
    let Ok(query) = std::str::from_utf8(query) else {
        return Verdict::Refused;
    };
    check_query(QUERY_ROUTES[usize::from(i) % QUERY_ROUTES.len()], query).into()
}

// ---------------------------------------------------------------------------------------
// The file journal

/// A frame as the file journal writes it: `u32 LE length | u32 LE CRC32C | payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// A snapshot file: one frame whose payload is `u64 LE seq | the market's bytes`.
fn snapshot_file(market: &[u8]) -> Vec<u8> {
    frame(&[&seq_of(market).to_le_bytes()[..], market].concat())
}

/// Recomputes the header of the frame at `at` (length: what follows, CRC: of that).
fn fix_frame(b: &mut [u8], at: usize) {
    let Some(payload) = b.get(at + 8..) else {
        return;
    };
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c(payload).to_le_bytes();
    b[at..at + 4].copy_from_slice(&len);
    b[at + 4..at + 8].copy_from_slice(&crc);
}

/// A snapshot file's header made right for its payload.
// Every fix-up takes the `Vec` (`Target::fix_up`): the Redis one changes the length.
#[allow(clippy::ptr_arg)]
fn fix_snapshot_file(b: &mut Vec<u8>) {
    fix_frame(b, 0);
}

/// `[u64 LE first seq of the segment][u32 LE segment length][segment][snapshot file]`:
/// the segment is written as `journal-{first seq}.seg`, the snapshot (when there is one)
/// as `snapshot-{the seq it holds}.bin`.
fn file_journal_seeds(golden: &Golden) -> Vec<Vec<u8>> {
    let batches = golden.batches();
    let v1 = frame(&batches[0]);
    let v2 = frame(&batches[1]);
    let sequel_base = golden.blob("snapshot-v1.msgpack.hex");
    let layout = |first: u64, segment: &[u8], snapshot: &[u8]| {
        [
            &first.to_le_bytes()[..],
            &(segment.len() as u32).to_le_bytes(),
            segment,
            snapshot,
        ]
        .concat()
    };
    vec![
        // The story from seq 1.
        layout(1, &v1, &[]),
        // The sequel's segment after the snapshot of the book it starts from.
        layout(seq_of(&sequel_base) + 1, &v2, &snapshot_file(&sequel_base)),
        // The story then a torn copy of its frame (a crash mid-write).
        layout(1, &[&v1[..], &v1[..v1.len() / 2]].concat(), &[]),
    ]
}

/// The pieces of a file-journal input: first seq, segment, snapshot file.
fn file_journal_parts(b: &[u8]) -> (u64, &[u8], &[u8]) {
    let first = le_u64(&b[..b.len().min(8)]);
    let rest = b.get(8..).unwrap_or_default();
    let seg_len = rest.get(..4).map_or(0, |l| le_u64(l) as usize);
    let rest = rest.get(4..).unwrap_or_default();
    let (segment, snapshot) = rest.split_at(seg_len.min(rest.len()));
    (first, segment, snapshot)
}

/// Recomputes every frame's CRC in the segment (as far as the lengths walk) and the
/// snapshot file's header.
#[allow(clippy::ptr_arg)]
fn fix_file_journal(b: &mut Vec<u8>) {
    let (_, segment, snapshot) = file_journal_parts(b);
    let (seg_at, seg_len, snap_len) = (12, segment.len(), snapshot.len());
    let mut at = 0;
    while at + 8 <= seg_len {
        let base = seg_at + at;
        let len = le_u64(&b[base..base + 4]) as usize;
        if len == 0 || at + 8 + len > seg_len {
            break;
        }
        let crc = crc32c(&b[base + 8..base + 8 + len]).to_le_bytes();
        b[base + 4..base + 8].copy_from_slice(&crc);
        at += 8 + len;
    }
    if snap_len >= 8 {
        fix_frame(b, seg_at + seg_len);
    }
}

/// A directory of its own for one target's files, removed when the target is dropped.
/// On tmpfs where there is one: recovery fsyncs, and a tmpfs fsync costs nothing.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("gavel-fuzz-{}-{what}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }

    /// Empties the directory (whatever recovery left in it).
    fn clear(&self) {
        if let Ok(entries) = fs::read_dir(&self.0) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes the segment (and snapshot) and recovers as the engine does at startup: the
/// file journal's own recovery (lock, scan, cut a torn tail, load the newest readable
/// snapshot), the snapshot's market, and the replay of the log onto it.
fn file_journal(dir: &Scratch, b: &[u8]) -> Verdict {
    let (first, segment, snapshot) = file_journal_parts(b);
    dir.clear();
    let seg = dir.0.join(format!("journal-{first:020}.seg"));
    fs::write(&seg, segment).expect("the scratch directory takes a segment");
    if !snapshot.is_empty() {
        let seq = snapshot.get(8..16).map_or(0, le_u64);
        let path = dir.0.join(format!("snapshot-{seq:020}.bin"));
        fs::write(path, snapshot).expect("the scratch directory takes a snapshot");
    }
    let recovered = recover_for_fuzzing(&dir.0).and_then(|(mut log, snapshot)| {
        let market = match snapshot {
            Some(s) => market_from_snapshot(&s)?,
            None => Market::new(Rules::first()),
        };
        replay(&mut log, market, &mut ())
            .now_or_never()
            .expect("a file log's reads complete at once")
    });
    recovered.into()
}

// ---------------------------------------------------------------------------------------
// The Redis journal

/// `[id length][entry id][the entry's field b]`. The id is the stream entry's
/// (`{first seq}-{last seq}`).
fn redis_parts(b: &[u8]) -> (&[u8], &[u8]) {
    let Some((&n, rest)) = b.split_first() else {
        return (&[], &[]);
    };
    rest.split_at(usize::from(n).min(rest.len()))
}

/// Writes the id the entry's batch implies, when it decodes (XADD gives a batch that id).
fn fix_redis_id(b: &mut Vec<u8>) {
    let (_, bytes) = redis_parts(b);
    let Ok(batch) = rmp_serde::from_slice::<Batch>(bytes) else {
        return;
    };
    let id = format!("{}-{}", batch.first_seq(), batch.last_seq());
    let bytes = bytes.to_vec();
    b.clear();
    b.push(id.len() as u8);
    b.extend_from_slice(id.as_bytes());
    b.extend_from_slice(&bytes);
}

/// The batches of a decoded log page, read once: a journal whose read completes at once.
struct Page(Option<Vec<Batch>>);

impl JournalRead for Page {
    fn describe(&self) -> String {
        "a Redis log page".into()
    }

    async fn read_after(&mut self, _after: u64, _max: usize) -> Result<Vec<Batch>, StoreError> {
        Ok(self.0.take().unwrap_or_default())
    }
}

/// Decodes the entry as recovery does and replays it onto the book it follows.
fn redis_journal(bases: &[Market], b: &[u8]) -> Verdict {
    let (id, bytes) = redis_parts(b);
    let entry = redis::streams::StreamId {
        id: String::from_utf8_lossy(id).into_owned(),
        map: HashMap::from([("b".to_owned(), redis::Value::BulkString(bytes.to_vec()))]),
    };
    let recovered = decode_entry("gavel:log", &entry).and_then(|batch| {
        let base = bases
            .iter()
            .find(|m| m.last_seq().checked_add(1) == Some(batch.first_seq()))
            .unwrap_or(&bases[0]);
        replay(&mut Page(Some(vec![batch])), base.clone(), &mut ())
            .now_or_never()
            .expect("a page's read completes at once")
    });
    recovered.into()
}
