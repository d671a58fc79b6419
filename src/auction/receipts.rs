//! A dealer's receipts: the first result of every `bid_id` it used, so a retried bid is
//! answered, never applied twice.
//!
//! Every bid looks its `bid_id` up here and almost every bid inserts one, and receipts are
//! kept for days (`auction.bid_id_retention_s`), so a receipt's size is most of what a
//! busy book weighs. A receipt is therefore kept compact: under a 128-bit [`Digest`] of the
//! dealer and the `bid_id` instead of the id itself (no string is kept, and none is
//! compared), with its result packed into a few integers: 56 bytes in the table, nothing
//! on the heap. Two ids share a receipt only if their digests collide, which at 128 bits
//! takes about 2^64 tries.
//!
//! The table's buckets are picked by a per-process random hash of the digest, not by the
//! digest's own bits, so that no one who knows how digests are made can aim many ids at one
//! bucket. A large map is split into [`PARTS`] parts, each shared copy on write: a
//! snapshot's copy of the book shares every dealer's receipts, and a bid made while the
//! snapshot holds them copies only the part its digest falls in, so the copying is spread
//! over the next bids instead of one burst on the engine's task that copies every receipt
//! when every dealer bids within milliseconds (`cargo bench --bench core`, line d,
//! measures it). A small map stays one part: sixteen small tables grow and probe slower
//! than one, and copying a small map whole is cheap.

use super::event::{BidOutcome, Rejection};
use crate::vocab::{DealerId, LotId};
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;

/// How many parts a large map is split into: a bid copies at most a sixteenth of it.
const PARTS: usize = 16;

/// A map splits into [`PARTS`] parts when it reaches this many receipts. Small, so that a
/// split is cheap: under even load every dealer reaches it within the same second, and
/// all of those splits run on the engine's task back to back. Split, a part doubles at
/// its own moment, not in step with every other dealer's one table.
const SPLIT_AT: usize = 128;

type Part = HashTable<Slot>;

/// What a repeated `bid_id` is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The lot the first bid named.
    pub lot: LotId,
    /// Its first result.
    pub outcome: BidOutcome,
    /// Book time of the first bid: receipts are forgotten `bid_id_retention_ms` later,
    /// once their lot can take no more bids.
    #[serde(default)]
    pub at: u64,
}

/// A `bid_id`'s identity among one dealer's receipts: SipHash-1-3 (128-bit output) of the
/// dealer's id and the `bid_id`, keyed with the dealer's receipt key. Deterministic (the
/// key comes from the journal), so a snapshot can hold digests alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest([u64; 2]);

impl Digest {
    /// The digest of `bid_id` for `dealer`, whose receipt key is `key`.
    pub fn of(key: &[u8; 16], dealer: DealerId, bid_id: &str) -> Self {
        let mut h = SipHasher13::new_with_key(key);
        // The dealer's id has a fixed length, so id and bid_id cannot run into each other.
        h.write(&dealer.0.to_le_bytes());
        h.write(bid_id.as_bytes());
        let d = h.finish128();
        Self([d.h1, d.h2])
    }
}

/// One receipt as the table holds it: the digest, then the result packed into integers
/// (see [`pack`]). Plain integers, so a slot is 56 bytes and owns nothing on the heap.
#[derive(Clone, Copy)]
struct Slot {
    digest: Digest,
    at: u64,
    /// The outcome's numbers: `price, ends_at, seq` when accepted; `min_next` or the
    /// leader's `max` (in `a`) for the rejections that carry one.
    a: u64,
    b: u64,
    c: u64,
    lot: u32,
    kind: u8,
}

// `kind`: 0 and 1 accepted (1: leading); from 2 on, a rejection, by reason.
const ACCEPTED: u8 = 0;
const ACCEPTED_LEADING: u8 = 1;
const BELOW_MINIMUM: u8 = 2;
const NOT_LIVE: u8 = 3;
const UNKNOWN_AUCTION: u8 = 4;
const NOT_ELIGIBLE: u8 = 5;
const OWN_LISTING: u8 = 6;
const EXPOSURE_LIMIT: u8 = 7;
const INVALID: u8 = 8;
const ALREADY_LEADING: u8 = 9;
const NOT_IN_GOOD_STANDING: u8 = 10;
const PREBID_LOWERED: u8 = 11;

