//! The market's rulebook: how the auctions and the alliance meet in one journaled step.
//! Sanctions take effect with the violation that caused them, deadlines of both run on
//! one tick, the rules are configured whole, and the market survives its snapshot, on a
//! simulated clock (no I/O, no sleeps).

use super::*;
use crate::alliance::tests::{clean, VIN};
use crate::alliance::{
    inspection_sha256, AllianceRefusal, ComplaintStatus, HandOffRecord, ItemId, Reason,
};
use crate::auction::{
    BidOutcome, Command as AuctionCommand, Event as AuctionEvent, Listing, Rejection,
};
use crate::vocab::{Inspection, SellerId, Vehicle};
use std::sync::Arc;

pub(super) const H: u64 = 3_600_000;
pub(super) const T0: u64 = 1_760_000_000_000;
// ---------------------------------------------------------------------------------------
// The alliance inside the market: journaled sanctions, bidding eligibility, snapshots

pub(super) const Y: u64 = crate::vocab::FEN_PER_YUAN;

/// The accounts a simulated market starts with: seller S1 and dealers D1 and D2, each
/// with a million yuan of deposit and no links.
pub(crate) fn accounts() -> Vec<AuctionCommand> {
    let seller = AuctionCommand::RegisterSeller {
        name: "seller".into(),
        token_hash: [1; 32],
    };
    let dealers = (0..2u8).map(|d| AuctionCommand::RegisterDealer {
        name: format!("dealer {d}"),
        deposit: 1_000_000 * Y,
        linked_sellers: Vec::new(),
        token_hash: [10 + d; 32],
    });
    std::iter::once(seller).chain(dealers).collect()
}

/// One market on a simulated clock.
pub(crate) struct Sim {
    pub(crate) market: Market,
    seq: u64,
    pub(super) now: u64,
}

impl Sim {
    pub(crate) fn new() -> Self {
        let mut m = Self {
            market: Market::default(),
            seq: 0,
            now: T0,
        };
        for command in accounts() {
            m.apply(command);
        }
        m
    }

    pub(crate) fn apply(&mut self, command: impl Into<Command>) -> Vec<Event> {
        self.seq += 1;
        self.market.apply(self.seq, self.now, command.into())
    }

    pub(super) fn tick_at(&mut self, now: u64) -> Vec<Event> {
        self.now = now;
        self.apply(AuctionCommand::Tick)
    }

    pub(crate) fn list(&mut self, inspection: Inspection) -> LotId {
        let events = self.apply(AuctionCommand::ListCar {
            seller: SellerId(1),
            listing: Box::new(listing_of(inspection)),
        });
        match events.first() {
            Some(Event::Auction(AuctionEvent::Listed { lot, .. })) => *lot,
            other => panic!("not listed: {other:?}"),
        }
    }

    pub(super) fn bid(&mut self, dealer: u32, lot: LotId, amount: u64, bid_id: &str) -> BidOutcome {
        let events = self.apply(AuctionCommand::PlaceBid {
            dealer: DealerId(dealer),
            lot,
            amount,
            max: None,
            bid_id: Arc::from(bid_id),
        });
        match events.first() {
            Some(Event::Auction(AuctionEvent::Bid { outcome, .. })) => *outcome,
            other => panic!("no bid result: {other:?}"),
        }
    }

    /// Lists a car and sells it to `dealer` at buy-now; returns the hand-off record.
    pub(crate) fn buy(&mut self, dealer: u32, inspection: Inspection) -> HandOffRecord {
        let lot = self.list(inspection.clone());
        let outcome = self.bid(dealer, lot, 60_000 * Y, &format!("buy-{lot}"));
        assert!(
            matches!(outcome, BidOutcome::Accepted { .. }),
            "{outcome:?}"
        );
        HandOffRecord {
            auction: lot,
            vin: VIN.into(),
            seller: SellerId(1),
            dealer: DealerId(dealer),
            price: 60_000 * Y,
            inspection_sha256: inspection_sha256(&inspection),
            inspection,
        }
    }

    pub(super) fn alliance(&mut self, command: AllianceCommand) -> Vec<Event> {
        self.apply(command)
    }
}

