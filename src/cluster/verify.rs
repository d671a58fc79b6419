//! What must hold *across* a cluster's markets, checked on their rebuilt books
//! (`gavel replay --verify --all-markets`): every market gives an account the same id,
//! every deposit that arrived in a market left another one, once, and every car sold in a
//! market is one item of the alliance market's inventory, as sold.
//!
//! Pure: it reads books, nothing else.

use crate::auction::{Book, Direction, LotStatus, TransferOutcome};
use crate::market::Market;
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
    /// Other markets' sold cars checked against the alliance market's inventory.
    pub cars: usize,
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

/// Checks that every car another market sold is an item of `alliance`'s inventory, with
/// the sale's dealer, price and VIN, and that every such item is a car its market sold.
///
/// A market's journal read after the alliance market's holds every sale the alliance
/// market has taken in (`gavel replay` reads the alliance market first), so an item whose
/// lot its market has not sold is a violation; a sold car not yet in the inventory is in
/// flight (it is on its way through the inbox). A lot its market has pruned is not
/// checked.
pub fn check_sold_cars(markets: &[(String, &Market)], alliance: &str, out: &mut ClusterCheck) {
    let Some((_, home)) = markets.iter().find(|(m, _)| m == alliance) else {
        return;
    };
    let inventory = home.alliance();
    for (market, m) in markets.iter().filter(|(m, _)| m != alliance) {
        for lot in m.book().lots() {
            let (LotStatus::Sold, Some(lead), Some(price)) = (lot.status, lot.lead, lot.price)
            else {
                continue;
            };
            out.cars += 1;
            match inventory.item_from(market, lot.id) {
                None => out.in_flight.push(format!(
                    "car {market} {}: sold to {} and not yet in {alliance}'s inventory",
                    lot.id, lead.dealer
                )),
                Some(item) => {
                    if (item.dealer, item.price, item.vin.as_str())
                        != (lead.dealer, price, lot.listing.vehicle.vin.as_str())
                    {
                        out.problems.push(format!(
                            "car {market} {}: sold to {} for {price} fen, but {alliance}'s \
                             item {} holds {} for {} fen",
                            lot.id, lead.dealer, item.id, item.dealer, item.price
                        ));
                    }
                }
            }
        }
    }
    for item in inventory.items() {
        let Some((market, auction)) = inventory.origin(item.id) else {
            continue;
        };
        let sold = markets
            .iter()
            .find(|(m, _)| m == market)
            .map(|(_, m)| m.book().lot(auction).map(|l| l.status));
        match sold {
            None => out.problems.push(format!(
                "{alliance}'s item {} came from {market:?}, which is not a market",
                item.id
            )),
            Some(Some(status)) if status != LotStatus::Sold => out.problems.push(format!(
                "{alliance}'s item {} is {market} {auction}, which {market} has not sold",
                item.id
            )),
            Some(_) => {}
        }
    }
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

    // ---------------------------------------------------------------------------------
    // Sold cars and the one inventory

    use crate::alliance::tests::{car, clean};
    use crate::alliance::{AllianceCommand, HandOffRecord};
    use crate::market::tests::Sim;

    fn hand_from(alliance: &mut Sim, market: &str, record: HandOffRecord) {
        alliance.apply(AllianceCommand::HandOffFrom {
            market: market.into(),
            record: Box::new(record),
            vehicle: Box::new(car()),
        });
    }

    fn cars(markets: &[(&str, &Sim)]) -> ClusterCheck {
        let markets: Vec<(String, &Market)> = markets
            .iter()
            .map(|(m, sim)| ((*m).to_owned(), &sim.market))
            .collect();
        let mut out = ClusterCheck::default();
        check_sold_cars(&markets, "north", &mut out);
        out
    }

    #[test]
    fn a_car_sold_elsewhere_is_in_the_inventory_or_in_flight() {
        let (mut north, mut west) = (Sim::new(), Sim::new());
        let first = west.buy(1, clean());
        west.buy(2, clean());
        hand_from(&mut north, "west", first);
        let c = cars(&[("north", &north), ("west", &west)]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.cars, 2);
        assert_eq!(c.in_flight.len(), 1, "{:?}", c.in_flight);
    }

    #[test]
    fn an_item_that_disagrees_with_its_sale_or_has_none_is_a_violation() {
        let (mut north, mut west) = (Sim::new(), Sim::new());
        let mut sold = west.buy(1, clean());
        sold.price += 1;
        hand_from(&mut north, "west", sold.clone());
        let c = cars(&[("north", &north), ("west", &west)]);
        assert_eq!(c.problems.len(), 1, "wrong price: {:?}", c.problems);

        // West's open lot, and a market the cluster does not have.
        let open = west.list(clean());
        let mut north = Sim::new();
        hand_from(
            &mut north,
            "west",
            HandOffRecord {
                auction: open,
                ..sold.clone()
            },
        );
        hand_from(&mut north, "moon", sold);
        let c = cars(&[("north", &north), ("west", &west)]);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert_eq!(
            c.in_flight.len(),
            1,
            "west's sale not handed off: {:?}",
            c.in_flight
        );
    }
}
