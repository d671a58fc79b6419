//! Listing and VIN validation tables.

use super::*;
use serde_json::{json, Value};

const BOUNDS: ListingBounds = ListingBounds {
    current_year: 2025,
    min_duration_s: 60,
    max_duration_s: 604_800,
    min_preview_s: 600,
    max_preview_s: 172_800,
    default_preview_s: 0,
    now_ms: 1_760_000_000_000,
};

fn good() -> Value {
    json!({
        "vehicle": {
            "vin": "1M8GDM9AXKP042788",
            "make": "BYD",
            "model": "Han EV",
            "year": 2021,
            "mileage_km": 42000,
            "city": "Shenzhen"
        },
        "inspection": {
            "structural_damage": false,
            "fire": false,
            "flood": false,
            "odometer_tampered": false,
            "title_transferable": true,
            "grade": 4,
            "notes": "Minor scratches, rear bumper."
        },
        "start_price": 10_000_000,
        "reserve": 15_000_000,
        "buy_now": 20_000_000,
        "starts_at": 1_760_000_000_000u64,
        "duration_s": 1200
    })
}

/// `good()` with the field at `path` (dotted) replaced, or removed when `v` is `None`.
fn with(path: &str, v: Option<Value>) -> Value {
    let mut body = good();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut obj = &mut body;
    for p in parts {
        obj = obj.get_mut(p).expect("path exists");
    }
    let map = obj.as_object_mut().expect("an object");
    match v {
        Some(v) => map.insert(last.to_owned(), v),
        None => map.remove(last),
    };
    body
}

fn run(body: &Value) -> Result<Listing, Vec<FieldError>> {
    validate_listing(&serde_json::to_vec(body).unwrap(), &BOUNDS)
}

fn fields(r: &Result<Listing, Vec<FieldError>>) -> Vec<&'static str> {
    match r {
        Ok(_) => vec![],
        Err(e) => e.iter().map(|e| e.field).collect(),
    }
}

#[test]
fn a_good_listing_becomes_a_listing() {
    let l = run(&good()).expect("valid");
    assert_eq!(l.vehicle.vin, "1M8GDM9AXKP042788");
    assert_eq!(l.vehicle.city.as_deref(), Some("Shenzhen"));
    assert_eq!(l.vehicle.year, 2021);
    assert_eq!(l.inspection.grade, 4);
    assert!(l.inspection.title_transferable);
    assert_eq!(
        (l.start_price, l.reserve, l.buy_now),
        (10_000_000, 15_000_000, Some(20_000_000))
    );
    assert_eq!(l.starts_at, Some(1_760_000_000_000));
    assert_eq!(l.duration_ms, Some(1_200_000));

    // Optional fields absent or null.
    let mut b = good();
    for k in ["buy_now", "starts_at", "duration_s"] {
        b.as_object_mut().unwrap().remove(k);
    }
    b["vehicle"].as_object_mut().unwrap().remove("city");
    let l = run(&b).expect("valid");
    assert_eq!(
        (l.buy_now, l.starts_at, l.duration_ms, l.vehicle.city),
        (None, None, None, None)
    );
    let l = run(&with("buy_now", Some(Value::Null))).expect("null is absent");
    assert_eq!(l.buy_now, None);

    // Names are trimmed; unknown fields are ignored.
    let mut b = with("vehicle.make", Some(json!("  BYD ")));
    b["extra"] = json!({"anything": [1, 2]});
    assert_eq!(run(&b).expect("valid").vehicle.make, "BYD");
}

