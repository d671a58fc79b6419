//! Tests of the auction core on a simulated clock.
//!
//! Like quinn-proto's tests, nothing here touches a socket, a clock or a thread: a `Sim`
//! holds one `Book`, a running sequence number and the simulated time, and every test is a
//! script of commands with the events and state it must produce. Amounts are written in
//! yuan through `y()` so the tables read like the contract.

use super::*;
use crate::vocab::{
    DealerId, DealerStatus, Fen, Inspection, LoanId, LotId, SellerId, ServiceId, Vehicle,
    FEN_PER_YUAN, MAX_AMOUNT,
};

/// 2023-11-14T22:13:20Z: a plausible epoch-millisecond start for the simulated clock.
const T0: u64 = 1_700_000_000_000;
const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Yuan to fen.
const fn y(yuan: u64) -> Fen {
    yuan * FEN_PER_YUAN
}

fn listing(start: Fen, reserve: Fen, buy_now: Option<Fen>) -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: "LSVAU2180N2183294".into(),
            make: "Volkswagen".into(),
            model: "Lavida".into(),
            year: 2019,
            mileage_km: 62_000,
            city: Some("Hangzhou".into()),
        },
        inspection: Inspection {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 4,
            notes: String::new(),
        },
        start_price: start,
        reserve,
        buy_now,
        starts_at: None,
        duration_ms: None,
    }
}

/// One book on a simulated clock.
struct Sim {
    book: Book,
    seq: u64,
    now: u64,
    next_bid_id: u64,
}

impl Sim {
    fn new() -> Self {
        Self::with_rules(Rules::default())
    }

    fn with_rules(rules: Rules) -> Self {
        Self {
            book: Book::new(rules),
            seq: 0,
            now: T0,
            next_bid_id: 0,
        }
    }

    /// Applies `command` with the next sequence number at the current time.
    fn run(&mut self, command: Command) -> Vec<Event> {
        self.seq += 1;
        self.book.apply(self.seq, self.now, command)
    }

    /// Moves the clock (tests only ever move it forward unless they say otherwise).
    fn at(&mut self, now: u64) {
        self.now = now;
    }

    fn seller(&mut self) -> SellerId {
        let events = self.run(Command::RegisterSeller {
            name: "seller".into(),
            token_hash: [1; 32],
        });
        match events[..] {
            [Event::SellerRegistered { seller }] => seller,
            ref other => panic!("unexpected {other:?}"),
        }
    }

    fn dealer(&mut self, deposit: Fen) -> DealerId {
        self.linked_dealer(deposit, vec![])
    }

    fn linked_dealer(&mut self, deposit: Fen, linked_sellers: Vec<SellerId>) -> DealerId {
        let events = self.run(Command::RegisterDealer {
            name: "dealer".into(),
            deposit,
            linked_sellers,
            token_hash: [2; 32],
        });
        match events[..] {
            [Event::DealerRegistered { dealer }] => dealer,
            ref other => panic!("unexpected {other:?}"),
        }
    }

    fn list_with(&mut self, seller: SellerId, listing: Listing) -> Vec<Event> {
        self.run(Command::ListCar {
            seller,
            listing: Box::new(listing),
        })
    }

    /// Lists a car that is live at once for the default 20 minutes.
    fn list(&mut self, seller: SellerId, start: Fen, reserve: Fen, buy_now: Option<Fen>) -> LotId {
        let events = self.list_with(seller, listing(start, reserve, buy_now));
        match events[..] {
            [Event::Listed {
                lot,
                status: LotStatus::Live,
                ..
            }] => lot,
            ref other => panic!("unexpected {other:?}"),
        }
    }

    fn bid_events(
        &mut self,
        dealer: DealerId,
        lot: LotId,
        amount: Fen,
        max: Option<Fen>,
    ) -> Vec<Event> {
        self.next_bid_id += 1;
        let id = format!("b{}", self.next_bid_id);
        self.bid_with_id(dealer, lot, amount, max, &id)
    }

    fn bid_with_id(
        &mut self,
        dealer: DealerId,
        lot: LotId,
        amount: Fen,
        max: Option<Fen>,
        bid_id: &str,
    ) -> Vec<Event> {
        self.run(Command::PlaceBid {
            dealer,
            lot,
            amount,
            max,
            bid_id: bid_id.into(),
        })
    }

    /// A bid with a fresh `bid_id`; returns its outcome (the first event, always a `Bid`).
    fn bid(&mut self, dealer: DealerId, lot: LotId, amount: Fen, max: Option<Fen>) -> BidOutcome {
        bid_outcome(&self.bid_events(dealer, lot, amount, max))
    }

    fn tick(&mut self, now: u64) -> Vec<Event> {
        self.at(now);
        self.run(Command::Tick)
    }

    /// The clock and counters of this simulation, over an empty book.
    fn clone_clock(&self) -> Self {
        Self {
            book: Book::default(),
            seq: self.seq,
            now: self.now,
            next_bid_id: self.next_bid_id,
        }
    }

    fn lot(&self, id: LotId) -> &Lot {
        self.book.lot(id).expect("lot exists")
    }

    fn exposure(&self, dealer: DealerId) -> Fen {
        self.book.dealer(dealer).expect("dealer exists").exposure
    }

    fn state(&self) -> Vec<u8> {
        rmp_serde::to_vec(&self.book).expect("book serializes")
    }
}

fn bid_outcome(events: &[Event]) -> BidOutcome {
    match events.first() {
        Some(Event::Bid { outcome, .. }) => *outcome,
        other => panic!("first event is not a Bid: {other:?}"),
    }
}

/// `(price, leading)` of an accepted bid.
#[track_caller]
fn accepted(outcome: BidOutcome) -> (Fen, bool) {
    match outcome {
        BidOutcome::Accepted { price, leading, .. } => (price, leading),
        BidOutcome::Rejected(r) => panic!("rejected: {r:?}"),
    }
}

#[track_caller]
fn rejected(outcome: BidOutcome) -> Rejection {
    match outcome {
        BidOutcome::Rejected(r) => r,
        accepted @ BidOutcome::Accepted { .. } => panic!("accepted: {accepted:?}"),
    }
}

fn closed(events: &[Event]) -> Vec<(LotId, Outcome, Option<Fen>, Option<DealerId>)> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Closed {
                lot,
                outcome,
                price,
                leader,
                ..
            } => Some((lot, outcome, price, leader)),
            _ => None,
        })
        .collect()
}

fn outbid(events: &[Event]) -> Vec<DealerId> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Outbid { dealer, .. } => Some(dealer),
            _ => None,
        })
        .collect()
}

fn extended(events: &[Event]) -> Vec<(u64, u32)> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Extended {
                ends_at,
                extensions,
                ..
            } => Some((ends_at, extensions)),
            _ => None,
        })
        .collect()
}

/// A seller, `n` dealers with 10,000 yuan deposits (100,000 yuan of buying power each),
/// and one live lot.
fn market(n: usize, start: Fen, reserve: Fen, buy_now: Option<Fen>) -> (Sim, Vec<DealerId>, LotId) {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let dealers = (0..n).map(|_| sim.dealer(y(10_000))).collect();
    let lot = sim.list(seller, start, reserve, buy_now);
    (sim, dealers, lot)
}

// ---------------------------------------------------------------------------------------
// Increments and min_next

#[test]
fn min_next_is_start_price_then_price_plus_the_tier_increment() {
    // (price in yuan, step in yuan): both edges of every default band.
    let table = [
        (100, 100),
        (9_999, 100),
        (10_000, 200),
        (49_999, 200),
        (50_000, 500),
        (99_999, 500),
        (100_000, 1_000),
        (299_999, 1_000),
        (300_000, 2_000),
        (999_999, 2_000),
        (1_000_000, 5_000),
        (2_500_000, 5_000),
    ];
    for (price, step) in table {
        let mut sim = Sim::new();
        let seller = sim.seller();
        let d = sim.dealer(y(1_000_000));
        let lot = sim.list(seller, y(price), y(price), None);
        assert_eq!(
            sim.lot(lot).min_next(&sim.book.rules().increments),
            y(price)
        );
        assert_eq!(
            rejected(sim.bid(d, lot, y(price) - 1, None)),
            Rejection::BelowMinimum { min_next: y(price) },
            "price {price}"
        );
        assert_eq!(accepted(sim.bid(d, lot, y(price), None)), (y(price), true));
        let update = sim.lot(lot).update(&sim.book.rules().increments);
        assert_eq!(update.min_next, y(price + step), "price {price}");
        // One fen under min_next is refused with min_next; min_next itself is accepted.
        let other = sim.dealer(y(1_000_000));
        assert_eq!(
            rejected(sim.bid(other, lot, y(price + step) - 1, None)),
            Rejection::BelowMinimum {
                min_next: y(price + step)
            },
            "price {price}"
        );
        assert_eq!(
            accepted(sim.bid(other, lot, y(price + step), None)),
            (y(price + step), true)
        );
    }
}

#[test]
fn runner_up_increment_is_the_tier_of_the_runner_up_max() {
    let (mut sim, d, lot) = market(3, y(5_000), y(50_000), None);
    let (a, b, c) = (d[0], d[1], d[2]);
    accepted(sim.bid(a, lot, y(5_000), Some(y(10_000))));
    // 9,900 is in the 100-yuan band: 9,900 + 100 = 10,000, capped at A's max.
    assert_eq!(
        accepted(sim.bid(b, lot, y(5_100), Some(y(9_900)))),
        (y(10_000), false)
    );
    // 10,000 is in the 200-yuan band: C leads at 10,000 + 200.
    assert_eq!(
        accepted(sim.bid(c, lot, y(10_200), Some(y(20_000)))),
        (y(10_200), true)
    );
    assert_eq!(
        sim.lot(lot).min_next(&sim.book.rules().increments),
        y(10_400)
    );
}

// ---------------------------------------------------------------------------------------
// Proxy bidding

#[test]
fn proxy_war_between_two_dealers() {
    let (mut sim, d, lot) = market(2, y(10_000), y(30_000), None);
    let (a, b) = (d[0], d[1]);
    // (bidder, amount, max, price after, leader after, who is outbid); yuan.
    type Step = (DealerId, u64, Option<u64>, u64, DealerId, Option<DealerId>);
    let steps: [Step; 8] = [
        // First bid: the price is the placed amount.
        (a, 10_000, Some(15_000), 10_000, a, None),
        // A's proxy answers B: runner-up max 12,000 + 200.
        (b, 10_200, Some(12_000), 12_200, a, None),
        // B's max beats A's: A's 15,000 + 200, under B's max.
        (b, 12_400, Some(16_000), 15_200, b, Some(a)),
        // Equal maxima: B bid 16,000 first, so B leads, at 16,000.
        (a, 15_400, Some(16_000), 16_000, b, None),
        // A's new max wins: B's 16,000 + 200 is A's placed amount anyway.
        (a, 16_200, Some(25_000), 16_200, a, Some(b)),
        // A plain bid (max = amount) by B: A's proxy answers at 16,400 + 200.
        (b, 16_400, None, 16_600, a, None),
        // B takes the lead with a max over the reserve: 25,200 lifted to the reserve.
        (b, 16_800, Some(40_000), 30_000, b, Some(a)),
        // A ties B's max: B, earlier, leads at that max.
        (a, 30_200, Some(40_000), 40_000, b, None),
    ];
    for (i, (bidder, amount, max, price, leader, loser)) in steps.into_iter().enumerate() {
        let events = sim.bid_events(bidder, lot, y(amount), max.map(y));
        assert_eq!(
            accepted(bid_outcome(&events)),
            (y(price), bidder == leader),
            "step {i}"
        );
        let l = sim.lot(lot);
        assert_eq!(l.price, Some(y(price)), "step {i}");
        assert_eq!(l.lead.map(|l| l.dealer), Some(leader), "step {i}");
        assert_eq!(outbid(&events), Vec::from_iter(loser), "step {i}");
        assert_eq!(l.bids, i as u32 + 1);
    }
    // Exposure: only the leader carries its max.
    assert_eq!(sim.exposure(a), 0);
    assert_eq!(sim.exposure(b), y(40_000));
    let ends_at = sim.lot(lot).ends_at;
    let events = sim.tick(ends_at);
    assert_eq!(
        closed(&events),
        [(lot, Outcome::Sold, Some(y(40_000)), Some(b))]
    );
}