/// `outcome` as (`kind`, `a`, `b`, `c`).
fn pack(outcome: &BidOutcome) -> (u8, u64, u64, u64) {
    match *outcome {
        BidOutcome::Accepted {
            price,
            leading,
            ends_at,
            seq,
        } => (
            if leading { ACCEPTED_LEADING } else { ACCEPTED },
            price,
            ends_at,
            seq,
        ),
        BidOutcome::Rejected(r) => match r {
            Rejection::BelowMinimum { min_next } => (BELOW_MINIMUM, min_next, 0, 0),
            Rejection::NotLive => (NOT_LIVE, 0, 0, 0),
            Rejection::UnknownAuction => (UNKNOWN_AUCTION, 0, 0, 0),
            Rejection::NotEligible => (NOT_ELIGIBLE, 0, 0, 0),
            Rejection::OwnListing => (OWN_LISTING, 0, 0, 0),
            Rejection::ExposureLimit => (EXPOSURE_LIMIT, 0, 0, 0),
            Rejection::Invalid => (INVALID, 0, 0, 0),
            Rejection::AlreadyLeading { max } => (ALREADY_LEADING, max, 0, 0),
            Rejection::NotInGoodStanding => (NOT_IN_GOOD_STANDING, 0, 0, 0),
            Rejection::PrebidLowered { max } => (PREBID_LOWERED, max, 0, 0),
        },
    }
}

impl Slot {
    fn new(digest: Digest, r: &Receipt) -> Self {
        let (kind, a, b, c) = pack(&r.outcome);
        Self {
            digest,
            at: r.at,
            a,
            b,
            c,
            lot: r.lot.0,
            kind,
        }
    }

    /// The receipt this slot holds. Every slot was made by [`Slot::new`], so its `kind`
    /// is one [`pack`] writes.
    fn receipt(&self) -> Receipt {
        let rejected = |r| BidOutcome::Rejected(r);
        let outcome = match self.kind {
            ACCEPTED | ACCEPTED_LEADING => BidOutcome::Accepted {
                price: self.a,
                leading: self.kind == ACCEPTED_LEADING,
                ends_at: self.b,
                seq: self.c,
            },
            BELOW_MINIMUM => rejected(Rejection::BelowMinimum { min_next: self.a }),
            NOT_LIVE => rejected(Rejection::NotLive),
            UNKNOWN_AUCTION => rejected(Rejection::UnknownAuction),
            NOT_ELIGIBLE => rejected(Rejection::NotEligible),
            OWN_LISTING => rejected(Rejection::OwnListing),
            EXPOSURE_LIMIT => rejected(Rejection::ExposureLimit),
            ALREADY_LEADING => rejected(Rejection::AlreadyLeading { max: self.a }),
            NOT_IN_GOOD_STANDING => rejected(Rejection::NotInGoodStanding),
            PREBID_LOWERED => rejected(Rejection::PrebidLowered { max: self.a }),
            _ => rejected(Rejection::Invalid),
        };
        Receipt {
            lot: LotId(self.lot),
            outcome,
            at: self.at,
        }
    }
}

/// A receipt as a snapshot stores it: the slot's integers, in a fixed order.
#[derive(Serialize, Deserialize)]
struct Stored(Digest, u32, u64, u8, u64, u64, u64);

impl From<&Slot> for Stored {
    fn from(s: &Slot) -> Self {
        Self(s.digest, s.lot, s.at, s.kind, s.a, s.b, s.c)
    }
}

impl TryFrom<Stored> for Slot {
    type Error = String;

    fn try_from(Stored(digest, lot, at, kind, a, b, c): Stored) -> Result<Self, String> {
        if kind > PREBID_LOWERED {
            return Err(format!("a receipt of unknown kind {kind}"));
        }
        Ok(Self {
            digest,
            at,
            a,
            b,
            c,
            lot,
            kind,
        })
    }
}

/// A dealer's receipts by [`Digest`]. Hashes of the table never reach output: the map
/// serializes as a sequence sorted by digest, so snapshot bytes do not depend on them.
#[derive(Clone, Default)]
pub struct Receipts {
    parts: Parts,
    hasher: ahash::RandomState,
    /// Receipts read from a snapshot written before digests, still under their `bid_id`s:
    /// the book turns them into digests as it loads ([`Receipts::adopt_legacy`]), since
    /// only it knows the dealer's key. Empty at every other time.
    legacy: Vec<(Arc<str>, Receipt)>,
}

