//! The measures as a rulebook: one table per measure, each row a lot small enough to
//! work out by hand.

use super::*;

fn params() -> ShillParams {
    ShillParams {
        from: 0,
        to: u64::MAX,
        min_auctions: 2,
        score_threshold: 6.0,
        probe_min_steps: 3,
        probe_threshold: 1,
        probe_min_share: 0.1,
        response_ms: 10_000,
    }
}

/// A bid by `dealer` at time `at` (s), at the minimum, answered at its own amount.
fn b(dealer: u32, at_s: u64) -> LotBid {
    LotBid {
        dealer: DealerId(dealer),
        at: at_s * 1000,
        amount: 100,
        min_next_before: 100,
        price_after: 100,
        increment: 10,
        leading: true,
    }
}

/// A lot open from 0 to 100 s.
fn lot(seller: u32, winner: Option<u32>, bids: Vec<LotBid>) -> LotRecord {
    LotRecord {
        lot: LotId(1),
        seller: SellerId(seller),
        starts_at: 0,
        ends_at: 100_000,
        winner: winner.map(DealerId),
        bids,
    }
}

fn of(ms: &[LotMeasures], dealer: u32) -> &LotMeasures {
    ms.iter()
        .find(|m| m.dealer == DealerId(dealer))
        .expect("the dealer bid")
}

