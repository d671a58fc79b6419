//! The mutator: stacked byte-level mutations of a seed (bit flips, byte sets, inserts,
//! deletes, duplicated runs, splices with another seed, interesting integers, truncation,
//! dictionary tokens), and cheap structure-aware generation of JSON and MessagePack maps.
//!
//! Deterministic: everything it does comes from the [`Rng`] it is given. It has no
//! coverage feedback (the stable toolchain has no sanitizer coverage), so its depth comes
//! from the seeds (the golden messages), from dictionaries taken from them, and from the
//! targets' fix-ups (a journal frame's CRC recomputed after its payload was mutated).

use crate::rng::Rng;

/// Integers at the edges of the widths decoders read: written in 1, 2, 4 or 8 bytes, little-
/// or big-endian (MessagePack is big-endian, the journal's frame header little-endian).
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x10,
    0x1f,
    0x20,
    0x40,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1_000_000_000_000,
    1_000_000_000_001,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

/// Tokens of JSON and MessagePack that shape a decoder's path: structure, escapes, edge
/// numbers, and MessagePack markers with huge lengths after them.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"-0",
    b"0.0",
    b"1e999",
    b"-1e-999",
    b"1.5",
    b"-1",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"1000000000000",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\\\"",
    b"\\\\",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
    b"\x7f",
    b"%",
    b"%00",
    b"%ff",
    b"%zz",
    b"&",
    b"=",
    b"+",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":",
    b"\xc0",
    b"\xc1",
    b"\xc2",
    b"\xc3",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"\xcb\x43\xf0\x00\x00\x00\x00\x00\x00",
    b"\xdc\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xde\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xd9\xff",
    b"\xda\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc4\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xc7\xff\x01",
    b"\xc9\xff\xff\xff\xff\x01",
    b"\xd4\x01\x00",
    b"\xd8\x01",
    b"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91",
    b"\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81\x81",
    b"\xa0",
    b"\xbf",
    b"\x90",
    b"\x80",
];

/// Strings found in the seeds (JSON strings, MessagePack strings): field names, command
/// names, ids, which random bytes would almost never spell.
pub fn dictionary(seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut words: Vec<Vec<u8>> = TOKENS.iter().map(|t| t.to_vec()).collect();
    for seed in seeds {
        // JSON: "…" runs without escapes, kept with their quotes.
        let mut i = 0;
        while let Some(start) = seed[i..].iter().position(|&b| b == b'"').map(|p| p + i) {
            let Some(len) = seed[start + 1..].iter().position(|&b| b == b'"') else {
                break;
            };
            if (1..=40).contains(&len) {
                words.push(seed[start..start + len + 2].to_vec());
            }
            i = start + len + 2;
        }
        // MessagePack: a fixstr marker followed by that many printable ASCII bytes.
        for (at, &b) in seed.iter().enumerate() {
            if (0xa1..=0xbf).contains(&b) {
                let len = usize::from(b - 0xa0);
                if let Some(s) = seed.get(at + 1..at + 1 + len) {
                    if s.iter().all(|c| c.is_ascii_graphic()) {
                        words.push(seed[at..at + 1 + len].to_vec());
                    }
                }
            }
        }
    }
    words.sort();
    words.dedup();
    words
}

/// Mutates inputs, with the dictionary of one target.
pub struct Mutator {
    dict: Vec<Vec<u8>>,
    /// The largest input it makes (the target's frame limit).
    max_len: usize,
}

impl Mutator {
    /// A mutator with `dict`, making inputs of at most `max_len` bytes.
    pub fn new(dict: Vec<Vec<u8>>, max_len: usize) -> Self {
        Self { dict, max_len }
    }