/// A car live at once for 10 minutes at 50,000 yuan (reserve the same, buy-now 60,000).
fn listing_of(inspection: Inspection) -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: VIN.into(),
            make: "Toyota".into(),
            model: "Corolla".into(),
            year: 2020,
            mileage_km: 50_000,
            city: None,
        },
        inspection,
        start_price: 50_000 * Y,
        reserve: 50_000 * Y,
        buy_now: Some(60_000 * Y),
        starts_at: None,
        duration_ms: Some(600_000),
    }
}

#[test]
fn expulsion_is_journaled_with_its_violation_and_stops_bidding() {
    let mut m = Sim::new();
    // Dealer 1 leads a live lot; its leading bid must stand after the expulsion.
    let open = m.list(clean());
    assert!(matches!(
        m.bid(1, open, 50_000 * Y, "lead"),
        BidOutcome::Accepted { .. }
    ));
    // Three complaints, none answered: at 24 h the third expels.
    for _ in 0..3 {
        let events = m.alliance(AllianceCommand::OpenComplaint {
            dealer: DealerId(1),
            item: None,
            consumer_ref: "c".into(),
            text: "t".into(),
        });
        assert!(matches!(
            events.as_slice(),
            [Event::Alliance(AllianceEvent::ComplaintChanged(_))]
        ));
    }
    assert_eq!(m.market.next_deadline(), Some(T0 + 600_000));
    // The lot closes first (sold to dealer 1: its leading bid stood until the close).
    let events = m.tick_at(T0 + 600_000);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Auction(AuctionEvent::Closed { .. }))));
    assert_eq!(m.market.next_deadline(), Some(T0 + 24 * H));
    let events = m.tick_at(T0 + 24 * H);
    let changed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Auction(AuctionEvent::DealerChanged { dealer, status, .. }) => {
                Some((*dealer, *status))
            }
            _ => None,
        })
        .collect();
    assert_eq!(changed, [(DealerId(1), DealerStatus::Expelled)]);
    assert_eq!(
        m.market.book().dealer(DealerId(1)).map(|d| d.status),
        Some(DealerStatus::Expelled)
    );
    // Its next bid is not eligible; the other dealer bids as before.
    let next = m.list(clean());
    assert_eq!(
        m.bid(1, next, 50_000 * Y, "after"),
        BidOutcome::Rejected(Rejection::NotEligible)
    );
    assert!(matches!(
        m.bid(2, next, 50_000 * Y, "other"),
        BidOutcome::Accepted { .. }
    ));
    // An operator may reinstate; the warnings stay on the record.
    m.apply(AuctionCommand::SetDealerStatus {
        dealer: DealerId(1),
        status: DealerStatus::Active,
        reason: "appeal upheld".into(),
    });
    let s = m
        .market
        .alliance()
        .standing(DealerId(1), DealerStatus::Active);
    assert_eq!((s.violations, s.uncorrected()), (3, 3));
}

#[test]
fn complaints_that_fell_due_during_an_outage_get_the_outage_grace() {
    let mut m = Sim::new();
    m.alliance(AllianceCommand::OpenComplaint {
        dealer: DealerId(1),
        item: None,
        consumer_ref: "c".into(),
        text: "t".into(),
    });
    let grace = m.market.book().rules().outage_grace_ms;
    // The engine was down from before the deadline until 25 h; its first command is Resume.
    m.now = T0 + 25 * H;
    let events = m.apply(AuctionCommand::Resume);
    let moved: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Alliance(AllianceEvent::ComplaintChanged(c)) => Some((c.status, c.due_at)),
            _ => None,
        })
        .collect();
    assert_eq!(moved, [(ComplaintStatus::Open, T0 + 25 * H + grace)]);
    assert_eq!(m.market.next_deadline(), Some(T0 + 25 * H + grace));
    // Not resolved within the grace either: now it is overdue.
    m.tick_at(T0 + 25 * H + grace - 1);
    assert_eq!(m.market.alliance().record(DealerId(1)).violations, 0);
    m.tick_at(T0 + 25 * H + grace);
    assert_eq!(m.market.alliance().record(DealerId(1)).violations, 1);
}

