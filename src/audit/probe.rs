//! The "discover-and-stop" probe of a proxy maximum.
//!
//! A prober raises by the minimum increment, each time answered at once by the leader's
//! proxy a full increment above (so the prober never leads), until one answer rises by
//! less than a full increment: the proxy reached its maximum, which the prober has now
//! learnt. Then it stops. Whoever knows a rival's maximum can hand it to a seller, or bid
//! one increment under it elsewhere. An honest bidder's run ends where its own valuation
//! ends, which only by chance is the moment the leader's maximum is found.

use super::shill::LotBid;
use crate::vocab::DealerId;

/// Whether `dealer`'s last run of bids on a lot is a probe: at least `min_steps`
/// consecutive accepted bids (no other dealer's accepted bid between them), each exactly
/// the minimum and leaving the dealer behind; every answer but the last a full increment
/// above the bid, the last one less; and no bid by the dealer after that run.
///
/// `bids` are the lot's accepted bids in order.
pub fn is_probe(bids: &[LotBid], dealer: DealerId, min_steps: u32) -> bool {
    let Some(last) = bids.iter().rposition(|b| b.dealer == dealer) else {
        return false;
    };
    // The run ending at the dealer's last bid, walked backwards.
    let run: Vec<&LotBid> = bids[..=last]
        .iter()
        .rev()
        .take_while(|b| b.dealer == dealer)
        .collect();
    if run.len() < min_steps.max(1) as usize {
        return false;
    }
    let full = |b: &LotBid| b.price_after >= b.amount.saturating_add(b.increment);
    run.iter()
        .all(|b| b.amount == b.min_next_before && !b.leading)
        && !full(run[0])
        && run[1..].iter().all(|b| full(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bid by `dealer` at `amount` (the minimum unless `above`), increment 10, answered
    /// at `answer`.
    fn bid(dealer: u32, amount: u64, answer: u64, leading: bool) -> LotBid {
        LotBid {
            dealer: DealerId(dealer),
            at: 0,
            amount,
            min_next_before: amount,
            price_after: answer,
            increment: 10,
            leading,
        }
    }

    #[test]
    fn the_probe_table() {
        let p = DealerId(2);
        // (name, bids, min_steps, is a probe)
        let table: Vec<(&str, Vec<LotBid>, u32, bool)> = vec![
            (
                "three full answers then a short one, then silence",
                vec![
                    bid(1, 100, 100, true),
                    bid(2, 110, 120, false),
                    bid(2, 130, 140, false),
                    bid(2, 150, 155, false),
                ],
                3,
                true,
            ),
            (
                "too few steps",
                vec![bid(2, 110, 120, false), bid(2, 130, 135, false)],
                3,
                false,
            ),
            (
                "the price never stopped rising by a full increment",
                vec![
                    bid(2, 110, 120, false),
                    bid(2, 130, 140, false),
                    bid(2, 150, 160, false),
                ],
                3,
                false,
            ),
            (
                "took the lead: not a probe, a win",
                vec![
                    bid(2, 110, 120, false),
                    bid(2, 130, 140, false),
                    bid(2, 150, 150, true),
                ],
                3,
                false,
            ),
            (
                "raised above the minimum",
                vec![
                    bid(2, 110, 120, false),
                    LotBid {
                        min_next_before: 130,
                        ..bid(2, 150, 160, false)
                    },
                    bid(2, 170, 175, false),
                ],
                3,
                false,
            ),
            (
                "bid again after the discovery",
                vec![
                    bid(2, 110, 120, false),
                    bid(2, 130, 140, false),
                    bid(2, 150, 155, false),
                    bid(3, 165, 165, true),
                    bid(2, 175, 175, true),
                ],
                3,
                false,
            ),
            (
                "another dealer's bid breaks the run",
                vec![
                    bid(2, 110, 120, false),
                    bid(3, 130, 130, true),
                    bid(2, 140, 150, false),
                    bid(2, 160, 165, false),
                ],
                3,
                false,
            ),
            ("no bid at all", vec![bid(1, 100, 100, true)], 3, false),
        ];
        for (name, bids, steps, want) in table {
            assert_eq!(is_probe(&bids, p, steps), want, "{name}");
        }
    }
}
