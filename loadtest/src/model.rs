//! The published bidding rules (PROTOCOL.md, "Bidding semantics"), implemented again from
//! the contract's text and nothing else, so the harness can say whether the prices and
//! leaders a server acknowledged are the ones the rules imply.
//!
//! Only what the load scenarios exercise is modelled: placed amounts, proxy maxima, the
//! leader's max raise, the reserve and the increment tiers. Buy-now is not (the scenarios
//! list no buy-now price); soft close is checked only as "ends_at never moves earlier".

use serde::Serialize;
use std::collections::BTreeMap;

/// The default increment tiers, in fen: `[below, step]` bands, then the step above them.
/// (Contract: below 10,000 yuan → 100; below 50,000 → 200; below 100,000 → 500; below
/// 300,000 → 1,000; below 1,000,000 → 2,000; above → 5,000.)
const TIERS: [(u64, u64); 5] = [
    (1_000_000, 10_000),
    (5_000_000, 20_000),
    (10_000_000, 50_000),
    (30_000_000, 100_000),
    (100_000_000, 200_000),
];
const ABOVE: u64 = 500_000;

/// The increment over price level `p`, fen.
pub fn increment(p: u64) -> u64 {
    TIERS
        .iter()
        .find(|(below, _)| p < *below)
        .map_or(ABOVE, |(_, step)| *step)
}

/// Why the model refuses a bid (the contract's reasons it can decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Under `min_next`.
    BelowMinimum,
    /// Amount 0, over 10^12, max under amount, or a leader's raise that does not raise.
    Invalid,
}

/// One auction as the rules see it.
#[derive(Debug, Clone)]
pub struct ModelLot {
    start: u64,
    reserve: u64,
    price: Option<u64>,
    /// (dealer, max, placed amount) of the leader.
    lead: Option<(u32, u64, u64)>,
    /// The highest max among bidders who do not lead.
    runner_up: Option<u64>,
    bids: u64,
}

const MAX_AMOUNT: u64 = 1_000_000_000_000;

impl ModelLot {
    /// A lot with no bids.
    pub fn new(start: u64, reserve: u64) -> Self {
        Self {
            start,
            reserve,
            price: None,
            lead: None,
            runner_up: None,
            bids: 0,
        }
    }

    /// The lowest acceptable amount.
    pub fn min_next(&self) -> u64 {
        match self.price {
            None => self.start,
            Some(p) => p + increment(p),
        }
    }

    /// Current price.
    pub fn price(&self) -> Option<u64> {
        self.price
    }

    /// Current leader.
    pub fn leader(&self) -> Option<u32> {
        self.lead.map(|l| l.0)
    }

    /// Accepted bids.
    pub fn bids(&self) -> u64 {
        self.bids
    }

    /// Applies a bid; returns the price and leader after it, or why it is refused.
    pub fn bid(
        &mut self,
        dealer: u32,
        amount: u64,
        max: Option<u64>,
    ) -> Result<(u64, u32), Refusal> {
        if let Some((leader, lmax, lamount)) = self.lead.filter(|l| l.0 == dealer) {
            // "A bid from the dealer who already leads is a max raise": amount ignored, the
            // price moves only to meet the reserve.
            let m = max.ok_or(Refusal::Invalid)?;
            if m <= lmax || m > MAX_AMOUNT {
                return Err(Refusal::Invalid);
            }
            self.lead = Some((leader, m, lamount));
            let mut p = self.price.unwrap_or(lamount);
            if m >= self.reserve {
                p = p.max(self.reserve);
            }
            self.price = Some(p);
            self.bids += 1;
            return Ok((p, leader));
        }
        if amount == 0 || amount > MAX_AMOUNT {
            return Err(Refusal::Invalid);
        }
        let m = max.unwrap_or(amount);
        if m < amount || m > MAX_AMOUNT {
            return Err(Refusal::Invalid);
        }
        if amount < self.min_next() {
            return Err(Refusal::BelowMinimum);
        }
        let price = match self.lead {
            None => {
                self.lead = Some((dealer, m, amount));
                amount
            }
            Some((old, omax, oamount)) => {
                // Equal maxima: the earlier bid (the sitting leader) keeps the lead.
                if m > omax {
                    self.runner_up = Some(self.runner_up.map_or(omax, |r| r.max(omax)));
                    self.lead = Some((dealer, m, amount));
                } else {
                    self.runner_up = Some(self.runner_up.map_or(m, |r| r.max(m)));
                    self.lead = Some((old, omax, oamount));
                }
                let (_, lmax, lamount) = self.lead.unwrap_or((dealer, m, amount));
                let r = self.runner_up.unwrap_or(0);
                lamount.max((r + increment(r)).min(lmax))
            }
        };
        let (leader, lmax, _) = self.lead.unwrap_or((dealer, m, amount));
        let price = if lmax >= self.reserve {
            price.max(self.reserve)
        } else {
            price
        };
        self.price = Some(price);
        self.bids += 1;
        Ok((price, leader))
    }
}