#[test]
fn tie_at_equal_maxima_goes_to_the_earlier_bid_at_that_max() {
    // (challenger's amount, challenger's max): each meets the leader's 12,000 max exactly.
    let table = [
        (10_200, Some(12_000)),
        (12_000, None),
        (12_000, Some(12_000)),
    ];
    for (amount, max) in table {
        let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
        let (a, b) = (d[0], d[1]);
        accepted(sim.bid(a, lot, y(10_000), Some(y(12_000))));
        let events = sim.bid_events(b, lot, y(amount), max.map(y));
        assert_eq!(
            accepted(bid_outcome(&events)),
            (y(12_000), false),
            "{amount} {max:?}"
        );
        assert!(outbid(&events).is_empty());
        let lead = sim.lot(lot).lead.unwrap();
        assert_eq!((lead.dealer, lead.max), (a, y(12_000)));
        // The loser of a tie carries no exposure.
        assert_eq!((sim.exposure(a), sim.exposure(b)), (y(12_000), 0));
        // The next bid must beat the tie price by an increment.
        assert_eq!(
            rejected(sim.bid(b, lot, y(12_000), Some(y(12_000)))),
            Rejection::BelowMinimum {
                min_next: y(12_200)
            }
        );
    }
}

#[test]
fn the_placed_amount_is_a_floor_for_the_new_leader() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), None));
    // Runner-up max 10,000 + 100 would do, but B placed 14,000.
    assert_eq!(
        accepted(sim.bid(d[1], lot, y(14_000), Some(y(20_000)))),
        (y(14_000), true)
    );
}

// ---------------------------------------------------------------------------------------
// Reserve

#[test]
fn first_bid_with_max_at_or_over_the_reserve_is_priced_at_the_reserve() {
    // (amount, max, expected price, reserve met)
    let table = [
        (10_000, Some(25_000), 20_000, true),
        (10_000, Some(20_000), 20_000, true),
        (10_000, Some(19_900), 10_000, false),
        (21_000, Some(25_000), 21_000, true),
        (10_000, None, 10_000, false),
    ];
    for (amount, max, price, met) in table {
        let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
        assert_eq!(
            accepted(sim.bid(d[0], lot, y(amount), max.map(y))),
            (y(price), true)
        );
        assert_eq!(sim.lot(lot).reserve_met(), met, "{amount} {max:?}");
    }
}

#[test]
fn leader_raise_meeting_the_reserve_lifts_the_price_but_never_extends() {
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), None);
    let (a, b) = (d[0], d[1]);
    accepted(sim.bid(a, lot, y(10_000), Some(y(15_000))));
    let ends_at = sim.lot(lot).ends_at;
    sim.at(ends_at - SEC); // deep inside the soft-close window
                           // A raise under the reserve moves nothing but the max.
    let events = sim.bid_events(a, lot, 0, Some(y(18_000)));
    assert_eq!(accepted(bid_outcome(&events)), (y(10_000), true));
    assert!(extended(&events).is_empty());
    // A raise meeting the reserve lifts the price to the reserve, and only to it.
    let events = sim.bid_events(a, lot, y(1), Some(y(22_000)));
    assert_eq!(accepted(bid_outcome(&events)), (y(20_000), true));
    assert!(extended(&events).is_empty());
    let l = sim.lot(lot);
    assert!(l.reserve_met());
    assert_eq!((l.ends_at, l.extensions, l.bids), (ends_at, 0, 3));
    assert_eq!(sim.exposure(a), y(22_000));
    // A challenger now prices against A's raised max (and extends: it moved the price).
    let events = sim.bid_events(b, lot, y(20_200), Some(y(30_000)));
    assert_eq!(accepted(bid_outcome(&events)), (y(22_200), true));
    assert_eq!(extended(&events), [(ends_at - SEC + 30 * SEC, 1)]);
}

#[test]
fn challenger_taking_the_lead_with_max_over_reserve_lifts_to_reserve() {
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(15_000))));
    // Runner-up 15,000 + 200 = 15,200, lifted to the 20,000 reserve.
    assert_eq!(
        accepted(sim.bid(d[1], lot, y(10_200), Some(y(25_000)))),
        (y(20_000), true)
    );
    // A challenger whose max stays under the reserve, against a leader over it: the
    // leader's price was already lifted; the proxy answers as usual above it.
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(25_000))));
    assert_eq!(sim.lot(lot).price, Some(y(20_000)));
    assert_eq!(
        rejected(sim.bid(d[1], lot, y(19_000), Some(y(19_500)))),
        Rejection::BelowMinimum {
            min_next: y(20_200)
        }
    );
    assert_eq!(
        accepted(sim.bid(d[1], lot, y(20_200), None)),
        (y(20_400), false)
    );
}

// ---------------------------------------------------------------------------------------
// Buy-now

#[test]
fn buy_now_sells_at_once_at_the_buy_now_price() {
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), Some(y(30_000)));
    let (a, b) = (d[0], d[1]);
    accepted(sim.bid(a, lot, y(10_000), Some(y(15_000))));
    assert_eq!(sim.exposure(a), y(15_000));
    // An amount over the buy-now price still pays the buy-now price.
    let events = sim.bid_events(b, lot, y(35_000), Some(y(50_000)));
    assert_eq!(accepted(bid_outcome(&events)), (y(30_000), true));
    assert_eq!(
        closed(&events),
        [(lot, Outcome::Sold, Some(y(30_000)), Some(b))]
    );
    assert!(matches!(events[0], Event::Bid { .. }));
    let l = sim.lot(lot);
    assert_eq!(l.status, LotStatus::Sold);
    assert_eq!(l.price, Some(y(30_000)));
    assert_eq!(sim.exposure(a), 0);
    assert_eq!(sim.exposure(b), y(30_000));
    // The lot's close timer is gone, and it takes no more bids.
    assert_eq!(sim.book.next_deadline(), None);
    assert_eq!(
        rejected(sim.bid(a, lot, y(40_000), None)),
        Rejection::NotLive
    );
    assert!(closed(&sim.tick(T0 + HOUR)).is_empty());
}

#[test]
fn buy_now_is_the_first_bid_too_and_checks_exposure() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let poor = sim.dealer(y(2_000)); // 20,000 yuan of buying power
    let rich = sim.dealer(y(10_000));
    let lot = sim.list(seller, y(10_000), y(20_000), Some(y(30_000)));
    assert_eq!(
        rejected(sim.bid(poor, lot, y(30_000), None)),
        Rejection::ExposureLimit
    );
    assert_eq!(
        accepted(sim.bid(rich, lot, y(30_000), None)),
        (y(30_000), true)
    );
    assert_eq!(sim.lot(lot).status, LotStatus::Sold);
}

#[test]
fn buy_now_is_withdrawn_once_the_reserve_is_met() {
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), Some(y(30_000)));
    let (a, b) = (d[0], d[1]);
    assert_eq!(sim.lot(lot).buy_now(), Some(y(30_000)));
    accepted(sim.bid(a, lot, y(10_000), Some(y(25_000))));
    assert!(sim.lot(lot).reserve_met());
    assert_eq!(sim.lot(lot).buy_now(), None);
    // 30,000 is now an ordinary bid: B leads at its placed amount, the lot stays live.
    let events = sim.bid_events(b, lot, y(30_000), None);
    assert_eq!(accepted(bid_outcome(&events)), (y(30_000), true));
    assert!(closed(&events).is_empty());
    assert_eq!(sim.lot(lot).status, LotStatus::Live);
}

// ---------------------------------------------------------------------------------------
// Soft close

#[test]
fn ten_extensions_then_a_hard_close() {
    let mut sim = Sim::new();
    sim.book.configure(Rules {
        max_extensions: 10,
        ..Rules::default()
    });
    let seller = sim.seller();
    let a = sim.dealer(y(100_000));
    let b = sim.dealer(y(100_000));
    let lot = sim.list(seller, y(10_000), y(100_000), None);
    let original_end = sim.lot(lot).ends_at;
    assert_eq!(original_end, T0 + 20 * MIN);
    // Each bid lands on the last millisecond: the close moves 30 s on, ten times.
    for i in 1..=10u32 {
        let end = sim.lot(lot).ends_at;
        sim.at(end);
        let bidder = if i % 2 == 1 { a } else { b };
        let min_next = sim.lot(lot).min_next(&sim.book.rules().increments);
        let events = sim.bid_events(bidder, lot, min_next, None);
        let BidOutcome::Accepted { ends_at, .. } = bid_outcome(&events) else {
            panic!("bid {i} rejected");
        };
        assert_eq!(ends_at, end + 30 * SEC);
        assert_eq!(extended(&events), [(end + 30 * SEC, i)]);
        assert_eq!(sim.lot(lot).extensions, i);
    }
    let end = sim.lot(lot).ends_at;
    assert_eq!(end, original_end + 10 * 30 * SEC);
    // The eleventh is accepted but the close no longer moves.
    sim.at(end);
    let min_next = sim.lot(lot).min_next(&sim.book.rules().increments);
    let events = sim.bid_events(a, lot, min_next, None);
    let BidOutcome::Accepted { ends_at, .. } = bid_outcome(&events) else {
        panic!("rejected");
    };
    assert_eq!(ends_at, end);
    assert!(extended(&events).is_empty());
    assert_eq!(sim.lot(lot).extensions, 10);
    assert_eq!(sim.book.next_deadline(), Some(end));
    // Hard close.
    let events = sim.tick(end);
    assert_eq!(closed(&events).len(), 1);
    assert_eq!(sim.lot(lot).status, LotStatus::PendingSeller);
}

#[test]
fn soft_close_window_edges() {
    // (extend_window, extend_by, bid at end − this, expected end − original end, counted)
    let table: [(u64, u64, u64, i64, u32); 7] = [
        // Before the window: nothing.
        (30 * SEC, 30 * SEC, 31 * SEC, 0, 0),
        // On the window's edge: in the window, but now + 30 s is ends_at: no move, no count.
        (30 * SEC, 30 * SEC, 30 * SEC, 0, 0),
        // One millisecond later: moves by 1 ms, counted.
        (30 * SEC, 30 * SEC, 30 * SEC - 1, 1, 1),
        // On the last millisecond.
        (30 * SEC, 30 * SEC, 0, 30_000, 1),
        // extend_by shorter than the window: never earlier ...
        (60 * SEC, 10 * SEC, 50 * SEC, 0, 0),
        // ... but later once now + extend_by passes the end.
        (60 * SEC, 10 * SEC, 5 * SEC, 5_000, 1),
        // A zero window never extends.
        (0, 30 * SEC, SEC, 0, 0),
    ];
    for (window, by, before, moved, count) in table {
        let rules = Rules {
            extend_window_ms: window,
            extend_by_ms: by,
            ..Rules::default()
        };
        let mut sim = Sim::with_rules(rules);
        let seller = sim.seller();
        let d = sim.dealer(y(100_000));
        let lot = sim.list(seller, y(10_000), y(20_000), None);
        let end = sim.lot(lot).ends_at;
        sim.at(end - before);
        let events = sim.bid_events(d, lot, y(10_000), None);
        accepted(bid_outcome(&events));
        let l = sim.lot(lot);
        let row = format!("window {window} by {by} at end-{before}");
        assert_eq!(l.ends_at as i64 - end as i64, moved, "{row}");
        assert_eq!(l.extensions, count, "{row}");
        assert_eq!(extended(&events).len() as u32, count, "{row}");
        assert_eq!(sim.book.next_deadline(), Some(l.ends_at), "{row}");
    }
}

