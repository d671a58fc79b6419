//! The alliance's rules, table by table, on a simulated clock (no I/O, no sleeps).

use super::*;
use crate::vocab::{DealerId, DealerStatus, Inspection, LoanId, LotId, SellerId, Vehicle};
use std::collections::BTreeMap;

const H: u64 = 3_600_000;
const T0: u64 = 1_760_000_000_000;
pub(crate) const VIN: &str = "1M8GDM9AXKP042788";

pub(crate) fn clean() -> Inspection {
    Inspection {
        structural_damage: false,
        fire: false,
        flood: false,
        odometer_tampered: false,
        title_transferable: true,
        grade: 4,
        notes: "Front bumper resprayed; tyres 60%.".into(),
    }
}

fn record(lot: u32, dealer: u32, inspection: Inspection) -> HandOffRecord {
    HandOffRecord {
        auction: LotId(lot),
        vin: VIN.into(),
        seller: SellerId(1),
        dealer: DealerId(dealer),
        price: 5_000_000,
        inspection_sha256: inspection_sha256(&inspection),
        inspection,
    }
}

/// The book as a table: sold lots (listing VIN and report, buyer, price), statuses, and
/// the open loans on its lots (the market's tests cover how the credit line moves them).
#[derive(Default)]
struct Fake {
    sales: BTreeMap<LotId, (String, Inspection, DealerId, u64)>,
    statuses: BTreeMap<DealerId, DealerStatus>,
    loans: BTreeMap<LotId, LoanId>,
}

impl Registry for Fake {
    fn sale(&self, lot: LotId) -> Option<Sale<'_>> {
        self.sales
            .get(&lot)
            .map(|(vin, inspection, buyer, price)| Sale {
                vin,
                inspection,
                seller: SellerId(1),
                buyer: *buyer,
                price: *price,
            })
    }

    fn dealer_status(&self, dealer: DealerId) -> Option<DealerStatus> {
        self.statuses.get(&dealer).copied()
    }

    fn open_loan(&self, lot: LotId) -> Option<LoanId> {
        self.loans.get(&lot).copied()
    }
}

/// The alliance alone on a simulated clock, with a shadow copy built only from its events
/// (as the read view is), which must always equal it.
struct Sim {
    alliance: Alliance,
    shadow: Alliance,
    now: u64,
    rules: AllianceRules,
    book: Fake,
}

impl Sim {
    fn new() -> Self {
        let mut book = Fake::default();
        for d in 1..=3 {
            book.statuses.insert(DealerId(d), DealerStatus::Active);
        }
        Self {
            alliance: Alliance::default(),
            shadow: Alliance::default(),
            now: T0,
            rules: AllianceRules::default(),
            book,
        }
    }

    /// Lot `lot` sold to `dealer` with a clean report and the standard VIN.
    fn sell(&mut self, lot: u32, dealer: u32, inspection: Inspection) {
        self.book.sales.insert(
            LotId(lot),
            (VIN.into(), inspection, DealerId(dealer), 5_000_000),
        );
    }

    fn run(&mut self, command: AllianceCommand) -> Vec<AllianceEvent> {
        let mut out = Vec::new();
        self.alliance
            .apply(self.now, &self.rules, command, &self.book, &mut out);
        self.follow(&out);
        out
    }

    fn at(&mut self, now: u64) -> Vec<AllianceEvent> {
        self.now = now;
        let mut out = Vec::new();
        self.alliance.tick(now, &self.book, &mut out);
        self.follow(&out);
        out
    }

    fn follow(&mut self, out: &[AllianceEvent]) {
        for e in out {
            self.shadow.absorb(e);
            // Play the book's part: an expulsion takes effect at once.
            if let AllianceEvent::Expelled { dealer, .. } = e {
                self.book.statuses.insert(*dealer, DealerStatus::Expelled);
            }
        }
        assert_eq!(self.shadow, self.alliance, "the event-built view diverged");
    }

    /// Hands off a clean sale of `lot` to `dealer` and returns the item.
    fn stock(&mut self, lot: u32, dealer: u32) -> ItemId {
        self.sell(lot, dealer, clean());
        let out = self.run(AllianceCommand::HandOff(Box::new(record(
            lot,
            dealer,
            clean(),
        ))));
        match out.first() {
            Some(AllianceEvent::HandedOff { item, .. }) => *item,
            other => panic!("no hand-off: {other:?}"),
        }
    }

    fn retail(&mut self, item: ItemId, dealer: u32) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::Retail {
            item,
            by: Actor::Dealer(DealerId(dealer)),
            consumer_ref: "consumer-1".into(),
            price: 6_000_000,
        })
    }

    fn give_back(&mut self, item: ItemId, findings: &[Finding]) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::Return {
            item,
            consumer_ref: "consumer-1".into(),
            reason: ReturnReason::NotAsDescribed,
            details: "water in the boot".into(),
            findings: findings.to_vec(),
        })
    }

    fn complain(&mut self, dealer: u32) -> ComplaintId {
        let out = self.run(AllianceCommand::OpenComplaint {
            dealer: DealerId(dealer),
            item: None,
            consumer_ref: "consumer-2".into(),
            text: "no call back".into(),
        });
        match out.first() {
            Some(AllianceEvent::ComplaintChanged(c)) => c.id,
            other => panic!("no complaint: {other:?}"),
        }
    }

    fn resolve(&mut self, complaint: ComplaintId, by: Actor) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::ResolveComplaint {
            complaint,
            by,
            resolution: "called back, fixed".into(),
        })
    }

    fn rate(
        &mut self,
        dealer: u32,
        item: ItemId,
        condition: u8,
        service: u8,
    ) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::Rate {
            dealer: DealerId(dealer),
            item,
            consumer_ref: "consumer-1".into(),
            condition,
            service,
        })
    }

    fn standing(&self, dealer: u32) -> Standing {
        let status = self.book.statuses[&DealerId(dealer)];
        self.alliance.standing(DealerId(dealer), status)
    }

    fn status(&self, dealer: u32) -> DealerStatus {
        self.book.statuses[&DealerId(dealer)]
    }
}

fn refusal(out: &[AllianceEvent]) -> Option<AllianceRefusal> {
    match out {
        [AllianceEvent::Refused(r)] => Some(*r),
        _ => None,
    }
}

fn expelled(out: &[AllianceEvent]) -> bool {
    out.iter()
        .any(|e| matches!(e, AllianceEvent::Expelled { .. }))
}

// ---------------------------------------------------------------------------------------
// Certification

#[test]
fn each_certification_rule_alone_and_all_together() {
    type Change = fn(&mut HandOffRecord);
    let table: &[(&str, Change, &[Reason])] = &[
        ("clean", |_| {}, &[]),
        (
            "structural",
            |r| r.inspection.structural_damage = true,
            &[Reason::StructuralDamage],
        ),
        ("fire", |r| r.inspection.fire = true, &[Reason::Fire]),
        ("flood", |r| r.inspection.flood = true, &[Reason::Flood]),
        (
            "odometer",
            |r| r.inspection.odometer_tampered = true,
            &[Reason::OdometerTampered],
        ),
        (
            "title",
            |r| r.inspection.title_transferable = false,
            &[Reason::TitleNotTransferable],
        ),
        // A wrong check digit (position 9) is invalid, and no longer the listing's VIN.
        (
            "check digit",
            |r| r.vin = "1M8GDM9A1KP042788".into(),
            &[Reason::VinInvalid, Reason::VinMismatch],
        ),
        (
            "too short",
            |r| r.vin = "1M8GDM9AX".into(),
            &[Reason::VinInvalid, Reason::VinMismatch],
        ),
        // A valid VIN that is another car's.
        (
            "another car",
            |r| r.vin = "11111111111111111".into(),
            &[Reason::VinMismatch],
        ),
        (
            "report changed on the way",
            |r| r.inspection.notes = "Like new.".into(),
            &[Reason::InspectionMismatch],
        ),
        (
            "hash does not match the report",
            |r| r.inspection_sha256[0] ^= 1,
            &[Reason::InspectionMismatch],
        ),
        (
            "everything wrong",
            |r| {
                r.inspection.structural_damage = true;
                r.inspection.fire = true;
                r.inspection.flood = true;
                r.inspection.odometer_tampered = true;
                r.inspection.title_transferable = false;
                r.vin = "1M8GDM9A1KP042788".into();
            },
            &[
                Reason::StructuralDamage,
                Reason::Fire,
                Reason::Flood,
                Reason::OdometerTampered,
                Reason::TitleNotTransferable,
                Reason::VinInvalid,
                Reason::VinMismatch,
            ],
        ),
    ];
    for (name, change, expected) in table {
        let mut r = record(1, 1, clean());
        change(&mut r);
        // The listing is what the dealers bid on: the same report when only the record's
        // VIN or hash is at fault, and the changed report when the defect is real.
        let listing_report = if *name == "report changed on the way" {
            clean()
        } else {
            r.inspection.clone()
        };
        if *name != "hash does not match the report" {
            r.inspection_sha256 = inspection_sha256(&r.inspection);
        }
        assert_eq!(certify(&r, VIN, &listing_report), *expected, "{name}");
    }
}

#[test]
fn not_certifiable_cars_are_still_delivered_with_every_reason() {
    let mut sim = Sim::new();
    let damaged = Inspection {
        flood: true,
        odometer_tampered: true,
        ..clean()
    };
    sim.sell(7, 2, damaged.clone());
    sim.run(AllianceCommand::HandOff(Box::new(record(
        7,
        2,
        damaged.clone(),
    ))));
    let item = sim.alliance.item_for_auction(LotId(7)).expect("delivered");
    assert!(!item.certified);
    assert_eq!(item.reasons, [Reason::Flood, Reason::OdometerTampered]);
    assert_eq!(item.dealer, DealerId(2));
    assert_eq!(item.status, ItemStatus::InStock);
    // Carried unchanged, with the hash of what it carries.
    assert_eq!(item.inspection, damaged);
    assert_eq!(item.inspection_sha256, inspection_sha256(&damaged));
}