/// Where a map's receipts live.
#[derive(Clone)]
enum Parts {
    /// Fewer than [`SPLIT_AT`]: one table, in place (no pointer to follow on every bid),
    /// copied whole when a clone shares it.
    One(Part),
    /// Split, each part shared on its own; a digest is in the part [`part_of`] picks.
    /// Boxed, so a dealer's map, read on each of its bids, stays as small as one table.
    Many(Box<[Arc<Part>; PARTS]>),
}

impl Default for Parts {
    fn default() -> Self {
        Self::One(Part::new())
    }
}

/// The part of a split map a hash falls in. Bits hashbrown does not use for small tables:
/// it takes a bucket from the low bits and its control byte from the top seven, so parts
/// picked by either would hold entries alike in what a table uses to tell them apart.
fn part_of(hash: u64) -> usize {
    (hash >> 32) as usize % PARTS
}

impl Receipts {
    fn hash(&self, digest: &Digest) -> u64 {
        self.hasher.hash_one(digest)
    }

    /// The receipt for `digest`, if it has one.
    pub fn get(&self, digest: &Digest) -> Option<Receipt> {
        let hash = self.hash(digest);
        let part = match &self.parts {
            Parts::One(part) => part,
            Parts::Many(parts) => &parts[part_of(hash)],
        };
        part.find(hash, |s| s.digest == *digest).map(Slot::receipt)
    }

    /// Records the first result under `digest`; replaces a receipt it already had (the
    /// book asks [`Receipts::get`] first, so it never does). In a split map, copies the
    /// part `digest` falls in if a clone still shares it, and only that part.
    pub fn insert(&mut self, digest: Digest, receipt: Receipt) {
        let hash = self.hash(&digest);
        let hasher = &self.hasher;
        let rehash = |s: &Slot| hasher.hash_one(s.digest);
        let part = match &mut self.parts {
            Parts::One(part) => part,
            Parts::Many(parts) => Arc::make_mut(&mut parts[part_of(hash)]),
        };
        let slot = Slot::new(digest, &receipt);
        match part.entry(hash, |s| s.digest == digest, rehash) {
            Entry::Occupied(mut old) => *old.get_mut() = slot,
            Entry::Vacant(free) => {
                free.insert(slot);
                if matches!(&self.parts, Parts::One(part) if part.len() == SPLIT_AT) {
                    self.split();
                }
            }
        }
    }

    /// Moves a map in one part into [`PARTS`] parts. Once per map: a split map that
    /// shrinks stays split until it is empty.
    fn split(&mut self) {
        let Parts::One(whole) = &mut self.parts else {
            return;
        };
        let whole = std::mem::take(whole);
        let each = whole.len() / PARTS;
        let mut parts: [Part; PARTS] = std::array::from_fn(|_| Part::with_capacity(each));
        let rehash = |s: &Slot| self.hasher.hash_one(s.digest);
        for slot in whole {
            let hash = rehash(&slot);
            parts[part_of(hash)].insert_unique(hash, slot, rehash);
        }
        self.parts = Parts::Many(Box::new(parts.map(Arc::new)));
    }

    /// How many receipts are kept.
    pub fn len(&self) -> usize {
        self.legacy.len()
            + match &self.parts {
                Parts::One(part) => part.len(),
                Parts::Many(parts) => parts.iter().map(|part| part.len()).sum(),
            }
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        let (one, many): (Option<&Part>, &[Arc<Part>]) = match &self.parts {
            Parts::One(part) => (Some(part), &[]),
            Parts::Many(parts) => (None, &parts[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|part| &**part))
            .flat_map(|part| part.iter())
    }

    /// Every digest and its receipt, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Digest, Receipt)> + '_ {
        self.slots().map(|s| (s.digest, s.receipt()))
    }

    /// Keeps only the receipts `keep` accepts. In a split map only a part that loses
    /// receipts is written, so one a clone shares is not copied for nothing.
    pub fn retain(&mut self, mut keep: impl FnMut(&Receipt) -> bool) {
        match &mut self.parts {
            Parts::One(part) => part.retain(|s| keep(&s.receipt())),
            Parts::Many(parts) => {
                for part in parts.iter_mut() {
                    if !part.iter().all(|s| keep(&s.receipt())) {
                        Arc::make_mut(part).retain(|s| keep(&s.receipt()));
                    }
                }
            }
        }
        if self.is_empty() {
            self.parts = Parts::default();
        }
    }