/// An acknowledged, accepted bid as the harness's ledger holds it.
#[derive(Debug, Clone)]
pub struct AckedBid {
    /// Server's sequence number.
    pub seq: u64,
    /// Harness dealer index.
    pub dealer: u32,
    /// Placed amount.
    pub amount: u64,
    /// Proxy ceiling.
    pub max: Option<u64>,
    /// What the server said: price, leading, ends_at.
    pub price: u64,
    /// What the server said.
    pub leading: bool,
    /// What the server said.
    pub ends_at: u64,
}

/// What the model concluded about one auction.
#[derive(Debug, Clone, Serialize)]
pub struct LotVerdict {
    /// Auction id.
    pub auction: String,
    /// Accepted bids in the ledger.
    pub acked: u64,
    /// Price the rules give after the ledger's bids.
    pub price: Option<u64>,
    /// Leader the rules give (harness dealer index).
    pub leader: Option<u32>,
    /// Differences between the server's acknowledgements and the rules, first few.
    pub mismatches: Vec<String>,
    /// Total number of differences.
    pub mismatch_count: u64,
}

/// Replays an auction's acknowledged bids in `seq` order under the rules and compares every
/// acknowledgement's price and `leading` flag with what the rules give at that point.
pub fn check_lot(auction: &str, start: u64, reserve: u64, bids: &mut [AckedBid]) -> LotVerdict {
    bids.sort_by_key(|b| b.seq);
    let mut lot = ModelLot::new(start, reserve);
    let mut mismatches = Vec::new();
    let mut count = 0u64;
    let mut last_end = 0u64;
    let mut seqs = BTreeMap::new();
    for b in bids.iter() {
        if let Some(prev) = seqs.insert(b.seq, b.dealer) {
            count += 1;
            push(
                &mut mismatches,
                format!(
                    "seq {} acknowledged twice (dealers {prev} and {})",
                    b.seq, b.dealer
                ),
            );
        }
        match lot.bid(b.dealer, b.amount, b.max) {
            Ok((price, leader)) => {
                let leading = leader == b.dealer;
                if price != b.price || leading != b.leading {
                    count += 1;
                    push(
                        &mut mismatches,
                        format!(
                            "seq {} dealer {} amount {} max {:?}: server price {} leading {}, rules price {} leading {}",
                            b.seq, b.dealer, b.amount, b.max, b.price, b.leading, price, leading
                        ),
                    );
                }
            }
            Err(r) => {
                count += 1;
                push(
                    &mut mismatches,
                    format!(
                        "seq {} dealer {} amount {} max {:?}: accepted by the server, {r:?} under the rules (min_next {})",
                        b.seq, b.dealer, b.amount, b.max, lot.min_next()
                    ),
                );
            }
        }
        if b.ends_at < last_end {
            count += 1;
            push(
                &mut mismatches,
                format!(
                    "seq {}: ends_at moved earlier ({} < {last_end})",
                    b.seq, b.ends_at
                ),
            );
        }
        last_end = last_end.max(b.ends_at);
    }
    LotVerdict {
        auction: auction.to_owned(),
        acked: lot.bids(),
        price: lot.price(),
        leader: lot.leader(),
        mismatches,
        mismatch_count: count,
    }
}