#[test]
fn which_cars_the_consumer_catalogue_shows() {
    type Change = fn(&mut HandOffRecord);
    // (car, its defect, shown by default, shown with not_certified)
    let cars: &[(&str, Change, bool, bool)] = &[
        ("clean", |_| {}, true, true),
        (
            "structural",
            |r| r.inspection.structural_damage = true,
            false,
            false,
        ),
        ("fire", |r| r.inspection.fire = true, false, false),
        ("flood", |r| r.inspection.flood = true, false, false),
        (
            "odometer",
            |r| r.inspection.odometer_tampered = true,
            false,
            false,
        ),
        (
            "title",
            |r| r.inspection.title_transferable = false,
            false,
            false,
        ),
        (
            "another car's VIN",
            |r| r.vin = "11111111111111111".into(),
            false,
            true,
        ),
        ("hash off", |r| r.inspection_sha256[0] ^= 1, false, true),
        (
            "flood and another car's VIN",
            |r| {
                r.inspection.flood = true;
                r.vin = "11111111111111111".into();
            },
            false,
            false,
        ),
    ];
    let statuses = [
        (ItemStatus::InStock, true),
        (ItemStatus::Retailed, true),
        (ItemStatus::Returned, false),
        (ItemStatus::Refunded, false),
        (ItemStatus::Disposed, false),
    ];
    for (lot, (name, change, by_default, with_not_certified)) in (1..).zip(cars) {
        let mut sim = Sim::new();
        let mut r = record(lot, 1, clean());
        change(&mut r);
        let hash_off = *name == "hash off";
        if !hash_off {
            r.inspection_sha256 = inspection_sha256(&r.inspection);
        }
        sim.sell(lot, 1, r.inspection.clone());
        sim.run(AllianceCommand::HandOff(Box::new(r)));
        let mut item = sim
            .alliance
            .item_for_auction(LotId(lot))
            .expect("delivered")
            .clone();
        for (status, offered) in statuses {
            item.status = status;
            assert_eq!(
                item.in_catalogue(false),
                *by_default && offered,
                "{name}, {status:?}"
            );
            assert_eq!(
                item.in_catalogue(true),
                *with_not_certified && offered,
                "{name}, {status:?}, not_certified asked for"
            );
        }
    }
}

#[test]
fn the_canonical_report_and_its_sha256_are_pinned() {
    // Reference values from Python: json.dumps(report, sort_keys=True,
    // separators=(",", ":"), ensure_ascii=False), then hashlib.sha256.
    let i = clean();
    assert_eq!(
        canonical_inspection(&i),
        r#"{"fire":false,"flood":false,"grade":4,"notes":"Front bumper resprayed; tyres 60%.","odometer_tampered":false,"structural_damage":false,"title_transferable":true}"#
    );
    assert_eq!(
        hex::encode(inspection_sha256(&i)),
        "6afff9a4621b06f533fe7339c63c66b350ef97a7957579913cab937b6e8dc7d6"
    );
    let odd = Inspection {
        flood: true,
        grade: 3,
        notes: "前保险杠补漆\n\"轮胎\" 60%\\ \u{1}".into(),
        ..clean()
    };
    assert_eq!(
        canonical_inspection(&odd),
        "{\"fire\":false,\"flood\":true,\"grade\":3,\"notes\":\"前保险杠补漆\\n\\\"轮胎\\\" 60%\\\\ \\u0001\",\"odometer_tampered\":false,\"structural_damage\":false,\"title_transferable\":true}"
    );
    assert_eq!(
        hex::encode(inspection_sha256(&odd)),
        "c175641e6e28158dafd41f824ca43ec00658ba1694a422f95a27b72391e8038d"
    );
}

// ---------------------------------------------------------------------------------------
// Hand-off

#[test]
fn the_same_record_twice_yields_one_item() {
    let mut sim = Sim::new();
    sim.sell(3, 1, clean());
    let first = sim.run(AllianceCommand::HandOff(Box::new(record(3, 1, clean()))));
    let again = sim.run(AllianceCommand::HandOff(Box::new(record(3, 1, clean()))));
    assert!(matches!(
        first[0],
        AllianceEvent::HandedOff {
            item: ItemId(1),
            duplicate: false,
            ..
        }
    ));
    assert_eq!(
        again,
        [AllianceEvent::HandedOff {
            auction: LotId(3),
            item: ItemId(1),
            duplicate: true
        }]
    );
    assert_eq!(sim.alliance.items().count(), 1);
}

#[test]
fn hand_offs_the_book_does_not_hold_are_refused() {
    let mut sim = Sim::new();
    // Not sold (unknown, no_sale, pending): nothing to hand off.
    let out = sim.run(AllianceCommand::HandOff(Box::new(record(9, 1, clean()))));
    assert_eq!(refusal(&out), Some(AllianceRefusal::NotSold));
    // Sold, but to someone else, or at another price.
    sim.sell(9, 1, clean());
    let out = sim.run(AllianceCommand::HandOff(Box::new(record(9, 2, clean()))));
    assert_eq!(refusal(&out), Some(AllianceRefusal::RecordMismatch));
    let mut cheap = record(9, 1, clean());
    cheap.price -= 1;
    let out = sim.run(AllianceCommand::HandOff(Box::new(cheap)));
    assert_eq!(refusal(&out), Some(AllianceRefusal::RecordMismatch));
    assert_eq!(sim.alliance.items().count(), 0);
}

// ---------------------------------------------------------------------------------------
// Retail and the 120 h return window

#[test]
fn returns_around_the_120_hour_boundary() {
    // (offset from the retail sale, expected refusal; None = accepted)
    let table: &[(u64, Option<AllianceRefusal>)] = &[
        (0, None),
        (H, None),
        (120 * H - 1, None),
        (120 * H, Some(AllianceRefusal::ReturnWindowClosed)),
        (120 * H + 1, Some(AllianceRefusal::ReturnWindowClosed)),
        (30 * 24 * H, Some(AllianceRefusal::ReturnWindowClosed)),
    ];
    for &(offset, expected) in table {
        let mut sim = Sim::new();
        let item = sim.stock(1, 1);
        sim.now = T0 + 5 * H;
        let retail_at = sim.now;
        sim.retail(item, 1);
        assert_eq!(
            sim.alliance
                .item(item)
                .and_then(|i| i.retail.as_ref())
                .map(|r| r.return_until),
            Some(retail_at + 120 * H)
        );
        sim.now = retail_at + offset;
        let out = sim.give_back(item, &[]);
        assert_eq!(refusal(&out), expected, "return at retail + {offset} ms");
        let status = sim.alliance.item(item).map(|i| i.status);
        let want = if expected.is_none() {
            ItemStatus::Returned
        } else {
            ItemStatus::Retailed
        };
        assert_eq!(status, Some(want), "status after a return at + {offset} ms");
    }
}

#[test]
fn returns_before_a_retail_sale_or_twice_are_refused() {
    let mut sim = Sim::new();
    let item = sim.stock(1, 1);
    assert_eq!(
        refusal(&sim.give_back(item, &[])),
        Some(AllianceRefusal::NotRetailed)
    );
    assert_eq!(
        refusal(&sim.give_back(ItemId(99), &[])),
        Some(AllianceRefusal::UnknownItem)
    );
    sim.retail(item, 1);
    assert_eq!(refusal(&sim.give_back(item, &[])), None);
    assert_eq!(
        refusal(&sim.give_back(item, &[])),
        Some(AllianceRefusal::AlreadyReturned)
    );
    sim.run(AllianceCommand::Refund { item });
    assert_eq!(
        refusal(&sim.give_back(item, &[])),
        Some(AllianceRefusal::WrongState)
    );
}

#[test]
fn only_the_holding_dealer_retails_once() {
    let mut sim = Sim::new();
    let item = sim.stock(1, 1);
    let table: &[(Actor, Option<AllianceRefusal>)] = &[
        (
            Actor::Dealer(DealerId(2)),
            Some(AllianceRefusal::NotAllowed),
        ),
        (Actor::Service, Some(AllianceRefusal::NotAllowed)),
        (Actor::Admin, Some(AllianceRefusal::NotAllowed)),
        (Actor::Dealer(DealerId(1)), None),
        (
            Actor::Dealer(DealerId(1)),
            Some(AllianceRefusal::WrongState),
        ),
    ];
    for &(by, expected) in table {
        let out = sim.run(AllianceCommand::Retail {
            item,
            by,
            consumer_ref: "c".into(),
            price: 1,
        });
        assert_eq!(refusal(&out), expected, "{by:?}");
    }
    let other = sim.stock(2, 1);
    for price in [0, crate::vocab::MAX_AMOUNT + 1] {
        let out = sim.run(AllianceCommand::Retail {
            item: other,
            by: Actor::Dealer(DealerId(1)),
            consumer_ref: "c".into(),
            price,
        });
        assert_eq!(refusal(&out), Some(AllianceRefusal::InvalidAmount));
    }
}

// ---------------------------------------------------------------------------------------
// Violations and warnings

#[test]
fn which_returns_are_violations() {
    // (certified?, findings, expected warning cause)
    let table: &[(bool, &[Finding], Option<&str>)] = &[
        (true, &[], None),
        (true, &[Finding::StructuralDamage], Some("hidden_damage")),
        (true, &[Finding::Fire], Some("hidden_damage")),
        (true, &[Finding::Flood], Some("hidden_damage")),
        (
            true,
            &[Finding::TitleNotTransferable],
            Some("title_not_transferable"),
        ),
        // One return, one violation, named after the gravest finding.
        (
            true,
            &[Finding::TitleNotTransferable, Finding::Flood],
            Some("hidden_damage"),
        ),
        // Not certified: the report disclosed its defects; a return is no violation.
        (false, &[Finding::Flood], None),
    ];
    for &(certified, findings, expected) in table {
        let mut sim = Sim::new();
        sim.sell(1, 1, clean());
        let mut handed = record(1, 1, clean());
        if !certified {
            // Not certified for a reason that still allows retail.
            handed.inspection_sha256 = [0; 32];
        }
        sim.run(AllianceCommand::HandOff(Box::new(handed)));
        assert_eq!(refusal(&sim.retail(ItemId(1), 1)), None);
        let out = sim.give_back(ItemId(1), findings);
        assert_eq!(refusal(&out), None);
        let standing = sim.standing(1);
        let causes: Vec<_> = standing.warnings.iter().map(|w| w.cause.as_str()).collect();
        assert_eq!(
            causes,
            expected.into_iter().collect::<Vec<_>>(),
            "{findings:?}"
        );
        assert_eq!(standing.violations as usize, causes.len());
    }
}

