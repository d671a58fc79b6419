//! Transfers of a dealer's deposit between markets: the rulebook's table tests. A book
//! here is one market; the peer market is only a name (the market tests play both
//! halves across real markets).

use super::*;
use crate::auction::transfer::{Direction, Transfer, TransferOutcome, TransferRefusal};

/// One half of a transfer, as the cluster would send it.
fn out(id: &str, dealer: DealerId, amount: Fen) -> Command {
    Command::TransferOut {
        transfer: id.into(),
        dealer,
        to: "chengdu".into(),
        amount,
    }
}

fn r#in(id: &str, dealer: DealerId, amount: Fen) -> Command {
    Command::TransferIn {
        transfer: id.into(),
        dealer,
        from: "beijing".into(),
        amount,
    }
}

/// The direct answer of a transfer's half: (outcome, duplicate, deposit after).
#[track_caller]
fn answer(events: &[Event]) -> (TransferOutcome, bool, Fen) {
    match events.first() {
        Some(Event::Transfer {
            record,
            duplicate,
            deposit,
        }) => (record.outcome, *duplicate, *deposit),
        other => panic!("first event is not a Transfer: {other:?}"),
    }
}

const ACCEPTED: TransferOutcome = TransferOutcome::Accepted;

fn refused(r: TransferRefusal) -> TransferOutcome {
    TransferOutcome::Refused(r)
}

fn exceeds(free: Fen) -> TransferOutcome {
    refused(TransferRefusal::ExceedsFree { free })
}

impl Sim {
    fn deposit(&self, dealer: DealerId) -> Fen {
        self.book.dealer(dealer).expect("dealer").deposit
    }

    /// Exposure ≤ buying power, for every dealer: what every bid keeps and a transfer
    /// out must keep too.
    #[track_caller]
    fn covered(&self) {
        for d in self.book.dealers() {
            assert!(
                d.exposure <= self.book.buying_power(d),
                "{}: exposure {} over buying power {}",
                d.id,
                d.exposure,
                self.book.buying_power(d)
            );
        }
    }
}

/// What a dealer holds in the market when it asks to move deposit out.
#[derive(Clone, Copy, Debug)]
enum Holds {
    Nothing,
    /// Leads a live lot with this max (yuan).
    Leads(u64),
    /// Holds a pre-bid with this max in a lot's preview.
    PreBid(u64),
    /// Won a lot at this price and has not paid.
    WonUnpaid(u64),
    /// Won a lot at this price and paid.
    WonPaid(u64),
    /// Is the best bidder under the reserve, awaiting the seller (at this price).
    AwaitsSeller(u64),
    /// Leads with this max, with a credit line of this limit (yuan).
    LeadsOnCredit(u64, u64),
}

/// Builds the holding on a fresh market: the dealer under test (10,000 yuan deposit,
/// leverage 10: 100,000 yuan of buying power) and a rival.
fn holding(holds: Holds) -> (Sim, DealerId) {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let d = sim.dealer(y(10_000));
    let lot = |sim: &mut Sim, reserve| sim.list(seller, y(1_000), y(reserve), None);
    let close = |sim: &mut Sim, lot: LotId| {
        let end = sim.lot(lot).ends_at;
        sim.tick(end);
    };
    match holds {
        Holds::Nothing => {}
        Holds::Leads(max) => {
            let l = lot(&mut sim, 1_000);
            accepted(sim.bid(d, l, y(1_000), Some(y(max))));
        }
        Holds::PreBid(max) => {
            let mut preview = listing(y(1_000), y(1_000), None);
            preview.starts_at = Some(T0 + HOUR);
            sim.list_with(seller, preview);
            accepted(sim.bid(d, LotId(1), y(1_000), Some(y(max))));
        }
        Holds::WonUnpaid(price) | Holds::WonPaid(price) => {
            let l = lot(&mut sim, 1_000);
            accepted(sim.bid(d, l, y(price), None));
            close(&mut sim, l);
            if matches!(holds, Holds::WonPaid(_)) {
                sim.run(Command::Settle { lot: l });
            }
        }
        Holds::AwaitsSeller(price) => {
            let l = lot(&mut sim, 90_000);
            accepted(sim.bid(d, l, y(price), None));
            close(&mut sim, l);
            assert_eq!(sim.lot(l).status, LotStatus::PendingSeller);
        }
        Holds::LeadsOnCredit(max, limit) => {
            sim.run(Command::SetCreditLimit {
                dealer: d,
                limit: y(limit),
            });
            let l = lot(&mut sim, 1_000);
            accepted(sim.bid(d, l, y(1_000), Some(y(max))));
        }
    }
    (sim, d)
}