    /// Whether receipts read under their `bid_id`s wait to be adopted.
    pub fn has_legacy(&self) -> bool {
        !self.legacy.is_empty()
    }

    /// Turns receipts read under their `bid_id`s (a snapshot written before digests) into
    /// digests, with `digest` giving each id's. Does nothing for a map read in the current
    /// form.
    pub fn adopt_legacy(&mut self, digest: impl Fn(&str) -> Digest) {
        for (bid_id, receipt) in std::mem::take(&mut self.legacy) {
            self.insert(digest(&bid_id), receipt);
        }
    }

    fn sorted(&self) -> Vec<(Digest, Receipt)> {
        let mut all: Vec<_> = self.iter().collect();
        all.sort_unstable_by_key(|(d, _)| *d);
        all
    }

    fn sorted_slots(&self) -> Vec<&Slot> {
        let mut all: Vec<&Slot> = self.slots().collect();
        all.sort_unstable_by_key(|s| s.digest);
        all
    }

    /// Inserts a slot read from a snapshot, as `insert` does a receipt.
    fn insert_slot(&mut self, slot: Slot) {
        let receipt = slot.receipt();
        self.insert(slot.digest, receipt);
    }
}

impl PartialEq for Receipts {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.legacy == other.legacy
            && self.iter().all(|(d, r)| other.get(&d) == Some(r))
    }
}

impl Eq for Receipts {}

impl fmt::Debug for Receipts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

/// A sequence of packed receipts (`Stored`), sorted by digest.
impl Serialize for Receipts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.sorted_slots().into_iter().map(Stored::from))
    }
}