#[test]
fn a_losing_challenger_in_the_window_extends_because_it_moves_the_price() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(20_000))));
    let end = sim.lot(lot).ends_at;
    sim.at(end - 10 * SEC);
    let events = sim.bid_events(d[1], lot, y(10_200), None);
    assert_eq!(accepted(bid_outcome(&events)), (y(10_400), false));
    assert_eq!(extended(&events), [(end + 20 * SEC, 1)]);
}

#[test]
fn same_millisecond_as_the_close_bid_sequenced_first_counts_and_extends() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), None));
    let end = sim.lot(lot).ends_at;
    sim.at(end);
    let events = sim.bid_events(d[1], lot, y(10_200), None);
    assert_eq!(accepted(bid_outcome(&events)), (y(10_200), true));
    assert_eq!(extended(&events), [(end + 30 * SEC, 1)]);
    // The tick at the old close has nothing to do now.
    let events = sim.tick(end);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.lot(lot).status, LotStatus::Live);
}

#[test]
fn same_millisecond_as_the_close_tick_sequenced_first_closes() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), None));
    let end = sim.lot(lot).ends_at;
    let events = sim.tick(end);
    assert_eq!(
        closed(&events),
        [(lot, Outcome::PendingSeller, Some(y(10_000)), Some(d[0]))]
    );
    assert_eq!(
        rejected(sim.bid(d[1], lot, y(10_100), None)),
        Rejection::NotLive
    );
}

#[test]
fn a_bid_after_the_close_before_the_tick_is_not_live() {
    let (mut sim, d, lot) = market(1, y(10_000), y(50_000), None);
    let end = sim.lot(lot).ends_at;
    sim.at(end + 1);
    assert_eq!(
        rejected(sim.bid(d[0], lot, y(10_000), None)),
        Rejection::NotLive
    );
}

// ---------------------------------------------------------------------------------------
// Rejections

#[test]
fn not_live_in_every_state_but_live() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(100_000));
    let other = sim.dealer(y(100_000));
    // Scheduled.
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 + HOUR);
    let [Event::Listed {
        lot: scheduled,
        status: LotStatus::Scheduled,
        ..
    }] = sim.list_with(seller, l)[..]
    else {
        panic!("not scheduled");
    };
    // Will close with no bids (no_sale), sold, pending, cancelled.
    let no_sale = sim.list(seller, y(10_000), y(20_000), None);
    let sold = sim.list(seller, y(10_000), y(20_000), None);
    let pending = sim.list(seller, y(10_000), y(20_000), None);
    let cancelled = sim.list(seller, y(10_000), y(20_000), None);
    accepted(sim.bid(other, sold, y(20_000), None));
    accepted(sim.bid(other, pending, y(10_000), None));
    assert_eq!(
        sim.run(Command::CancelLot {
            lot: cancelled,
            by: Canceller::Seller(seller)
        })[0],
        Event::Cancelled { lot: cancelled }
    );
    sim.tick(T0 + 20 * MIN);
    let table = [
        (scheduled, LotStatus::Scheduled),
        (no_sale, LotStatus::NoSale),
        (sold, LotStatus::Sold),
        (pending, LotStatus::PendingSeller),
        (cancelled, LotStatus::Cancelled),
    ];
    for (lot, status) in table {
        assert_eq!(sim.lot(lot).status, status);
        assert_eq!(
            rejected(sim.bid(d, lot, y(50_000), None)),
            Rejection::NotLive,
            "{status:?}"
        );
    }
}

#[test]
fn unknown_auction() {
    let (mut sim, d, _) = market(1, y(10_000), y(20_000), None);
    for lot in [LotId(0), LotId(2), LotId(u32::MAX)] {
        assert_eq!(
            rejected(sim.bid(d[0], lot, y(10_000), None)),
            Rejection::UnknownAuction
        );
    }
}

#[test]
fn not_eligible_when_suspended_or_expelled_or_unknown() {
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    let set = |status| Command::SetDealerStatus {
        dealer: d[0],
        status,
        reason: "audit".into(),
    };
    for status in [DealerStatus::Suspended, DealerStatus::Expelled] {
        let events = sim.run(set(status));
        assert!(matches!(events[..], [Event::DealerChanged { status: s, .. }] if s == status));
        assert_eq!(
            rejected(sim.bid(d[0], lot, y(10_000), None)),
            Rejection::NotEligible
        );
    }
    sim.run(set(DealerStatus::Active));
    accepted(sim.bid(d[0], lot, y(10_000), None));
    assert_eq!(
        rejected(sim.bid(DealerId(99), lot, y(10_100), None)),
        Rejection::NotEligible
    );
}

#[test]
fn suspended_leader_cannot_raise_but_its_bid_stands() {
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(12_000))));
    sim.run(Command::SetDealerStatus {
        dealer: d[0],
        status: DealerStatus::Suspended,
        reason: "late payment".into(),
    });
    assert_eq!(
        rejected(sim.bid(d[0], lot, 0, Some(y(15_000)))),
        Rejection::NotEligible
    );
    assert_eq!(sim.lot(lot).lead.map(|l| l.max), Some(y(12_000)));
    assert_eq!(sim.exposure(d[0]), y(12_000));
}

#[test]
fn own_listing_for_a_linked_dealer() {
    let mut sim = Sim::new();
    let s1 = sim.seller();
    let s2 = sim.seller();
    let linked = sim.linked_dealer(y(10_000), vec![s2, s1, s2]);
    assert_eq!(sim.book.dealer(linked).unwrap().linked_sellers, [s1, s2]);
    let own = sim.list(s1, y(10_000), y(20_000), None);
    let s3 = sim.seller();
    let other = sim.list(s3, y(10_000), y(20_000), None);
    assert_eq!(
        rejected(sim.bid(linked, own, y(10_000), None)),
        Rejection::OwnListing
    );
    accepted(sim.bid(linked, other, y(10_000), None));
}

#[test]
fn an_operator_relinks_a_dealer_and_its_standing_lead_stands() {
    let mut sim = Sim::new();
    let s1 = sim.seller();
    let s2 = sim.seller();
    let d = sim.dealer(y(100_000));
    let rival = sim.dealer(y(100_000));
    let led = sim.list(s1, y(10_000), y(20_000), None);
    let trailed = sim.list(s1, y(10_000), y(20_000), None);
    let other = sim.list(s2, y(10_000), y(20_000), None);
    accepted(sim.bid(d, led, y(10_000), Some(y(12_000))));
    accepted(sim.bid(rival, trailed, y(10_000), Some(y(15_000))));
    accepted(sim.bid(d, trailed, y(10_500), None));
    let events = sim.run(Command::SetDealerLinks {
        dealer: d,
        linked_sellers: vec![s1, s1],
    });
    assert_eq!(
        events,
        [Event::LinksChanged {
            dealer: d,
            linked_sellers: vec![s1],
            leading: vec![led],
        }],
        "the lots it leads are named; the one it trails is not"
    );
    assert_eq!(sim.book.dealer(d).unwrap().linked_sellers, [s1]);
    // At once: no new bid and no raise on S1's cars; the lead and its exposure stand.
    assert_eq!(
        rejected(sim.bid(d, led, 0, Some(y(14_000)))),
        Rejection::OwnListing
    );
    assert_eq!(
        rejected(sim.bid(d, trailed, y(16_000), None)),
        Rejection::OwnListing
    );
    assert_eq!(
        sim.lot(led).lead.map(|l| (l.dealer, l.max)),
        Some((d, y(12_000)))
    );
    assert_eq!(sim.exposure(d), y(12_000));
    accepted(sim.bid(d, other, y(10_000), None));
    // Unlinked again: bids on S1's cars are accepted again.
    sim.run(Command::SetDealerLinks {
        dealer: d,
        linked_sellers: vec![],
    });
    accepted(sim.bid(d, trailed, y(16_000), None));
}

#[test]
fn links_name_real_dealers_and_sellers() {
    let mut sim = Sim::new();
    let s1 = sim.seller();
    let d = sim.linked_dealer(y(1_000), vec![s1]);
    let table = [
        (DealerId(9), vec![s1], Refusal::UnknownDealer),
        (d, vec![s1, SellerId(9)], Refusal::UnknownSeller),
    ];
    for (dealer, linked_sellers, refusal) in table {
        let events = sim.run(Command::SetDealerLinks {
            dealer,
            linked_sellers,
        });
        assert_eq!(events, [Event::Refused(refusal)]);
    }
    assert_eq!(
        sim.book.dealer(d).unwrap().linked_sellers,
        [s1],
        "unchanged"
    );
}

#[test]
fn exposure_limit_uses_the_bids_own_max_and_falls_when_outbid() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(1_000)); // 10,000 yuan of buying power
    let rich = sim.dealer(y(100_000));
    let lots: Vec<LotId> = (0..4)
        .map(|_| sim.list(seller, y(1_000), y(100_000), None))
        .collect();
    accepted(sim.bid(d, lots[0], y(1_000), Some(y(8_000))));
    assert_eq!(sim.exposure(d), y(8_000));
    // 8,000 + 3,000 > 10,000.
    assert_eq!(
        rejected(sim.bid(d, lots[1], y(1_000), Some(y(3_000)))),
        Rejection::ExposureLimit
    );
    // Exactly at the limit is allowed.
    accepted(sim.bid(d, lots[1], y(1_000), Some(y(2_000))));
    assert_eq!(sim.exposure(d), y(10_000));
    // A leader's raise past the limit is refused too.
    assert_eq!(
        rejected(sim.bid(d, lots[0], 0, Some(y(8_100)))),
        Rejection::ExposureLimit
    );
    // Checked against the bid's own max even where it would not lead: the answer must
    // not hint at the leader's hidden max.
    accepted(sim.bid(rich, lots[2], y(1_000), Some(y(60_000))));
    assert_eq!(
        rejected(sim.bid(d, lots[2], y(1_100), None)),
        Rejection::ExposureLimit
    );
    // Outbid on lot 0: its 8,000 no longer counts, and D can bid again.
    let events = sim.bid_events(rich, lots[0], y(1_100), Some(y(9_000)));
    assert_eq!(outbid(&events), [d]);
    assert_eq!(sim.exposure(d), y(2_000));
    accepted(sim.bid(d, lots[3], y(1_000), Some(y(8_000))));
    assert_eq!(sim.exposure(d), y(10_000));
    // A non-leading accepted bid carries no exposure.
    sim.run(Command::SetDeposit {
        dealer: d,
        deposit: y(2_000),
    });
    assert_eq!(
        accepted(sim.bid(d, lots[2], y(1_100), Some(y(5_000)))),
        (y(5_100), false)
    );
    assert_eq!(sim.exposure(d), y(10_000));
}

#[test]
fn invalid_bids() {
    // (amount, max) from a challenger.
    let table: [(Fen, Option<Fen>); 6] = [
        (0, None),
        (0, Some(y(20_000))),
        (y(20_000), Some(y(19_999))),
        (MAX_AMOUNT + 1, None),
        (y(20_000), Some(MAX_AMOUNT + 1)),
        (u64::MAX, Some(u64::MAX)),
    ];
    for (amount, max) in table {
        let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
        let before = sim.lot(lot).clone();
        assert_eq!(
            rejected(sim.bid(d[0], lot, amount, max)),
            Rejection::Invalid,
            "{amount} {max:?}"
        );
        assert_eq!(sim.lot(lot), &before);
        assert_eq!(sim.exposure(d[0]), 0);
    }
    // Exactly 10^12 fen is a valid amount (if the dealer can afford it).
    let mut sim = Sim::new();
    let seller = sim.seller();
    let whale = sim.dealer(MAX_AMOUNT);
    let lot = sim.list(seller, y(10_000), y(20_000), None);
    accepted(sim.bid(whale, lot, MAX_AMOUNT, Some(MAX_AMOUNT)));
    // A leader's raise that does not raise, or passes the cap.
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(15_000))));
    for max in [Some(y(14_000)), Some(y(15_000)), Some(MAX_AMOUNT + 1)] {
        assert_eq!(
            rejected(sim.bid(d[0], lot, y(16_000), max)),
            Rejection::Invalid,
            "{max:?}"
        );
    }
    // A plain bid from the leader raises nothing: it is told so, with its own max.
    assert_eq!(
        rejected(sim.bid(d[0], lot, y(16_000), None)),
        Rejection::AlreadyLeading { max: y(15_000) }
    );
    // Otherwise the leader's amount is ignored, but never one over the cap.
    for amount in [0, y(1), MAX_AMOUNT] {
        let max = sim.lot(lot).lead.unwrap().max + y(100);
        accepted(sim.bid(d[0], lot, amount, Some(max)));
    }
    let before = sim.lot(lot).clone();
    for amount in [MAX_AMOUNT + 1, u64::MAX] {
        let max = sim.lot(lot).lead.unwrap().max + y(100);
        assert_eq!(
            rejected(sim.bid(d[0], lot, amount, Some(max))),
            Rejection::Invalid,
            "{amount}"
        );
    }
    assert_eq!(sim.lot(lot), &before, "a refused raise changes nothing");
}