#[test]
fn under_the_first_rules_retailing_a_car_whose_title_cannot_pass_is_a_violation_corrected_by_a_refund(
) {
    let mut sim = Sim::new();
    sim.rules.version = crate::vocab::FIRST_RULES_VERSION;
    let report = Inspection {
        title_transferable: false,
        ..clean()
    };
    sim.sell(1, 1, report.clone());
    sim.run(AllianceCommand::HandOff(Box::new(record(1, 1, report))));
    let out = sim.retail(ItemId(1), 1);
    assert!(out.iter().any(|e| matches!(
        e,
        AllianceEvent::WarningChanged(w) if w.cause == Cause::TitleNotTransferable { item: ItemId(1) }
    )));
    assert_eq!(sim.standing(1).uncorrected(), 1);
    // The dealer takes the car back and refunds, outside any return.
    sim.now += 200 * H;
    assert_eq!(
        refusal(&sim.run(AllianceCommand::Refund { item: ItemId(1) })),
        None
    );
    let standing = sim.standing(1);
    assert_eq!(standing.uncorrected(), 0);
    assert_eq!(standing.warnings[0].corrected_at, Some(sim.now));
    assert_eq!(standing.violations, 1, "a corrected violation still counts");
}

#[test]
fn refunds() {
    let mut sim = Sim::new();
    let item = sim.stock(1, 1);
    let refund = AllianceCommand::Refund { item };
    assert_eq!(
        refusal(&sim.run(refund.clone())),
        Some(AllianceRefusal::NotRetailed)
    );
    sim.retail(item, 1);
    sim.give_back(item, &[Finding::Flood]);
    assert_eq!(sim.standing(1).uncorrected(), 1);
    sim.now += H;
    let out = sim.run(refund.clone());
    assert_eq!(refusal(&out), None);
    let it = sim.alliance.item(item).expect("item");
    assert_eq!(
        (it.status, it.refunded_at),
        (ItemStatus::Refunded, Some(sim.now))
    );
    assert_eq!(sim.standing(1).uncorrected(), 0);
    assert_eq!(refusal(&sim.run(refund)), Some(AllianceRefusal::WrongState));
}

// ---------------------------------------------------------------------------------------
// Complaints and the 24 h boundary

#[test]
fn complaints_around_the_24_hour_boundary() {
    // (resolve at opened + offset, or None = never; tick at opened + 24 h; overdue?)
    let table: &[(Option<u64>, bool)] = &[
        (Some(0), false),
        (Some(23 * H), false),
        (Some(24 * H - 1), false),
        // At exactly 24 h the deadline has passed: the engine ticks before it applies
        // the resolution, so it arrives late.
        (Some(24 * H), true),
        (Some(48 * H), true),
        (None, true),
    ];
    for &(resolve_after, overdue) in table {
        let mut sim = Sim::new();
        sim.now = T0 + 3 * H;
        let opened = sim.now;
        let c = sim.complain(1);
        let complaint = sim.alliance.complaint(c).expect("complaint").clone();
        assert_eq!(complaint.due_at, opened + 24 * H);
        assert_eq!(sim.alliance.next_deadline(), Some(opened + 24 * H));
        if let Some(after) = resolve_after {
            // What the engine does: due timers first, then the command.
            sim.at(opened + after);
            sim.resolve(c, Actor::Dealer(DealerId(1)));
        }
        // One ms before the deadline nothing fires; at the deadline it does (if open).
        let before = sim.at((opened + 24 * H - 1).max(sim.now));
        assert!(
            before.is_empty() || resolve_after.is_some_and(|a| a >= 24 * H),
            "{resolve_after:?}: {before:?}"
        );
        sim.at((opened + 24 * H).max(sim.now));
        let standing = sim.standing(1);
        assert_eq!(standing.violations, u32::from(overdue), "{resolve_after:?}");
        let c = sim.alliance.complaint(c).expect("complaint");
        match resolve_after {
            Some(_) => assert_eq!(c.status, ComplaintStatus::Resolved),
            None => assert_eq!(c.status, ComplaintStatus::Overdue),
        }
        // A late resolution corrects the warning it caused.
        let corrected = standing.warnings.iter().all(Warning::corrected);
        assert_eq!(corrected, resolve_after.is_some(), "{resolve_after:?}");
        assert_eq!(sim.alliance.next_deadline(), None);
    }
}

#[test]
fn who_may_resolve_a_complaint() {
    let mut sim = Sim::new();
    let c = sim.complain(1);
    let table: &[(Actor, Option<AllianceRefusal>)] = &[
        (
            Actor::Dealer(DealerId(2)),
            Some(AllianceRefusal::NotAllowed),
        ),
        (Actor::Service, Some(AllianceRefusal::NotAllowed)),
        (Actor::Admin, None),
        (
            Actor::Dealer(DealerId(1)),
            Some(AllianceRefusal::AlreadyResolved),
        ),
    ];
    for &(by, expected) in table {
        assert_eq!(refusal(&sim.resolve(c, by)), expected, "{by:?}");
    }
    assert_eq!(
        refusal(&sim.resolve(ComplaintId(9), Actor::Admin)),
        Some(AllianceRefusal::UnknownComplaint)
    );
}

