//! Which node owns which market: a pure function of the markets and the live nodes.
//!
//! Every node computes the same assignment from the same inputs (no coordination beyond
//! the registry they all read), so when the set of live nodes changes each node knows at
//! once which markets to hand over and which to take. Ownership itself is still decided by
//! each market's lease in Redis: the assignment only says whom a market *should* go to.
//!
//! The assignment is balanced rendezvous hashing: each market ranks the nodes by a stable
//! hash of (market, node), and goes to the best-ranked node that still has room: fewer
//! than `floor(markets / nodes)` markets so far, or exactly that many while fewer than
//! `markets mod nodes` nodes have taken one more. So every node holds `floor` or `ceil`
//! of `markets / nodes` (a cap of `ceil` alone would let 4 markets on 3 nodes go 2, 2, 0,
//! leaving a live node idle), and a node joining or leaving moves few markets besides its
//! own share.
//!
//! Must not: read clocks or draw random numbers (two nodes must agree), or depend on the
//! order its inputs come in.

use std::collections::BTreeMap;

/// `market → node` for every market, given the live nodes. Empty when no node is live.
pub fn assign(markets: &[String], nodes: &[String]) -> BTreeMap<String, String> {
    let mut nodes: Vec<&String> = nodes.iter().collect();
    nodes.sort();
    nodes.dedup();
    let mut markets: Vec<&String> = markets.iter().collect();
    markets.sort();
    markets.dedup();
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return out;
    }
    let floor = markets.len() / nodes.len();
    // How many nodes may hold one more than `floor`.
    let extra = markets.len() % nodes.len();
    let mut above = 0;
    let mut load: BTreeMap<&String, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for market in markets {
        let mut ranked = nodes.clone();
        // Highest score first; the node id breaks a (64-bit) tie so the order is total.
        ranked.sort_by(|a, b| score(market, b).cmp(&score(market, a)).then(a.cmp(b)));
        let room = |n: &&String| {
            let l = load.get(n).copied().unwrap_or(0);
            l < floor || (l == floor && above < extra)
        };
        let Some(node) = ranked.into_iter().find(room) else {
            continue; // unreachable: the rooms add up to exactly the markets
        };
        let l = load.entry(node).or_insert(0);
        if *l == floor {
            above += 1;
        }
        *l += 1;
        out.insert(market.clone(), node.clone());
    }
    out
}

/// FNV-1a over `market`, a zero byte and `node`: stable across builds and platforms (the
/// standard library's hasher promises neither), which nodes running different builds need.
fn score(market: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in market.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn no_node_no_owner() {
        assert!(assign(&names("m", 3), &[]).is_empty());
    }

    #[test]
    fn one_node_owns_everything() {
        let a = assign(&names("m", 4), &["a".into()]);
        assert_eq!(a.len(), 4);
        assert!(a.values().all(|n| n == "a"));
    }

    #[test]
    fn four_markets_on_three_nodes_leave_no_node_idle() {
        // The default markets on three nodes: a cap of ceil(4/3) alone gave n1 and n2 two
        // each and n0 none.
        let markets: Vec<String> = ["north", "east", "south", "west"]
            .map(String::from)
            .to_vec();
        let a = assign(&markets, &names("n", 3));
        for node in names("n", 3) {
            assert!(
                a.values().any(|o| *o == node),
                "{node} holds nothing: {a:?}"
            );
        }
    }

    #[test]
    fn a_dead_nodes_markets_go_to_the_others_and_the_rest_mostly_stay() {
        let markets = names("market-", 12);
        let three = assign(&markets, &names("node-", 3));
        let two = assign(&markets, &names("node-", 2));
        for (m, owner) in &two {
            assert_ne!(owner, "node-2");
            if three[m] != "node-2" {
                // A survivor's own markets move only when the new cap forces it.
                let kept = two.values().filter(|n| *n == owner).count();
                assert!(kept <= 6, "{m}");
            }
        }
    }

    proptest! {
        /// Every market has exactly one owner among the live nodes, every node holds
        /// floor(M/N) or ceil(M/N), and the answer does not depend on input order.
        #[test]
        fn balanced_total_and_order_free(m in 0usize..40, n in 1usize..8, rot in 0usize..8) {
            let markets = names("m", m);
            let nodes = names("n", n);
            let a = assign(&markets, &nodes);
            prop_assert_eq!(a.len(), m);
            for node in &nodes {
                let held = a.values().filter(|o| *o == node).count();
                prop_assert!(held == m / n || held == m.div_ceil(n), "{} holds {}", node, held);
            }
            let mut shuffled = nodes.clone();
            shuffled.rotate_left(rot % n);
            let mut rev = markets.clone();
            rev.reverse();
            prop_assert_eq!(assign(&rev, &shuffled), a);
        }
    }
}
