//! Validation of `POST /v1/listings` bodies.
//!
//! A seller's app should learn everything wrong with a listing from one answer, so the body
//! is read loosely (every field as an untyped JSON value) and then checked field by field,
//! collecting every problem: the 422 reply names each bad field once, by its dotted path
//! (`vehicle.vin`, `inspection.grade`, `reserve`). Only a body that is not a JSON object at
//! all gets a single error, naming `body`.
//!
//! What passes becomes a `Listing`, the input of `Command::ListCar`; the core checks the
//! price order and duration again (it trusts no caller), but this is where a person gets
//! told what to fix.
//!
//! Rules beyond PROTOCOL.md's (it states the VIN, year, mileage, price and duration rules):
//! texts are bounded ([`MAX_NAME_CHARS`], [`MAX_NOTES_CHARS`]) so a listing cannot carry
//! megabytes into every snapshot; make, model and city may not be blank or contain control
//! characters; numbers must be written as integers; `starts_at` must be a real time (before
//! the year 10000), which also keeps `starts_at + duration` from overflowing.

use crate::auction::Listing;
use crate::vocab::{check_vin, Inspection, Vehicle, FEN_PER_YUAN, MAX_AMOUNT};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest make, model or city, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest inspection notes, in characters.
pub const MAX_NOTES_CHARS: usize = 4_000;
/// Earliest model year accepted.
pub const MIN_YEAR: u16 = 1980;
/// Latest `starts_at` accepted: 9999-12-31T23:59:59.999Z in ms.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// The bounds a listing is checked against, from configuration and the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingBounds {
    /// This calendar year; model years up to next year are accepted.
    pub current_year: u16,
    /// Shortest `duration_s` (`auction.min_duration_s`).
    pub min_duration_s: u64,
    /// Longest `duration_s` (`auction.max_duration_s`).
    pub max_duration_s: u64,
    /// Shortest `preview_s` (`auction.min_preview_s`).
    pub min_preview_s: u64,
    /// Longest `preview_s` (`auction.max_preview_s`).
    pub max_preview_s: u64,
    /// The preview of a listing that names neither `starts_at` nor `preview_s`
    /// (`auction.default_preview_s`; 0: it opens at once).
    pub default_preview_s: u64,
    /// Now, in ms since the epoch: a preview starts when the listing is made.
    pub now_ms: u64,
}

/// One bad field: an element of the 422 body's `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field (`vehicle.vin`), or `body` for the body as a whole.
    pub field: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// The 422 body: `{"errors": [{"field", "message"}, …]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    /// Every bad field.
    pub errors: Vec<FieldError>,
}

/// A listing body as read: each field an untyped value (`Null` when absent), so a wrong
/// type in one field is reported for that field instead of failing the whole body.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ListingInput {
    /// `{vin, make, model, year, mileage_km, city?}`.
    #[serde(default)]
    pub vehicle: Value,
    /// `{structural_damage, fire, flood, odometer_tampered, title_transferable, grade, notes}`.
    #[serde(default)]
    pub inspection: Value,
    /// Fen.
    #[serde(default)]
    pub start_price: Value,
    /// Fen.
    #[serde(default)]
    pub reserve: Value,
    /// Fen, optional.
    #[serde(default)]
    pub buy_now: Value,
    /// Ms since the epoch, optional.
    #[serde(default)]
    pub starts_at: Value,
    /// Seconds, optional.
    #[serde(default)]
    pub duration_s: Value,
    /// Seconds of preview before bidding opens, optional; not with `starts_at`.
    #[serde(default)]
    pub preview_s: Value,
}

/// Validates a `POST /v1/listings` body.
pub fn validate_listing(body: &[u8], bounds: &ListingBounds) -> Result<Listing, Vec<FieldError>> {
    ListingInput::from_json(body)?.validate(bounds)
}