#[test]
fn a_transfer_out_may_take_only_the_deposit_the_exposure_here_does_not_need() {
    // (what the dealer holds, the free deposit in yuan): at leverage 10 a hold of H yuan
    // needs H / 10 of the 10,000 yuan deposit (rounded up to the fen), less what the
    // credit line available covers.
    let table = [
        (Holds::Nothing, 10_000),
        (Holds::Leads(60_000), 4_000),
        (Holds::Leads(100_000), 0),
        (Holds::PreBid(30_000), 7_000),
        (Holds::WonUnpaid(20_000), 8_000),
        (Holds::WonPaid(20_000), 10_000),
        (Holds::AwaitsSeller(35_000), 6_500),
        (Holds::LeadsOnCredit(60_000, 50_000), 9_000),
        (Holds::LeadsOnCredit(60_000, 70_000), 10_000),
    ];
    for (holds, free) in table {
        let what = format!("{holds:?}");
        let (mut sim, d) = holding(holds);
        let free = y(free);
        let dealer = sim.book.dealer(d).expect("dealer");
        assert_eq!(sim.book.free_deposit(dealer), free, "{what}");
        // A fen more than free is refused, naming what is free; nothing moves.
        let before = sim.state();
        let events = sim.run(out("t-over", d, free + 1));
        assert_eq!(answer(&events), (exceeds(free), false, y(10_000)), "{what}");
        assert_eq!(events.len(), 1, "{what}: a refusal is the answer alone");
        // (Only the remembered id differs.)
        assert!(sim.book.transfers().get(Direction::Out, "t-over").is_some());
        assert_ne!(before, sim.state(), "{what}");
        // Exactly the free deposit leaves, when there is any.
        if free > 0 {
            let events = sim.run(out("t-free", d, free));
            assert_eq!(
                answer(&events),
                (ACCEPTED, false, y(10_000) - free),
                "{what}"
            );
        }
        assert_eq!(sim.deposit(d), y(10_000) - free, "{what}");
        sim.covered();
        // Nothing more is free: even a fen is refused now.
        let events = sim.run(out("t-fen", d, 1));
        assert_eq!(
            answer(&events),
            (exceeds(0), false, sim.deposit(d)),
            "{what}"
        );
    }
}

#[test]
fn a_transfer_out_is_refused_while_the_dealer_leads_a_lot_needing_it_and_accepted_once_outbid() {
    let mut sim = Sim::new();
    let seller = sim.seller();
    let (d1, d2) = (sim.dealer(y(10_000)), sim.dealer(y(20_000)));
    let lot = sim.list(seller, y(1_000), y(1_000), None);
    // D1 leads with a max of its whole buying power: none of its deposit is free.
    accepted(sim.bid(d1, lot, y(1_000), Some(y(100_000))));
    let events = sim.run(out("t1", d1, y(1)));
    assert_eq!(answer(&events), (exceeds(0), false, y(10_000)));
    // D2 outbids it: D1's max no longer counts.
    accepted(sim.bid(d2, lot, y(110_000), None));
    assert_eq!(sim.exposure(d1), 0);
    // The same id is answered as first decided, though it would pass now.
    let events = sim.run(out("t1", d1, y(1)));
    assert_eq!(answer(&events), (exceeds(0), true, y(10_000)));
    // A new id moves the whole deposit.
    let events = sim.run(out("t2", d1, y(10_000)));
    assert_eq!(answer(&events), (ACCEPTED, false, 0));
    assert_eq!(
        events[1],
        Event::DealerChanged {
            dealer: d1,
            status: DealerStatus::Active,
            deposit: 0,
            exposure: 0,
        }
    );
    // With no deposit left it can bid no more here.
    assert_eq!(
        rejected(sim.bid(d1, lot, y(200_000), None)),
        Rejection::ExposureLimit
    );
    sim.covered();
}