/// A journal written under the first rules replays as it was decided: a leader's raise
/// ignored its `amount` whole, and a leader's bid without `max` was `invalid`.
#[test]
fn the_first_rules_decide_a_leaders_raise_as_they_did() {
    let mut sim = Sim::with_rules(Rules {
        version: crate::vocab::FIRST_RULES_VERSION,
        ..Rules::default()
    });
    let seller = sim.seller();
    let d = sim.dealer(y(1_000_000));
    let lot = sim.list(seller, y(10_000), y(20_000), None);
    accepted(sim.bid(d, lot, y(10_000), Some(y(15_000))));
    assert_eq!(
        rejected(sim.bid(d, lot, y(16_000), None)),
        Rejection::Invalid
    );
    accepted(sim.bid(d, lot, u64::MAX, Some(y(16_000))));
    assert_eq!(sim.lot(lot).lead.map(|l| l.max), Some(y(16_000)));
}

// ---------------------------------------------------------------------------------------
// Lifecycle, seller decision, cancel, settle

#[test]
fn scheduled_opens_at_starts_at_and_closes_at_ends_at() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(10_000));
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 + MIN);
    l.duration_ms = Some(10 * MIN);
    let events = sim.list_with(seller, l);
    let [Event::Listed {
        lot,
        status: LotStatus::Scheduled,
        starts_at,
        ends_at,
    }] = events[..]
    else {
        panic!("{events:?}");
    };
    assert_eq!((starts_at, ends_at), (T0 + MIN, T0 + 11 * MIN));
    assert_eq!(sim.book.next_deadline(), Some(T0 + MIN));
    assert!(sim.tick(T0 + MIN - 1).is_empty());
    assert_eq!(
        rejected(sim.bid(d, lot, y(10_000), None)),
        Rejection::NotLive
    );
    let events = sim.tick(T0 + MIN);
    assert!(matches!(
        events[..],
        [Event::Updated(LotUpdate {
            status: LotStatus::Live,
            ..
        })]
    ));
    assert_eq!(sim.book.next_deadline(), Some(T0 + 11 * MIN));
    accepted(sim.bid(d, lot, y(20_000), None));
    let events = sim.tick(T0 + 11 * MIN);
    assert_eq!(
        closed(&events),
        [(lot, Outcome::Sold, Some(y(20_000)), Some(d))]
    );
    assert!(matches!(
        events.last(),
        Some(Event::Updated(LotUpdate {
            status: LotStatus::Sold,
            ..
        }))
    ));
    assert_eq!(sim.book.next_deadline(), None);
}

#[test]
fn a_listing_in_the_past_is_live_at_once_and_a_late_tick_does_everything_due() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 - HOUR);
    let events = sim.list_with(seller, l);
    assert!(matches!(
        events[..],
        [Event::Listed {
            status: LotStatus::Live,
            starts_at: T0,
            ..
        }]
    ));
    // A lot scheduled to open and close within one tick's reach does both, in order.
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 + MIN);
    l.duration_ms = Some(MIN);
    sim.list_with(seller, l);
    let events = sim.tick(T0 + HOUR);
    let statuses: Vec<LotStatus> = events
        .iter()
        .filter_map(|e| match e {
            Event::Updated(u) => Some(u.status),
            _ => None,
        })
        .collect();
    // Lot 2 opens (T0+1m), closes (T0+2m); lot 1 closes (T0+20m): deadline order.
    assert_eq!(
        statuses,
        [LotStatus::Live, LotStatus::NoSale, LotStatus::NoSale]
    );
    assert_eq!(
        closed(&events).iter().map(|c| c.0).collect::<Vec<_>>(),
        [LotId(2), LotId(1)]
    );
}

#[test]
fn timers_fire_in_deadline_then_lot_id_order() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let mut lots = Vec::new();
    for duration in [3, 1, 2, 1] {
        let mut l = listing(y(10_000), y(20_000), None);
        l.duration_ms = Some(duration * MIN);
        let [Event::Listed { lot, .. }] = sim.list_with(seller, l)[..] else {
            panic!()
        };
        lots.push(lot);
    }
    let events = sim.tick(T0 + HOUR);
    let order: Vec<LotId> = closed(&events).iter().map(|c| c.0).collect();
    assert_eq!(order, [lots[1], lots[3], lots[2], lots[0]]);
}

#[test]
fn close_outcomes() {
    // (bids as (amount, max), expected outcome, price); yuan.
    type Bids = &'static [(u64, Option<u64>)];
    let table: [(Bids, Outcome, Option<u64>); 4] = [
        (&[], Outcome::NoSale, None),
        (&[(10_000, None)], Outcome::PendingSeller, Some(10_000)),
        (&[(10_000, Some(20_000))], Outcome::Sold, Some(20_000)),
        (&[(25_000, None)], Outcome::Sold, Some(25_000)),
    ];
    for (bids, outcome, price) in table {
        let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
        for &(amount, max) in bids {
            accepted(sim.bid(d[0], lot, y(amount), max.map(y)));
        }
        let end = sim.lot(lot).ends_at;
        let events = sim.tick(end);
        let leader = price.map(|_| d[0]);
        assert_eq!(closed(&events), [(lot, outcome, price.map(y), leader)]);
        let l = sim.lot(lot);
        let status = match outcome {
            Outcome::Sold => LotStatus::Sold,
            Outcome::NoSale => LotStatus::NoSale,
            Outcome::PendingSeller => LotStatus::PendingSeller,
        };
        assert_eq!(l.status, status);
        // Exposure after the close: the price of a pending or unpaid lot, else nothing.
        assert_eq!(sim.exposure(d[0]), price.map_or(0, y));
        if outcome == Outcome::PendingSeller {
            assert_eq!(l.decision_deadline, Some(end + 24 * HOUR));
            assert_eq!(sim.book.next_deadline(), Some(end + 24 * HOUR));
        } else {
            assert_eq!(sim.book.next_deadline(), None);
        }
    }
}

/// A lot closed under its reserve at `end` with dealer `d` the best bidder at 10,000.
fn pending_lot() -> (Sim, SellerId, DealerId, LotId, u64) {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(10_000));
    let lot = sim.list(seller, y(10_000), y(20_000), None);
    accepted(sim.bid(d, lot, y(10_000), Some(y(15_000))));
    assert_eq!(sim.exposure(d), y(15_000));
    let end = sim.lot(lot).ends_at;
    sim.tick(end);
    assert_eq!(sim.lot(lot).status, LotStatus::PendingSeller);
    assert_eq!(sim.exposure(d), y(10_000));
    (sim, seller, d, lot, end)
}

#[test]
fn seller_accepts_rejects_or_lets_the_window_lapse() {
    // (decision, when after the close, final status, buyer's exposure after)
    let table = [
        (Some(true), HOUR, LotStatus::Sold, y(10_000)),
        (Some(false), HOUR, LotStatus::NoSale, 0),
        (Some(true), 24 * HOUR, LotStatus::Sold, y(10_000)),
        (None, 24 * HOUR, LotStatus::NoSale, 0),
    ];
    for (decision, after, status, exposure) in table {
        let (mut sim, seller, d, lot, end) = pending_lot();
        let events = match decision {
            Some(accept) => {
                sim.at(end + after);
                sim.run(Command::Decide {
                    lot,
                    seller,
                    accept,
                })
            }
            None => sim.tick(end + after),
        };
        let outcome = if status == LotStatus::Sold {
            Outcome::Sold
        } else {
            Outcome::NoSale
        };
        assert_eq!(
            closed(&events),
            [(lot, outcome, Some(y(10_000)), Some(d))],
            "{decision:?}"
        );
        let updated = events.iter().rev().find_map(|e| match e {
            Event::Updated(u) => Some(u.status),
            _ => None,
        });
        assert_eq!(updated, Some(status));
        // A sale moves the price from pending to owed (no change); a no-sale frees it.
        let reported = events.iter().find_map(|e| match e {
            Event::ExposureChanged { dealer, exposure } if *dealer == d => Some(*exposure),
            _ => None,
        });
        let expected = (status == LotStatus::NoSale).then_some(0);
        assert_eq!(reported, expected, "{decision:?}");
        assert_eq!(sim.lot(lot).status, status);
        assert_eq!(sim.exposure(d), exposure);
        assert_eq!(sim.book.next_deadline(), None);
        // A second decision has nothing to act on.
        let again = sim.run(Command::Decide {
            lot,
            seller,
            accept: true,
        });
        assert_eq!(again, [Event::Refused(Refusal::WrongState)]);
    }
}

#[test]
fn decision_refusals() {
    let (mut sim, seller, _, lot, end) = pending_lot();
    let stranger = sim.seller();
    assert_eq!(
        sim.run(Command::Decide {
            lot,
            seller: stranger,
            accept: true
        }),
        [Event::Refused(Refusal::NotAllowed)]
    );
    assert_eq!(
        sim.run(Command::Decide {
            lot: LotId(9),
            seller,
            accept: true
        }),
        [Event::Refused(Refusal::UnknownLot)]
    );
    // On a live lot.
    let live = sim.list(seller, y(10_000), y(20_000), None);
    assert_eq!(
        sim.run(Command::Decide {
            lot: live,
            seller,
            accept: true
        }),
        [Event::Refused(Refusal::WrongState)]
    );
    // After the window, even before the lapse timer ran: the window is closed.
    sim.at(end + 24 * HOUR + 1);
    assert_eq!(
        sim.run(Command::Decide {
            lot,
            seller,
            accept: true
        }),
        [Event::Refused(Refusal::WrongState)]
    );
    assert_eq!(sim.lot(lot).status, LotStatus::PendingSeller);
    // The lapse timer closes it as no_sale (the live lot listed above closes too).
    let events = sim.run(Command::Tick);
    assert_eq!(
        closed(&events)[1],
        (lot, Outcome::NoSale, Some(y(10_000)), Some(DealerId(1)))
    );
}