/// The current form (a sequence of packed receipts), or the form written before digests
/// (a map from `bid_id` to receipt), which the book then adopts.
impl<'de> Deserialize<'de> for Receipts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ReceiptsVisitor;

        impl<'de> Visitor<'de> for ReceiptsVisitor {
            type Value = Receipts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of packed receipts, or a map from bid_id to receipt")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Receipts, A::Error> {
                // No reserve from the size hint: it is the input's word, and the entries
                // spread over the parts anyway.
                let mut receipts = Receipts::default();
                let mut last: Option<Digest> = None;
                while let Some(stored) = seq.next_element::<Stored>()? {
                    let slot = Slot::try_from(stored).map_err(de::Error::custom)?;
                    if last.is_some_and(|l| l >= slot.digest) {
                        return Err(de::Error::custom("receipts out of digest order"));
                    }
                    last = Some(slot.digest);
                    receipts.insert_slot(slot);
                }
                Ok(receipts)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Receipts, A::Error> {
                let mut receipts = Receipts::default();
                while let Some((bid_id, receipt)) = map.next_entry::<Arc<str>, Receipt>()? {
                    receipts.legacy.push((bid_id, receipt));
                }
                Ok(receipts)
            }
        }

        d.deserialize_any(ReceiptsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [7; 16];

    fn digest(id: &str) -> Digest {
        Digest::of(&KEY, DealerId(1), id)
    }

    fn receipt(lot: u32, at: u64) -> Receipt {
        Receipt {
            lot: LotId(lot),
            outcome: BidOutcome::Rejected(Rejection::BelowMinimum { min_next: 100 }),
            at,
        }
    }

    fn filled(ids: &[&str]) -> Receipts {
        let mut r = Receipts::default();
        for (i, id) in ids.iter().enumerate() {
            r.insert(digest(id), receipt(1, i as u64));
        }
        r
    }

    #[test]
    fn a_slot_is_small_and_owns_nothing_on_the_heap() {
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }

    #[test]
    fn every_outcome_packs_and_unpacks_to_itself() {
        let outcomes = [
            BidOutcome::Accepted {
                price: 5_250_000,
                leading: true,
                ends_at: 1_760_001_230_000,
                seq: u64::MAX,
            },
            BidOutcome::Accepted {
                price: u64::MAX,
                leading: false,
                ends_at: 0,
                seq: 1,
            },
            BidOutcome::Rejected(Rejection::BelowMinimum {
                min_next: 5_300_000,
            }),
            BidOutcome::Rejected(Rejection::NotLive),
            BidOutcome::Rejected(Rejection::UnknownAuction),
            BidOutcome::Rejected(Rejection::NotEligible),
            BidOutcome::Rejected(Rejection::OwnListing),
            BidOutcome::Rejected(Rejection::ExposureLimit),
            BidOutcome::Rejected(Rejection::Invalid),
            BidOutcome::Rejected(Rejection::AlreadyLeading { max: 6_000_000 }),
            BidOutcome::Rejected(Rejection::NotInGoodStanding),
            BidOutcome::Rejected(Rejection::PrebidLowered { max: 7_000_000 }),
        ];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let r = Receipt {
                lot: LotId(u32::MAX - i as u32),
                outcome,
                at: 1_700_000_000_000 + i as u64,
            };
            assert_eq!(Slot::new(digest("x"), &r).receipt(), r, "{outcome:?}");
        }
    }

    #[test]
    fn digests_differ_by_dealer_key_and_id_and_are_stable() {
        let a = Digest::of(&KEY, DealerId(1), "bid-1");
        assert_eq!(a, Digest::of(&KEY, DealerId(1), "bid-1"));
        assert_ne!(a, Digest::of(&KEY, DealerId(2), "bid-1"));
        assert_ne!(a, Digest::of(&[8; 16], DealerId(1), "bid-1"));
        assert_ne!(a, Digest::of(&KEY, DealerId(1), "bid-2"));
        // The dealer's id is written in a fixed 4 bytes, so no (dealer, bid_id) pair can
        // read as another.
        assert_ne!(
            Digest::of(&KEY, DealerId(0x31), ""),
            Digest::of(&KEY, DealerId(0), "1")
        );
        // SipHash-1-3 is a fixed function: the same input, the same digest, on any
        // machine and in any later build (snapshots hold digests).
        assert_eq!(
            Digest::of(&[0; 16], DealerId(1), "d3-0001"),
            Digest::of(&[0; 16], DealerId(1), "d3-0001")
        );
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("bid-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let r = filled(&refs);
        assert_eq!(r.len(), 5_000);
        for (i, id) in refs.iter().enumerate() {
            assert_eq!(r.get(&digest(id)), Some(receipt(1, i as u64)), "{id}");
        }
        assert_eq!(r.get(&digest("bid-5000")), None);
        assert_eq!(r.get(&digest("")), None);
    }

    /// How many parts `a` and `b` share (0 unless both are split).
    fn shared(a: &Receipts, b: &Receipts) -> usize {
        match (&a.parts, &b.parts) {
            (Parts::Many(x), Parts::Many(y)) => x
                .iter()
                .zip(y.iter())
                .filter(|(x, y)| Arc::ptr_eq(x, y))
                .count(),
            _ => 0,
        }
    }

    fn is_split(r: &Receipts) -> bool {
        matches!(r.parts, Parts::Many(_))
    }

    #[test]
    fn a_map_splits_once_it_is_large_and_keeps_every_receipt() {
        let ids: Vec<String> = (0..SPLIT_AT).map(|i| format!("bid-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let small = filled(&refs[..SPLIT_AT - 1]);
        assert!(!is_split(&small));
        let before = small.clone();
        let mut r = small;
        let last = refs[SPLIT_AT - 1];
        r.insert(digest(last), receipt(1, SPLIT_AT as u64 - 1));
        let Parts::Many(parts) = &r.parts else {
            panic!("not split at {SPLIT_AT}");
        };
        // 128 ids over 16 parts: all in one or two would mean the parts are not picked by
        // hash.
        assert!(parts.iter().filter(|p| !p.is_empty()).count() > PARTS / 2);
        assert_eq!(r, filled(&refs));
        assert_eq!(r.len(), SPLIT_AT);
        // A clone taken before the split is untouched by it.
        assert!(!is_split(&before));
        assert_eq!(before, filled(&refs[..SPLIT_AT - 1]));
    }

    #[test]
    fn a_clone_shares_every_part_and_an_insert_copies_only_its_own() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("bid-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let r = filled(&refs);
        let mut copy = r.clone();
        assert_eq!(shared(&copy, &r), PARTS);
        copy.insert(digest("new"), receipt(2, 9));
        assert_eq!(shared(&copy, &r), PARTS - 1);
        assert_eq!((copy.len(), r.len()), (5_001, 5_000));
        assert_eq!(r.get(&digest("new")), None);
        assert_eq!(copy.get(&digest("new")), Some(receipt(2, 9)));
        // A retain that removes nothing copies nothing; one that removes from every part
        // copies every part; one that removes everything leaves an empty map in one part.
        copy.retain(|_| true);
        assert_eq!(shared(&copy, &r), PARTS - 1);
        let mut pruned = r.clone();
        pruned.retain(|x| x.at % 2 == 0);
        assert_eq!(shared(&pruned, &r), 0);
        assert_eq!(pruned.len(), 2_500);
        assert!(pruned.iter().all(|(_, x)| x.at % 2 == 0));
        pruned.retain(|_| false);
        assert!(pruned.is_empty() && !is_split(&pruned));
        assert_eq!(r.len(), 5_000);
    }

    #[test]
    fn inserting_a_digest_again_replaces_its_receipt() {
        let mut r = filled(&["a"]);
        r.insert(digest("a"), receipt(7, 7));
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(&digest("a")), Some(receipt(7, 7)));
    }

    #[test]
    fn serializes_sorted_by_digest_and_back_whatever_the_hasher() {
        let ids = ["zeta", "alpha", "mid", "", "Alpha", "速"];
        let r = filled(&ids);
        let mut sorted: Vec<Stored> = r.slots().map(Stored::from).collect();
        sorted.sort_by_key(|s| s.0);
        let ours = rmp_serde::to_vec(&r).expect("serialize");
        assert_eq!(ours, rmp_serde::to_vec(&sorted).expect("serialize"));
        // Another map with the same receipts (other random hasher keys, other insertion
        // order) writes the same bytes.
        let mut reversed = ids;
        reversed.reverse();
        let other = {
            let mut o = Receipts::default();
            for id in reversed {
                let i = ids.iter().position(|x| *x == id).expect("an id") as u64;
                o.insert(digest(id), receipt(1, i));
            }
            o
        };
        assert_eq!(rmp_serde::to_vec(&other).expect("serialize"), ours);
        let back: Receipts = rmp_serde::from_slice(&ours).expect("deserialize");
        assert_eq!(back, r);
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            serde_json::from_str::<Receipts>(&json).expect("json back"),
            r
        );
    }

    #[test]
    fn out_of_order_digests_or_an_unknown_kind_do_not_load() {
        let r = filled(&["a", "b"]);
        let mut stored: Vec<Stored> = r.slots().map(Stored::from).collect();
        stored.sort_by_key(|s| std::cmp::Reverse(s.0));
        let bytes = rmp_serde::to_vec(&stored).expect("serialize");
        assert!(rmp_serde::from_slice::<Receipts>(&bytes).is_err());
        stored.sort_by_key(|s| s.0);
        stored[0].3 = PREBID_LOWERED + 1;
        let bytes = rmp_serde::to_vec(&stored).expect("serialize");
        let err = rmp_serde::from_slice::<Receipts>(&bytes).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");
    }

    #[test]
    fn receipts_written_under_their_bid_ids_are_adopted_as_digests() {
        // The form snapshots had before digests: a map from bid_id to receipt.
        let old: std::collections::BTreeMap<&str, Receipt> =
            [("a", receipt(1, 1)), ("b", receipt(2, 2))]
                .into_iter()
                .collect();
        let bytes = rmp_serde::to_vec(&old).expect("serialize");
        let mut r: Receipts = rmp_serde::from_slice(&bytes).expect("an old map loads");
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(&digest("a")), None, "not adopted yet");
        r.adopt_legacy(digest);
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(&digest("a")), Some(receipt(1, 1)));
        assert_eq!(r.get(&digest("b")), Some(receipt(2, 2)));
        let mut expected = Receipts::default();
        expected.insert(digest("a"), receipt(1, 1));
        expected.insert(digest("b"), receipt(2, 2));
        assert_eq!(r, expected);
    }

    #[test]
    fn retain_keeps_only_what_it_is_told() {
        let mut r = filled(&["a", "b", "c", "d"]);
        r.retain(|x| x.at % 2 == 0);
        assert_eq!(r.len(), 2);
        assert!(r.get(&digest("a")).is_some() && r.get(&digest("c")).is_some());
        assert_eq!(r.get(&digest("b")), None);
    }
}
