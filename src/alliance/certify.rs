//! Certification: which handed-off cars may be listed as certified, and the inspection
//! report's fingerprint.
//!
//! A car is certified only if every rule passes; otherwise it is still delivered to the
//! dealer who bought it, marked not certifiable, with every failed rule as a reason (not
//! just the first), so the dealer and the consumer see the whole picture.

use super::command::HandOffRecord;
use super::model::Reason;
use crate::vocab::{check_vin, Inspection};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The inspection report in its canonical form: the bytes its SHA-256 is taken over.
///
/// The form is JSON as RFC 8785 (JSON Canonicalization Scheme) gives it for this object:
/// one object with exactly the seven report fields, keys sorted by their code points
/// (`fire`, `flood`, `grade`, `notes`, `odometer_tampered`, `structural_damage`,
/// `title_transferable`), no whitespace, booleans as `true`/`false`, `grade` as a decimal
/// integer, `notes` as a JSON string in UTF-8 with only `"`, `\` and the control
/// characters U+0000–U+001F escaped (`\b \t \n \f \r` in their short forms, the others as
/// `\u00xx` with lowercase hex). For example:
///
/// ```text
/// {"fire":false,"flood":false,"grade":4,"notes":"Front bumper resprayed; tyres 60%.","odometer_tampered":false,"structural_damage":false,"title_transferable":true}
/// ```
///
/// Anyone can recompute the hash from the report a client sees (`inspection` of an
/// inventory item) with any JCS implementation, or `json.dumps(report, sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False)` in Python.
pub fn canonical_inspection(i: &Inspection) -> String {
    // Field order here is the canonical key order; serde writes struct fields in
    // declaration order, and serde_json's string escaping is the one described above.
    #[derive(Serialize)]
    struct Canonical<'a> {
        fire: bool,
        flood: bool,
        grade: u8,
        notes: &'a str,
        odometer_tampered: bool,
        structural_damage: bool,
        title_transferable: bool,
    }
    let c = Canonical {
        fire: i.fire,
        flood: i.flood,
        grade: i.grade,
        notes: &i.notes,
        odometer_tampered: i.odometer_tampered,
        structural_damage: i.structural_damage,
        title_transferable: i.title_transferable,
    };
    // Serializing bools, a u8 and a &str to a String cannot fail.
    serde_json::to_string(&c).unwrap_or_default()
}

/// SHA-256 of [`canonical_inspection`].
pub fn inspection_sha256(i: &Inspection) -> [u8; 32] {
    Sha256::digest(canonical_inspection(i).as_bytes()).into()
}

/// Every certification rule `record` fails, in a fixed order; empty means certified.
///
/// `listing_vin` and `listing_inspection` are what the seller listed and the dealers bid
/// on. The record must carry the same VIN (with a valid check digit) and the same report,
/// and its claimed hash must be the report's hash: a record that was altered or joined to
/// the wrong listing on its way is never certified.
pub fn certify(
    record: &HandOffRecord,
    listing_vin: &str,
    listing_inspection: &Inspection,
) -> Vec<Reason> {
    let i = &record.inspection;
    let mut reasons = Vec::new();
    for (failed, reason) in [
        (i.structural_damage, Reason::StructuralDamage),
        (i.fire, Reason::Fire),
        (i.flood, Reason::Flood),
        (i.odometer_tampered, Reason::OdometerTampered),
        (!i.title_transferable, Reason::TitleNotTransferable),
        (check_vin(&record.vin).is_err(), Reason::VinInvalid),
        (record.vin != listing_vin, Reason::VinMismatch),
        (
            record.inspection_sha256 != inspection_sha256(i)
                || inspection_sha256(listing_inspection) != inspection_sha256(i),
            Reason::InspectionMismatch,
        ),
    ] {
        if failed {
            reasons.push(reason);
        }
    }
    reasons
}