#[test]
fn complaints_name_a_real_dealer_and_its_own_car() {
    let mut sim = Sim::new();
    let item = sim.stock(1, 1);
    let open = |dealer, item| AllianceCommand::OpenComplaint {
        dealer: DealerId(dealer),
        item,
        consumer_ref: "c".into(),
        text: "t".into(),
    };
    let table: &[(u32, Option<ItemId>, Option<AllianceRefusal>)] = &[
        (9, None, Some(AllianceRefusal::UnknownDealer)),
        (1, Some(ItemId(5)), Some(AllianceRefusal::UnknownItem)),
        (2, Some(item), Some(AllianceRefusal::WrongDealer)),
        (1, Some(item), None),
    ];
    for &(dealer, it, expected) in table {
        assert_eq!(
            refusal(&sim.run(open(dealer, it))),
            expected,
            "{dealer} {it:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Ratings

#[test]
#[allow(clippy::type_complexity)] // tables read best as tuples
fn ratings_and_the_score() {
    let mut sim = Sim::new();
    assert_eq!(
        sim.standing(1).score(),
        None,
        "null before the first rating"
    );
    let a = sim.stock(1, 1);
    let b = sim.stock(2, 1);
    let c = sim.stock(3, 1);
    let elsewhere = sim.stock(4, 2);
    // (dealer, item, condition, service, refusal, score after)
    let table: &[(u32, ItemId, u8, u8, Option<AllianceRefusal>, Option<f64>)] = &[
        (1, a, 5, 4, Some(AllianceRefusal::NotRetailed), None),
        (1, a, 0, 4, Some(AllianceRefusal::InvalidRating), None),
        (1, a, 5, 6, Some(AllianceRefusal::InvalidRating), None),
        (1, elsewhere, 5, 5, Some(AllianceRefusal::WrongDealer), None),
        (
            1,
            ItemId(99),
            5,
            5,
            Some(AllianceRefusal::UnknownItem),
            None,
        ),
    ];
    for &(dealer, item, cond, serv, expected, score) in table {
        assert_eq!(refusal(&sim.rate(dealer, item, cond, serv)), expected);
        assert_eq!(sim.standing(1).score(), score);
    }
    for item in [a, b, c] {
        sim.retail(item, 1);
    }
    // Marks 5, 4 → 4.5; + 3, 3 → 15/4 = 3.75 → 3.8 (half up); + 1, 2 → 18/6 = 3.0.
    let table: &[(ItemId, u8, u8, Option<AllianceRefusal>, f64, u32)] = &[
        (a, 5, 4, None, 4.5, 1),
        (a, 1, 1, Some(AllianceRefusal::AlreadyRated), 4.5, 1),
        (b, 3, 3, None, 3.8, 2),
        (c, 1, 2, None, 3.0, 3),
    ];
    for &(item, cond, serv, expected, score, ratings) in table {
        assert_eq!(refusal(&sim.rate(1, item, cond, serv)), expected);
        let s = sim.standing(1);
        assert_eq!((s.score(), s.ratings), (Some(score), ratings));
    }
    // A returned car's sale can still be rated (once).
    let d = sim.stock(5, 1);
    sim.retail(d, 1);
    sim.give_back(d, &[]);
    assert_eq!(refusal(&sim.rate(1, d, 2, 2)), None);
    let s = sim.standing(1);
    // 22 / 8 = 2.75 → 2.8
    assert_eq!((s.score(), s.ratings), (Some(2.8), 4));
}

#[test]
fn scores_round_half_up_to_one_decimal() {
    let table: &[(u64, u32, Option<u32>)] = &[
        (0, 0, None),
        (10, 2, Some(50)),
        (15, 4, Some(38)), // 3.75
        (11, 6, Some(18)), // 1.8333
        (13, 6, Some(22)), // 2.1666
        (27, 8, Some(34)), // 3.375
        (2, 2, Some(10)),
    ];
    for &(sum, marks, tenths) in table {
        let r = Record {
            marks,
            marks_sum: sum,
            ..Record::default()
        };
        assert_eq!(r.score_tenths(), tenths, "{sum}/{marks}");
    }
}

// ---------------------------------------------------------------------------------------
// Warnings, corrections, expulsion

/// Gives dealer 1 a violation of the kind named: an overdue complaint, a certified car
/// returned with hidden damage, or an attempt to retail a car whose title cannot pass
/// (refused under zero tolerance).
fn violation(
    sim: &mut Sim,
    kind: &str,
) -> (Vec<AllianceEvent>, Option<ComplaintId>, Option<ItemId>) {
    let lot = sim.alliance.items().count() as u32 + 100;
    match kind {
        "overdue" => {
            let c = sim.complain(1);
            let out = sim.at(sim.now + 24 * H);
            (out, Some(c), None)
        }
        "damage" => {
            let item = sim.stock(lot, 1);
            sim.retail(item, 1);
            let out = sim.give_back(item, &[Finding::StructuralDamage]);
            (out, None, Some(item))
        }
        "refused" => {
            let report = Inspection {
                title_transferable: false,
                ..clean()
            };
            sim.sell(lot, 1, report.clone());
            let out = sim.run(AllianceCommand::HandOff(Box::new(record(lot, 1, report))));
            let Some(AllianceEvent::HandedOff { item, .. }) = out.first().cloned() else {
                panic!("no hand-off");
            };
            let out = sim.retail(item, 1);
            (out, None, Some(item))
        }
        other => panic!("unknown violation {other}"),
    }
}

#[test]
fn two_uncorrected_warnings_and_a_violation_expel() {
    for kinds in [
        ["overdue", "overdue", "overdue"],
        ["damage", "overdue", "refused"],
        ["refused", "damage", "damage"],
        ["overdue", "refused", "damage"],
    ] {
        let mut sim = Sim::new();
        for (n, kind) in kinds.iter().enumerate() {
            let (out, _, _) = violation(&mut sim, kind);
            let s = sim.standing(1);
            assert_eq!(s.violations as usize, n + 1, "{kinds:?}");
            assert_eq!(s.uncorrected(), n + 1, "{kinds:?}");
            assert_eq!(expelled(&out), n == 2, "{kinds:?} violation {}", n + 1);
        }
        assert_eq!(sim.status(1), DealerStatus::Expelled, "{kinds:?}");
        // Other dealers are untouched.
        assert_eq!(sim.status(2), DealerStatus::Active);
        // A fourth violation does not expel twice.
        let (out, _, _) = violation(&mut sim, "overdue");
        assert!(!expelled(&out));
    }
}

#[test]
fn a_corrected_warning_does_not_count_toward_expulsion() {
    // (the fix applied to the first two violations' causes before the third)
    for fix in ["resolve the complaint", "refund the car"] {
        let mut sim = Sim::new();
        let (_, complaint, _) = violation(&mut sim, "overdue");
        let (_, _, item) = violation(&mut sim, "damage");
        assert_eq!(sim.standing(1).uncorrected(), 2);
        match fix {
            "resolve the complaint" => {
                let out = sim.resolve(complaint.expect("complaint"), Actor::Dealer(DealerId(1)));
                assert_eq!(refusal(&out), None);
            }
            _ => {
                let out = sim.run(AllianceCommand::Refund {
                    item: item.expect("item"),
                });
                assert_eq!(refusal(&out), None);
            }
        }
        let s = sim.standing(1);
        assert_eq!((s.violations, s.uncorrected()), (2, 1), "{fix}");
        // Warning → correction → no expulsion on the next violation ...
        let (out, _, _) = violation(&mut sim, "refused");
        assert!(!expelled(&out), "{fix}");
        assert_eq!(sim.status(1), DealerStatus::Active, "{fix}");
        let s = sim.standing(1);
        assert_eq!((s.violations, s.uncorrected()), (3, 2), "{fix}");
        // ... but with two uncorrected again, one more does.
        let (out, _, _) = violation(&mut sim, "overdue");
        assert!(expelled(&out), "{fix}");
        assert_eq!(sim.status(1), DealerStatus::Expelled, "{fix}");
    }
}

#[test]
fn the_read_view_follows_a_moved_deadline() {
    let mut sim = Sim::new();
    let c = sim.complain(1);
    let mut out = Vec::new();
    let until = T0 + 25 * H + 300_000;
    sim.alliance.resume(T0 + 25 * H, until, &mut out);
    sim.follow(&out); // the event-built copy must drop the old deadline
    assert_eq!(sim.shadow.next_deadline(), Some(until));
    sim.at(until - 1);
    assert_eq!(sim.standing(1).violations, 0);
    sim.at(until);
    assert_eq!(sim.standing(1).violations, 1);
    assert_eq!(
        sim.alliance.complaint(c).map(|c| c.status),
        Some(ComplaintStatus::Overdue)
    );
}

#[test]
fn overdue_complaints_due_together_fire_in_order_in_one_tick() {
    let mut sim = Sim::new();
    let ids: Vec<_> = (0..3).map(|_| sim.complain(1)).collect();
    let out = sim.at(T0 + 24 * H);
    let overdue: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            AllianceEvent::ComplaintChanged(c) => Some(c.id),
            _ => None,
        })
        .collect();
    assert_eq!(overdue, ids);
    assert!(expelled(&out), "the third overdue complaint expels");
    assert_eq!(sim.standing(1).violations, 3);
}

// ---------------------------------------------------------------------------------------
// Zero tolerance at the point of sale, and disposal out of the alliance

/// Hands off a car with `report` (a true record) to dealer 1 as lot `lot`.
fn stock_with(sim: &mut Sim, lot: u32, report: Inspection) -> ItemId {
    sim.sell(lot, 1, report.clone());
    let out = sim.run(AllianceCommand::HandOff(Box::new(record(lot, 1, report))));
    match out.first() {
        Some(AllianceEvent::HandedOff { item, .. }) => *item,
        other => panic!("no hand-off: {other:?}"),
    }
}

fn retail_refused(out: &[AllianceEvent]) -> Option<(Vec<Reason>, Option<WarningId>)> {
    out.iter().find_map(|e| match e {
        AllianceEvent::RetailRefused {
            reasons, warning, ..
        } => Some((reasons.clone(), *warning)),
        _ => None,
    })
}

#[test]
fn zero_tolerance_refuses_the_retail_sale_of_these_cars_and_only_these() {
    // (what the report or the record shows, barred from retail?)
    /// Makes the report or the record fail a rule.
    type Spoil = fn(&mut Inspection, &mut HandOffRecord);
    let table: &[(&str, Spoil, &[Reason])] = &[
        ("clean", |_, _| {}, &[]),
        (
            "structural",
            |i, _| i.structural_damage = true,
            &[Reason::StructuralDamage],
        ),
        ("fire", |i, _| i.fire = true, &[Reason::Fire]),
        ("flood", |i, _| i.flood = true, &[Reason::Flood]),
        (
            "odometer",
            |i, _| i.odometer_tampered = true,
            &[Reason::OdometerTampered],
        ),
        (
            "title",
            |i, _| i.title_transferable = false,
            &[Reason::TitleNotTransferable],
        ),
        (
            "fire and flood",
            |i, _| {
                i.fire = true;
                i.flood = true;
            },
            &[Reason::Fire, Reason::Flood],
        ),
        // Not certified, but nothing about the car itself: sold, marked not certified.
        ("vin", |_, r| r.vin = "1M8GDM9AXKP042789".into(), &[]),
        ("hash", |_, r| r.inspection_sha256 = [7; 32], &[]),
    ];
    for &(name, change, barred) in table {
        let mut sim = Sim::new();
        let mut report = clean();
        let mut handed = record(1, 1, clean());
        change(&mut report, &mut handed);
        handed.inspection_sha256 = if handed.inspection_sha256 == [7; 32] {
            [7; 32]
        } else {
            inspection_sha256(&report)
        };
        handed.inspection = report.clone();
        sim.sell(1, 1, report);
        sim.run(AllianceCommand::HandOff(Box::new(handed)));
        let out = sim.retail(ItemId(1), 1);
        let item = sim.alliance.item(ItemId(1)).expect("item").clone();
        match retail_refused(&out) {
            Some((reasons, warning)) => {
                assert_eq!(reasons, barred, "{name}");
                assert_eq!(warning, Some(WarningId(1)), "{name}");
                assert_eq!(item.status, ItemStatus::InStock, "{name}: nothing sold");
                assert!(item.retail.is_none(), "{name}");
                assert_eq!(sim.standing(1).refused_retail, 1, "{name}");
            }
            None => {
                assert!(barred.is_empty(), "{name} was sold");
                assert_eq!(refusal(&out), None, "{name}");
                assert_eq!(item.status, ItemStatus::Retailed, "{name}");
                assert_eq!(item.certified, name == "clean", "{name}");
                assert_eq!(sim.standing(1).violations, 0, "{name}");
            }
        }
    }
}

#[test]
fn under_the_first_rules_such_a_sale_went_through() {
    let mut sim = Sim::new();
    sim.rules.version = crate::vocab::FIRST_RULES_VERSION;
    let item = stock_with(
        &mut sim,
        1,
        Inspection {
            flood: true,
            ..clean()
        },
    );
    let out = sim.retail(item, 1);
    assert_eq!(retail_refused(&out), None);
    assert_eq!(
        sim.alliance.item(item).map(|i| i.status),
        Some(ItemStatus::Retailed)
    );
}

#[test]
fn the_first_refused_attempt_on_a_car_is_warned_later_ones_are_counted() {
    let flood = Inspection {
        flood: true,
        ..clean()
    };
    // (rule, warnings after three attempts on one car and one on another)
    for (rule, warnings) in [
        (RefusedRetail::WarnOncePerCar, 2),
        (RefusedRetail::CountOnly, 0),
    ] {
        let mut sim = Sim::new();
        sim.rules.refused_retail = rule;
        let first = stock_with(&mut sim, 1, flood.clone());
        let second = stock_with(&mut sim, 2, flood.clone());
        let mut warned = Vec::new();
        for item in [first, first, first, second] {
            let out = sim.retail(item, 1);
            let (_, warning) = retail_refused(&out).expect("refused");
            warned.push(warning.is_some());
            assert!(out.iter().any(|e| matches!(
                e,
                AllianceEvent::RecordChanged { record, .. } if record.refused_retail >= 1
            )));
        }
        let expected = match rule {
            RefusedRetail::WarnOncePerCar => [true, false, false, true],
            RefusedRetail::CountOnly => [false; 4],
        };
        assert_eq!(warned, expected, "{rule:?}");
        let s = sim.standing(1);
        assert_eq!(s.refused_retail, 4, "{rule:?}: every attempt counted");
        assert_eq!(s.violations, warnings, "{rule:?}");
    }
}

#[test]
fn a_refused_attempt_is_a_violation_toward_expulsion() {
    let mut sim = Sim::new();
    violation(&mut sim, "overdue");
    violation(&mut sim, "damage");
    let (out, _, _) = violation(&mut sim, "refused");
    assert!(expelled(&out));
    assert_eq!(sim.status(1), DealerStatus::Expelled);
}

#[test]
fn disposal_takes_a_car_out_of_inventory_and_corrects_the_refused_attempt() {
    let mut sim = Sim::new();
    let flooded = stock_with(
        &mut sim,
        1,
        Inspection {
            flood: true,
            ..clean()
        },
    );
    sim.retail(flooded, 1);
    assert_eq!(sim.standing(1).uncorrected(), 1);
    sim.now += H;
    let dispose = |item, by, channel| AllianceCommand::Dispose {
        item,
        by,
        channel,
        note: "scrap certificate 118".into(),
    };
    // Only the holding dealer or an operator.
    for by in [Actor::Dealer(DealerId(2)), Actor::Service] {
        assert_eq!(
            refusal(&sim.run(dispose(flooded, by, Channel::Scrap))),
            Some(AllianceRefusal::NotAllowed)
        );
    }
    let out = sim.run(dispose(flooded, Actor::Dealer(DealerId(1)), Channel::Scrap));
    assert_eq!(refusal(&out), None);
    let item = sim.alliance.item(flooded).expect("item");
    assert_eq!(item.status, ItemStatus::Disposed);
    assert_eq!(
        item.disposal,
        Some(Disposal {
            channel: Channel::Scrap,
            note: "scrap certificate 118".into(),
            at: sim.now,
        })
    );
    let s = sim.standing(1);
    assert_eq!((s.violations, s.uncorrected()), (1, 0));
    assert_eq!(s.warnings[0].corrected_at, Some(sim.now));
    // Final: no second disposal, no retail, no return.
    assert_eq!(
        refusal(&sim.run(dispose(flooded, Actor::Admin, Channel::Export))),
        Some(AllianceRefusal::WrongState)
    );
    assert_eq!(
        refusal(&sim.retail(flooded, 1)),
        Some(AllianceRefusal::WrongState)
    );
}

#[test]
fn which_cars_can_be_disposed_of() {
    // (how far the car got, disposable?)
    let table: &[(&str, bool)] = &[
        ("in stock", true),
        ("retailed", false),
        ("returned", false),
        ("refunded", true),
    ];
    for &(stage, ok) in table {
        let mut sim = Sim::new();
        let item = sim.stock(1, 1);
        if stage != "in stock" {
            sim.retail(item, 1);
        }
        if matches!(stage, "returned" | "refunded") {
            sim.give_back(item, &[]);
        }
        if stage == "refunded" {
            sim.run(AllianceCommand::Refund { item });
        }
        let out = sim.run(AllianceCommand::Dispose {
            item,
            by: Actor::Admin,
            channel: Channel::Wholesale,
            note: String::new(),
        });
        let expected = (!ok).then_some(AllianceRefusal::WrongState);
        assert_eq!(refusal(&out), expected, "{stage}");
    }
    let mut sim = Sim::new();
    let out = sim.run(AllianceCommand::Dispose {
        item: ItemId(9),
        by: Actor::Admin,
        channel: Channel::Export,
        note: String::new(),
    });
    assert_eq!(refusal(&out), Some(AllianceRefusal::UnknownItem));
}

#[test]
fn a_disposal_does_not_correct_what_a_refund_corrects() {
    let mut sim = Sim::new();
    let item = sim.stock(1, 1);
    sim.retail(item, 1);
    sim.give_back(item, &[Finding::Fire]);
    sim.run(AllianceCommand::Refund { item });
    assert_eq!(sim.standing(1).uncorrected(), 0);
    // A violation the refund does not fix stays uncorrected by a disposal of another car.
    let other = stock_with(
        &mut sim,
        2,
        Inspection {
            structural_damage: true,
            ..clean()
        },
    );
    sim.retail(other, 1);
    sim.run(AllianceCommand::Dispose {
        item,
        by: Actor::Dealer(DealerId(1)),
        channel: Channel::Export,
        note: String::new(),
    });
    assert_eq!(sim.standing(1).uncorrected(), 1);
}

// ---------------------------------------------------------------------------------------
// Good standing

#[test]
fn who_is_in_good_standing() {
    // (what happened to dealer 1, its status, in good standing?)
    type Story = fn(&mut Sim);
    let table: &[(&str, Story, DealerStatus, bool)] = &[
        ("new, unrated", |_| {}, DealerStatus::Active, true),
        ("suspended", |_| {}, DealerStatus::Suspended, false),
        ("expelled", |_| {}, DealerStatus::Expelled, false),
        (
            "rated 3.0: at the threshold",
            |sim| {
                let item = sim.stock(1, 1);
                sim.retail(item, 1);
                sim.rate(1, item, 3, 3);
            },
            DealerStatus::Active,
            true,
        ),
        (
            "rated 2.5: below it",
            |sim| {
                let item = sim.stock(1, 1);
                sim.retail(item, 1);
                sim.rate(1, item, 2, 3);
            },
            DealerStatus::Active,
            false,
        ),
        (
            "an uncorrected warning",
            |sim| {
                violation(sim, "overdue");
            },
            DealerStatus::Active,
            false,
        ),
        (
            "a corrected warning",
            |sim| {
                let (_, complaint, _) = violation(sim, "overdue");
                sim.resolve(complaint.expect("complaint"), Actor::Admin);
            },
            DealerStatus::Active,
            true,
        ),
    ];
    for &(name, story, status, good) in table {
        let mut sim = Sim::new();
        story(&mut sim);
        assert_eq!(
            sim.alliance.good_standing(DealerId(1), status, &sim.rules),
            good,
            "{name}"
        );
    }
}

#[test]
fn rules_at_their_defaults_are_written_as_before_the_later_fields() {
    let old = AllianceRules {
        refused_retail: RefusedRetail::default(),
        ..AllianceRules::default()
    };
    let bytes = rmp_serde::to_vec(&old).expect("encodes");
    // [return_window_ms, complaint_due_ms]: a two-element array, as first written.
    assert_eq!(bytes[0], 0x92);
    let changed = AllianceRules {
        good_standing_min_score_tenths: 40,
        ..AllianceRules::default()
    };
    for encode in [rmp_serde::to_vec, rmp_serde::to_vec_named] {
        for rules in [&changed, &old] {
            let mut back: AllianceRules =
                rmp_serde::from_slice(&encode(rules).expect("encodes")).expect("decodes");
            // The version travels beside the alliance's shape (market::durable).
            back.version = rules.version;
            assert_eq!(&back, rules);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Warnings across the cluster's markets

impl Sim {
    /// Notes a warning market `market` issued to `dealer`.
    fn note(
        &mut self,
        dealer: u32,
        market: &str,
        warning: u32,
        corrected_at: Option<u64>,
    ) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::NoteRemoteWarning {
            dealer: DealerId(dealer),
            market: market.into(),
            warning: WarningId(warning),
            issued_at: T0 - H,
            corrected_at,
        })
    }
}

#[test]
fn remote_warnings_count_toward_expulsion_like_local_ones() {
    // (notes of other markets' warnings to dealer 1, local violations before the last,
    // is the last violation an expulsion?)
    type Note = (&'static str, u32, Option<u64>);
    let table: &[(&str, &[Note], usize, bool)] = &[
        (
            "two remote uncorrected",
            &[("beijing", 1, None), ("chengdu", 1, None)],
            0,
            true,
        ),
        ("one remote and one local", &[("beijing", 1, None)], 1, true),
        (
            "two remote, one corrected",
            &[("beijing", 1, None), ("chengdu", 1, Some(T0))],
            0,
            false,
        ),
        (
            "two remote, one corrected by a later note",
            &[
                ("beijing", 1, None),
                ("chengdu", 1, None),
                ("chengdu", 1, Some(T0)),
            ],
            0,
            false,
        ),
        (
            "one remote noted three times",
            &[
                ("beijing", 1, None),
                ("beijing", 1, None),
                ("beijing", 1, None),
            ],
            0,
            false,
        ),
        (
            "same id, two markets: two warnings",
            &[("beijing", 7, None), ("chengdu", 7, None)],
            0,
            true,
        ),
        ("one remote alone", &[("beijing", 1, None)], 0, false),
        ("none", &[], 1, false),
    ];
    for &(name, notes, local, expels) in table {
        let mut sim = Sim::new();
        for &(market, warning, corrected) in notes {
            let out = sim.note(1, market, warning, corrected);
            assert_eq!(refusal(&out), None, "{name}");
            assert!(!expelled(&out), "{name}: a note alone never expels");
        }
        for _ in 0..local {
            let (out, _, _) = violation(&mut sim, "overdue");
            assert!(!expelled(&out), "{name}");
        }
        let (out, _, _) = violation(&mut sim, "overdue");
        assert_eq!(expelled(&out), expels, "{name}");
        let expected = if expels {
            DealerStatus::Expelled
        } else {
            DealerStatus::Active
        };
        assert_eq!(sim.status(1), expected, "{name}");
        assert_eq!(sim.status(2), DealerStatus::Active, "{name}");
    }
}

#[test]
fn a_duplicate_note_changes_nothing_and_a_correction_is_final() {
    let mut sim = Sim::new();
    let first = sim.note(1, "beijing", 4, None);
    assert!(
        matches!(&first[..], [AllianceEvent::RemoteWarningNoted { dealer, warning }]
            if *dealer == DealerId(1) && warning.market == "beijing" && !warning.corrected()),
        "{first:?}"
    );
    let before = sim.alliance.clone();
    assert_eq!(sim.note(1, "beijing", 4, None), []);
    assert_eq!(sim.alliance, before);
    assert_eq!(sim.standing(1).uncorrected(), 1);
    // The correction relays too; a stale uncorrected note after it does not undo it.
    let out = sim.note(1, "beijing", 4, Some(T0 + 5));
    assert!(
        matches!(&out[..], [AllianceEvent::RemoteWarningNoted { warning, .. }]
        if warning.corrected_at == Some(T0 + 5))
    );
    assert_eq!(sim.note(1, "beijing", 4, None), []);
    assert_eq!(sim.note(1, "beijing", 4, Some(T0 + 9)), []);
    let s = sim.standing(1);
    assert_eq!(s.uncorrected(), 0);
    assert_eq!(s.remote_warnings.len(), 1);
    assert_eq!(s.remote_warnings[0].corrected_at, Some(T0 + 5));
    // Local violations and records are the market's own: a note adds none.
    assert_eq!((s.violations, s.warnings.len()), (0, 0));
}

#[test]
fn notes_the_rules_refuse() {
    let mut sim = Sim::new();
    assert_eq!(
        refusal(&sim.note(1, "", 1, None)),
        Some(AllianceRefusal::InvalidMarket)
    );
    let long = "x".repeat(MAX_MARKET_NAME + 1);
    assert_eq!(
        refusal(&sim.note(1, &long, 1, None)),
        Some(AllianceRefusal::InvalidMarket)
    );
    assert_eq!(
        refusal(&sim.note(1, &"x".repeat(MAX_MARKET_NAME), 1, None)),
        None
    );
    assert_eq!(
        refusal(&sim.note(9, "beijing", 1, None)),
        Some(AllianceRefusal::UnknownDealer)
    );
    assert_eq!(refusal(&sim.note(1, "beijing", 1, None)), None);
    // The same warning of the same market named for another dealer.
    assert_eq!(
        refusal(&sim.note(2, "beijing", 1, None)),
        Some(AllianceRefusal::WrongDealer)
    );
    assert_eq!(sim.standing(2).remote_warnings, []);
}

#[test]
fn an_uncorrected_remote_warning_costs_good_standing() {
    let mut sim = Sim::new();
    let rules = sim.rules.clone();
    assert!(sim
        .alliance
        .good_standing(DealerId(1), DealerStatus::Active, &rules));
    sim.note(1, "beijing", 1, None);
    assert!(!sim
        .alliance
        .good_standing(DealerId(1), DealerStatus::Active, &rules));
    sim.note(1, "beijing", 1, Some(T0));
    assert!(sim
        .alliance
        .good_standing(DealerId(1), DealerStatus::Active, &rules));
}

#[test]
fn an_alliance_without_remote_warnings_is_written_as_before_them() {
    let mut sim = Sim::new();
    violation(&mut sim, "overdue");
    let bytes = rmp_serde::to_vec(&sim.alliance).expect("encodes");
    assert_eq!(bytes[0], 0x96, "six fields, as before remote warnings");
    sim.note(1, "beijing", 1, None);
    let bytes = rmp_serde::to_vec(&sim.alliance).expect("encodes");
    assert_eq!(bytes[0], 0x97, "the notes last");
    let back: Alliance = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(back, sim.alliance);
    let named = rmp_serde::to_vec_named(&sim.alliance).expect("encodes");
    let back: Alliance = rmp_serde::from_slice(&named).expect("decodes");
    assert_eq!(back, sim.alliance);
}

mod remote_notes {
    use super::*;
    use proptest::prelude::*;

    /// A note: (market, warning, issued offset, corrected offset). The dealer follows
    /// from the warning, as one warning is one dealer's.
    type Note = (u8, u32, u64, Option<u64>);

    fn command((market, warning, issued, corrected): Note) -> AllianceCommand {
        AllianceCommand::NoteRemoteWarning {
            dealer: DealerId(1 + warning % 2),
            market: ["beijing", "chengdu", "xian"][usize::from(market % 3)].into(),
            warning: WarningId(warning),
            issued_at: T0 + issued,
            corrected_at: corrected.map(|c| T0 + c),
        }
    }

    fn after(notes: &[Note]) -> Sim {
        let mut sim = Sim::new();
        for &n in notes {
            let out = sim.run(command(n));
            assert_eq!(refusal(&out), None);
        }
        sim
    }

    proptest! {
        /// Relays deliver notes late, twice and out of order: any order of the same notes
        /// ends in the same state (and the event-built view agrees, checked in `run`).
        #[test]
        fn any_order_of_the_same_notes_ends_in_the_same_state(
            (notes, shuffled) in prop::collection::vec(
                (0u8..3, 1u32..5, 0u64..4, prop::option::of(4u64..8)),
                0..12,
            )
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let (a, b) = (after(&notes), after(&shuffled));
            prop_assert_eq!(&a.alliance, &b.alliance);
            for d in 1..=2 {
                let uncorrected = a.standing(d).uncorrected();
                // A key counts once, and only while no note of it carried a correction.
                let mut keys: Vec<(u8, u32)> = notes
                    .iter()
                    .filter(|n| 1 + n.1 % 2 == d)
                    .map(|n| (n.0 % 3, n.1))
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let open = keys
                    .iter()
                    .filter(|&&(m, w)| {
                        !notes.iter().any(|n| n.0 % 3 == m && n.1 == w && n.3.is_some())
                    })
                    .count();
                prop_assert_eq!(uncorrected, open);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hand-offs from other markets of the cluster

/// The car of the records, as its seller described it.
pub(crate) fn car() -> Vehicle {
    Vehicle {
        vin: VIN.into(),
        make: "Ford".into(),
        model: "Focus".into(),
        year: 2019,
        mileage_km: 61_000,
        city: Some("Chengdu".into()),
    }
}

impl Sim {
    /// Hands off `record` as market `market` sold it.
    fn hand_from(&mut self, market: &str, record: HandOffRecord) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::HandOffFrom {
            market: market.into(),
            record: Box::new(record),
            vehicle: Box::new(car()),
        })
    }
}

/// The item a hand-off answered with, and whether it was a duplicate.
fn handed(out: &[AllianceEvent]) -> Option<(ItemId, bool)> {
    match out.first() {
        Some(AllianceEvent::HandedOff {
            item, duplicate, ..
        }) => Some((*item, *duplicate)),
        _ => None,
    }
}

#[test]
fn a_sold_car_of_another_market_is_delivered_like_a_local_one_and_filed_under_its_market() {
    let mut sim = Sim::new();
    // No sale in this book: the selling market checked the record against its own.
    let out = sim.hand_from("beijing", record(3, 2, clean()));
    let item = sim.alliance.item(ItemId(1)).expect("delivered").clone();
    assert_eq!(
        out,
        [
            AllianceEvent::HandedOff {
                auction: LotId(3),
                item: ItemId(1),
                duplicate: false
            },
            AllianceEvent::ItemFrom {
                item: ItemId(1),
                market: "beijing".into(),
                auction: LotId(3),
                vehicle: Box::new(car()),
            },
            AllianceEvent::ItemChanged(Box::new(item.clone())),
        ]
    );
    assert_eq!(
        (item.auction, item.dealer, item.price, item.status),
        (LotId(3), DealerId(2), 5_000_000, ItemStatus::InStock)
    );
    assert!(item.certified);
    assert_eq!(item.delivered_at, T0);
    assert_eq!(sim.alliance.origin(ItemId(1)), Some(("beijing", LotId(3))));
    assert_eq!(sim.alliance.item_from("beijing", LotId(3)), Some(&item));
    assert_eq!(sim.alliance.item_from("chengdu", LotId(3)), None);
    // This book's lot 3 is another car, never handed off.
    assert_eq!(sim.alliance.item_for_auction(LotId(3)), None);
}

#[test]
fn one_item_per_market_and_auction() {
    // (who hands off auction 3, the item it answers with, duplicate?)
    let table: &[(Option<&str>, u32, bool)] = &[
        (Some("beijing"), 1, false),
        (Some("beijing"), 1, true),
        (Some("chengdu"), 2, false),
        (None, 3, false), // this book's own lot 3
        (Some("chengdu"), 2, true),
        (None, 3, true),
        (Some("beijing"), 1, true),
    ];
    let mut sim = Sim::new();
    sim.sell(3, 1, clean());
    for (step, &(market, item, duplicate)) in table.iter().enumerate() {
        let before = sim.alliance.clone();
        let out = match market {
            Some(m) => sim.hand_from(m, record(3, 1, clean())),
            None => sim.run(AllianceCommand::HandOff(Box::new(record(3, 1, clean())))),
        };
        assert_eq!(
            handed(&out),
            Some((ItemId(item), duplicate)),
            "step {step}: {out:?}"
        );
        if duplicate {
            assert_eq!(out.len(), 1, "step {step}: a duplicate says only that");
            assert_eq!(
                sim.alliance, before,
                "step {step}: a duplicate changes nothing"
            );
        }
    }
    assert_eq!(sim.alliance.items().count(), 3);
    let a = &sim.alliance;
    assert_eq!(
        a.item_from("beijing", LotId(3)).map(|i| i.id),
        Some(ItemId(1))
    );
    assert_eq!(
        a.item_from("chengdu", LotId(3)).map(|i| i.id),
        Some(ItemId(2))
    );
    assert_eq!(a.item_for_auction(LotId(3)).map(|i| i.id), Some(ItemId(3)));
    assert_eq!(a.origin(ItemId(2)), Some(("chengdu", LotId(3))));
    assert_eq!(a.origin(ItemId(3)), None, "a local item");
    assert_eq!(a.origin(ItemId(4)), None, "no such item");
    // A repeat is known by (market, auction) alone, as a local one is by auction: a
    // record that differs on the way is still the same car's.
    let mut dearer = record(3, 1, clean());
    dearer.price += 1;
    assert_eq!(
        handed(&sim.hand_from("beijing", dearer)),
        Some((ItemId(1), true))
    );
}

#[test]
fn hand_offs_from_other_markets_the_rules_refuse() {
    type Change = fn(&mut HandOffRecord);
    let long = "x".repeat(MAX_MARKET_NAME + 1);
    let longest = "x".repeat(MAX_MARKET_NAME);
    let table: &[(&str, &str, Change, Option<AllianceRefusal>)] = &[
        ("accepted", "beijing", |_| {}, None),
        (
            "no market",
            "",
            |_| {},
            Some(AllianceRefusal::InvalidMarket),
        ),
        (
            "market too long",
            &long,
            |_| {},
            Some(AllianceRefusal::InvalidMarket),
        ),
        ("longest market", &longest, |_| {}, None),
        (
            "unknown buyer",
            "beijing",
            |r| r.dealer = DealerId(9),
            Some(AllianceRefusal::UnknownDealer),
        ),
        (
            "free",
            "beijing",
            |r| r.price = 0,
            Some(AllianceRefusal::InvalidAmount),
        ),
        (
            "over the cap",
            "beijing",
            |r| r.price = crate::vocab::MAX_AMOUNT + 1,
            Some(AllianceRefusal::InvalidAmount),
        ),
        (
            "at the cap",
            "beijing",
            |r| r.price = crate::vocab::MAX_AMOUNT,
            None,
        ),
    ];
    for (name, market, change, expected) in table {
        let mut sim = Sim::new();
        let mut r = record(3, 1, clean());
        change(&mut r);
        let out = sim.hand_from(market, r);
        assert_eq!(refusal(&out), *expected, "{name}: {out:?}");
        let items = usize::from(expected.is_none());
        assert_eq!(sim.alliance.items().count(), items, "{name}");
        if expected.is_some() {
            assert_eq!(sim.alliance, Alliance::default(), "{name}: changed nothing");
        }
    }
}

#[test]
fn a_car_from_another_market_is_certified_on_its_own_record() {
    type Change = fn(&mut HandOffRecord);
    let table: &[(&str, Change, &[Reason])] = &[
        ("clean", |_| {}, &[]),
        (
            "flood in the report",
            |r| {
                r.inspection.flood = true;
                r.inspection_sha256 = inspection_sha256(&r.inspection);
            },
            &[Reason::Flood],
        ),
        (
            "claimed hash is not the report's",
            |r| r.inspection_sha256[0] ^= 1,
            &[Reason::InspectionMismatch],
        ),
        (
            "report changed after hashing",
            |r| r.inspection.notes = "Like new.".into(),
            &[Reason::InspectionMismatch],
        ),
        // The record is its own listing: a bad VIN is invalid, never a mismatch.
        (
            "check digit",
            |r| r.vin = "1M8GDM9A1KP042788".into(),
            &[Reason::VinInvalid],
        ),
    ];
    for (name, change, expected) in table {
        let mut sim = Sim::new();
        let mut r = record(3, 1, clean());
        change(&mut r);
        let true_hash = inspection_sha256(&r.inspection);
        sim.hand_from("beijing", r);
        let item = sim.alliance.item(ItemId(1)).expect("delivered either way");
        assert_eq!(item.reasons, *expected, "{name}");
        assert_eq!(item.certified, expected.is_empty(), "{name}");
        assert_eq!(item.inspection_sha256, true_hash, "{name}");
    }
    // Zero tolerance applies to it as to a local car: its retail sale is refused.
    let mut sim = Sim::new();
    let fire = Inspection {
        fire: true,
        ..clean()
    };
    sim.hand_from("beijing", record(3, 1, fire));
    let out = sim.retail(ItemId(1), 1);
    assert_eq!(
        retail_refused(&out).map(|(reasons, _)| reasons),
        Some(vec![Reason::Fire])
    );
    assert_eq!(
        sim.alliance.item(ItemId(1)).map(|i| i.status),
        Some(ItemStatus::InStock)
    );
}

#[test]
fn an_alliance_with_cars_from_other_markets_round_trips_and_keeps_its_place() {
    // (remote warnings noted, hand-offs from other markets, loans of other markets noted,
    // positional array length)
    let table: &[(bool, bool, bool, u8)] = &[
        (false, false, false, 0x96),
        (true, false, false, 0x97),
        // `remote` is written, empty, to keep its place before `from_markets`.
        (false, true, false, 0x98),
        (true, true, false, 0x98),
        // And both, empty, before `remote_loans`.
        (false, false, true, 0x99),
        (true, false, true, 0x99),
        (false, true, true, 0x99),
        (true, true, true, 0x99),
    ];
    for &(notes, from, loans, len) in table {
        let case = format!("notes {notes} from {from} loans {loans}");
        let mut sim = Sim::new();
        sim.stock(1, 1);
        violation(&mut sim, "overdue");
        if notes {
            sim.note(1, "xian", 1, None);
        }
        if from {
            sim.hand_from("beijing", record(1, 2, clean()));
            sim.hand_from("chengdu", record(1, 2, clean()));
        }
        if loans {
            sim.loan_note("beijing", 1, 4, 2, false);
            sim.loan_note("xian", 2, 4, 1, true);
        }
        let positional = rmp_serde::to_vec(&sim.alliance).expect("encodes");
        assert_eq!(positional[0], len, "{case}");
        let named = rmp_serde::to_vec_named(&sim.alliance).expect("encodes");
        for bytes in [&positional, &named] {
            let back: Alliance = rmp_serde::from_slice(bytes).expect("decodes");
            assert_eq!(back, sim.alliance, "{case}");
            // Filed as before: local lot 1 and the other markets' lot 1 stay apart.
            assert_eq!(
                back.item_for_auction(LotId(1)).map(|i| i.id),
                Some(ItemId(1))
            );
            if from {
                assert_eq!(back.origin(ItemId(3)), Some(("chengdu", LotId(1))));
            }
            if loans {
                let open = RemoteLoan {
                    loan: LoanId(4),
                    dealer: DealerId(2),
                    repaid: false,
                };
                assert_eq!(back.remote_loan("beijing", LotId(1)), Some(&open));
                assert_eq!(back.remote_loans().count(), 2, "{case}");
            }
        }
    }
}

mod hand_offs_from {
    use super::*;
    use proptest::prelude::*;

    /// A hand-off of auction `lot` (1–3) from market `m` (0–2), or this book's (3).
    type HandOff = (u8, u32);

    proptest! {
        /// Deliveries repeat and interleave across markets: one item per (market, auction)
        /// and per local lot, each filed where it came from (and the event-built view
        /// agrees, checked in `run`).
        #[test]
        fn one_item_per_origin_whatever_the_order(
            hand_offs in prop::collection::vec((0u8..4, 1u32..4), 0..16)
        ) {
            let markets = ["beijing", "chengdu", "xian"];
            let mut sim = Sim::new();
            for lot in 1..4 {
                sim.sell(lot, 1, clean());
            }
            for &(m, lot) in &hand_offs {
                let out = match markets.get(usize::from(m)) {
                    Some(market) => sim.hand_from(market, record(lot, 1, clean())),
                    None => sim.run(AllianceCommand::HandOff(Box::new(record(lot, 1, clean())))),
                };
                prop_assert!(handed(&out).is_some(), "{:?}", out);
            }
            let mut origins: Vec<HandOff> = hand_offs.clone();
            origins.sort_unstable();
            origins.dedup();
            prop_assert_eq!(sim.alliance.items().count(), origins.len());
            for (m, lot) in origins {
                let item = match markets.get(usize::from(m)) {
                    Some(market) => sim.alliance.item_from(market, LotId(lot)),
                    None => sim.alliance.item_for_auction(LotId(lot)),
                };
                let item = item.expect("filed");
                prop_assert_eq!(item.auction, LotId(lot));
                let origin = markets.get(usize::from(m)).map(|&market| (market, LotId(lot)));
                prop_assert_eq!(sim.alliance.origin(item.id), origin);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loans other markets of the cluster made on the cars they sold

impl Sim {
    /// Notes that `market` financed its auction `auction` with `loan` from `dealer`'s
    /// line (or that the loan was repaid).
    fn loan_note(
        &mut self,
        market: &str,
        auction: u32,
        loan: u32,
        dealer: u32,
        repaid: bool,
    ) -> Vec<AllianceEvent> {
        self.run(AllianceCommand::NoteRemoteLoan {
            market: market.into(),
            auction: LotId(auction),
            loan: LoanId(loan),
            dealer: DealerId(dealer),
            repaid,
        })
    }

    /// This book's loan `loan` of `dealer` was repaid (the market calls this on the
    /// book's `LoanRepaid`).
    fn repaid_here(&mut self, dealer: u32, loan: u32) -> Vec<AllianceEvent> {
        let mut out = Vec::new();
        self.alliance
            .loan_repaid(self.now, DealerId(dealer), LoanId(loan), &mut out);
        self.follow(&out);
        out
    }

    /// Dealer `dealer`'s warnings as (cause, its item, its loan, corrected).
    fn causes(&self, dealer: u32) -> Vec<(&'static str, Option<ItemId>, Option<LoanId>, bool)> {
        self.standing(dealer)
            .warnings
            .iter()
            .map(|w| {
                let c = w.cause;
                (c.as_str(), c.item(), c.loan(), w.corrected())
            })
            .collect()
    }
}

/// A step of a story about Beijing's auction A3, which dealer 1 bought and Beijing
/// financed with its loan L4.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A note of L4 (repaid or not) from `market`, for its auction A3.
    Loan(&'static str, bool),
    /// Beijing's A3 arrives as item I1.
    Car,
    /// Dealer 1 retails I1.
    Retail,
}

#[test]
fn a_car_from_another_market_retailed_before_that_markets_loan_is_repaid_is_sold_out_of_trust() {
    use Step::{Car, Loan, Retail};
    let sold_out_of_trust = |corrected| {
        vec![(
            "sold_out_of_trust",
            Some(ItemId(1)),
            Some(LoanId(4)),
            corrected,
        )]
    };
    let table: &[(&str, &[Step], Vec<_>)] = &[
        (
            "open loan noted, then the car",
            &[Loan("beijing", false), Car, Retail],
            sold_out_of_trust(false),
        ),
        (
            "the car, then the open loan",
            &[Car, Loan("beijing", false), Retail],
            sold_out_of_trust(false),
        ),
        (
            "repaid before the sale",
            &[Loan("beijing", false), Car, Loan("beijing", true), Retail],
            vec![],
        ),
        (
            "repaid after the sale corrects it",
            &[Loan("beijing", false), Car, Retail, Loan("beijing", true)],
            sold_out_of_trust(true),
        ),
        (
            "noted repaid only",
            &[Loan("beijing", true), Car, Retail],
            vec![],
        ),
        (
            "open after repaid changes nothing",
            &[
                Car,
                Loan("beijing", false),
                Loan("beijing", true),
                Loan("beijing", false),
                Retail,
            ],
            vec![],
        ),
        ("no loan noted", &[Car, Retail], vec![]),
        (
            "Chengdu's loan on its own A3 is another car's",
            &[Loan("chengdu", false), Car, Retail],
            vec![],
        ),
    ];
    for (name, steps, expected) in table {
        let mut sim = Sim::new();
        // This book's A3, another car, has an open loan of the same id: never asked.
        sim.book.loans.insert(LotId(3), LoanId(4));
        for step in *steps {
            let out = match *step {
                Loan(market, repaid) => sim.loan_note(market, 3, 4, 1, repaid),
                Car => sim.hand_from("beijing", record(3, 1, clean())),
                Retail => {
                    let out = sim.retail(ItemId(1), 1);
                    // The sale stands either way: the consumer bought a car the dealer held.
                    assert_eq!(
                        sim.alliance.item(ItemId(1)).map(|i| i.status),
                        Some(ItemStatus::Retailed),
                        "{name}"
                    );
                    out
                }
            };
            assert_eq!(refusal(&out), None, "{name}: {step:?}");
        }
        assert_eq!(sim.causes(1), *expected, "{name}");
    }
}

#[test]
fn repeated_loan_notes_change_nothing_and_a_repayment_is_final() {
    let mut sim = Sim::new();
    let noted = |repaid| {
        vec![AllianceEvent::RemoteLoanNoted {
            market: "beijing".into(),
            auction: LotId(3),
            loan: LoanId(4),
            dealer: DealerId(1),
            repaid,
        }]
    };
    // (the note says repaid, what it answers)
    let table = [
        (false, noted(false)),
        (false, vec![]),
        (true, noted(true)),
        (true, vec![]),
        (false, vec![]),
    ];
    for (step, (repaid, expected)) in table.into_iter().enumerate() {
        let before = sim.alliance.clone();
        let out = sim.loan_note("beijing", 3, 4, 1, repaid);
        assert_eq!(out, expected, "step {step}");
        if expected.is_empty() {
            assert_eq!(sim.alliance, before, "step {step}: changed nothing");
        }
    }
    let repaid = RemoteLoan {
        loan: LoanId(4),
        dealer: DealerId(1),
        repaid: true,
    };
    assert_eq!(sim.alliance.remote_loan("beijing", LotId(3)), Some(&repaid));
    assert_eq!(sim.alliance.remote_loan("chengdu", LotId(3)), None);
    assert_eq!(sim.alliance.remote_loan("beijing", LotId(4)), None);
    // A note is not a violation, and no record holds it.
    assert_eq!(sim.standing(1).violations, 0);
}

#[test]
fn loan_notes_the_rules_refuse() {
    let long = "x".repeat(MAX_MARKET_NAME + 1);
    let longest = "x".repeat(MAX_MARKET_NAME);
    // (market, loan, dealer, the refusal), each after Beijing's A3 noted as L4 of D1.
    let table: &[(&str, u32, u32, Option<AllianceRefusal>)] = &[
        ("", 4, 1, Some(AllianceRefusal::InvalidMarket)),
        (&long, 4, 1, Some(AllianceRefusal::InvalidMarket)),
        (&longest, 4, 1, None),
        ("chengdu", 4, 9, Some(AllianceRefusal::UnknownDealer)),
        ("beijing", 4, 9, Some(AllianceRefusal::UnknownDealer)),
        // Beijing financed its A3 once: another loan or borrower is a relay's mistake.
        ("beijing", 5, 1, Some(AllianceRefusal::RecordMismatch)),
        ("beijing", 4, 2, Some(AllianceRefusal::RecordMismatch)),
        ("beijing", 4, 1, None),
        ("chengdu", 5, 2, None),
    ];
    for (market, loan, dealer, expected) in table {
        let mut sim = Sim::new();
        sim.loan_note("beijing", 3, 4, 1, false);
        let before = sim.alliance.clone();
        let out = sim.loan_note(market, 3, *loan, *dealer, true);
        assert_eq!(
            refusal(&out),
            *expected,
            "{market} L{loan} D{dealer}: {out:?}"
        );
        if expected.is_some() {
            assert_eq!(sim.alliance, before, "{market} L{loan} D{dealer}");
        } else {
            assert_eq!(
                sim.alliance.remote_loan(market, LotId(3)).map(|l| l.repaid),
                Some(true)
            );
        }
    }
}

#[test]
fn a_repayment_in_one_book_corrects_only_that_books_sale_out_of_trust() {
    let mut sim = Sim::new();
    // I1: this book's A5, financed here with L4. I2: Beijing's A3, financed there with
    // its own L4. Dealer 1 retails both before either loan is repaid.
    sim.book.loans.insert(LotId(5), LoanId(4));
    let local = sim.stock(5, 1);
    let remote = handed(&sim.hand_from("beijing", record(3, 1, clean())))
        .map(|(item, _)| item)
        .expect("delivered");
    sim.loan_note("beijing", 3, 4, 1, false);
    sim.retail(local, 1);
    sim.retail(remote, 1);
    let warning = |item, corrected| ("sold_out_of_trust", Some(item), Some(LoanId(4)), corrected);
    assert_eq!(
        sim.causes(1),
        [warning(local, false), warning(remote, false)]
    );
    // This book's L4 is repaid (and was late): its car's sale and its lateness are
    // corrected, Beijing's car is not.
    sim.book.loans.remove(&LotId(5));
    let mut out = Vec::new();
    sim.alliance
        .loan_overdue(sim.now, DealerId(1), LoanId(4), &sim.book, &mut out);
    sim.follow(&out);
    let out = sim.repaid_here(1, 4);
    assert_eq!(out.len(), 2, "{out:?}");
    let late = ("late_repayment", None, Some(LoanId(4)), true);
    assert_eq!(
        sim.causes(1),
        [warning(local, true), warning(remote, false), late]
    );
    assert_eq!(sim.standing(1).uncorrected(), 1);
    // Beijing's repayment corrects Beijing's car, with the usual event.
    sim.now += H;
    let out = sim.loan_note("beijing", 3, 4, 1, true);
    let corrected = sim.alliance.warning(WarningId(2)).cloned().expect("W2");
    assert_eq!(corrected.corrected_at, Some(sim.now));
    assert!(
        matches!(
            &out[..],
            [AllianceEvent::RemoteLoanNoted { repaid: true, .. }, AllianceEvent::WarningChanged(w)]
                if **w == corrected
        ),
        "{out:?}"
    );
    assert_eq!(
        sim.causes(1),
        [warning(local, true), warning(remote, true), late]
    );
    // A repeated repayment, of either book, corrects nothing more.
    assert_eq!(sim.loan_note("beijing", 3, 4, 1, true), []);
    assert_eq!(sim.repaid_here(1, 4), []);
}

#[test]
fn a_sale_out_of_trust_of_another_markets_car_counts_toward_expulsion() {
    let mut sim = Sim::new();
    violation(&mut sim, "overdue");
    violation(&mut sim, "overdue");
    sim.hand_from("beijing", record(3, 1, clean()));
    sim.loan_note("beijing", 3, 4, 1, false);
    let out = sim.retail(ItemId(1), 1);
    assert!(expelled(&out), "{out:?}");
    assert_eq!(sim.status(1), DealerStatus::Expelled);
}

mod remote_loans {
    use super::*;
    use proptest::prelude::*;

    /// A note: (market, auction, repaid). The loan and its borrower follow from the
    /// auction, as a book finances an auction once.
    type Note = (u8, u32, bool);

    fn after(notes: &[Note]) -> Sim {
        let mut sim = Sim::new();
        for &(market, auction, repaid) in notes {
            let market = ["beijing", "chengdu", "xian"][usize::from(market % 3)];
            let out = sim.loan_note(market, auction, auction + 10, 1 + auction % 3, repaid);
            assert_eq!(refusal(&out), None);
        }
        sim
    }

    proptest! {
        /// Relays deliver notes late, twice and out of order: any order of the same notes
        /// ends in the same state (and the event-built view agrees, checked in `run`), a
        /// loan repaid once any note said so.
        #[test]
        fn any_order_of_the_same_loan_notes_ends_in_the_same_state(
            (notes, shuffled) in prop::collection::vec((0u8..3, 1u32..4, any::<bool>()), 0..12)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let (a, b) = (after(&notes), after(&shuffled));
            prop_assert_eq!(&a.alliance, &b.alliance);
            let mut keys: Vec<(u8, u32)> = notes.iter().map(|n| (n.0 % 3, n.1)).collect();
            keys.sort_unstable();
            keys.dedup();
            prop_assert_eq!(a.alliance.remote_loans().count(), keys.len());
            for (market, auction, loan) in a.alliance.remote_loans() {
                let m = ["beijing", "chengdu", "xian"].iter().position(|&n| n == market);
                let repaid = notes
                    .iter()
                    .any(|n| Some(usize::from(n.0 % 3)) == m && n.1 == auction.0 && n.2);
                prop_assert_eq!(loan.repaid, repaid);
                prop_assert_eq!(loan.loan, LoanId(auction.0 + 10));
            }
        }
    }
}