#[test]
fn cancel_by_seller_before_the_first_bid_and_by_admin_until_an_outcome() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let stranger = sim.seller();
    let d = sim.dealer(y(10_000));
    let cancel = |lot, by| Command::CancelLot { lot, by };

    // The seller, before any bid: cancelled; its timer is gone.
    let lot = sim.list(seller, y(10_000), y(20_000), None);
    let events = sim.run(cancel(lot, Canceller::Seller(seller)));
    assert_eq!(events[0], Event::Cancelled { lot });
    assert!(matches!(events[1], Event::Updated(u) if u.status == LotStatus::Cancelled));
    assert_eq!(sim.book.next_deadline(), None);
    assert_eq!(
        sim.run(cancel(lot, Canceller::Admin)),
        [Event::Refused(Refusal::WrongState)]
    );

    // A scheduled lot can be cancelled too.
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 + HOUR);
    let [Event::Listed { lot: scheduled, .. }] = sim.list_with(seller, l)[..] else {
        panic!()
    };
    assert_eq!(
        sim.run(cancel(scheduled, Canceller::Seller(seller)))[0],
        Event::Cancelled { lot: scheduled }
    );

    // Another seller may not; the seller may not once a bid was accepted; admin may.
    let lot = sim.list(seller, y(10_000), y(20_000), None);
    assert_eq!(
        sim.run(cancel(lot, Canceller::Seller(stranger))),
        [Event::Refused(Refusal::NotAllowed)]
    );
    accepted(sim.bid(d, lot, y(10_000), Some(y(12_000))));
    assert_eq!(
        sim.run(cancel(lot, Canceller::Seller(seller))),
        [Event::Refused(Refusal::NotAllowed)]
    );
    assert_eq!(sim.exposure(d), y(12_000));
    assert_eq!(
        sim.run(cancel(lot, Canceller::Admin))[0],
        Event::Cancelled { lot }
    );
    assert_eq!(sim.exposure(d), 0);
    assert_eq!(sim.book.next_deadline(), None);
    assert_eq!(
        sim.run(cancel(LotId(77), Canceller::Admin)),
        [Event::Refused(Refusal::UnknownLot)]
    );

    // Pending: not by the seller (it decides instead), but by admin.
    let (mut sim, seller, d, lot, _) = pending_lot();
    assert_eq!(
        sim.run(cancel(lot, Canceller::Seller(seller))),
        [Event::Refused(Refusal::WrongState)]
    );
    assert_eq!(
        sim.run(cancel(lot, Canceller::Admin))[0],
        Event::Cancelled { lot }
    );
    assert_eq!(sim.exposure(d), 0);
    assert_eq!(sim.book.next_deadline(), None);
}

#[test]
fn settle_releases_the_buyers_exposure() {
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    assert_eq!(
        sim.run(Command::Settle { lot }),
        [Event::Refused(Refusal::WrongState)]
    );
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(30_000))));
    let end = sim.lot(lot).ends_at;
    sim.tick(end);
    assert_eq!(sim.exposure(d[0]), y(20_000));
    assert_eq!(
        sim.run(Command::Settle { lot }),
        [
            Event::Settled { lot, dealer: d[0] },
            Event::ExposureChanged {
                dealer: d[0],
                exposure: 0
            }
        ]
    );
    assert_eq!(sim.exposure(d[0]), 0);
    assert!(sim.lot(lot).settled);
    assert_eq!(
        sim.run(Command::Settle { lot }),
        [Event::Refused(Refusal::WrongState)]
    );
    assert_eq!(
        sim.run(Command::Settle { lot: LotId(5) }),
        [Event::Refused(Refusal::UnknownLot)]
    );
}

#[test]
fn exposure_follows_a_lot_through_its_life() {
    let (mut sim, d, lot) = market(2, y(10_000), y(20_000), None);
    let (a, b) = (d[0], d[1]);
    let check = |sim: &mut Sim, step: Command, ea: Fen, eb: Fen| {
        let what = format!("{step:?}");
        sim.run(step);
        assert_eq!((sim.exposure(a), sim.exposure(b)), (ea, eb), "{what}");
    };
    let bid = |dealer, amount, max, id: &str| Command::PlaceBid {
        dealer,
        lot,
        amount,
        max,
        bid_id: id.into(),
    };
    // A leads: its max counts.
    check(
        &mut sim,
        bid(a, y(10_000), Some(y(15_000)), "1"),
        y(15_000),
        0,
    );
    // B leads at 15,200 lifted to the reserve: B's max counts, A's no longer.
    check(
        &mut sim,
        bid(b, y(10_200), Some(y(25_000)), "2"),
        0,
        y(25_000),
    );
    // B raises: the new max counts.
    check(&mut sim, bid(b, 0, Some(y(26_000)), "3"), 0, y(26_000));
    // Sold at the close: the price counts until it is paid.
    let end = sim.lot(lot).ends_at;
    sim.at(end);
    check(&mut sim, Command::Tick, 0, y(20_000));
    check(&mut sim, Command::Settle { lot }, 0, 0);
}

// ---------------------------------------------------------------------------------------
// Outage, ordering, idempotency, accounts

#[test]
fn resume_gives_lots_whose_deadline_passed_the_grace() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(10_000));
    let grace = sim.book.rules().outage_grace_ms;
    // Lot 1 closes at T0+20m (live through the outage); lot 2 would be pending then;
    // lot 3 was scheduled to open during the outage and close after it; lot 4 ends later.
    let closing = sim.list(seller, y(10_000), y(20_000), None);
    let pending = sim.list(seller, y(10_000), y(20_000), None);
    accepted(sim.bid(d, pending, y(10_000), None));
    let mut l = listing(y(10_000), y(20_000), None);
    l.starts_at = Some(T0 + 30 * MIN);
    l.duration_ms = Some(HOUR);
    let [Event::Listed { lot: opening, .. }] = sim.list_with(seller, l)[..] else {
        panic!()
    };
    let mut l = listing(y(10_000), y(20_000), None);
    l.duration_ms = Some(7 * 24 * HOUR);
    let [Event::Listed { lot: later, .. }] = sim.list_with(seller, l)[..] else {
        panic!()
    };
    // The pending lot closes before the outage.
    sim.tick(T0 + 20 * MIN);
    assert_eq!(sim.lot(closing).status, LotStatus::NoSale);
    assert_eq!(sim.lot(pending).status, LotStatus::PendingSeller);
    let closing = sim.list(seller, y(10_000), y(20_000), None); // closes T0 + 40m
                                                                // Down from T0+21m to T0+26h: every deadline but `later`'s passed.
    let back = T0 + 26 * HOUR;
    sim.at(back);
    let events = sim.run(Command::Resume);
    assert_eq!(sim.lot(closing).status, LotStatus::Live);
    assert_eq!(sim.lot(closing).ends_at, back + grace);
    assert_eq!(sim.lot(closing).extensions, 0);
    assert_eq!(sim.lot(pending).decision_deadline, Some(back + grace));
    assert_eq!(sim.lot(opening).status, LotStatus::Live);
    assert_eq!(sim.lot(opening).ends_at, back + grace);
    assert_eq!(sim.lot(later).ends_at, T0 + 7 * 24 * HOUR);
    assert!(closed(&events).is_empty());
    let ext: Vec<u64> = extended(&events).iter().map(|e| e.0).collect();
    assert_eq!(ext.len(), 2, "{events:?}");
    assert_eq!(sim.book.next_deadline(), Some(back + grace));
    // Dealers may bid through the grace; then the lots close as usual.
    accepted(sim.bid(d, closing, y(20_000), None));
    let events = sim.tick(back + grace);
    let outcomes: Vec<(LotId, Outcome)> = closed(&events).iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        outcomes,
        [
            (pending, Outcome::NoSale),
            (opening, Outcome::NoSale),
            (closing, Outcome::Sold)
        ]
    );
}

#[test]
fn resume_with_nothing_due_changes_nothing() {
    let (mut sim, _, lot) = market(1, y(10_000), y(20_000), None);
    let before = sim.lot(lot).clone();
    assert!(sim.run(Command::Resume).is_empty());
    assert_eq!(sim.lot(lot), &before);
}

#[test]
fn sequence_numbers_out_of_order_are_refused_whole() {
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    let seq = sim.seq;
    let before = sim.state();
    let bid = |amount| Command::PlaceBid {
        dealer: d[0],
        lot,
        amount,
        max: None,
        bid_id: "x".into(),
    };
    for stale in [0, 1, seq] {
        assert_eq!(
            sim.book.apply(stale, T0, bid(y(10_000))),
            [Event::Refused(Refusal::OutOfOrder)]
        );
    }
    assert_eq!(sim.state(), before);
    assert_eq!(sim.book.last_seq(), seq);
    // Gaps are fine.
    accepted(bid_outcome(&sim.book.apply(seq + 10, T0, bid(y(10_000)))));
    assert_eq!(sim.book.last_seq(), seq + 10);
    assert_eq!(
        sim.book.apply(seq + 5, T0, Command::Tick),
        [Event::Refused(Refusal::OutOfOrder)]
    );
}

#[test]
fn time_never_runs_backwards_in_the_book() {
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), None);
    let end = sim.lot(lot).ends_at;
    sim.at(end + 1);
    sim.run(Command::SetDeposit {
        dealer: d[0],
        deposit: y(20_000),
    });
    assert_eq!(sim.book.last_now(), end + 1);
    // A command stamped earlier is read at the book's time: the lot has closed.
    sim.at(end - MIN);
    assert_eq!(
        rejected(sim.bid(d[0], lot, y(10_000), None)),
        Rejection::NotLive
    );
    assert_eq!(sim.book.last_now(), end + 1);
}

#[test]
fn events_come_in_emission_order_bid_reply_first() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), Some(y(12_000))));
    let end = sim.lot(lot).ends_at;
    sim.at(end - SEC);
    let events = sim.bid_events(d[1], lot, y(10_200), Some(y(20_000)));
    let price = y(12_200);
    let update = LotUpdate {
        lot,
        status: LotStatus::Live,
        price: Some(price),
        min_next: price + y(200),
        bids: 2,
        reserve_met: false,
        leader: Some(d[1]),
        ends_at: end + 29 * SEC,
    };
    assert_eq!(
        events,
        [
            Event::Bid {
                lot,
                dealer: d[1],
                outcome: BidOutcome::Accepted {
                    price,
                    leading: true,
                    ends_at: end + 29 * SEC,
                    seq: sim.seq,
                },
                duplicate: false,
                exposure: y(20_000),
            },
            Event::Extended {
                lot,
                ends_at: end + 29 * SEC,
                extensions: 1,
            },
            Event::Outbid {
                lot,
                dealer: d[0],
                price,
                min_next: price + y(200),
                exposure: 0,
            },
            Event::Updated(update),
        ]
    );
    // A rejection is the reply alone.
    let events = sim.bid_events(d[0], lot, y(1), None);
    assert_eq!(events.len(), 1);
    // Buy-now: reply, update, closed.
    let (mut sim, d, lot) = market(1, y(10_000), y(20_000), Some(y(30_000)));
    let events = sim.bid_events(d[0], lot, y(30_000), None);
    assert!(matches!(
        events[..],
        [
            Event::Bid { .. },
            Event::Updated(LotUpdate {
                status: LotStatus::Sold,
                ..
            }),
            Event::Closed { .. }
        ]
    ));
}

#[test]
fn bid_ids_are_forgotten_after_retention_once_their_lot_is_closed() {
    let rules = Rules {
        bid_id_retention_ms: 2 * HOUR,
        ..Rules::default()
    };
    let mut sim = Sim::with_rules(rules);
    let seller = sim.seller();
    let d = sim.dealer(y(1_000_000));
    let closing = sim.list(seller, y(10_000), y(50_000), None);
    let open = sim.list_with(
        seller,
        Listing {
            duration_ms: Some(7 * 24 * HOUR),
            ..listing(y(10_000), y(50_000), None)
        },
    );
    let open = match open[..] {
        [Event::Listed { lot, .. }] => lot,
        ref other => panic!("{other:?}"),
    };
    accepted(bid_outcome(&sim.bid_with_id(
        d,
        closing,
        y(60_000),
        None,
        "old",
    )));
    accepted(bid_outcome(&sim.bid_with_id(
        d,
        open,
        y(10_000),
        None,
        "kept",
    )));
    // Well past the close and the retention (and the hourly pruning): the closed lot's
    // id is forgotten, the open lot's is kept however old.
    sim.tick(T0 + 3 * HOUR);
    sim.tick(T0 + 4 * HOUR + 1);
    let retry = sim.bid_with_id(d, closing, y(60_000), None, "old");
    assert!(
        matches!(
            retry[..],
            [Event::Bid {
                outcome: BidOutcome::Rejected(Rejection::NotLive),
                duplicate: false,
                ..
            }]
        ),
        "{retry:?}"
    );
    let kept = sim.bid_with_id(d, open, y(90_000), None, "kept");
    assert!(
        matches!(
            kept[..],
            [Event::Bid {
                duplicate: true,
                ..
            }]
        ),
        "{kept:?}"
    );
}

