//! Pre-bids in a lot's preview (rules version 3): the rulebook's table tests.

use super::*;

/// A seller, `n` dealers with 10,000 yuan deposits (100,000 yuan of buying power each),
/// and one lot in its preview (opening in an hour) at 10,000 yuan, reserve `reserve`.
fn preview(n: usize, reserve: Fen) -> (Sim, Vec<DealerId>, LotId) {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let dealers = (0..n).map(|_| sim.dealer(y(10_000))).collect();
    let mut l = listing(y(10_000), reserve, None);
    l.starts_at = Some(T0 + HOUR);
    let events = sim.list_with(seller, l);
    let [Event::Listed {
        lot,
        status: LotStatus::Scheduled,
        ..
    }] = events[..]
    else {
        panic!("{events:?}")
    };
    (sim, dealers, lot)
}

/// A pre-bid (amount: the start price) with a fresh `bid_id`.
fn prebid(sim: &mut Sim, dealer: DealerId, lot: LotId, max: Fen) -> BidOutcome {
    sim.bid(dealer, lot, y(10_000), Some(max))
}

#[test]
fn prebids_resolve_at_the_opening_by_the_proxy_rules() {
    // (pre-bids in order as (dealer, max in yuan), reserve in yuan)
    //   → (leader, opening price in yuan, dealers told outbid)
    #[allow(clippy::type_complexity)]
    let table: [(&[(usize, u64)], u64, (usize, u64, &[usize])); 7] = [
        // A single pre-bid opens at the start price.
        (&[(0, 15_000)], 50_000, (0, 10_000, &[])),
        // The runner-up's max plus its increment (200 yuan from 10,000).
        (&[(0, 15_000), (1, 12_000)], 50_000, (0, 12_200, &[1])),
        (&[(1, 12_000), (0, 15_000)], 50_000, (0, 12_200, &[1])),
        // Capped at the highest max.
        (&[(0, 12_100), (1, 12_000)], 50_000, (0, 12_100, &[1])),
        // Equal maxima: the earliest wins, at that max.
        (
            &[(1, 13_000), (0, 13_000), (2, 11_000)],
            50_000,
            (1, 13_000, &[0, 2]),
        ),
        // A raise reaches its max when it is placed: dealer 0 raised to 13,000 after
        // dealer 1 had bid it, so dealer 1 was there first.
        (
            &[(0, 11_000), (1, 13_000), (0, 13_000)],
            50_000,
            (1, 13_000, &[0]),
        ),
        // The leader's max reaches the reserve: the price rises to it.
        (&[(0, 30_000), (1, 12_000)], 20_000, (0, 20_000, &[1])),
    ];
    for (prebids, reserve, (leader, price, losers)) in table {
        let (mut sim, d, lot) = preview(3, y(reserve));
        for &(dealer, max) in prebids {
            let (p, leading) = accepted(prebid(&mut sim, d[dealer], lot, y(max)));
            assert_eq!((p, leading), (y(10_000), false), "sealed: {prebids:?}");
        }
        assert_eq!(
            sim.lot(lot).price,
            None,
            "nothing public before the opening"
        );
        let events = sim.tick(T0 + HOUR);
        let l = sim.lot(lot);
        assert_eq!(l.status, LotStatus::Live, "{prebids:?}");
        assert_eq!(l.lead.map(|l| l.dealer), Some(d[leader]), "{prebids:?}");
        assert_eq!(l.price, Some(y(price)), "{prebids:?}");
        let told: Vec<DealerId> = losers.iter().map(|&i| d[i]).collect();
        let mut out = outbid(&events);
        out.sort();
        assert_eq!(out, told, "{prebids:?}");
        // The leader's max stays held as its lead; every other pre-bid is released.
        let best = prebids.iter().map(|&(_, m)| m).max().unwrap_or(0);
        for (i, &dealer) in d.iter().enumerate() {
            let held = if i == leader { y(best) } else { 0 };
            assert_eq!(sim.exposure(dealer), held, "{prebids:?} dealer {i}");
        }
        assert!(sim.lot(lot).prebids.is_empty());
        assert!(matches!(events.last(), Some(Event::Updated(u)) if u.leader == Some(d[leader])));
    }
}