#[test]
fn hand_off_inside_the_book_checks_the_sale_and_is_idempotent() {
    let mut m = Sim::new();
    let record = m.buy(2, clean());
    let events = m.alliance(AllianceCommand::HandOff(Box::new(record.clone())));
    let item = match events.as_slice() {
        [Event::Alliance(AllianceEvent::HandedOff {
            item,
            duplicate: false,
            ..
        }), Event::Alliance(AllianceEvent::ItemChanged(i))] => {
            assert!(i.certified, "{:?}", i.reasons);
            *item
        }
        other => panic!("{other:?}"),
    };
    let again = m.alliance(AllianceCommand::HandOff(Box::new(record.clone())));
    assert_eq!(
        again,
        [Event::Alliance(AllianceEvent::HandedOff {
            auction: record.auction,
            item,
            duplicate: true
        })]
    );
    // A live lot is not sold; a record naming the wrong buyer does not match.
    let live = m.list(clean());
    let mut early = record.clone();
    early.auction = live;
    let events = m.alliance(AllianceCommand::HandOff(Box::new(early)));
    assert_eq!(
        events,
        [Event::Alliance(AllianceEvent::Refused(
            AllianceRefusal::NotSold
        ))]
    );
    let other = m.buy(1, clean());
    let mut wrong = other.clone();
    wrong.dealer = DealerId(2);
    let events = m.alliance(AllianceCommand::HandOff(Box::new(wrong)));
    assert_eq!(
        events,
        [Event::Alliance(AllianceEvent::Refused(
            AllianceRefusal::RecordMismatch
        ))]
    );
    // The record's VIN is checked against the listing's.
    let mut other_vin = other;
    other_vin.vin = "11111111111111111".into();
    m.alliance(AllianceCommand::HandOff(Box::new(other_vin.clone())));
    let item = m
        .market
        .alliance()
        .item_for_auction(other_vin.auction)
        .expect("delivered");
    assert_eq!(item.reasons, [Reason::VinMismatch]);
}

#[test]
fn alliance_state_survives_a_snapshot_and_old_snapshots_still_load() {
    let mut m = Sim::new();
    let record = m.buy(1, clean());
    m.alliance(AllianceCommand::HandOff(Box::new(record)));
    m.alliance(AllianceCommand::OpenComplaint {
        dealer: DealerId(1),
        item: Some(ItemId(1)),
        consumer_ref: "c".into(),
        text: "t".into(),
    });
    let bytes = rmp_serde::to_vec(&m.market).expect("snapshot");
    let back: Market = rmp_serde::from_slice(&bytes).expect("load");
    assert_eq!(back, m.market);
    assert_eq!(back.alliance().items().count(), 1);
    assert_eq!(
        back.next_deadline(),
        Some(T0 + 24 * H),
        "the complaint timer is kept"
    );

    // A snapshot from before the alliance: no `alliance` in the book or in its rules.
    let mut value = serde_json::to_value(Market::default()).expect("to json");
    let map = value.as_object_mut().expect("book is a map");
    map.remove("alliance");
    map.get_mut("rules")
        .and_then(|r| r.as_object_mut())
        .expect("rules")
        .remove("alliance");
    let old = rmp_serde::to_vec_named(&value).expect("encode");
    let loaded: Market = rmp_serde::from_slice(&old).expect("an old snapshot loads");
    assert_eq!(loaded, Market::default());
}

#[test]
fn configure_replaces_the_rules_of_both_books_whole() {
    let mut m = Sim::new();
    let rules = Rules {
        auction: auction::Rules {
            max_extensions: 10,
            ..auction::Rules::default()
        },
        alliance: AllianceRules {
            complaint_due_ms: 2 * H,
            ..AllianceRules::default()
        },
    };
    assert_eq!(
        m.apply(Command::Configure(Box::new(rules.clone()))),
        [Event::Configured]
    );
    assert_eq!(m.market.rules(), rules);
    assert_eq!(m.market.book().rules().max_extensions, 10);
    // The alliance's windows apply from the next command on.
    m.alliance(AllianceCommand::OpenComplaint {
        dealer: DealerId(1),
        item: None,
        consumer_ref: "c".into(),
        text: "t".into(),
    });
    assert_eq!(m.market.next_deadline(), Some(T0 + 2 * H));
}