#[test]
fn a_copy_of_the_book_shares_receipts_until_they_change() {
    use std::sync::Arc;
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    sim.bid_with_id(d[0], lot, y(10_000), None, "a1");
    sim.bid_with_id(d[1], lot, y(11_000), None, "b1");
    // What a snapshot takes.
    let copy = sim.book.clone();
    let receipts = |b: &Book, i: usize| Arc::clone(&b.dealer(d[i]).expect("dealer").receipts);
    assert!(Arc::ptr_eq(&receipts(&copy, 0), &receipts(&sim.book, 0)));

    // Dealer 0 bids again: its map is copied, the snapshot's stays as it was; dealer 1's
    // is still shared.
    sim.bid_with_id(d[0], lot, y(20_000), None, "a2");
    assert!(!Arc::ptr_eq(&receipts(&copy, 0), &receipts(&sim.book, 0)));
    assert_eq!(receipts(&copy, 0).len(), 1);
    assert_eq!(receipts(&sim.book, 0).len(), 2);
    assert!(Arc::ptr_eq(&receipts(&copy, 1), &receipts(&sim.book, 1)));
    // The copy answers a repeated id from what it held, and the live book from its own.
    let mut replay = Sim {
        book: copy,
        ..sim.clone_clock()
    };
    let again = replay.bid_with_id(d[0], lot, y(30_000), None, "a2");
    assert!(
        matches!(
            again.first(),
            Some(Event::Bid {
                duplicate: false,
                ..
            })
        ),
        "{again:?}"
    );
    let again = sim.bid_with_id(d[0], lot, y(30_000), None, "a2");
    assert!(
        matches!(
            again[..],
            [Event::Bid {
                duplicate: true,
                ..
            }]
        ),
        "{again:?}"
    );
}

#[test]
fn a_repeated_bid_id_returns_the_first_result_and_does_nothing() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    let first = sim.bid_with_id(d[0], lot, y(10_000), Some(y(12_000)), "k1");
    let first_outcome = bid_outcome(&first);
    accepted(first_outcome);
    let lot_before = sim.lot(lot).clone();
    // The same id again, even with other amounts or another lot: the first answer.
    let other = sim.list(SellerId(1), y(10_000), y(50_000), None);
    for (target, amount) in [(lot, y(10_000)), (lot, y(40_000)), (other, y(10_000))] {
        let again = sim.bid_with_id(d[0], target, amount, None, "k1");
        assert_eq!(
            again,
            [Event::Bid {
                lot,
                dealer: d[0],
                outcome: first_outcome,
                duplicate: true,
                exposure: y(12_000),
            }]
        );
    }
    assert_eq!(sim.lot(lot), &lot_before);
    assert_eq!(sim.lot(other).bids, 0);
    // A rejection is remembered too, even after the cause went away.
    let r = bid_outcome(&sim.bid_with_id(d[1], lot, y(1), None, "k2"));
    assert_eq!(
        r,
        BidOutcome::Rejected(Rejection::BelowMinimum {
            min_next: y(10_200)
        })
    );
    let again = sim.bid_with_id(d[1], lot, y(20_000), None, "k2");
    assert!(matches!(again[..], [Event::Bid { outcome, duplicate: true, .. }] if outcome == r));
    // Ids are per dealer: another dealer's "k1" is a bid of its own.
    accepted(bid_outcome(&sim.bid_with_id(
        d[1],
        lot,
        y(20_000),
        None,
        "k1",
    )));
}

#[test]
fn account_commands_and_their_refusals() {
    let mut sim = Sim::new();
    let s = sim.seller();
    assert_eq!(s, SellerId(1));
    assert_eq!(
        sim.run(Command::RegisterService {
            name: "consumer site".into(),
            token_hash: [3; 32]
        }),
        [Event::ServiceRegistered {
            service: ServiceId(1)
        }]
    );
    let reg = |deposit, linked_sellers| Command::RegisterDealer {
        name: "d".into(),
        deposit,
        linked_sellers,
        token_hash: [0; 32],
    };
    assert_eq!(
        sim.run(reg(MAX_AMOUNT + 1, vec![])),
        [Event::Refused(Refusal::InvalidAmount)]
    );
    assert_eq!(
        sim.run(reg(y(1), vec![SellerId(2)])),
        [Event::Refused(Refusal::UnknownSeller)]
    );
    let d = sim.dealer(y(1_000));
    assert_eq!(d, DealerId(1), "refused registrations take no id");
    assert_eq!(
        sim.run(Command::SetDeposit {
            dealer: d,
            deposit: y(5_000)
        }),
        [Event::DealerChanged {
            dealer: d,
            status: DealerStatus::Active,
            deposit: y(5_000),
            exposure: 0
        }]
    );
    assert_eq!(
        sim.run(Command::SetDeposit {
            dealer: d,
            deposit: MAX_AMOUNT + 1
        }),
        [Event::Refused(Refusal::InvalidAmount)]
    );
    assert_eq!(
        sim.run(Command::SetDeposit {
            dealer: DealerId(2),
            deposit: 1
        }),
        [Event::Refused(Refusal::UnknownDealer)]
    );
    assert_eq!(
        sim.book.buying_power(sim.book.dealer(d).unwrap()),
        y(50_000)
    );
}

#[test]
fn listing_validation() {
    let ok = listing(y(10_000), y(20_000), Some(y(30_000)));
    let cases: Vec<(&str, Listing)> = vec![
        (
            "start under 1 yuan",
            Listing {
                start_price: 99,
                reserve: 99,
                buy_now: None,
                ..ok.clone()
            },
        ),
        (
            "start over reserve",
            Listing {
                start_price: y(20_001),
                ..ok.clone()
            },
        ),
        (
            "reserve over buy-now",
            Listing {
                buy_now: Some(y(19_999)),
                ..ok.clone()
            },
        ),
        (
            "reserve over the cap",
            Listing {
                reserve: MAX_AMOUNT + 1,
                buy_now: None,
                ..ok.clone()
            },
        ),
        (
            "buy-now over the cap",
            Listing {
                buy_now: Some(MAX_AMOUNT + 1),
                ..ok.clone()
            },
        ),
        (
            "too short",
            Listing {
                duration_ms: Some(MIN - 1),
                ..ok.clone()
            },
        ),
        (
            "too long",
            Listing {
                duration_ms: Some(7 * 24 * HOUR + 1),
                ..ok.clone()
            },
        ),
        (
            "end overflows",
            Listing {
                starts_at: Some(u64::MAX - MIN),
                ..ok.clone()
            },
        ),
    ];
    let mut sim = Sim::new();
    let seller = sim.seller();
    for (what, l) in cases {
        assert_eq!(
            sim.list_with(seller, l),
            [Event::Refused(Refusal::InvalidListing)],
            "{what}"
        );
    }
    assert_eq!(
        sim.list_with(SellerId(9), ok.clone()),
        [Event::Refused(Refusal::UnknownSeller)]
    );
    assert!(sim.book.lots().is_empty());
    // The bounds themselves are fine, as are start = reserve = buy-now.
    for l in [
        Listing {
            duration_ms: Some(MIN),
            ..ok.clone()
        },
        Listing {
            duration_ms: Some(7 * 24 * HOUR),
            ..ok.clone()
        },
        listing(y(1), y(1), Some(y(1))),
    ] {
        assert!(matches!(
            sim.list_with(seller, l)[..],
            [Event::Listed { .. }]
        ));
    }
}

#[test]
fn snapshot_round_trip_rebuilds_the_timer_index() {
    let (mut sim, d, lot) = market(2, y(10_000), y(50_000), None);
    accepted(sim.bid(d[0], lot, y(10_000), None));
    let bytes = sim.state();
    let restored: Book = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(restored, sim.book);
    assert_eq!(restored.next_deadline(), sim.book.next_deadline());
    assert_eq!(rmp_serde::to_vec(&restored).unwrap(), bytes);
}

// ---------------------------------------------------------------------------------------
// Properties over random command sequences

mod props {
    use super::*;
    use proptest::prelude::*;

    /// How a generated bid picks its amount, read against the lot when it is applied.
    #[derive(Clone, Debug)]
    enum Amount {
        /// `min_next` plus this many increments.
        AboveMin(u8),
        /// An arbitrary amount in yuan.
        Yuan(u32),
        Zero,
        OverCap,
    }

    /// How a generated bid picks its max.
    #[derive(Clone, Debug)]
    enum Max {
        Plain,
        /// The amount plus this many hundreds of yuan.
        Plus(u16),
        Below,
    }

    #[derive(Clone, Debug)]
    enum Act {
        Bid {
            dealer: u8,
            lot: u8,
            amount: Amount,
            max: Max,
            /// Reuse this dealer's last bid id instead of a fresh one.
            repeat: bool,
        },
        Tick,
        Decide {
            lot: u8,
            accept: bool,
        },
        Settle {
            lot: u8,
        },
        Cancel {
            lot: u8,
            admin: bool,
        },
        Status {
            dealer: u8,
            status: u8,
        },
        /// The engine was down for this many seconds, then resumes.
        Outage(u16),
        /// An operator sets a dealer's credit limit, in yuan.
        Credit {
            dealer: u8,
            limit: u32,
        },
        /// The lot's buyer (or, `admin`, an operator) finances it.
        Finance {
            lot: u8,
            admin: bool,
        },
        /// An operator records a loan's repayment (mostly loans that exist).
        Repay {
            loan: u8,
        },
    }

    #[derive(Clone, Debug)]
    struct LotSpec {
        start: u32,
        reserve_steps: u8,
        buy_now_steps: Option<u8>,
        starts_in_s: u8,
        duration_s: u8,
    }

    #[derive(Clone, Debug)]
    struct Scenario {
        deposits: Vec<u32>,
        link_first_dealer: bool,
        lots: Vec<LotSpec>,
        /// (milliseconds since the previous action, action)
        acts: Vec<(u16, Act)>,
    }

    fn rules() -> Rules {
        Rules {
            default_duration_ms: 60 * SEC,
            min_duration_ms: 10 * SEC,
            max_duration_ms: HOUR,
            extend_window_ms: 10 * SEC,
            extend_by_ms: 15 * SEC,
            max_extensions: 3,
            decision_window_ms: 20 * SEC,
            leverage: 10,
            increments: Increments::standard(),
            outage_grace_ms: 5 * SEC,
            bid_id_retention_ms: 2 * HOUR,
            version: crate::vocab::RULES_VERSION,
            // Short, so generated scenarios see loans fall due.
            credit_due_ms: 90 * SEC,
        }
    }

    fn amount() -> impl Strategy<Value = Amount> {
        prop_oneof![
            8 => (0u8..4).prop_map(Amount::AboveMin),
            2 => (0u32..60_000).prop_map(Amount::Yuan),
            1 => Just(Amount::Zero),
            1 => Just(Amount::OverCap),
        ]
    }