fn push(v: &mut Vec<String>, s: String) {
    if v.len() < 10 {
        v.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: u64 = 100; // fen per yuan

    #[test]
    fn increment_tiers() {
        assert_eq!(increment(0), 100 * Y);
        assert_eq!(increment(9_999 * Y), 100 * Y);
        assert_eq!(increment(10_000 * Y), 200 * Y);
        assert_eq!(increment(50_000 * Y), 500 * Y);
        assert_eq!(increment(100_000 * Y), 1_000 * Y);
        assert_eq!(increment(300_000 * Y), 2_000 * Y);
        assert_eq!(increment(1_000_000 * Y), 5_000 * Y);
    }

    #[test]
    fn proxy_war() {
        let mut l = ModelLot::new(50_000 * Y, 1_000_000 * Y);
        // A opens at 50,000 with a ceiling of 60,000.
        assert_eq!(l.bid(1, 50_000 * Y, Some(60_000 * Y)), Ok((50_000 * Y, 1)));
        // B bids 52,000 plain: A's proxy answers at 52,000 + 500.
        assert_eq!(l.bid(2, 52_000 * Y, None), Ok((52_500 * Y, 1)));
        // Below min_next (53,000).
        assert_eq!(l.bid(2, 52_900 * Y, None), Err(Refusal::BelowMinimum));
        // B with an equal max: the earlier bid (A) leads, at that max.
        assert_eq!(l.bid(2, 53_000 * Y, Some(60_000 * Y)), Ok((60_000 * Y, 1)));
        // B over A's max: B leads at A's max + increment.
        assert_eq!(l.bid(2, 60_500 * Y, Some(70_000 * Y)), Ok((60_500 * Y, 2)));
        // B raises its own max: price unchanged; a raise that does not raise is invalid.
        assert_eq!(l.bid(2, 1, Some(80_000 * Y)), Ok((60_500 * Y, 2)));
        assert_eq!(l.bid(2, 1, Some(80_000 * Y)), Err(Refusal::Invalid));
        assert_eq!(l.bid(2, 1, None), Err(Refusal::Invalid));
        assert_eq!(l.bids(), 5);
    }

    #[test]
    fn reserve_lifts_the_price() {
        let mut l = ModelLot::new(1_000 * Y, 5_000 * Y);
        assert_eq!(l.bid(1, 1_000 * Y, Some(6_000 * Y)), Ok((5_000 * Y, 1)));
        let mut l = ModelLot::new(1_000 * Y, 5_000 * Y);
        assert_eq!(l.bid(1, 1_000 * Y, None), Ok((1_000 * Y, 1)));
        // The leader's raise to the reserve lifts the price to it.
        assert_eq!(l.bid(1, 0, Some(5_000 * Y)), Ok((5_000 * Y, 1)));
    }

    #[test]
    fn check_flags_a_wrong_price() {
        let mut bids = vec![
            AckedBid {
                seq: 2,
                dealer: 2,
                amount: 1_100 * Y,
                max: None,
                price: 1_100 * Y,
                leading: true,
                ends_at: 10,
            },
            AckedBid {
                seq: 1,
                dealer: 1,
                amount: 1_000 * Y,
                max: None,
                price: 1_000 * Y,
                leading: true,
                ends_at: 10,
            },
        ];
        let v = check_lot("A1", 1_000 * Y, 0, &mut bids);
        assert_eq!(v.mismatch_count, 0, "{:?}", v.mismatches);
        assert_eq!(v.leader, Some(2));
        bids[1].price = 1_150 * Y;
        let v = check_lot("A1", 1_000 * Y, 0, &mut bids);
        assert_eq!(v.mismatch_count, 1);
    }
}
