//! A dealer's receipts: the first result of every `bid_id` it used, so a retried bid is
//! answered, never applied twice.
//!
//! Every bid looks its `bid_id` up here and almost every bid inserts one, in a map that
//! holds thousands of ids per dealer. The table keeps each key's hash beside it, so
//! growth moves entries without following any key's pointer to its string (a cache miss
//! per receipt), a lookup compares stored hashes before any string, and the one hash a
//! bid computes serves both its lookup and its insert.
//!
//! A large map is split into [`PARTS`] parts, each shared copy on write. A snapshot's
//! copy of the book shares every dealer's receipts, and a bid made while the snapshot
//! holds them copies only the part its `bid_id` falls in: the copying is spread over the
//! next bids, instead of one burst on the engine's task that copies every receipt in the
//! book when every dealer bids within milliseconds (`cargo bench --bench core`, line d,
//! measures it). A small map stays one part: sixteen small tables grow and probe slower
//! than one, and copying a small map whole is cheap.

use super::command::BidId;
use super::event::BidOutcome;
use crate::vocab::LotId;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
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

#[derive(Clone)]
struct Slot {
    hash: u64,
    bid_id: BidId,
    receipt: Receipt,
}

/// A `bid_id`'s hash under one map's keys, computed once per bid by [`Receipts::key`].
/// It is valid for that map and its clones (a clone keeps the keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(u64);

/// A dealer's receipts by `bid_id`. Dealers choose the ids, so the hasher is keyed
/// (aHash's per-process random keys) against collisions chosen on purpose. Hashes never
/// reach output: the map serializes as a map in `bid_id` order, the bytes a `BTreeMap`
/// would give, so snapshots do not depend on the keys.
#[derive(Clone, Default)]
pub struct Receipts {
    parts: Parts,
    hasher: ahash::RandomState,
}

/// Where a map's receipts live.
#[derive(Clone)]
enum Parts {
    /// Fewer than [`SPLIT_AT`]: one table, in place (no pointer to follow on every bid),
    /// copied whole when a clone shares it.
    One(Part),
    /// Split, each part shared on its own; a `bid_id` is in the part [`part_of`] picks.
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
    /// `bid_id`'s key in this map (and its clones).
    pub fn key(&self, bid_id: &str) -> Key {
        Key(self.hasher.hash_one(bid_id))
    }

    /// The receipt for `bid_id`, whose key is `key`.
    pub fn get(&self, key: Key, bid_id: &str) -> Option<&Receipt> {
        let part = match &self.parts {
            Parts::One(part) => part,
            Parts::Many(parts) => &parts[part_of(key.0)],
        };
        part.find(key.0, |s| s.hash == key.0 && *s.bid_id == *bid_id)
            .map(|s| &s.receipt)
    }

    /// Records the first result of `bid_id`, whose key is `key`; replaces a receipt the id
    /// already had (the book asks [`Receipts::get`] first, so it never does). One probe
    /// finds either the id or the place to put it. In a split map, copies the part `key`
    /// falls in if a clone still shares it, and only that part.
    pub fn insert(&mut self, key: Key, bid_id: BidId, receipt: Receipt) {
        let hash = key.0;
        let part = match &mut self.parts {
            Parts::One(part) => part,
            Parts::Many(parts) => Arc::make_mut(&mut parts[part_of(hash)]),
        };
        match part.entry(hash, |s| s.hash == hash && *s.bid_id == *bid_id, |s| s.hash) {
            Entry::Occupied(mut slot) => slot.get_mut().receipt = receipt,
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    hash,
                    bid_id,
                    receipt,
                });
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
        for slot in whole {
            parts[part_of(slot.hash)].insert_unique(slot.hash, slot, |s| s.hash);
        }
        self.parts = Parts::Many(Box::new(parts.map(Arc::new)));
    }

    /// How many `bid_id`s are remembered.
    pub fn len(&self) -> usize {
        match &self.parts {
            Parts::One(part) => part.len(),
            Parts::Many(parts) => parts.iter().map(|part| part.len()).sum(),
        }
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `bid_id` and its receipt, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&BidId, &Receipt)> {
        let (one, many): (Option<&Part>, &[Arc<Part>]) = match &self.parts {
            Parts::One(part) => (Some(part), &[]),
            Parts::Many(parts) => (None, &parts[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|part| &**part))
            .flat_map(|part| part.iter())
            .map(|s| (&s.bid_id, &s.receipt))
    }

    /// Keeps only the receipts `keep` accepts. In a split map only a part that loses
    /// receipts is written, so one a clone shares is not copied for nothing.
    pub fn retain(&mut self, mut keep: impl FnMut(&Receipt) -> bool) {
        match &mut self.parts {
            Parts::One(part) => part.retain(|s| keep(&s.receipt)),
            Parts::Many(parts) => {
                for part in parts.iter_mut() {
                    if !part.iter().all(|s| keep(&s.receipt)) {
                        Arc::make_mut(part).retain(|s| keep(&s.receipt));
                    }
                }
            }
        }
        if self.is_empty() {
            self.parts = Parts::default();
        }
    }

    fn sorted(&self) -> Vec<(&BidId, &Receipt)> {
        let mut all: Vec<_> = self.iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }
}