#[test]
fn each_half_is_applied_once_per_id_and_a_repeat_gets_the_first_answer() {
    let mut sim = Sim::new();
    let d = sim.dealer(y(10_000));
    // (command, expected answer, deposit after): in order, on one book.
    let table = [
        (out("t1", d, y(3_000)), (ACCEPTED, false), y(7_000)),
        // Redelivered: the first answer, nothing moves.
        (out("t1", d, y(3_000)), (ACCEPTED, true), y(7_000)),
        // The same id asking for another amount is still the first one's repeat.
        (out("t1", d, y(5_000)), (ACCEPTED, true), y(7_000)),
        // A transfer's halves are kept apart: an `in` of the same id is its own.
        (r#in("t1", d, y(3_000)), (ACCEPTED, false), y(10_000)),
        (r#in("t1", d, y(3_000)), (ACCEPTED, true), y(10_000)),
        (r#in("t2", d, y(500)), (ACCEPTED, false), y(10_500)),
        (r#in("t2", d, y(500)), (ACCEPTED, true), y(10_500)),
        // A refusal is final too.
        (
            out("t3", d, y(20_000)),
            (exceeds(y(10_500)), false),
            y(10_500),
        ),
        (out("t3", d, y(1)), (exceeds(y(10_500)), true), y(10_500)),
    ];
    for (i, (command, (outcome, duplicate), deposit)) in table.into_iter().enumerate() {
        let events = sim.run(command);
        assert_eq!(answer(&events), (outcome, duplicate, deposit), "row {i}");
        assert_eq!(sim.deposit(d), deposit, "row {i}");
        // Only a first acceptance changes the dealer.
        let changed = outcome == ACCEPTED && !duplicate;
        assert_eq!(
            events.len(),
            1 + usize::from(changed),
            "row {i}: {events:?}"
        );
    }
    // A repeat names the first one's terms, whatever it asked.
    let events = sim.run(out("t1", d, y(9)));
    let Some(Event::Transfer { record, .. }) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(
        **record,
        Transfer {
            id: "t1".into(),
            direction: Direction::Out,
            dealer: d,
            peer: "chengdu".into(),
            amount: y(3_000),
            outcome: ACCEPTED,
            seq: 2,
            at: T0,
        }
    );
    assert_eq!(sim.book.transfers().len(), 4);
}

#[test]
fn malformed_transfers_are_refused() {
    let mut sim = Sim::new();
    let d = sim.dealer(y(10_000));
    let long_id = "x".repeat(65);
    let long_market = "m".repeat(33);
    let invalid = refused(TransferRefusal::Invalid);
    // (command, outcome, remembered under its id)
    let table = [
        (out("a", d, 0), invalid, true),
        (r#in("b", d, MAX_AMOUNT + 1), invalid, true),
        (out("", d, y(1)), invalid, false),
        (out(&long_id, d, y(1)), invalid, false),
        (
            Command::TransferIn {
                transfer: "c".into(),
                dealer: d,
                from: long_market.clone(),
                amount: y(1),
            },
            invalid,
            false,
        ),
        (
            Command::TransferOut {
                transfer: "d".into(),
                dealer: d,
                to: String::new(),
                amount: y(1),
            },
            invalid,
            false,
        ),
        (
            out("e", DealerId(9), y(1)),
            refused(TransferRefusal::UnknownDealer),
            true,
        ),
        // The cap on any amount holds for a deposit raised by transfers too.
        (
            r#in("f", d, MAX_AMOUNT),
            refused(TransferRefusal::DepositOverCap),
            true,
        ),
    ];
    let mut kept = 0;
    for (i, (command, outcome, remembered)) in table.into_iter().enumerate() {
        let events = sim.run(command);
        let (got, duplicate, _) = answer(&events);
        assert_eq!((got, duplicate), (outcome, false), "row {i}");
        assert_eq!(events.len(), 1, "row {i}");
        kept += usize::from(remembered);
        assert_eq!(sim.book.transfers().len(), kept, "row {i}");
    }
    assert_eq!(sim.deposit(d), y(10_000));
    // The longest id and market name are allowed.
    let events = sim.run(Command::TransferOut {
        transfer: "x".repeat(64).into(),
        dealer: d,
        to: "m".repeat(32),
        amount: y(1),
    });
    assert_eq!(answer(&events), (ACCEPTED, false, y(9_999)));
}
