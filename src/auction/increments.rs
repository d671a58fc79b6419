//! The increment ladder: how far each bid must rise over the price.

use crate::vocab::{Fen, FEN_PER_YUAN};
use serde::{Deserialize, Serialize};

/// One step of the increment ladder: while the price is below `below`, bids rise by `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Exclusive upper bound of the price band, in fen.
    pub below: Fen,
    /// The increment inside the band, in fen.
    pub step: Fen,
}

/// Tiered bid increments by price level. `increment(p)` is the step that applies when
/// bidding over price `p`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Increments {
    tiers: Vec<Tier>,
    above: Fen,
}

/// Why an increment ladder was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IncrementsError {
    /// A step of zero would let bids repeat the same price forever.
    #[error("increment steps must be at least 1 fen")]
    ZeroStep,
    /// Tiers must be listed from the lowest band up, each bound above the last.
    #[error("increment tier bounds must be strictly increasing")]
    NotIncreasing,
}

impl Increments {
    /// Builds a ladder from bands (lowest first) and the step above the last band.
    pub fn new(tiers: Vec<Tier>, above: Fen) -> Result<Self, IncrementsError> {
        if above == 0 || tiers.iter().any(|t| t.step == 0) {
            return Err(IncrementsError::ZeroStep);
        }
        if tiers.windows(2).any(|w| w[0].below >= w[1].below) {
            return Err(IncrementsError::NotIncreasing);
        }
        Ok(Self { tiers, above })
    }

    /// The default ladder from PROTOCOL.md, in yuan: below 10,000 → 100; below 50,000 → 200;
    /// below 100,000 → 500; below 300,000 → 1,000; below 1,000,000 → 2,000; above → 5,000.
    pub fn standard() -> Self {
        let y = FEN_PER_YUAN;
        let tiers = [
            (10_000, 100),
            (50_000, 200),
            (100_000, 500),
            (300_000, 1_000),
            (1_000_000, 2_000),
        ]
        .into_iter()
        .map(|(below, step)| Tier {
            below: below * y,
            step: step * y,
        })
        .collect();
        Self {
            tiers,
            above: 5_000 * y,
        }
    }

    /// The step for bidding over `price`.
    pub fn increment(&self, price: Fen) -> Fen {
        // Six tiers: a linear scan beats a binary search at this size.
        self.tiers
            .iter()
            .find(|t| price < t.below)
            .map_or(self.above, |t| t.step)
    }

    /// `price + increment(price)`, or `None` if that does not fit in a `u64`.
    pub fn next_after(&self, price: Fen) -> Option<Fen> {
        price.checked_add(self.increment(price))
    }

    /// The bands, lowest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The step above the last band.
    pub fn above(&self) -> Fen {
        self.above
    }
}

impl Default for Increments {
    fn default() -> Self {
        Self::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_ladder_matches_the_contract() {
        let inc = Increments::standard();
        // (price in yuan, expected step in yuan): each band's edges.
        let table = [
            (0, 100),
            (9_999, 100),
            (10_000, 200),
            (49_999, 200),
            (50_000, 500),
            (99_999, 500),
            (100_000, 1_000),
            (299_999, 1_000),
            (300_000, 2_000),
            (999_999, 2_000),
            (1_000_000, 5_000),
            (50_000_000, 5_000),
        ];
        for (price, step) in table {
            assert_eq!(inc.increment(price * 100), step * 100, "price {price} yuan");
        }
        // One fen below a band edge is still in the lower band.
        assert_eq!(inc.increment(10_000 * 100 - 1), 100 * 100);
    }

    #[test]
    fn next_after_is_checked() {
        let inc = Increments::standard();
        assert_eq!(inc.next_after(u64::MAX), None);
        assert_eq!(inc.next_after(0), Some(10_000));
    }

    #[test]
    fn bad_ladders_are_refused() {
        let t = |below, step| Tier { below, step };
        assert_eq!(
            Increments::new(vec![t(10, 0)], 5),
            Err(IncrementsError::ZeroStep)
        );
        assert_eq!(Increments::new(vec![], 0), Err(IncrementsError::ZeroStep));
        assert_eq!(
            Increments::new(vec![t(10, 1), t(10, 2)], 5),
            Err(IncrementsError::NotIncreasing)
        );
        assert!(Increments::new(vec![t(10, 1), t(20, 2)], 5).is_ok());
    }
}