/// Dealer 1's measures on a lot where `who` bid in that order, a second apart.
fn dealer_one(who: &[u32]) -> LotMeasures {
    let bids = who
        .iter()
        .enumerate()
        .map(|(i, &d)| b(d, i as u64))
        .collect();
    let ms = lot_measures(&lot(1, None, bids), &params());
    of(&ms, 1).clone()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn bidding_ratio_is_the_dealers_share_of_the_lots_bids() {
    // (bids by dealer 1 and 2 in order, dealer 1's ratio)
    let table: [(&[u32], f64); 4] = [
        (&[1], 1.0),
        (&[1, 2], 0.5),
        (&[1, 2, 1, 2], 0.5),
        (&[2, 1, 2, 2], 0.25),
    ];
    for (row, (who, want)) in table.into_iter().enumerate() {
        let m = dealer_one(who);
        assert!(close(m.bidding_ratio, want), "row {row}");
    }
}

#[test]
fn successive_outbidding_counts_runs_of_ones_own_bids() {
    let table: [(&[u32], f64); 5] = [
        (&[1, 2, 1, 2], 0.0),
        (&[1, 1, 2], 0.5),
        (&[2, 1, 1, 1], 1.0),
        (&[1, 1, 2, 1, 1], 0.5),
        (&[1, 1, 1, 1, 2], 1.0),
    ];
    for (row, (who, want)) in table.into_iter().enumerate() {
        let m = dealer_one(who);
        assert!(
            close(m.successive_outbidding, want),
            "row {row}: {}",
            m.successive_outbidding
        );
    }
}

#[test]
fn last_and_early_bidding_place_the_bids_in_the_lots_time() {
    // (dealer 1's bid times in s on a 100 s lot, last bidding, early bidding)
    let table: [(&[u64], f64, f64); 4] = [
        (&[0], 1.0, 1.0),
        (&[10, 20], 0.8, 0.9),
        (&[50, 100], 0.0, 0.5),
        (&[90], 0.1, 0.1),
    ];
    for (row, (times, last, early)) in table.into_iter().enumerate() {
        let bids = times.iter().map(|&t| b(1, t)).collect();
        let ms = lot_measures(&lot(1, None, bids), &params());
        let m = of(&ms, 1);
        assert!(close(m.last_bidding, last), "row {row}: {}", m.last_bidding);
        assert!(
            close(m.early_bidding, early),
            "row {row}: {}",
            m.early_bidding
        );
    }
}

#[test]
fn response_rates_quick_answers_to_a_rival_and_ignores_ones_own_runs() {
    // (bids as (dealer, time s), dealer 2's mean response rating, its responses)
    type Bids = [(u32, u64)];
    let table: [(&Bids, f64, u32); 4] = [
        (&[(1, 0), (2, 0)], 1.0, 1),
        (&[(1, 0), (2, 5)], 0.5, 1),
        (&[(1, 0), (2, 20)], 0.0, 1),
        (&[(1, 0), (2, 1), (2, 2), (1, 3), (2, 8)], 0.7, 2),
    ];
    for (row, (bids, mean, n)) in table.into_iter().enumerate() {
        let bids = bids.iter().map(|&(d, t)| b(d, t)).collect();
        let ms = lot_measures(&lot(1, None, bids), &params());
        let m = of(&ms, 2);
        assert_eq!(m.responses, n, "row {row}");
        assert!(
            close(m.response_sum / f64::from(m.responses), mean),
            "row {row}"
        );
    }
}

#[test]
fn minimum_raises_count_bids_at_exactly_the_lowest_amount() {
    let above = LotBid {
        amount: 130,
        ..b(1, 1)
    };
    let ms = lot_measures(&lot(1, None, vec![b(1, 0), above, b(1, 2)]), &params());
    assert_eq!(of(&ms, 1).min_raises, 2);
}

#[test]
fn tendency_and_winning_ratio_come_from_the_pairs_lots() {
    let mut t = Tally::new(params());
    // Dealer 1: three lots of seller 1 (won none), one of seller 2 (won).
    for _ in 0..3 {
        t.add(&lot(1, Some(2), vec![b(1, 0), b(2, 1)]));
    }
    t.add(&lot(2, Some(1), vec![b(1, 0)]));
    let r = t.report();
    let pair = |d: u32, s: u32| {
        r.pairs
            .iter()
            .find(|p| p.dealer == DealerId(d) && p.seller == Some(SellerId(s)))
            .expect("the pair")
    };
    let p11 = &pair(1, 1).measures;
    assert_eq!(p11.auctions, 3);
    assert!(close(p11.bidder_tendency, 0.75));
    assert!(close(p11.winning_ratio, 0.0));
    let p12 = &pair(1, 2).measures;
    assert!(close(p12.bidder_tendency, 0.25));
    assert!(close(p12.winning_ratio, 1.0));
    let p21 = &pair(2, 1).measures;
    assert!(close(p21.winning_ratio, 1.0));
    // Auction bids: two bids against the window's most, two.
    assert!(close(p11.auction_bids, 1.0));
    assert!(close(p12.auction_bids, 0.5));
    // The dealer's row has its highest tendency and all its lots.
    let d1 = r
        .dealers
        .iter()
        .find(|d| d.dealer == DealerId(1))
        .expect("dealer 1");
    assert_eq!(d1.measures.auctions, 4);
    assert!(close(d1.measures.bidder_tendency, 0.75));
    assert!(close(d1.measures.winning_ratio, 0.25));
}

#[test]
fn the_score_is_the_weighted_ratings_on_ten() {
    let all = |v: f64| Measures {
        auctions: 1,
        bids: 1,
        bidder_tendency: v,
        bidding_ratio: v,
        successive_outbidding: v,
        last_bidding: v,
        auction_bids: v,
        early_bidding: v,
        winning_ratio: 1.0 - v,
        response: v,
        min_raise: v,
        probes: 0,
        probe_share: 0.0,
        shill_score: 0.0,
    };
    assert!(close(shill_score(&all(1.0)), 10.0));
    assert!(close(shill_score(&all(0.0)), 0.0));
    assert!(close(shill_score(&all(0.5)), 5.0));
    // Only tendency (weight 3 of 11).
    let m = Measures {
        bidder_tendency: 1.0,
        ..all(0.0)
    };
    assert!(close(shill_score(&m), 30.0 / 11.0));
}

#[test]
fn flags_need_enough_lots_or_enough_probes() {
    let t = Tally::new(params());
    let m = |auctions: u32, score: f64, probes: u32| Measures {
        probe_share: f64::from(probes) / f64::from(auctions),
        auctions,
        bids: 1,
        bidder_tendency: 0.0,
        bidding_ratio: 0.0,
        successive_outbidding: 0.0,
        last_bidding: 0.0,
        auction_bids: 0.0,
        early_bidding: 0.0,
        winning_ratio: 0.0,
        response: 0.0,
        min_raise: 0.0,
        probes,
        shill_score: score,
    };
    let table = [
        (m(2, 6.0, 0), vec![Flag::ShillScore]),
        (m(1, 9.0, 0), vec![]),
        (m(5, 5.9, 0), vec![]),
        (m(1, 0.0, 1), vec![Flag::Probe]),
        (m(3, 7.0, 2), vec![Flag::ShillScore, Flag::Probe]),
        // One probe in ten lots: the share; one in eleven: under it.
        (m(10, 0.0, 1), vec![Flag::Probe]),
        (m(11, 0.0, 1), vec![]),
    ];
    for (row, (measures, want)) in table.into_iter().enumerate() {
        assert_eq!(t.flags(&measures), want, "row {row}");
    }
}

#[test]
fn lots_outside_the_window_do_not_count() {
    let mut t = Tally::new(ShillParams {
        from: 50_000,
        to: 100_000,
        ..params()
    });
    t.add(&lot(1, None, vec![b(1, 0)])); // ends at 100 s: outside [50 s, 100 s)
    let mut inside = lot(1, None, vec![b(1, 0)]);
    inside.ends_at = 99_999;
    t.add(&inside);
    assert_eq!(t.report().lots, 1);
}
