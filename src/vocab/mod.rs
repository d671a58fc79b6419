//! The shared vocabulary of the domain: ids, money, the car and its inspection report,
//! a dealer's standing, the VIN check.
//!
//! Both rule books (`crate::auction`, `crate::alliance`) speak these terms, and neither
//! depends on the other to do so. Pure values and checks: no state, no I/O, and no import
//! of any other module of the crate.
//!
//! - [`ids`]: ids as small integers inside, prefixed strings on the wire (`A17`).
//! - [`money`]: fen in a `u64`, and the cap on any amount a client may name.
//! - [`car`]: the vehicle and its inspection report.
//! - [`dealer`]: a dealer's status.
//! - [`vin`]: the VIN's alphabet and check digit.

pub mod car;
pub mod dealer;
pub mod ids;
pub mod money;
pub mod vin;

pub use car::{Inspection, Vehicle};
pub use dealer::DealerStatus;
pub(crate) use ids::id_type;
pub use ids::{DealerId, LotId, ParseIdError, SellerId, ServiceId};
pub use money::{Fen, FEN_PER_YUAN, MAX_AMOUNT};
pub use vin::{check_vin, vin_check_digit};

/// The generation of the rules this build decides new commands by. A rule that changes how
/// a command is decided takes effect only from the version that introduced it: the
/// engine journals its rules (`Configure`, the version with them), and a replay decides
/// every command under the rules in force when it was journaled, so an old journal
/// replays to exactly the state its engine reached.
///
/// - 1: the rules as first written (and of every journal written before versions).
/// - 2: a leader's raise with an `amount` over 10^12 fen is `invalid`; a plain bid (no
///   `max`) from the leader is `already_leading`; a retail sale is refused when the car's
///   report shows structural, fire or flood damage, a tampered odometer or a title that
///   cannot be transferred (zero tolerance at the point of sale).
/// - 3: a bid with a `max` on a lot still in its preview (`scheduled`) is a pre-bid from a
///   dealer in good standing (before, it was `not_live`); pre-bids resolve when the lot
///   opens, and a seller may not cancel a lot that holds one.
pub const RULES_VERSION: u32 = 3;

/// The version of rules an empty journal starts with, and of rules journaled before
/// versions existed.
pub const FIRST_RULES_VERSION: u32 = 1;