    fn max() -> impl Strategy<Value = Max> {
        prop_oneof![
            3 => Just(Max::Plain),
            6 => (0u16..300).prop_map(Max::Plus),
            1 => Just(Max::Below),
        ]
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            40 => (any::<u8>(), any::<u8>(), amount(), max(), prop::bool::weighted(0.05)).prop_map(
                |(dealer, lot, amount, max, repeat)| Act::Bid { dealer, lot, amount, max, repeat }
            ),
            10 => Just(Act::Tick),
            3 => (any::<u8>(), any::<bool>()).prop_map(|(lot, accept)| Act::Decide { lot, accept }),
            2 => any::<u8>().prop_map(|lot| Act::Settle { lot }),
            // Mostly sellers, who may cancel only before the first bid: an admin's cancel
            // ends a lot at any time and would leave few lots to bid on.
            1 => (any::<u8>(), prop::bool::weighted(0.2)).prop_map(|(lot, admin)| Act::Cancel { lot, admin }),
            // Mostly reinstatements, so suspended dealers come back.
            1 => (any::<u8>(), prop_oneof![3 => Just(0u8), 1 => 1u8..3])
                .prop_map(|(dealer, status)| Act::Status { dealer, status }),
            1 => (1u16..30).prop_map(Act::Outage),
            2 => (any::<u8>(), prop_oneof![1 => Just(0u32), 4 => 0u32..100_000])
                .prop_map(|(dealer, limit)| Act::Credit { dealer, limit }),
            3 => (any::<u8>(), prop::bool::weighted(0.3)).prop_map(|(lot, admin)| Act::Finance { lot, admin }),
            2 => any::<u8>().prop_map(|loan| Act::Repay { loan }),
        ]
    }

    fn lot_spec() -> impl Strategy<Value = LotSpec> {
        (
            1u32..200,
            0u8..40,
            prop::option::weighted(0.3, 0u8..20),
            prop_oneof![Just(0u8), 1u8..20],
            10u8..45,
        )
            .prop_map(
                |(start, reserve_steps, buy_now_steps, starts_in_s, duration_s)| LotSpec {
                    start: start * 100,
                    reserve_steps,
                    buy_now_steps,
                    starts_in_s,
                    duration_s,
                },
            )
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            prop::collection::vec(200u32..10_000, 2..6),
            any::<bool>(),
            prop::collection::vec(lot_spec(), 1..6),
            prop::collection::vec(
                (prop_oneof![2 => Just(0u16), 8 => 0u16..600], act()),
                1..200,
            ),
        )
            .prop_map(|(deposits, link_first_dealer, lots, acts)| Scenario {
                deposits,
                link_first_dealer,
                lots,
                acts,
            })
    }

    /// One accepted bid, as the reference model sees it.
    #[derive(Clone, Copy, Debug)]
    struct Accepted {
        seq: u64,
        dealer: DealerId,
        amount: Fen,
        max: Fen,
        raise: bool,
    }

    /// What the reference model says the leader, its max and the price of a lot must be,
    /// from the accepted bids alone.
    ///
    /// The highest max leads (the earliest bid on equal maxima). The price is what the
    /// contract's formula gave at the last bid that could move it (the last one that was
    /// not a leader's raise): the leader's placed amount or the best other dealer's max plus
    /// that max's increment, capped at the leader's max then, whichever is higher. A later
    /// raise leaves it there, except that the price is at least the reserve once the
    /// leader's max reaches it.
    fn reference(bids: &[Accepted], reserve: Fen, rules: &Rules) -> Option<(DealerId, Fen, Fen)> {
        let best = |bids: &[Accepted]| {
            bids.iter()
                .max_by(|a, b| a.max.cmp(&b.max).then(b.seq.cmp(&a.seq)))
                .copied()
        };
        let leader = best(bids)?;
        let last_mover = bids.iter().rposition(|b| !b.raise)?;
        let then = &bids[..=last_mover];
        let leader_then = best(then)?;
        let placed = then
            .iter()
            .rev()
            .find(|b| b.dealer == leader_then.dealer && !b.raise)
            .expect("a leader placed a bid")
            .amount;
        let runner_up = then
            .iter()
            .filter(|b| b.dealer != leader_then.dealer)
            .map(|b| b.max)
            .max();
        let mut price = placed;
        if let Some(r) = runner_up {
            price = price.max((r + rules.increments.increment(r)).min(leader_then.max));
        }
        if leader.max >= reserve {
            price = price.max(reserve);
        }
        Some((leader.dealer, leader.max, price))
    }

    type Log = Vec<(u64, u64, Command)>;

    /// Buying power as the contract states it, from the dealer's deposit and limit and
    /// the loans open against it: deposit × leverage + (limit − drawn, or 0).
    fn power(book: &Book, d: &Dealer) -> Fen {
        d.deposit * rules().leverage + d.credit.limit.saturating_sub(open_loans(book, d.id))
    }

    /// The principal of every open loan of a dealer.
    fn open_loans(book: &Book, dealer: DealerId) -> Fen {
        book.loans()
            .iter()
            .filter(|l| l.dealer == dealer && l.is_open())
            .map(|l| l.principal)
            .sum()
    }

    /// Plays a scenario against a book, checking every invariant after every command.
    /// Returns the command log it applied and the events of each command.
    fn play(s: &Scenario) -> Result<(Book, Log, Vec<Vec<Event>>), TestCaseError> {
        let mut book = Book::new(rules());
        let mut log: Log = Vec::new();
        let mut all_events = Vec::new();
        let mut seq = 0;
        let mut now = T0;
        let mut apply = |book: &mut Book, now: u64, cmd: Command| {
            seq += 1;
            let events = book.apply(seq, now, cmd.clone());
            log.push((seq, now, cmd));
            events
        };

        let sellers: Vec<SellerId> = (0..2)
            .map(|i| {
                let e = apply(
                    &mut book,
                    now,
                    Command::RegisterSeller {
                        name: format!("s{i}"),
                        token_hash: [0; 32],
                    },
                );
                match e[..] {
                    [Event::SellerRegistered { seller }] => seller,
                    _ => unreachable!(),
                }
            })
            .collect();
        let mut dealers = Vec::new();
        for (i, &deposit) in s.deposits.iter().enumerate() {
            let linked = if i == 0 && s.link_first_dealer {
                vec![sellers[1]]
            } else {
                vec![]
            };
            let e = apply(
                &mut book,
                now,
                Command::RegisterDealer {
                    name: format!("d{i}"),
                    deposit: y(deposit.into()),
                    linked_sellers: linked,
                    token_hash: [0; 32],
                },
            );
            let [Event::DealerRegistered { dealer }] = e[..] else {
                unreachable!()
            };
            dealers.push(dealer);
        }
        let mut lots = Vec::new();
        for (i, spec) in s.lots.iter().enumerate() {
            let start = y(spec.start.into());
            let reserve = start + y(500) * Fen::from(spec.reserve_steps);
            let listing = Listing {
                buy_now: spec
                    .buy_now_steps
                    .map(|b| reserve + y(1_000) * Fen::from(b)),
                starts_at: Some(now + u64::from(spec.starts_in_s) * SEC),
                duration_ms: Some(u64::from(spec.duration_s) * SEC),
                ..listing(start, reserve, None)
            };
            let e = apply(
                &mut book,
                now,
                Command::ListCar {
                    seller: sellers[i % 2],
                    listing: Box::new(listing),
                },
            );
            let [Event::Listed { lot, .. }] = e[..] else {
                panic!("{e:?}")
            };
            lots.push(lot);
        }

        // The reference model: every accepted bid of every lot; lots sold by buy-now.
        let mut accepted_bids: Vec<Vec<Accepted>> = vec![Vec::new(); lots.len()];
        // Every standing pre-bid of every lot in its preview (one per dealer, its latest
        // max), entering `accepted_bids` when the lot opens.
        let mut prebids: Vec<Vec<Accepted>> = vec![Vec::new(); lots.len()];
        let mut bought_now = vec![false; lots.len()];
        let mut last_bid_id: Vec<Option<BidId>> = vec![None; dealers.len()];
        let mut bid_counter = 0u64;
        let r = rules();

        for (dt, act) in &s.acts {
            now += u64::from(*dt);
            // Mostly real lots; one value in sixteen names a lot that does not exist.
            let lot_of = |i: u8| match i {
                240.. => LotId(99),
                _ => lots[usize::from(i) % lots.len()],
            };
            let cmd = match act {
                Act::Bid {
                    dealer,
                    lot,
                    amount,
                    max,
                    repeat,
                } => {
                    let di = usize::from(*dealer) % dealers.len();
                    let lot = lot_of(*lot);
                    let (min_next, inc) = book.lot(lot).map_or((y(1_000), y(100)), |l| {
                        (
                            l.min_next(&r.increments),
                            r.increments.increment(l.price.unwrap_or(0)),
                        )
                    });
                    let amount = match amount {
                        Amount::AboveMin(k) => min_next + inc * Fen::from(*k),
                        Amount::Yuan(v) => y((*v).into()),
                        Amount::Zero => 0,
                        Amount::OverCap => MAX_AMOUNT + 1,
                    };
                    let max = match max {
                        Max::Plain => None,
                        Max::Plus(k) => Some(amount.saturating_add(y(100) * Fen::from(*k))),
                        Max::Below => Some(amount.saturating_sub(1)),
                    };
                    let bid_id = match (&last_bid_id[di], repeat) {
                        (Some(id), true) => id.clone(),
                        _ => {
                            bid_counter += 1;
                            BidId::from(format!("b{bid_counter}"))
                        }
                    };
                    last_bid_id[di] = Some(bid_id.clone());
                    Command::PlaceBid {
                        dealer: dealers[di],
                        lot,
                        amount,
                        max,
                        bid_id,
                    }
                }
                Act::Tick => Command::Tick,
                Act::Decide { lot, accept } => {
                    let lot = lot_of(*lot);
                    let seller = book.lot(lot).map_or(sellers[0], |l| l.seller);
                    Command::Decide {
                        lot,
                        seller,
                        accept: *accept,
                    }
                }
                Act::Settle { lot } => Command::Settle { lot: lot_of(*lot) },
                Act::Cancel { lot, admin } => {
                    let lot = lot_of(*lot);
                    let by = match (admin, book.lot(lot)) {
                        (false, Some(l)) => Canceller::Seller(l.seller),
                        _ => Canceller::Admin,
                    };
                    Command::CancelLot { lot, by }
                }
                Act::Status { dealer, status } => Command::SetDealerStatus {
                    dealer: dealers[usize::from(*dealer) % dealers.len()],
                    status: [
                        DealerStatus::Active,
                        DealerStatus::Suspended,
                        DealerStatus::Expelled,
                    ][usize::from(*status)],
                    reason: String::new(),
                },
                Act::Outage(gap) => {
                    now += u64::from(*gap) * SEC;
                    Command::Resume
                }
                Act::Credit { dealer, limit } => Command::SetCreditLimit {
                    dealer: dealers[usize::from(*dealer) % dealers.len()],
                    limit: y((*limit).into()),
                },
                Act::Finance { lot, admin } => {
                    let lot = lot_of(*lot);
                    let buyer = book.lot(lot).and_then(|l| l.lead).map(|l| l.dealer);
                    let by = match (admin, buyer) {
                        (false, Some(d)) => Borrower::Dealer(d),
                        _ => Borrower::Admin,
                    };
                    Command::Finance { lot, by }
                }
                Act::Repay { loan } => Command::Repay {
                    loan: LoanId(u32::from(*loan) % (book.loans().len() as u32 + 2) + 1),
                },
            };

            let before: Vec<Lot> = book.lots().to_vec();
            let within_before: Vec<(Fen, bool, Fen)> = book
                .dealers()
                .iter()
                .map(|d| (d.exposure, d.exposure <= power(&book, d), d.credit.drawn))
                .collect();
            let events = apply(&mut book, now, cmd.clone());

            // The price never falls.
            for (b, a) in before.iter().zip(book.lots()) {
                prop_assert!(
                    a.price >= b.price,
                    "price fell on {:?}: {:?} -> {:?}",
                    a.id,
                    b.price,
                    a.price
                );
            }

            if let Command::PlaceBid {
                dealer,
                lot,
                amount,
                max,
                ..
            } = &cmd
            {
                let Some(Event::Bid {
                    outcome, duplicate, ..
                }) = events.first()
                else {
                    return Err(TestCaseError::fail(format!("no Bid reply: {events:?}")));
                };
                if let (
                    BidOutcome::Accepted {
                        price,
                        leading,
                        seq: s,
                        ..
                    },
                    false,
                ) = (outcome, duplicate)
                {
                    let i = lot.index();
                    let lb = &before[i];
                    let raise = lb.lead.is_some_and(|l| l.dealer == *dealer);
                    let la = &book.lots()[i];
                    if lb.status != LotStatus::Scheduled {
                        prop_assert_eq!(Some(*price), la.price);
                        prop_assert_eq!(*leading, la.lead.map(|l| l.dealer) == Some(*dealer));
                    }
                    if lb.status == LotStatus::Scheduled {
                        // A pre-bid: sealed, held, and resolved only at the opening.
                        let start = lb.listing.start_price;
                        prop_assert_eq!((*price, *leading), (start, false));
                        prop_assert!(la.lead.is_none() && la.price.is_none());
                        prop_assert!(*amount >= start);
                        let max = max.expect("a pre-bid has a max");
                        let held = lb.prebid_exposure(*dealer);
                        prop_assert!(max > held, "a pre-bid only rises");
                        prebids[i].retain(|p| p.dealer != *dealer);
                        prebids[i].push(Accepted {
                            seq: *s,
                            dealer: *dealer,
                            amount: start,
                            max,
                            raise: false,
                        });
                    } else if la.status == LotStatus::Sold && lb.status == LotStatus::Live {
                        // Buy-now: at the buy-now price, and only while it was on offer.
                        let buy_now = lb.buy_now();
                        prop_assert!(buy_now.is_some_and(|b| *amount >= b && *price == b));
                        bought_now[i] = true;
                    } else if !raise {
                        // No accepted bid is below the min_next before it.
                        prop_assert!(
                            *amount >= lb.min_next(&r.increments),
                            "{amount} < min_next {}",
                            lb.min_next(&r.increments)
                        );
                        accepted_bids[i].push(Accepted {
                            seq: *s,
                            dealer: *dealer,
                            amount: *amount,
                            max: max.unwrap_or(*amount),
                            raise,
                        });
                    } else {
                        prop_assert!(max.is_some_and(|m| m > lb.lead.unwrap().max));
                        accepted_bids[i].push(Accepted {
                            seq: *s,
                            dealer: *dealer,
                            amount: *amount,
                            max: max.unwrap(),
                            raise,
                        });
                    }
                } else if *duplicate {
                    prop_assert_eq!(events.len(), 1);
                    prop_assert_eq!(&before[..], book.lots());
                }
            }

            // A lot that opened resolved its pre-bids as live bids placed at the start price
            // would have been; one cancelled in its preview dropped them.
            for (i, (b, a)) in before.iter().zip(book.lots()).enumerate() {
                if b.status == LotStatus::Scheduled && a.status != LotStatus::Scheduled {
                    let opened = std::mem::take(&mut prebids[i]);
                    if a.status == LotStatus::Live {
                        accepted_bids[i].extend(opened);
                    }
                }
                prop_assert!(a.status == LotStatus::Scheduled || a.prebids.is_empty());
            }

            // Leader and price agree with the reference model on every lot.
            for (i, l) in book.lots().iter().enumerate() {
                if bought_now[i] {
                    continue;
                }
                let expected = reference(&accepted_bids[i], l.reserve(), &r);
                let actual = l.lead.map(|lead| (lead.dealer, lead.max, l.price.unwrap()));
                prop_assert_eq!(actual, expected, "lot {:?} after {:?}", l.id, cmd);
            }

            // At a close, the winner holds the highest max ever accepted (earliest on ties).
            for e in &events {
                if let Event::Closed {
                    lot,
                    outcome: Outcome::Sold | Outcome::PendingSeller,
                    leader,
                    ..
                } = e
                {
                    let i = lot.index();
                    if !bought_now[i] {
                        let best = accepted_bids[i]
                            .iter()
                            .max_by(|a, b| a.max.cmp(&b.max).then(b.seq.cmp(&a.seq)));
                        prop_assert_eq!(*leader, best.map(|b| b.dealer));
                    }
                }
            }

            // Exposure equals the sum recomputed from the lots, within buying power.
            for d in book.dealers() {
                let recomputed: Fen = book
                    .lots()
                    .iter()
                    .filter(|l| l.lead.is_some_and(|lead| lead.dealer == d.id))
                    .map(|l| match l.status {
                        LotStatus::Live => l.lead.unwrap().max,
                        LotStatus::PendingSeller => l.price.unwrap(),
                        LotStatus::Sold if !l.settled => l.price.unwrap(),
                        _ => 0,
                    })
                    .sum::<Fen>()
                    + book
                        .lots()
                        .iter()
                        .map(|l| l.prebid_exposure(d.id))
                        .sum::<Fen>();
                prop_assert_eq!(d.exposure, recomputed, "dealer {:?}", d.id);
                // The buying-power invariant: no step takes a dealer's exposure up past
                // deposit × leverage + available credit, and only an operator lowering a
                // limit can leave it above (a deposit is not changed here); then nothing
                // raises it until it is back within.
                let within = d.exposure <= power(&book, d);
                prop_assert_eq!(book.buying_power(d), power(&book, d));
                let (exposure_before, within_then, drawn_before) = within_before[d.id.index()];
                if d.exposure > exposure_before {
                    prop_assert!(within, "{:?} rose past its buying power: {:?}", d.id, cmd);
                }
                if within_then && !matches!(cmd, Command::SetCreditLimit { .. }) {
                    prop_assert!(within, "{:?} left its buying power: {:?}", d.id, cmd);
                }
                // The line: what is drawn is every open loan's principal.
                prop_assert_eq!(d.credit.drawn, open_loans(&book, d.id), "dealer {:?}", d.id);
                prop_assert!(d.credit.available() <= d.credit.limit);
                // Nothing draws past the limit (only a lowered limit leaves it below).
                if d.credit.drawn > drawn_before {
                    prop_assert!(
                        d.credit.drawn <= d.credit.limit,
                        "{:?} overdrawn: {:?}",
                        d.id,
                        cmd
                    );
                }
            }
            // A loan paid for one sold lot of its borrower, now settled.
            for loan in book.loans() {
                let l = book.lot(loan.lot).expect("a loan's lot");
                prop_assert!(l.status == LotStatus::Sold && l.settled);
                prop_assert_eq!(l.lead.map(|x| x.dealer), Some(loan.dealer));
                prop_assert_eq!(l.price, Some(loan.principal));
                prop_assert_eq!(book.loan_for_lot(loan.lot).map(|x| x.id), Some(loan.id));
            }

            // The timer index agrees with the lots and the loans.
            let due = book
                .lots()
                .iter()
                .filter_map(Lot::deadline)
                .chain(
                    book.loans()
                        .iter()
                        .filter(|l| l.is_open() && !l.overdue)
                        .map(|l| l.due_at),
                )
                .min();
            prop_assert_eq!(book.next_deadline(), due);

            all_events.push(events);
        }
        Ok((book, log, all_events))
    }

    fn replay(book: &mut Book, log: &[(u64, u64, Command)]) -> Vec<Vec<Event>> {
        log.iter()
            .map(|(seq, now, cmd)| book.apply(*seq, *now, cmd.clone()))
            .collect()
    }

    fn state(book: &Book) -> Vec<u8> {
        rmp_serde::to_vec(book).expect("book serializes")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Every invariant checked in `play`, after every command.
        #[test]
        fn invariants_hold_after_every_command(s in scenario()) {
            play(&s)?;
        }

        /// The same log applied to two fresh books gives byte-identical state and events.
        #[test]
        fn the_same_log_gives_the_same_bytes(s in scenario()) {
            let (book, log, events) = play(&s)?;
            let mut first = Book::new(rules());
            let mut second = Book::new(rules());
            let e1 = replay(&mut first, &log);
            let e2 = replay(&mut second, &log);
            let setup = log.len() - events.len();
            prop_assert_eq!(&e1[setup..], &events[..]);
            prop_assert_eq!(&e1, &e2);
            prop_assert_eq!(state(&first), state(&book));
            prop_assert_eq!(state(&second), state(&book));
        }

        /// Snapshot, restore and continue the log: the same state, deadline and events as
        /// never having stopped.
        #[test]
        fn a_snapshot_round_trip_changes_nothing(s in scenario(), cut in any::<prop::sample::Index>()) {
            let (book, log, events) = play(&s)?;
            let k = cut.index(log.len() + 1);
            let mut head = Book::new(rules());
            replay(&mut head, &log[..k]);
            let bytes = state(&head);
            let mut restored: Book = rmp_serde::from_slice(&bytes).expect("snapshot decodes");
            prop_assert_eq!(&restored, &head);
            prop_assert_eq!(restored.next_deadline(), head.next_deadline());
            prop_assert_eq!(state(&restored), bytes);
            let tail = replay(&mut restored, &log[k..]);
            let full = replay(&mut Book::new(rules()), &log);
            prop_assert_eq!(&full[log.len() - events.len()..], &events[..]);
            prop_assert_eq!(&tail[..], &full[k..]);
            prop_assert_eq!(state(&restored), state(&book));
            prop_assert_eq!(restored.next_deadline(), book.next_deadline());
        }
    }
}