#[test]
fn every_command_of_the_market_takes_a_sequence_number_and_time() {
    let mut m = Sim::new();
    let seq = m.seq;
    let complaint = || AllianceCommand::OpenComplaint {
        dealer: DealerId(1),
        item: None,
        consumer_ref: "c".into(),
        text: "t".into(),
    };
    // A stale seq is refused whole, whatever kind of command it carries.
    let out_of_order = [Event::Auction(AuctionEvent::Refused(Refusal::OutOfOrder))];
    assert_eq!(m.market.apply(seq, T0, complaint().into()), out_of_order);
    assert_eq!(
        m.market.apply(seq, T0, Command::Configure(Box::default())),
        out_of_order
    );
    assert!(m.market.alliance().complaints().next().is_none());
    // An alliance command moves the market's sequence and clock like any other.
    m.now = T0 + H;
    m.alliance(complaint());
    assert_eq!(
        (m.market.last_seq(), m.market.last_now()),
        (seq + 1, T0 + H)
    );
    // A command stamped earlier runs at the market's time: the complaint's window is
    // counted from then.
    m.now = T0;
    m.alliance(complaint());
    let due: Vec<u64> = m.market.alliance().complaints().map(|c| c.due_at).collect();
    assert_eq!(due, [T0 + 25 * H, T0 + 25 * H]);
}

/// Good standing is the alliance's, asked in the step of the pre-bid: a dealer with an
/// uncorrected warning (still active) may not pre-bid, and a pre-bid placed before the
/// warning stands and wins the opening.
#[test]
fn only_dealers_in_good_standing_prebid_and_a_prebid_outlives_a_warning() {
    let mut m = Sim::new();
    let events = m.apply(AuctionCommand::ListCar {
        seller: SellerId(1),
        listing: Box::new(Listing {
            starts_at: Some(T0 + 30 * H),
            ..listing_of(clean())
        }),
    });
    let Some(Event::Auction(AuctionEvent::Listed { lot, .. })) = events.first().cloned() else {
        panic!("not listed: {events:?}")
    };
    let prebid = |m: &mut Sim, dealer: u32, max: u64, id: &str| {
        let events = m.apply(AuctionCommand::PlaceBid {
            dealer: DealerId(dealer),
            lot,
            amount: 50_000 * Y,
            max: Some(max * Y),
            bid_id: Arc::from(id),
        });
        match events.first() {
            Some(Event::Auction(AuctionEvent::Bid { outcome, .. })) => *outcome,
            other => panic!("no bid result: {other:?}"),
        }
    };
    assert!(matches!(
        prebid(&mut m, 2, 70_000, "p2"),
        BidOutcome::Accepted { leading: false, .. }
    ));
    // One complaint each, left unanswered: a warning each at 24 h; both stay active.
    for dealer in [1, 2] {
        m.alliance(AllianceCommand::OpenComplaint {
            dealer: DealerId(dealer),
            item: None,
            consumer_ref: "c".into(),
            text: "t".into(),
        });
    }
    m.tick_at(T0 + 24 * H);
    for dealer in [1, 2] {
        let d = m.market.book().dealer(DealerId(dealer)).expect("dealer");
        assert_eq!(d.status, DealerStatus::Active);
        assert!(!m
            .market
            .alliance()
            .good_standing(d.id, d.status, &AllianceRules::default()));
    }
    assert_eq!(
        prebid(&mut m, 1, 80_000, "p1"),
        BidOutcome::Rejected(Rejection::NotInGoodStanding)
    );
    assert_eq!(
        prebid(&mut m, 2, 90_000, "p2-raise"),
        BidOutcome::Rejected(Rejection::NotInGoodStanding)
    );
    m.tick_at(T0 + 30 * H);
    let lot = m.market.book().lot(lot).expect("lot");
    assert_eq!(lot.lead.map(|l| l.dealer), Some(DealerId(2)));
    assert_eq!(lot.price, Some(50_000 * Y));
}
