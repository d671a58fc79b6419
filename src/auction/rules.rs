//! The auction rules the book runs under.
//!
//! Rules are data, not constants: the engine builds them from configuration and journals
//! them (as part of `crate::market::Rules`), so a replay applies exactly the rules the live
//! engine did, whatever the configuration file says on the day of the replay.

use super::increments::Increments;
use crate::vocab::Fen;
use crate::vocab::RULES_VERSION;
use serde::{Deserialize, Serialize};

/// Every tunable rule of the auction core. Defaults are the contract's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Auction length when a listing does not choose one (20 minutes).
    pub default_duration_ms: u64,
    /// Shortest auction a listing may choose.
    pub min_duration_ms: u64,
    /// Longest auction a listing may choose.
    pub max_duration_ms: u64,
    /// A price- or leader-changing bid this close to `ends_at` extends the lot.
    pub extend_window_ms: u64,
    /// An extension moves `ends_at` to `now + extend_by_ms` (never earlier).
    pub extend_by_ms: u64,
    /// After this many extensions the close is hard.
    pub max_extensions: u32,
    /// How long a seller has to accept or reject a best offer under the reserve.
    pub decision_window_ms: u64,
    /// Buying power = deposit × leverage.
    pub leverage: u64,
    /// The increment ladder.
    pub increments: Increments,
    /// Lots whose close passed while the engine was down get this long after recovery.
    pub outage_grace_ms: u64,
    /// How long a `bid_id` is remembered once its lot takes no more bids. Defaulted when
    /// absent, so logs written before it existed still load.
    #[serde(default = "default_bid_id_retention_ms")]
    pub bid_id_retention_ms: u64,
    /// Which generation of the rules applies (`crate::vocab::RULES_VERSION` lists what
    /// each changed). A rule that changes how a command is decided is gated by the version
    /// that introduced it, so a journal replays under the rules it was written with.
    #[serde(default = "first_version")]
    pub version: u32,
    /// How long a loan drawn on a dealer's credit line runs before it is due. Defaulted
    /// when absent, so rules written before credit lines existed still load.
    #[serde(default = "default_credit_due_ms")]
    pub credit_due_ms: u64,
}

/// The version of rules journaled before versions existed.
pub(crate) fn first_version() -> u32 {
    crate::vocab::FIRST_RULES_VERSION
}

/// The loan term of rules journaled without one: 60 days, the common term of a Chinese
/// dealer's floor-plan loan (车商贷). Part of the durable format (rules are written
/// without the term while it is this default), so it must never change.
pub(crate) fn default_credit_due_ms() -> u64 {
    60 * 86_400_000
}

/// The retention of rules journaled before it existed: 7 days.
pub(crate) fn default_bid_id_retention_ms() -> u64 {
    604_800_000
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            default_duration_ms: 1_200_000,
            min_duration_ms: 60_000,
            max_duration_ms: 604_800_000,
            extend_window_ms: 30_000,
            extend_by_ms: 30_000,
            max_extensions: 40,
            decision_window_ms: 86_400_000,
            leverage: 10,
            increments: Increments::standard(),
            outage_grace_ms: 300_000,
            bid_id_retention_ms: default_bid_id_retention_ms(),
            version: RULES_VERSION,
            credit_due_ms: default_credit_due_ms(),
        }
    }
}

impl Rules {
    /// The deposit's part of buying power (the book adds available credit). Saturates: a cap of `u64::MAX` is "no cap", which is the
    /// honest reading of a deposit so large the product does not fit.
    pub fn buying_power(&self, deposit: Fen) -> Fen {
        deposit.checked_mul(self.leverage).unwrap_or(Fen::MAX)
    }

    /// Until when whatever fell due during an outage ending at `now` gets its grace: the
    /// same moment for the lots and for the alliance's complaints.
    pub fn after_outage(&self, now: u64) -> u64 {
        now.saturating_add(self.outage_grace_ms)
    }
}
