//! Money: a count of fen (1 yuan = 100 fen) in a `u64`.
//!
//! Nothing in gavel uses floats for money, and every operation that could overflow is
//! checked: a sum that does not fit is an input error for the caller to reject, never a
//! wrap-around.

/// An amount of money in fen (minor units of CNY).
pub type Fen = u64;

/// Fen in one yuan.
pub const FEN_PER_YUAN: Fen = 100;

/// The largest amount any client may name (10^12 fen = 10 billion yuan). Larger amounts are
/// `invalid`: no car costs that much, and the cap keeps every sum of a few amounts far from
/// `u64::MAX`, so checked arithmetic on accepted values never fails in practice.
pub const MAX_AMOUNT: Fen = 1_000_000_000_000;
