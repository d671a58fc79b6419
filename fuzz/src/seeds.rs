//! The seeds of every target, from the golden fixtures in `tests/golden/` (the wire
//! contract's messages, the journal batches and snapshots of the golden story and its
//! sequel) and from docs/protocol.md's request examples where no fixture holds requests
//! (HTTP bodies and query strings).

use std::fs;
use std::path::{Path, PathBuf};

/// The golden fixtures' directory in this repository.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

/// The fixtures a campaign is seeded from, read once.
pub struct Golden {
    dir: PathBuf,
}

impl Golden {
    /// The fixtures in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn text(&self, name: &str) -> String {
        let path = self.dir.join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A `.hex` blob fixture, decoded (whitespace between the digits ignored).
    pub fn blob(&self, name: &str) -> Vec<u8> {
        let digits: String = self
            .text(name)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        hex::decode(digits).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The frame column (the second, tab-separated) of a table fixture's rows whose name
    /// starts with `prefix`.
    fn column(&self, name: &str, prefix: &str) -> Vec<String> {
        self.text(name)
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split('\t').nth(1))
            .map(str::to_owned)
            .collect()
    }

    /// Every WebSocket request in JSON: each type, then the malformed ones.
    pub fn ws_json(&self) -> Vec<Vec<u8>> {
        let mut seeds = self.column("ws-client.json.txt", "");
        seeds.extend(self.column("ws-client-malformed.txt", "json/"));
        seeds.into_iter().map(String::into_bytes).collect()
    }

    /// Every WebSocket request in MessagePack: each type, then the malformed ones.
    pub fn ws_msgpack(&self) -> Vec<Vec<u8>> {
        let mut seeds = self.column("ws-client.msgpack.hex", "");
        seeds.extend(self.column("ws-client-malformed.txt", "msgpack/"));
        seeds
            .iter()
            .map(|h| hex::decode(h).unwrap_or_else(|e| panic!("{h}: {e}")))
            .collect()
    }

    /// Listing bodies: docs/protocol.md's example, and the vehicle and inspection of every
    /// auction view in `http-auction.json.txt` with prices around them.
    pub fn listings(&self) -> Vec<Vec<u8>> {
        let mut seeds = vec![LISTING.as_bytes().to_vec()];
        for view in self.column("http-auction.json.txt", "") {
            // The view's own fields (vehicle, inspection, buy_now, starts_at) are a
            // listing's; the rest are extra fields a listing body ignores.
            let body = view.replacen('{', r#"{"start_price":100000,"reserve":200000,"#, 1);
            seeds.push(body.into_bytes());
        }
        seeds
    }

    /// The journal batches: the story's (every command of the first rules version) and
    /// the sequel's (those of version 2, `SetDealerLinks` and `Alliance::Dispose` among
    /// them), as `rmp_serde::to_vec_named(&Batch)`. Between them they hold every journaled
    /// command: `tests/golden.rs` checks that against its `EVERY_COMMAND`.
    pub fn batches(&self) -> Vec<Vec<u8>> {
        vec![
            self.blob("journal-batch.msgpack.hex"),
            self.blob("journal-batch-v2.msgpack.hex"),
        ]
    }

    /// The snapshots (`rmp_serde::encode::write(&Market)`): the story's book, the book
    /// the sequel starts from, and the book after the sequel.
    pub fn snapshots(&self) -> Vec<Vec<u8>> {
        vec![
            self.blob("snapshot.msgpack.hex"),
            self.blob("snapshot-v1.msgpack.hex"),
            self.blob("snapshot-v2.msgpack.hex"),
        ]
    }
}

/// docs/protocol.md's listing example.
const LISTING: &str = r#"{
  "vehicle": {"vin": "LFV2A21K0M3123456", "make": "FAW-Volkswagen", "model": "Sagitar",
              "year": 2021, "mileage_km": 48500, "city": "Changchun"},
  "inspection": {"structural_damage": false, "fire": false, "flood": false,
                 "odometer_tampered": false, "title_transferable": true, "grade": 4,
                 "notes": "Front bumper resprayed; tyres 60%."},
  "start_price": 5000000,
  "reserve": 6000000,
  "buy_now": 9000000,
  "starts_at": 1760000000000,
  "duration_s": 1200
}"#;

/// A body for each route of `gavel::api::fuzzing::BODY_ROUTES`, in that order, as
/// docs/protocol.md describes them.
pub const BODIES: &[(&str, &str)] = &[
    ("sellers", r#"{"name": "Wang Lei"}"#),
    ("service-tokens", r#"{"name": "consumer site"}"#),
    (
        "dealers",
        r#"{"name": "Beijing Auto Trade", "deposit": 5000000, "linked_sellers": ["S3", "S8"]}"#,
    ),
    ("dealer-links", r#"{"linked_sellers": ["S3", "S8"]}"#),
    ("dealer-deposit", r#"{"deposit": 5000000}"#),
    (
        "dealer-status",
        r#"{"status": "suspended", "reason": "unpaid invoice"}"#,
    ),
    ("decision", r#"{"accept": true}"#),
    ("retail", r#"{"consumer_ref": "c-1001", "price": 6800000}"#),
    (
        "return",
        r#"{"consumer_ref": "c-1001", "reason": "not_as_described", "details": "flood marks under the carpet", "findings": ["flood", "fire"]}"#,
    ),
    ("dispose", r#"{"channel": "export", "note": "sold abroad"}"#),
    (
        "complaints",
        r#"{"dealer": "D3", "inventory": "I7", "consumer_ref": "c-1001", "text": "the odometer was rolled back"}"#,
    ),
    ("resolve", r#"{"resolution": "refunded the difference"}"#),
    (
        "ratings",
        r#"{"inventory": "I7", "consumer_ref": "c-1001", "condition": 4, "service": 5}"#,
    ),
];

/// Query strings for each route of `gavel::api::fuzzing::QUERY_ROUTES`.
pub const QUERIES: &[(&str, &str)] = &[
    ("auctions", "status=live"),
    ("auctions", "seller=me&limit=10&before=A17"),
    ("inventory", "certified=true&dealer=D3"),
    (
        "complaints",
        "state=due_soon&dealer=D3&limit=5&after=C2&consumer_ref=c-1001",
    ),
    ("dealers", "limit=100&after=D3"),
    ("catalogue", "limit=1&after=I7"),
];
