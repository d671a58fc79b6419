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