/// Every step that moves a dealer's exposure says so (on the bid path in its `Bid` and
/// `Outbid` events, elsewhere in `ExposureChanged`), with the book's new figure: the
/// views' "buying power left" is exactly the book's.
#[test]
fn every_exposure_move_is_reported_with_the_books_figure() {
    let (mut sim, d, lot) = market(3, y(10_000), y(30_000), Some(y(60_000)));
    let check = |sim: &mut Sim, step: &dyn Fn(&mut Sim) -> Vec<Event>| {
        let before: Vec<Fen> = (0..3).map(|i| sim.exposure(d[i])).collect();
        let events = step(sim);
        let mut reported = std::collections::BTreeMap::new();
        for e in &events {
            match e {
                Event::ExposureChanged { dealer, exposure }
                | Event::Outbid {
                    dealer, exposure, ..
                }
                | Event::Bid {
                    dealer,
                    exposure,
                    outcome: BidOutcome::Accepted { .. },
                    duplicate: false,
                    ..
                } => {
                    reported.insert(*dealer, *exposure);
                }
                _ => {}
            }
        }
        for i in 0..3 {
            let now = sim.exposure(d[i]);
            match reported.get(&d[i]) {
                Some(&r) => assert_eq!(r, now, "reported figure is the book's: {events:?}"),
                None => assert_eq!(before[i], now, "an unreported move: {events:?}"),
            }
        }
        events
    };
    check(&mut sim, &|s| {
        s.bid_events(d[0], lot, y(10_000), Some(y(12_000)))
    });
    // The leader's proxy answers: nobody's exposure moves, and no extra event says so.
    let answered = check(&mut sim, &|s| s.bid_events(d[1], lot, y(10_200), None));
    assert!(!answered
        .iter()
        .any(|e| matches!(e, Event::ExposureChanged { .. } | Event::Outbid { .. })));
    check(&mut sim, &|s| {
        s.bid_events(d[1], lot, y(12_400), Some(y(20_000)))
    });
    check(&mut sim, &|s| {
        s.bid_events(d[1], lot, y(0), Some(y(25_000)))
    });
    let end = sim.lot(lot).ends_at;
    let closed = check(&mut sim, &|s| s.tick(end));
    // Under the reserve: pending, and its window is announced.
    assert!(closed.iter().any(|e| matches!(
        e,
        Event::DecisionWindow { lot: l, until } if *l == lot && *until == end + 24 * HOUR
    )));
    assert_eq!(sim.lot(lot).decision_deadline, Some(end + 24 * HOUR));
    let seller = sim.lot(lot).seller;
    check(&mut sim, &|s| {
        s.run(Command::Decide {
            lot,
            seller,
            accept: true,
        })
    });
    check(&mut sim, &|s| s.run(Command::Settle { lot }));
    // Buy-now on a second lot, and a cancelled third.
    let lot2 = sim.list(seller, y(10_000), y(30_000), Some(y(40_000)));
    check(&mut sim, &|s| s.bid_events(d[2], lot2, y(10_000), None));
    check(&mut sim, &|s| s.bid_events(d[0], lot2, y(40_000), None));
    let lot3 = sim.list(seller, y(10_000), y(30_000), None);
    check(&mut sim, &|s| {
        s.bid_events(d[2], lot3, y(10_000), Some(y(11_000)))
    });
    check(&mut sim, &|s| {
        s.run(Command::CancelLot {
            lot: lot3,
            by: Canceller::Admin,
        })
    });
    assert_eq!(sim.exposure(d[2]), 0);
}

mod prebid;
mod transfer;