    /// Applies 1 to 16 stacked mutations to `data` (a copy of one of `seeds`).
    pub fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let rounds = 1 << rng.below(5);
        for _ in 0..rounds.min(16) {
            self.once(rng, data, seeds);
        }
        data.truncate(self.max_len);
    }

    fn once(&self, rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = data.len();
        match rng.below(12) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next_u64() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let most = if rng.one_in(8) { 256 } else { 8 };
                let n = 1 + rng.below(most);
                let fill = rng.next_u64() as u8;
                let random = rng.one_in(2);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| if random { rng.next_u64() as u8 } else { fill })
                    .collect();
                data.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let most = if rng.one_in(4) { 4096 } else { 16 };
                let n = 1 + rng.below((len - at).min(most));
                data.drain(at..at + n);
            }
            4 if len > 0 => {
                // A run of the input repeated elsewhere (a field twice, a frame twice).
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(1024));
                let run = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, run);
            }
            5 if !seeds.is_empty() => {
                // Splice: our head, another seed's tail.
                let other = rng.pick(seeds);
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 => {
                let v = *rng.pick(INTERESTING);
                let v = if rng.one_in(4) { v.wrapping_neg() } else { v };
                let width = 1 << rng.below(4);
                let bytes = if rng.one_in(2) {
                    v.to_le_bytes()[..width].to_vec()
                } else {
                    v.to_be_bytes()[8 - width..].to_vec()
                };
                overwrite_or_insert(rng, data, &bytes);
            }
            7 if len > 0 => {
                data.truncate(rng.below(len));
            }
            8 | 9 if !self.dict.is_empty() => {
                let word = rng.pick(&self.dict).clone();
                overwrite_or_insert(rng, data, &word);
            }
            10 => {
                // An ASCII number where one may be read as text (JSON, query strings).
                let v = *rng.pick(INTERESTING);
                let text = if rng.one_in(3) {
                    format!("-{v}")
                } else {
                    v.to_string()
                };
                overwrite_or_insert(rng, data, text.as_bytes());
            }
            _ if len > 1 => {
                // Swap two bytes.
                let (a, b) = (rng.below(len), rng.below(len));
                data.swap(a, b);
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
}

fn overwrite_or_insert(rng: &mut Rng, data: &mut Vec<u8>, bytes: &[u8]) {
    let at = rng.below(data.len() + 1);
    if rng.one_in(2) {
        let end = (at + bytes.len()).min(data.len());
        data.splice(at..end, bytes.iter().copied());
    } else {
        data.splice(at..at, bytes.iter().copied());
    }
}

/// Values a generated message's fields take: every type, and the edges of each.
fn json_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth == 0 { 10 } else { 12 }) {
        0 => "null".into(),
        1 => if rng.one_in(2) { "true" } else { "false" }.into(),
        2 => rng.pick(INTERESTING).to_string(),
        3 => format!("-{}", rng.pick(INTERESTING)),
        4 => (*rng.pick(&["1.5", "1e3", "100.0", "-0.0", "1e400", "NaN", "0.1e-999"])).into(),
        5 => format!("\"{}\"", "x".repeat(*rng.pick(&[0, 1, 63, 64, 65, 300]))),
        6 => (*rng.pick(&[
            "\"A17\"",
            "\"A0\"",
            "\"A18446744073709551616\"",
            "\"a17\"",
            "\"\"",
        ]))
        .into(),
        7 => (*rng.pick(&[
            "\"ping\"",
            "\"bid\"",
            "\"subscribe\"",
            "\"unsubscribe\"",
            "\"bet\"",
        ]))
        .into(),
        8 => format!("\"{}\"", "\\u0000\\ud800é速".repeat(1 + rng.below(4))),
        9 => format!("\"{}\"", rng.next_u64()),
        10 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| json_value(rng, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let n = rng.below(3);
            let items: Vec<String> = (0..n)
                .map(|_| format!("\"k\":{}", json_value(rng, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// The fields a WebSocket request may carry, and some it may not.
const WS_KEYS: &[&str] = &[
    "type", "req", "auction", "amount", "max", "bid_id", "extra", "",
];

/// A generated WebSocket request in JSON: a map of known and unknown keys (some twice),
/// each with a value of any type, nested up to 20 levels.
pub fn ws_json(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(9);
    let fields: Vec<String> = (0..n)
        .map(|_| {
            let depth = if rng.one_in(16) { 20 } else { 2 };
            format!("\"{}\":{}", rng.pick(WS_KEYS), json_value(rng, depth))
        })
        .collect();
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// A generated WebSocket request in MessagePack: a map (its header's count right, or not)
/// of known and unknown keys, each with a value of any MessagePack type.
pub fn ws_msgpack(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(9);
    let mut out = Vec::new();
    if rng.one_in(8) {
        out.push(0xdf);
        out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    } else {
        out.push(0x80 | n as u8);
    }
    for _ in 0..n {
        if rng.one_in(8) {
            msgpack_value(rng, &mut out, 2);
        } else {
            msgpack_str(&mut out, rng.pick(WS_KEYS).as_bytes());
        }
        let depth = if rng.one_in(16) { 20 } else { 2 };
        msgpack_value(rng, &mut out, depth);
    }
    out
}

fn msgpack_str(out: &mut Vec<u8>, s: &[u8]) {
    match s.len() {
        0..=31 => out.push(0xa0 | s.len() as u8),
        32..=255 => out.extend_from_slice(&[0xd9, s.len() as u8]),
        _ => {
            out.push(0xda);
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(s);
}

fn msgpack_value(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    match rng.below(if depth == 0 { 10 } else { 13 }) {
        0 => out.push(0xc0),
        1 => out.push(0xc2 | rng.below(2) as u8),
        2 => {
            out.push(0xcf);
            out.extend_from_slice(&rng.pick(INTERESTING).to_be_bytes());
        }
        3 => {
            out.push(0xd3);
            out.extend_from_slice(&rng.pick(INTERESTING).wrapping_neg().to_be_bytes());
        }
        4 => {
            out.push(0xcb);
            let f = *rng.pick(&[
                1.5f64,
                100.0,
                -0.0,
                f64::NAN,
                f64::INFINITY,
                1.8446744073709552e19,
            ]);
            out.extend_from_slice(&f.to_be_bytes());
        }
        5 => out.push(rng.below(0x80) as u8),
        6 => out.push(0xe0 | rng.below(0x20) as u8),
        7 => {
            let s = rng.pick(&[
                "A17",
                "ping",
                "bid",
                "subscribe",
                "unsubscribe",
                "d3-0001",
                "",
            ]);
            msgpack_str(out, s.as_bytes());
        }
        8 => msgpack_str(out, &vec![b'r'; *rng.pick(&[63, 64, 65, 300])]),
        9 => {
            // Binary, an extension, or invalid UTF-8 in a string.
            match rng.below(3) {
                0 => out.extend_from_slice(&[0xc4, 2, 0, 1]),
                1 => out.extend_from_slice(&[0xd4, 1, 0]),
                _ => out.extend_from_slice(&[0xa2, 0xc3, 0x28]),
            }
        }
        10 => {
            let n = rng.below(4);
            out.push(0x90 | n as u8);
            for _ in 0..n {
                msgpack_value(rng, out, depth - 1);
            }
        }
        11 => {
            let n = rng.below(3);
            out.push(0x80 | n as u8);
            for _ in 0..n {
                msgpack_value(rng, out, depth - 1);
                msgpack_value(rng, out, depth - 1);
            }
        }
        _ => {
            // A container whose header claims far more than follows.
            out.push(*rng.pick(&[0xdc, 0xdd, 0xde, 0xdf]));
            out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        }
    }
}