impl PartialEq for Receipts {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(id, r)| other.get(other.key(id), id) == Some(r))
    }
}

impl Eq for Receipts {}

impl fmt::Debug for Receipts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

impl Serialize for Receipts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.sorted())
    }
}

impl<'de> Deserialize<'de> for Receipts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ReceiptsVisitor;

        impl<'de> Visitor<'de> for ReceiptsVisitor {
            type Value = Receipts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from bid_id to receipt")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Receipts, A::Error> {
                // No reserve from the size hint: the entries spread over the parts, and a
                // table that grows moves stored hashes without rehashing any string.
                let mut receipts = Receipts::default();
                while let Some((bid_id, receipt)) = map.next_entry::<BidId, Receipt>()? {
                    let key = receipts.key(&bid_id);
                    receipts.insert(key, bid_id, receipt);
                }
                Ok(receipts)
            }
        }

        d.deserialize_map(ReceiptsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::Rejection;
    use std::collections::BTreeMap;

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
            let key = r.key(id);
            r.insert(key, Arc::from(*id), receipt(1, i as u64));
        }
        r
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("bid-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let r = filled(&refs);
        assert_eq!(r.len(), 5_000);
        for (i, id) in refs.iter().enumerate() {
            assert_eq!(r.get(r.key(id), id), Some(&receipt(1, i as u64)), "{id}");
        }
        assert_eq!(r.get(r.key("bid-5000"), "bid-5000"), None);
        assert_eq!(r.get(r.key(""), ""), None);
    }

    #[test]
    fn a_key_from_the_original_serves_its_clone() {
        let r = filled(&["a", "b"]);
        let key = r.key("c");
        let mut copy = r.clone();
        copy.insert(key, Arc::from("c"), receipt(2, 9));
        assert_eq!(copy.get(copy.key("c"), "c"), Some(&receipt(2, 9)));
        assert_eq!(r.get(key, "c"), None);
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
        r.insert(
            r.key(last),
            Arc::from(last),
            receipt(1, SPLIT_AT as u64 - 1),
        );
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
        let key = copy.key("new");
        copy.insert(key, Arc::from("new"), receipt(2, 9));
        assert_eq!(shared(&copy, &r), PARTS - 1);
        assert_eq!((copy.len(), r.len()), (5_001, 5_000));
        assert_eq!(r.get(key, "new"), None);
        assert_eq!(copy.get(key, "new"), Some(&receipt(2, 9)));
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
    fn inserting_an_id_again_replaces_its_receipt() {
        let mut r = filled(&["a"]);
        let key = r.key("a");
        r.insert(key, Arc::from("a"), receipt(7, 7));
        assert_eq!(r.len(), 1);
        assert_eq!(r.get(key, "a"), Some(&receipt(7, 7)));
    }

    #[test]
    fn serializes_to_the_bytes_of_a_sorted_map_and_back() {
        let ids = ["zeta", "alpha", "mid", "", "Alpha", "速"];
        let r = filled(&ids);
        let sorted: BTreeMap<BidId, Receipt> = r.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let ours = rmp_serde::to_vec(&r).expect("serialize");
        assert_eq!(ours, rmp_serde::to_vec(&sorted).expect("serialize"));
        assert_eq!(
            serde_json::to_string(&r).expect("json"),
            serde_json::to_string(&sorted).expect("json")
        );
        let back: Receipts = rmp_serde::from_slice(&ours).expect("deserialize");
        assert_eq!(back, r);
        // Two maps with the same receipts are equal whatever their keys and history.
        assert_eq!(filled(&ids), r);
        assert_ne!(filled(&ids[1..]), r);
    }

    #[test]
    fn retain_keeps_only_what_it_is_told() {
        let mut r = filled(&["a", "b", "c", "d"]);
        r.retain(|x| x.at % 2 == 0);
        let mut left: Vec<&str> = r.iter().map(|(k, _)| &**k).collect();
        left.sort_unstable();
        assert_eq!(left, ["a", "c"]);
        assert_eq!(r.get(r.key("b"), "b"), None);
    }
}
