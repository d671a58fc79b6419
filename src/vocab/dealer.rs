//! A dealer's standing: whether it may bid. The book keeps it; the alliance's sanctions
//! change it; a consumer reads it beside the dealer's score.

use serde::{Deserialize, Serialize};

/// Standing of a dealer in the alliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealerStatus {
    /// May bid.
    Active,
    /// Temporarily barred by the alliance or an admin; may be reinstated.
    Suspended,
    /// Removed from the alliance.
    Expelled,
}