impl ListingInput {
    /// Reads a body; fails (with one error naming `body`) only if it is not a JSON object.
    pub fn from_json(body: &[u8]) -> Result<Self, Vec<FieldError>> {
        let body_error = |message: String| {
            vec![FieldError {
                field: "body",
                message,
            }]
        };
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| body_error(format!("is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(body_error("must be a JSON object".into()));
        }
        // Every field is a `Value` with a default, so an object always fits.
        Self::deserialize(value).map_err(|_| body_error("must be a JSON object".into()))
    }

    /// Checks every field; the listing, or every problem found.
    pub fn validate(&self, bounds: &ListingBounds) -> Result<Listing, Vec<FieldError>> {
        let mut c = Check::default();
        let vehicle = c.vehicle(&self.vehicle, bounds);
        let inspection = c.inspection(&self.inspection);

        let start_price = c.required("start_price", uint(&self.start_price));
        let reserve = c.required("reserve", uint(&self.reserve));
        let buy_now = c.optional("buy_now", uint(&self.buy_now));
        if let Some(p) = start_price {
            if p < FEN_PER_YUAN {
                c.err("start_price", "must be at least 100 fen (1 yuan)");
            }
        }
        for (field, v) in [
            ("start_price", start_price),
            ("reserve", reserve),
            ("buy_now", buy_now),
        ] {
            if v.is_some_and(|v| v > MAX_AMOUNT) {
                c.err(field, "must be at most 1000000000000 fen");
            }
        }
        if let (Some(s), Some(r)) = (start_price, reserve) {
            if r < s {
                c.err("reserve", "must be at least start_price");
            }
        }
        if let (Some(r), Some(b)) = (reserve, buy_now) {
            if b < r {
                c.err("buy_now", "must be at least reserve");
            }
        }

        let starts_at = c.optional("starts_at", uint(&self.starts_at));
        if starts_at.is_some_and(|t| t > MAX_TIMESTAMP_MS) {
            c.err(
                "starts_at",
                "must be a time before the year 10000 (ms since the epoch)",
            );
        }
        let preview_s = c.optional("preview_s", uint(&self.preview_s));
        let (min_p, max_p) = (bounds.min_preview_s, bounds.max_preview_s);
        let preview_s = match (preview_s, starts_at) {
            (Some(_), Some(_)) => {
                c.err("preview_s", "give starts_at or preview_s, not both");
                None
            }
            (Some(p), None) if !(min_p..=max_p).contains(&p) => {
                c.err(
                    "preview_s",
                    format!("must be from {min_p} to {max_p} seconds"),
                );
                None
            }
            (Some(p), None) => Some(p),
            (None, Some(_)) => None,
            (None, None) => Some(bounds.default_preview_s).filter(|&p| p > 0),
        };
        // Bounded by configuration (at most ten years), so this cannot overflow.
        let starts_at = preview_s
            .map(|p| bounds.now_ms.saturating_add(p.saturating_mul(1_000)))
            .or(starts_at);
        let duration_s = c.optional("duration_s", uint(&self.duration_s));
        let mut duration_ms = None;
        if let Some(d) = duration_s {
            match d.checked_mul(1_000) {
                Some(ms) if (bounds.min_duration_s..=bounds.max_duration_s).contains(&d) => {
                    duration_ms = Some(ms)
                }
                _ => c.err(
                    "duration_s",
                    format!(
                        "must be from {} to {} seconds",
                        bounds.min_duration_s, bounds.max_duration_s
                    ),
                ),
            }
        }

        match (vehicle, inspection, start_price, reserve) {
            (Some(vehicle), Some(inspection), Some(start_price), Some(reserve))
                if c.errors.is_empty() =>
            {
                Ok(Listing {
                    vehicle,
                    inspection,
                    start_price,
                    reserve,
                    buy_now,
                    starts_at,
                    duration_ms,
                })
            }
            _ => {
                if c.errors.is_empty() {
                    // Unreachable by construction (every `None` above pushed an error); kept
                    // so a future edit that breaks that cannot turn into an empty 422.
                    c.err("body", "is not a valid listing");
                }
                Err(c.errors)
            }
        }
    }
}

/// Collects errors.
#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn err(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// A required value: absent or null is "is required".
    fn required<T>(&mut self, field: &'static str, r: Result<Option<T>, String>) -> Option<T> {
        match r {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                self.err(field, "is required");
                None
            }
            Err(m) => {
                self.err(field, m);
                None
            }
        }
    }

    /// An optional value: absent or null is `None`.
    fn optional<T>(&mut self, field: &'static str, r: Result<Option<T>, String>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(m) => {
                self.err(field, m);
                None
            }
        }
    }

    /// A required object. Its fields are checked only if it is one: a missing `vehicle` is
    /// one error, not six.
    fn object<'v>(&mut self, field: &'static str, v: &'v Value) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            Value::Null => {
                self.err(field, "is required");
                None
            }
            _ => {
                self.err(field, "must be an object");
                None
            }
        }
    }

    fn vehicle(&mut self, v: &Value, bounds: &ListingBounds) -> Option<Vehicle> {
        let m = self.object("vehicle", v)?;
        let get = |k: &str| m.get(k).unwrap_or(&Value::Null);

        let vin = self.required("vehicle.vin", string(get("vin")));
        let vin = vin.and_then(|vin| match check_vin(vin) {
            Ok(()) => Some(vin.to_owned()),
            Err(e) => {
                self.err("vehicle.vin", e);
                None
            }
        });
        let make = self.name("vehicle.make", get("make"), true);
        let model = self.name("vehicle.model", get("model"), true);
        let city = self.name("vehicle.city", get("city"), false);

        let max_year = bounds.current_year.saturating_add(1);
        let year = self.required("vehicle.year", uint(get("year")));
        let year = year.and_then(|y| match u16::try_from(y) {
            Ok(y) if (MIN_YEAR..=max_year).contains(&y) => Some(y),
            _ => {
                self.err(
                    "vehicle.year",
                    format!("must be from {MIN_YEAR} to {max_year}"),
                );
                None
            }
        });
        let mileage = self.required("vehicle.mileage_km", uint(get("mileage_km")));
        let mileage = mileage.and_then(|km| match u32::try_from(km) {
            Ok(km) => Some(km),
            Err(_) => {
                self.err(
                    "vehicle.mileage_km",
                    format!("must be at most {} km", u32::MAX),
                );
                None
            }
        });
        Some(Vehicle {
            vin: vin?,
            make: make??,
            model: model??,
            year: year?,
            mileage_km: mileage?,
            city: city?,
        })
    }

    fn inspection(&mut self, v: &Value) -> Option<Inspection> {
        let m = self.object("inspection", v)?;
        let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
        let mut flag = |field, key| self.required(field, boolean(get(key)));
        let structural_damage = flag("inspection.structural_damage", "structural_damage");
        let fire = flag("inspection.fire", "fire");
        let flood = flag("inspection.flood", "flood");
        let odometer_tampered = flag("inspection.odometer_tampered", "odometer_tampered");
        let title_transferable = flag("inspection.title_transferable", "title_transferable");
        let grade = self.required("inspection.grade", uint(get("grade")));
        let grade = grade.and_then(|g| match u8::try_from(g) {
            Ok(g) if g <= 5 => Some(g),
            _ => {
                self.err("inspection.grade", "must be from 0 to 5");
                None
            }
        });
        let notes = self.required("inspection.notes", string(get("notes")));
        let notes = notes.and_then(|n| {
            if n.chars().count() > MAX_NOTES_CHARS {
                self.err(
                    "inspection.notes",
                    format!("must be at most {MAX_NOTES_CHARS} characters"),
                );
                None
            } else {
                Some(n.to_owned())
            }
        });
        Some(Inspection {
            structural_damage: structural_damage?,
            fire: fire?,
            flood: flood?,
            odometer_tampered: odometer_tampered?,
            title_transferable: title_transferable?,
            grade: grade?,
            notes: notes?,
        })
    }

    /// A short name (make, model, city): trimmed, not blank, bounded, no control characters.
    /// `Some(None)`: absent and optional; `None`: an error was recorded.
    fn name(&mut self, field: &'static str, v: &Value, required: bool) -> Option<Option<String>> {
        let s = match string(v) {
            Ok(Some(s)) => s.trim(),
            Ok(None) if !required => return Some(None),
            Ok(None) => {
                self.err(field, "is required");
                return None;
            }
            Err(m) => {
                self.err(field, m);
                return None;
            }
        };
        let problem = if s.is_empty() {
            Some("must not be blank".to_owned())
        } else if s.chars().count() > MAX_NAME_CHARS {
            Some(format!("must be at most {MAX_NAME_CHARS} characters"))
        } else if s.chars().any(char::is_control) {
            Some("must not contain control characters".to_owned())
        } else {
            None
        };
        match problem {
            Some(m) => {
                self.err(field, m);
                None
            }
            None => Some(Some(s.to_owned())),
        }
    }
}

/// A non-negative integer written as one. `Ok(None)` for null (absent).
fn uint(v: &Value) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            if n.is_i64() {
                return Err("must not be negative".into());
            }
            // A float: serde_json reads 1.5, 1e3 and integers beyond u64 as f64.
            let f = n.as_f64().unwrap_or(f64::NAN);
            Err(if f.fract() != 0.0 || f.is_nan() {
                "must be a whole number".into()
            } else if f < 0.0 {
                "must not be negative".into()
            } else if f >= 18_446_744_073_709_551_616.0 {
                "is too large".into()
            } else {
                "must be written as an integer, without a fraction or exponent".into()
            })
        }
        _ => Err("must be a number".into()),
    }
}

/// A string. `Ok(None)` for null (absent).
fn string(v: &Value) -> Result<Option<&str>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err("must be a string".into()),
    }
}

/// A boolean. `Ok(None)` for null (absent).
fn boolean(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err("must be true or false".into()),
    }
}

#[cfg(test)]
mod tests;