#[test]
fn live_bidding_continues_from_the_opening() {
    let (mut sim, d, lot) = preview(3, y(50_000));
    accepted(prebid(&mut sim, d[0], lot, y(15_000)));
    accepted(prebid(&mut sim, d[1], lot, y(12_000)));
    sim.tick(T0 + HOUR);
    assert_eq!(sim.lot(lot).bids, 2);
    // min_next is 12,200 + 200; the leader's proxy answers a live challenger.
    assert_eq!(
        rejected(sim.bid(d[2], lot, y(12_300), None)),
        Rejection::BelowMinimum {
            min_next: y(12_400)
        }
    );
    assert_eq!(
        accepted(sim.bid(d[2], lot, y(12_400), None)),
        (y(12_600), false)
    );
    assert_eq!(
        accepted(sim.bid(d[2], lot, y(16_000), None)),
        (y(16_000), true)
    );
    assert_eq!(sim.exposure(d[0]), 0);
}

#[test]
fn a_prebid_is_raised_never_lowered_and_held_at_its_max() {
    let (mut sim, d, lot) = preview(2, y(50_000));
    accepted(prebid(&mut sim, d[0], lot, y(20_000)));
    assert_eq!(sim.exposure(d[0]), y(20_000));
    // (max in yuan, rejection): lower, equal, beyond buying power (100,000 yuan).
    let table = [
        (19_000, Rejection::PrebidLowered { max: y(20_000) }),
        (20_000, Rejection::Invalid),
        (100_001, Rejection::ExposureLimit),
    ];
    for (max, expected) in table {
        let before = sim.state();
        assert_eq!(
            rejected(prebid(&mut sim, d[0], lot, y(max))),
            expected,
            "{max}"
        );
        // Nothing changed but the receipt.
        assert_eq!(sim.lot(lot).prebids[0].max, y(20_000));
        assert_eq!(sim.exposure(d[0]), y(20_000));
        assert_ne!(sim.state(), before, "the receipt is remembered");
    }
    accepted(prebid(&mut sim, d[0], lot, y(100_000)));
    assert_eq!(sim.exposure(d[0]), y(100_000), "held at the new max");
    // Pre-bids on two lots add up against one buying power.
    let seller = sim.lot(lot).seller;
    let mut l = listing(y(10_000), y(50_000), None);
    l.starts_at = Some(T0 + HOUR);
    let Event::Listed { lot: other, .. } = sim.list_with(seller, l)[0] else {
        panic!()
    };
    assert_eq!(
        rejected(prebid(&mut sim, d[0], other, y(10_000))),
        Rejection::ExposureLimit
    );
    accepted(prebid(&mut sim, d[1], other, y(10_000)));
}

#[test]
fn what_a_bid_in_the_preview_is_refused_for() {
    let (mut sim, d, lot) = preview(3, y(50_000));
    sim.run(Command::SetDealerStatus {
        dealer: d[2],
        status: DealerStatus::Suspended,
        reason: String::new(),
    });
    // (dealer, amount, max, rejection), in the contract's order of precedence.
    let table = [
        (d[2], y(10_000), Some(y(12_000)), Rejection::NotEligible),
        (d[0], y(10_000), None, Rejection::NotLive),
        (d[0], 0, Some(y(12_000)), Rejection::Invalid),
        (d[0], y(12_000), Some(y(11_000)), Rejection::Invalid),
        (
            d[0],
            y(9_900),
            Some(y(12_000)),
            Rejection::BelowMinimum {
                min_next: y(10_000),
            },
        ),
        (d[0], y(10_000), Some(MAX_AMOUNT + 1), Rejection::Invalid),
    ];
    for (dealer, amount, max, expected) in table {
        assert_eq!(
            rejected(sim.bid(dealer, lot, amount, max)),
            expected,
            "{amount} {max:?}"
        );
    }
    assert!(sim.lot(lot).prebids.is_empty());
}

/// Good standing is the market's answer (the alliance's record); the book asks it only
/// for a pre-bid.
#[test]
fn a_dealer_not_in_good_standing_may_not_prebid() {
    struct Only(DealerId);
    impl Membership for Only {
        fn in_good_standing(&self, dealer: &Dealer) -> bool {
            dealer.id == self.0
        }
    }
    let (mut sim, d, lot) = preview(2, y(50_000));
    let run = |sim: &mut Sim, dealer: DealerId, max: Option<Fen>, id: &str| {
        sim.seq += 1;
        let mut out: Vec<Event> = Vec::new();
        let command = Command::PlaceBid {
            dealer,
            lot,
            amount: y(10_000),
            max,
            bid_id: id.into(),
        };
        sim.book
            .run_among(sim.seq, sim.now, command, &Only(d[0]), &mut out);
        bid_outcome(&out)
    };
    assert_eq!(
        rejected(run(&mut sim, d[1], Some(y(12_000)), "x1")),
        Rejection::NotInGoodStanding
    );
    accepted(run(&mut sim, d[0], Some(y(12_000)), "x2"));
    // Once live, standing is not asked (a live bid needs an active dealer only): the
    // same bid is decided on its amount.
    sim.tick(T0 + HOUR);
    assert_eq!(
        rejected(run(&mut sim, d[1], Some(y(13_000)), "x3")),
        Rejection::BelowMinimum {
            min_next: y(10_200)
        }
    );
}

