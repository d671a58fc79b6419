//! The car as the seller described it and as the inspector found it: what dealers bid on,
//! what the alliance certifies, what a consumer reads.

use serde::{Deserialize, Serialize};

/// The car as the seller described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    /// 17-character VIN, validated by the API before it becomes a command.
    pub vin: String,
    /// Manufacturer.
    pub make: String,
    /// Model name.
    pub model: String,
    /// Model year.
    pub year: u16,
    /// Odometer reading.
    pub mileage_km: u32,
    /// Where the car stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// The inspection report the dealers bid on, carried unchanged to certified inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// Major structural (frame) damage found.
    pub structural_damage: bool,
    /// Fire damage found.
    pub fire: bool,
    /// Flood damage found.
    pub flood: bool,
    /// Odometer tampering found.
    pub odometer_tampered: bool,
    /// The title can be transferred to a buyer.
    pub title_transferable: bool,
    /// Overall grade, 0–5.
    pub grade: u8,
    /// The inspector's notes.
    pub notes: String,
}
