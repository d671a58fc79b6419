//! What must hold *across* a cluster's markets, checked on their rebuilt books
//! (`gavel replay --verify --all-markets`): every market gives an account the same id, and
//! every deposit that arrived in a market left another one, once.
//!
//! Pure: it reads books, nothing else.

use crate::auction::{Book, Direction, TransferOutcome};
use std::collections::BTreeMap;

/// What the cross-market check found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClusterCheck {
    /// Violations: each one means a journal disagrees with another.
    pub problems: Vec<String>,
    /// Transfers whose deposit left a market and has not arrived yet (not a violation:
    /// the arriving market applies it when it reads the control stream).
    pub in_flight: Vec<String>,
    /// Transfers checked.
    pub transfers: usize,
}

/// Checks the markets' rebuilt books against each other.
pub fn check(markets: &[(String, &Book)]) -> ClusterCheck {
    let mut out = ClusterCheck::default();
    // Accounts: a market may lag (it has not read the latest registrations yet), but a
    // dealer id that two markets know must be the same account in both.
    for (i, (a, book_a)) in markets.iter().enumerate() {
        for (b, book_b) in &markets[i + 1..] {
            for (da, db) in book_a.dealers().iter().zip(book_b.dealers()) {
                if da.token_hash != db.token_hash || da.name != db.name {
                    out.problems.push(format!(
                        "dealer {} is {:?} in {a} but {:?} in {b}",
                        da.id, da.name, db.name
                    ));
                }
            }
        }
    }
    // Transfers: (id) → the out half and the in half, with the market that applied each.
    let mut outs = BTreeMap::new();
    let mut ins = BTreeMap::new();
    for (market, book) in markets {
        for t in book.transfers().iter() {
            if t.outcome != TransferOutcome::Accepted {
                continue;
            }
            let side = match t.direction {
                Direction::Out => &mut outs,
                Direction::In => &mut ins,
            };
            side.insert(t.id.clone(), (market.clone(), t.clone()));
        }
    }
    out.transfers = outs.len();
    for (id, (to, t_in)) in &ins {
        match outs.get(id) {
            None => out.problems.push(format!(
                "transfer {id}: {} fen arrived in {to} from {} but never left it",
                t_in.amount, t_in.peer
            )),
            Some((from, t_out)) => {
                if t_out.peer != *to
                    || t_in.peer != *from
                    || t_out.amount != t_in.amount
                    || t_out.dealer != t_in.dealer
                {
                    out.problems.push(format!(
                        "transfer {id}: left {from} as {} fen of {} for {}, arrived in {to} \
                         as {} fen of {} from {}",
                        t_out.amount, t_out.dealer, t_out.peer, t_in.amount, t_in.dealer, t_in.peer
                    ));
                }
            }
        }
    }
    for (id, (from, t)) in &outs {
        if !ins.contains_key(id) {
            out.in_flight.push(format!(
                "transfer {id}: {} fen of {} left {from} for {}",
                t.amount, t.dealer, t.peer
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::{self, Rules};
    use crate::market::{Command, Market};

    fn market(dealers: &[&str]) -> Market {
        let mut m = Market::new(crate::market::Rules {
            auction: Rules::default(),
            ..Default::default()
        });
        for (i, name) in dealers.iter().enumerate() {
            let c = auction::Command::RegisterDealer {
                name: (*name).to_owned(),
                deposit: 1_000_000,
                linked_sellers: vec![],
                token_hash: [i as u8; 32],
            };
            m.apply(m.last_seq() + 1, 1, Command::Auction(c));
        }
        m
    }

    fn half(m: &mut Market, out: bool, id: &str, peer: &str, amount: u64) {
        let dealer = "D1".parse().expect("dealer id");
        let c = if out {
            auction::Command::TransferOut {
                transfer: id.into(),
                dealer,
                to: peer.to_owned(),
                amount,
            }
        } else {
            auction::Command::TransferIn {
                transfer: id.into(),
                dealer,
                from: peer.to_owned(),
                amount,
            }
        };
        m.apply(m.last_seq() + 1, 2, Command::Auction(c));
    }

    #[test]
    fn a_completed_transfer_passes_and_an_unfinished_one_is_in_flight() {
        let (mut a, mut b) = (market(&["x"]), market(&["x"]));
        half(&mut a, true, "t1", "b", 10);
        half(&mut b, false, "t1", "a", 10);
        half(&mut a, true, "t2", "b", 5);
        let c = check(&[("a".into(), a.book()), ("b".into(), b.book())]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.transfers, 2);
        assert_eq!(c.in_flight.len(), 1);
    }

    #[test]
    fn a_deposit_that_arrived_without_leaving_is_a_violation() {
        let (a, mut b) = (market(&["x"]), market(&["x"]));
        half(&mut b, false, "t1", "a", 10);
        let c = check(&[("a".into(), a.book()), ("b".into(), b.book())]);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    }

    #[test]
    fn halves_that_disagree_are_a_violation() {
        let (mut a, mut b) = (market(&["x"]), market(&["x"]));
        half(&mut a, true, "t1", "b", 10);
        half(&mut b, false, "t1", "a", 11);
        let c = check(&[("a".into(), a.book()), ("b".into(), b.book())]);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    }

    #[test]
    fn one_id_two_accounts_is_a_violation_and_a_lagging_market_is_not() {
        let (a, b) = (market(&["x", "y"]), market(&["x"]));
        assert!(check(&[("a".into(), a.book()), ("b".into(), b.book())])
            .problems
            .is_empty());
        let c = market(&["z"]);
        assert_eq!(
            check(&[("a".into(), a.book()), ("c".into(), c.book())])
                .problems
                .len(),
            1
        );
    }
}