/// A dealer that loses good standing in the preview keeps its pre-bid: it committed to
/// it while in good standing, it cannot be withdrawn by any means (a sanction must not be
/// a way out of one), and it is decided at the opening like a suspended leader's lead.
#[test]
fn a_prebid_stands_when_its_dealer_loses_standing_in_the_preview() {
    let (mut sim, d, lot) = preview(2, y(50_000));
    accepted(prebid(&mut sim, d[0], lot, y(15_000)));
    accepted(prebid(&mut sim, d[1], lot, y(12_000)));
    sim.run(Command::SetDealerStatus {
        dealer: d[0],
        status: DealerStatus::Suspended,
        reason: "complaint overdue".into(),
    });
    assert_eq!(sim.exposure(d[0]), y(15_000), "still held");
    // It cannot be raised meanwhile.
    assert_eq!(
        rejected(prebid(&mut sim, d[0], lot, y(16_000))),
        Rejection::NotEligible
    );
    sim.tick(T0 + HOUR);
    assert_eq!(sim.lot(lot).lead.map(|l| l.dealer), Some(d[0]));
    assert_eq!(sim.lot(lot).price, Some(y(12_200)));
}

#[test]
fn a_lot_with_prebids_is_cancelled_only_by_an_operator_and_releases_them() {
    let (mut sim, d, lot) = preview(2, y(50_000));
    accepted(prebid(&mut sim, d[0], lot, y(15_000)));
    accepted(prebid(&mut sim, d[1], lot, y(12_000)));
    let seller = sim.lot(lot).seller;
    let refused = sim.run(Command::CancelLot {
        lot,
        by: Canceller::Seller(seller),
    });
    assert_eq!(refused, [Event::Refused(Refusal::NotAllowed)]);
    let events = sim.run(Command::CancelLot {
        lot,
        by: Canceller::Admin,
    });
    assert_eq!(sim.lot(lot).status, LotStatus::Cancelled);
    assert!(sim.lot(lot).prebids.is_empty());
    for dealer in [d[0], d[1]] {
        assert_eq!(sim.exposure(dealer), 0);
        assert!(events.contains(&Event::ExposureChanged {
            dealer,
            exposure: 0
        }));
    }
}

#[test]
fn a_lot_that_opened_during_an_outage_resolves_its_prebids_on_resume() {
    let (mut sim, d, lot) = preview(2, y(50_000));
    accepted(prebid(&mut sim, d[0], lot, y(15_000)));
    accepted(prebid(&mut sim, d[1], lot, y(12_000)));
    sim.at(T0 + 2 * HOUR);
    let events = sim.run(Command::Resume);
    assert_eq!(outbid(&events), [d[1]]);
    let l = sim.lot(lot);
    assert_eq!((l.status, l.price), (LotStatus::Live, Some(y(12_200))));
    assert_eq!(l.lead.map(|l| l.dealer), Some(d[0]));
    assert_eq!((sim.exposure(d[0]), sim.exposure(d[1])), (y(15_000), 0));
}

/// A journal written before version 3 replays as decided: any bid on a scheduled lot was
/// `not_live`.
#[test]
fn before_version_3_a_bid_in_the_preview_is_not_live() {
    let mut sim = Sim::with_rules(Rules {
        version: 2,
        ..Rules::default()
    });
    let seller = sim.seller();
    let d = sim.dealer(y(10_000));
    let mut l = listing(y(10_000), y(50_000), None);
    l.starts_at = Some(T0 + HOUR);
    let Event::Listed { lot, .. } = sim.list_with(seller, l)[0] else {
        panic!()
    };
    assert_eq!(
        rejected(prebid(&mut sim, d, lot, y(12_000))),
        Rejection::NotLive
    );
    assert_eq!(sim.exposure(d), 0);
}