#[test]
fn field_table() {
    // (field path, replacement (None: removed), the fields expected in `errors`)
    let long = |n: usize| Value::String("x".repeat(n));
    let rows: Vec<(&str, Option<Value>, &[&str])> = vec![
        // VIN
        (
            "vehicle.vin",
            Some(json!("1M8GDM9AXKP04278")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!("1M8GDM9AXKP0427888")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!("1M8GDM9A1KP042788")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!("1m8gdm9axkp042788")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!("1M8GDM9AXKP04278I")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!("1M8GDM9AXKP0427Ö8")),
            &["vehicle.vin"],
        ),
        (
            "vehicle.vin",
            Some(json!(12345678901234567u64)),
            &["vehicle.vin"],
        ),
        ("vehicle.vin", None, &["vehicle.vin"]),
        // year: 1980 ..= current + 1
        ("vehicle.year", Some(json!(1980)), &[]),
        ("vehicle.year", Some(json!(2026)), &[]),
        ("vehicle.year", Some(json!(1979)), &["vehicle.year"]),
        ("vehicle.year", Some(json!(2027)), &["vehicle.year"]),
        ("vehicle.year", Some(json!(70000)), &["vehicle.year"]),
        ("vehicle.year", Some(json!("2021")), &["vehicle.year"]),
        ("vehicle.year", Some(json!(2021.5)), &["vehicle.year"]),
        ("vehicle.year", None, &["vehicle.year"]),
        // mileage ≥ 0
        ("vehicle.mileage_km", Some(json!(0)), &[]),
        (
            "vehicle.mileage_km",
            Some(json!(-1)),
            &["vehicle.mileage_km"],
        ),
        (
            "vehicle.mileage_km",
            Some(json!(1.5)),
            &["vehicle.mileage_km"],
        ),
        (
            "vehicle.mileage_km",
            Some(json!(5_000_000_000u64)),
            &["vehicle.mileage_km"],
        ),
        (
            "vehicle.mileage_km",
            Some(json!(null)),
            &["vehicle.mileage_km"],
        ),
        // make / model / city
        ("vehicle.make", Some(json!("")), &["vehicle.make"]),
        ("vehicle.make", Some(json!("   ")), &["vehicle.make"]),
        ("vehicle.make", Some(long(64)), &[]),
        ("vehicle.make", Some(long(65)), &["vehicle.make"]),
        ("vehicle.make", Some(json!("B\u{0}YD")), &["vehicle.make"]),
        ("vehicle.make", Some(json!(7)), &["vehicle.make"]),
        ("vehicle.model", None, &["vehicle.model"]),
        ("vehicle.model", Some(json!("比亚迪 汉")), &[]),
        ("vehicle.city", Some(json!("")), &["vehicle.city"]),
        ("vehicle.city", Some(long(65)), &["vehicle.city"]),
        ("vehicle.city", Some(json!(["Shenzhen"])), &["vehicle.city"]),
        ("vehicle", Some(json!("a car")), &["vehicle"]),
        ("vehicle", None, &["vehicle"]),
        // inspection
        ("inspection.grade", Some(json!(0)), &[]),
        ("inspection.grade", Some(json!(5)), &[]),
        ("inspection.grade", Some(json!(6)), &["inspection.grade"]),
        ("inspection.grade", Some(json!(-1)), &["inspection.grade"]),
        ("inspection.grade", Some(json!(300)), &["inspection.grade"]),
        ("inspection.fire", Some(json!("no")), &["inspection.fire"]),
        ("inspection.flood", Some(json!(0)), &["inspection.flood"]),
        (
            "inspection.structural_damage",
            None,
            &["inspection.structural_damage"],
        ),
        ("inspection.notes", Some(json!("")), &[]),
        ("inspection.notes", Some(long(MAX_NOTES_CHARS)), &[]),
        (
            "inspection.notes",
            Some(long(MAX_NOTES_CHARS + 1)),
            &["inspection.notes"],
        ),
        ("inspection.notes", None, &["inspection.notes"]),
        ("inspection", Some(json!([])), &["inspection"]),
        // prices
        ("start_price", Some(json!(100)), &[]),
        ("start_price", Some(json!(99)), &["start_price"]),
        ("start_price", Some(json!(0)), &["start_price"]),
        ("start_price", Some(json!(-100)), &["start_price"]),
        ("start_price", Some(json!("100000")), &["start_price"]),
        ("start_price", Some(json!(100000.5)), &["start_price"]),
        ("start_price", Some(json!(1e7)), &["start_price"]),
        ("start_price", None, &["start_price"]),
        ("start_price", Some(json!(15_000_000)), &[]),
        ("start_price", Some(json!(15_000_001)), &["reserve"]),
        ("reserve", Some(json!(20_000_000)), &[]),
        ("reserve", Some(json!(20_000_001)), &["buy_now"]),
        ("reserve", Some(json!(9_999_999)), &["reserve"]),
        ("reserve", None, &["reserve"]),
        ("buy_now", Some(json!(15_000_000)), &[]),
        ("buy_now", Some(json!(14_999_999)), &["buy_now"]),
        ("buy_now", Some(json!(1_000_000_000_001u64)), &["buy_now"]),
        ("buy_now", Some(json!(true)), &["buy_now"]),
        // times
        ("starts_at", Some(json!(MAX_TIMESTAMP_MS)), &[]),
        (
            "starts_at",
            Some(json!(MAX_TIMESTAMP_MS + 1)),
            &["starts_at"],
        ),
        ("starts_at", Some(json!(u64::MAX)), &["starts_at"]),
        ("starts_at", Some(json!(-1)), &["starts_at"]),
        ("starts_at", Some(json!("tomorrow")), &["starts_at"]),
        ("duration_s", Some(json!(60)), &[]),
        ("duration_s", Some(json!(604_800)), &[]),
        ("duration_s", Some(json!(59)), &["duration_s"]),
        ("duration_s", Some(json!(604_801)), &["duration_s"]),
        ("duration_s", Some(json!(u64::MAX)), &["duration_s"]),
        ("duration_s", Some(json!(0)), &["duration_s"]),
    ];
    for (path, v, want) in rows {
        let shown = format!("{path} = {v:?}");
        let r = run(&with(path, v));
        assert_eq!(fields(&r), want, "{shown}: {r:?}");
        if let Err(errors) = &r {
            assert!(errors.iter().all(|e| !e.message.is_empty()), "{shown}");
        }
    }
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let body = json!({
        "vehicle": {"vin": "11111111111111112", "make": "", "model": 3, "year": 1970,
                    "mileage_km": -5},
        "inspection": {"structural_damage": "no", "fire": false, "flood": false,
                       "odometer_tampered": false, "title_transferable": true, "grade": 9},
        "start_price": 50,
        "reserve": 40,
        "buy_now": 30,
        "duration_s": 1
    });
    let r = run(&body);
    assert_eq!(
        fields(&r),
        [
            "vehicle.vin",
            "vehicle.make",
            "vehicle.model",
            "vehicle.year",
            "vehicle.mileage_km",
            "inspection.structural_damage",
            "inspection.grade",
            "inspection.notes",
            "start_price",
            "reserve",
            "buy_now",
            "duration_s",
        ]
    );
    // The 422 body's shape.
    let errors = r.unwrap_err();
    let v = serde_json::to_value(ValidationErrors { errors }).unwrap();
    assert_eq!(v["errors"][0]["field"], "vehicle.vin");
    assert!(v["errors"][0]["message"].is_string());
    assert_eq!(v["errors"][0].as_object().unwrap().len(), 2);
}

