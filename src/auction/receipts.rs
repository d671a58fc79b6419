//! A dealer's receipts: the first result of every `bid_id` it used, so a retried bid is
//! answered, never applied twice.
//!
//! Every bid looks its `bid_id` up here and almost every bid inserts one, in a map that
//! holds thousands of ids per dealer. A std `HashMap<Arc<str>, _>` rehashed every key
//! whenever it grew, following each key's pointer to its string (a cache miss per
//! receipt), and that growth was a quarter of the cost of a bid in the book. This table
//! keeps each key's hash beside it, so growth moves entries without touching their
//! strings, a lookup compares stored hashes before any string, and the one hash a bid
//! computes serves both its lookup and its insert.

use super::command::BidId;
use super::event::BidOutcome;
use super::ids::LotId;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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
    table: HashTable<Slot>,
    hasher: ahash::RandomState,
}

impl Receipts {
    /// `bid_id`'s key in this map (and its clones).
    pub fn key(&self, bid_id: &str) -> Key {
        Key(self.hasher.hash_one(bid_id))
    }

    /// The receipt for `bid_id`, whose key is `key`.
    pub fn get(&self, key: Key, bid_id: &str) -> Option<&Receipt> {
        self.table
            .find(key.0, |s| s.hash == key.0 && *s.bid_id == *bid_id)
            .map(|s| &s.receipt)
    }

    /// Records the first result of `bid_id`, whose key is `key`; replaces a receipt the id
    /// already had (the book asks [`Receipts::get`] first, so it never does). One probe
    /// finds either the id or the place to put it.
    pub fn insert(&mut self, key: Key, bid_id: BidId, receipt: Receipt) {
        let hash = key.0;
        match self
            .table
            .entry(hash, |s| s.hash == hash && *s.bid_id == *bid_id, |s| s.hash)
        {
            Entry::Occupied(mut slot) => slot.get_mut().receipt = receipt,
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    hash,
                    bid_id,
                    receipt,
                });
            }
        }
    }

    /// How many `bid_id`s are remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every `bid_id` and its receipt, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&BidId, &Receipt)> {
        self.table.iter().map(|s| (&s.bid_id, &s.receipt))
    }

    /// Keeps only the receipts `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Receipt) -> bool) {
        self.table.retain(|s| keep(&s.receipt));
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
                let mut receipts = Receipts::default();
                // A size hint comes from the input: it reserves at most what a snapshot of
                // a busy dealer holds, the rest grows as entries really arrive.
                receipts
                    .table
                    .reserve(map.size_hint().unwrap_or(0).min(1 << 16), |s| s.hash);
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
    use std::sync::Arc;

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