#[test]
fn a_body_that_is_no_object_is_one_error() {
    let bodies: &[&[u8]] = &[
        b"",
        b"not json",
        b"{\"vehicle\":",
        b"[]",
        b"[{\"vehicle\":{}}]",
        b"\"listing\"",
        b"42",
        b"null",
        b"{\"a\":1} {}",
        b"\xff\xfe",
    ];
    for body in bodies {
        let r = validate_listing(body, &BOUNDS);
        let e = r.expect_err("not a listing");
        assert_eq!(e.len(), 1, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(e[0].field, "body");
        assert!(
            !e[0].message.contains("ListingInput"),
            "internal names leak: {}",
            e[0].message
        );
    }
    // An empty object is an object: each required field is named.
    assert_eq!(
        fields(&validate_listing(b"{}", &BOUNDS)),
        ["vehicle", "inspection", "start_price", "reserve"]
    );
    // Deep nesting is a body error, not a crash.
    let deep = format!("{{\"vehicle\":{}", "[".repeat(100_000));
    assert_eq!(
        fields(&validate_listing(deep.as_bytes(), &BOUNDS)),
        ["body"]
    );
}

#[test]
fn the_listing_example_in_docs_protocol_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let section = &doc[doc.find("### Listings").expect("a Listings section")..];
    let start = section.find("```json\n").expect("an example") + "```json\n".len();
    let end = start + section[start..].find("```").expect("closed");
    let listing = validate_listing(&section.as_bytes()[start..end], &BOUNDS).expect("valid");
    assert_eq!(listing.vehicle.vin, "LFV2A21K0M3123456");
    assert_eq!(listing.duration_ms, Some(1_200_000));
}

/// A preview is given as its length from now (`preview_s`) or as `starts_at`, not both;
/// with neither, the configured default applies (0: the lot opens at once).
#[test]
fn a_preview_is_its_length_from_now() {
    let now = BOUNDS.now_ms;
    let undated = with("starts_at", None);
    // (preview_s, the fields in error)
    let table: [(Value, &[&str]); 6] = [
        (json!(600), &[]),
        (json!(172_800), &[]),
        (json!(599), &["preview_s"]),
        (json!(172_801), &["preview_s"]),
        (json!(-1), &["preview_s"]),
        (json!("600"), &["preview_s"]),
    ];
    for (preview, errors) in table {
        let mut body = undated.clone();
        body["preview_s"] = preview.clone();
        assert_eq!(fields(&run(&body)), errors, "{preview}");
    }
    let mut body = undated.clone();
    body["preview_s"] = json!(3_600);
    assert_eq!(run(&body).expect("valid").starts_at, Some(now + 3_600_000));
    assert_eq!(
        fields(&run(&with("preview_s", Some(json!(3_600))))),
        ["preview_s"],
        "not with starts_at"
    );
    assert_eq!(run(&undated).expect("valid").starts_at, None);
    let by_default = ListingBounds {
        default_preview_s: 7_200,
        ..BOUNDS
    };
    let l = validate_listing(&serde_json::to_vec(&undated).unwrap(), &by_default).expect("ok");
    assert_eq!(l.starts_at, Some(now + 7_200_000));
    let l = validate_listing(&serde_json::to_vec(&good()).unwrap(), &by_default).expect("ok");
    assert_eq!(
        l.starts_at,
        good()["starts_at"].as_u64(),
        "a starts_at is the seller's"
    );
}
