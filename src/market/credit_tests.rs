//! The credit line's rulebook (车商贷): limits and buying power, financing, repayment,
//! and the alliance's two violations of it (a car sold out of trust, a late repayment),
//! each a journaled command applied by the market on a simulated clock.

use super::tests::{Sim, H, T0, Y};
use super::*;
use crate::alliance::tests::clean;
use crate::alliance::{Actor, AllianceCommand, ItemId, ItemStatus};
use crate::auction::{
    BidOutcome, Borrower, Command as AuctionCommand, Event as AuctionEvent, Refusal, Rejection,
};
use crate::vocab::{Fen, LoanId};

const DAY: u64 = 24 * H;
/// Dealer 1's deposit in these tests: 5,000 yuan, so 50,000 yuan of buying power from it,
/// under the 60,000-yuan buy-now price of every car `Sim::list` lists.
const DEPOSIT: Fen = 5_000 * Y;
const PRICE: Fen = 60_000 * Y;

fn sim() -> Sim {
    let mut m = Sim::new();
    m.apply(AuctionCommand::SetDeposit {
        dealer: DealerId(1),
        deposit: DEPOSIT,
    });
    m
}

fn set_limit(m: &mut Sim, limit: Fen) -> Vec<Event> {
    m.apply(AuctionCommand::SetCreditLimit {
        dealer: DealerId(1),
        limit,
    })
}

fn finance(m: &mut Sim, lot: LotId, by: Borrower) -> Vec<Event> {
    m.apply(AuctionCommand::Finance { lot, by })
}

fn repay(m: &mut Sim, loan: u32) -> Vec<Event> {
    m.apply(AuctionCommand::Repay { loan: LoanId(loan) })
}

fn refusal(events: &[Event]) -> Option<Refusal> {
    match events.first() {
        Some(Event::Auction(AuctionEvent::Refused(r))) => Some(*r),
        _ => None,
    }
}

/// Dealer 1's (limit, drawn, available, exposure, buying power).
fn line(m: &Sim) -> (Fen, Fen, Fen, Fen, Fen) {
    let book = m.market.book();
    let d = book.dealer(DealerId(1)).expect("dealer 1");
    (
        d.credit.limit,
        d.credit.drawn,
        d.credit.available(),
        d.exposure,
        book.buying_power(d),
    )
}

/// Dealer 1's warnings as (cause, corrected).
fn warnings(m: &Sim) -> Vec<(&'static str, bool)> {
    m.market
        .alliance()
        .standing(DealerId(1), DealerStatus::Active)
        .warnings
        .iter()
        .map(|w| (w.cause.as_str(), w.corrected()))
        .collect()
}

/// Dealer 1 buys a car at buy-now (60,000 yuan) on a line of `limit`, and finances it.
fn financed(limit: Fen) -> (Sim, LotId) {
    let mut m = sim();
    set_limit(&mut m, limit);
    let record = m.buy(1, clean());
    let events = finance(&mut m, record.auction, Borrower::Dealer(DealerId(1)));
    assert_eq!(refusal(&events), None, "{events:?}");
    (m, record.auction)
}

#[test]
fn a_limit_adds_its_available_credit_to_buying_power() {
    // (limit in yuan, a 60,000-yuan buy-now bid's outcome)
    let table: [(Fen, Option<Rejection>); 4] = [
        (0, Some(Rejection::ExposureLimit)),
        (9_999, Some(Rejection::ExposureLimit)),
        (10_000, None),
        (1_000_000, None),
    ];
    for (limit, expected) in table {
        let mut m = sim();
        let events = set_limit(&mut m, limit * Y);
        assert!(
            matches!(
                events[..],
                [Event::Auction(AuctionEvent::CreditChanged { limit: l, drawn: 0, .. })] if l == limit * Y
            ),
            "{events:?}"
        );
        assert_eq!(line(&m).4, 50_000 * Y + limit * Y);
        let lot = m.list(clean());
        let outcome = m.bid(1, lot, PRICE, "buy");
        match expected {
            Some(r) => assert_eq!(outcome, BidOutcome::Rejected(r), "limit {limit}"),
            None => assert!(
                matches!(outcome, BidOutcome::Accepted { .. }),
                "limit {limit}: {outcome:?}"
            ),
        }
    }
    // Withdrawn (0): the deposit alone again.
    let mut m = sim();
    set_limit(&mut m, 500_000 * Y);
    set_limit(&mut m, 0);
    assert_eq!(line(&m), (0, 0, 0, 0, 50_000 * Y));
    // Over the cap, or for no dealer: refused, nothing changed.
    let events = set_limit(&mut m, crate::vocab::MAX_AMOUNT + 1);
    assert_eq!(refusal(&events), Some(Refusal::InvalidAmount));
    let events = m.apply(AuctionCommand::SetCreditLimit {
        dealer: DealerId(9),
        limit: Y,
    });
    assert_eq!(refusal(&events), Some(Refusal::UnknownDealer));
}

#[test]
fn financing_moves_the_price_from_exposure_to_the_line() {
    let mut m = sim();
    set_limit(&mut m, 100_000 * Y);
    let record = m.buy(1, clean());
    // Won and unpaid: the price counts in exposure.
    assert_eq!(line(&m), (100_000 * Y, 0, 100_000 * Y, PRICE, 150_000 * Y));
    m.now += 1_000;
    let events = finance(&mut m, record.auction, Borrower::Dealer(DealerId(1)));
    let loan = match &events[..] {
        [Event::Auction(AuctionEvent::LoanChanged(loan)), Event::Auction(AuctionEvent::CreditChanged { drawn, .. }), Event::Auction(AuctionEvent::ExposureChanged { exposure: 0, .. })]
            if *drawn == PRICE =>
        {
            loan.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (loan.id, loan.lot, loan.dealer, loan.principal),
        (LoanId(1), record.auction, DealerId(1), PRICE)
    );
    assert_eq!(
        (loan.drawn_at, loan.due_at, loan.repaid_at, loan.overdue),
        (m.now, m.now + 60 * DAY, None, false)
    );
    // Headroom is unchanged: the line paid the seller, it did not add buying power.
    assert_eq!(line(&m), (100_000 * Y, PRICE, 40_000 * Y, 0, 90_000 * Y));
    let lot = m.market.book().lot(record.auction).expect("lot");
    assert!(lot.settled);
    assert_eq!(m.market.next_deadline(), Some(loan.due_at));
}

#[test]
fn what_may_not_be_financed() {
    let mut m = sim();
    set_limit(&mut m, 100_000 * Y);
    let live = m.list(clean());
    let cheap = m.buy(2, clean()); // dealer 2's car
    let paid = m.buy(1, clean());
    m.apply(AuctionCommand::Settle { lot: paid.auction });
    let mine = m.buy(1, clean());
    let table: [(LotId, Borrower, Option<Refusal>); 7] = [
        (LotId(99), Borrower::Admin, Some(Refusal::UnknownLot)),
        (live, Borrower::Admin, Some(Refusal::WrongState)),
        (paid.auction, Borrower::Admin, Some(Refusal::WrongState)),
        (
            cheap.auction,
            Borrower::Dealer(DealerId(1)),
            Some(Refusal::NotAllowed),
        ),
        // Dealer 2 has no line.
        (cheap.auction, Borrower::Admin, Some(Refusal::CreditLimit)),
        (mine.auction, Borrower::Admin, None),
        // Financed already: it is no longer unpaid.
        (
            mine.auction,
            Borrower::Dealer(DealerId(1)),
            Some(Refusal::WrongState),
        ),
    ];
    for (lot, by, expected) in table {
        let before = m.market.clone();
        let events = finance(&mut m, lot, by);
        assert_eq!(refusal(&events), expected, "{lot} {by:?}: {events:?}");
        if expected.is_some() {
            assert_eq!(m.market.book().loans(), before.book().loans());
            assert_eq!(m.market.book().dealers(), before.book().dealers());
        }
    }
    // A suspended buyer may not draw; an operator may on its behalf.
    let another = m.buy(1, clean());
    m.apply(AuctionCommand::SetDealerStatus {
        dealer: DealerId(1),
        status: DealerStatus::Suspended,
        reason: String::new(),
    });
    let own = finance(&mut m, another.auction, Borrower::Dealer(DealerId(1)));
    assert_eq!(refusal(&own), Some(Refusal::NotAllowed));
    // 40,000 yuan left on the line: not enough for a second 60,000-yuan car.
    let admin = finance(&mut m, another.auction, Borrower::Admin);
    assert_eq!(refusal(&admin), Some(Refusal::CreditLimit));
}

#[test]
fn repayment_restores_the_line_once() {
    let (mut m, _) = financed(100_000 * Y);
    m.now += DAY;
    let events = repay(&mut m, 1);
    assert!(
        matches!(
            &events[..],
            [
                Event::Auction(AuctionEvent::LoanChanged(l)),
                Event::Auction(AuctionEvent::LoanRepaid { loan: LoanId(1), .. }),
                Event::Auction(AuctionEvent::CreditChanged { drawn: 0, .. }),
            ] if l.repaid_at == Some(m.now) && !l.overdue
        ),
        "{events:?}"
    );
    assert_eq!(line(&m), (100_000 * Y, 0, 100_000 * Y, 0, 150_000 * Y));
    assert_eq!(m.market.next_deadline(), None);
    assert_eq!(refusal(&repay(&mut m, 1)), Some(Refusal::WrongState));
    assert_eq!(refusal(&repay(&mut m, 2)), Some(Refusal::UnknownLoan));
    assert_eq!(warnings(&m), []);
}

#[test]
fn a_limit_lowered_below_what_is_drawn_leaves_no_credit_until_repaid() {
    let (mut m, _) = financed(100_000 * Y);
    set_limit(&mut m, 30_000 * Y);
    // Drawn 60,000 of 30,000: nothing available, and never a negative figure.
    assert_eq!(line(&m), (30_000 * Y, PRICE, 0, 0, 50_000 * Y));
    let lot = m.list(clean());
    assert_eq!(
        m.bid(1, lot, PRICE, "over"),
        BidOutcome::Rejected(Rejection::ExposureLimit)
    );
    repay(&mut m, 1);
    assert_eq!(line(&m), (30_000 * Y, 0, 30_000 * Y, 0, 80_000 * Y));
    assert!(matches!(
        m.bid(1, lot, PRICE, "again"),
        BidOutcome::Accepted { .. }
    ));
}

/// The hand-off record of dealer 1's purchase of `lot` at `PRICE`, with a clean report.
fn purchase(lot: LotId) -> Box<crate::alliance::HandOffRecord> {
    Box::new(crate::alliance::HandOffRecord {
        auction: lot,
        vin: crate::alliance::tests::VIN.into(),
        seller: crate::vocab::SellerId(1),
        dealer: DealerId(1),
        price: PRICE,
        inspection_sha256: crate::alliance::inspection_sha256(&clean()),
        inspection: clean(),
    })
}

/// Dealer 1 retails item 1.
fn retail_item_1(m: &mut Sim) -> Vec<Event> {
    m.alliance(AllianceCommand::Retail {
        item: ItemId(1),
        by: Actor::Dealer(DealerId(1)),
        consumer_ref: "c-1".into(),
        price: 70_000 * Y,
    })
}

/// Whether `events` hold an item's retail sale.
fn retailed(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::Alliance(AllianceEvent::ItemChanged(i)) if i.status == ItemStatus::Retailed
        )
    })
}

/// Retails dealer 1's item 1 (the financed car, handed off).
fn retail(m: &mut Sim, lot: LotId) -> Vec<Event> {
    m.alliance(AllianceCommand::HandOff(purchase(lot)));
    retail_item_1(m)
}

#[test]
fn a_financed_car_retailed_before_repayment_is_sold_out_of_trust() {
    // (repaid before the retail sale, the warnings after the sale, after the repayment)
    type Row = (
        bool,
        &'static [(&'static str, bool)],
        &'static [(&'static str, bool)],
    );
    let table: [Row; 2] = [
        (
            false,
            &[("sold_out_of_trust", false)],
            &[("sold_out_of_trust", true)],
        ),
        (true, &[], &[]),
    ];
    for (repaid_first, after_sale, after_repayment) in table {
        let (mut m, lot) = financed(100_000 * Y);
        if repaid_first {
            repay(&mut m, 1);
        }
        let events = retail(&mut m, lot);
        // The sale stands either way: the consumer bought a car the dealer held.
        assert!(retailed(&events), "{events:?}");
        assert_eq!(warnings(&m), after_sale, "repaid first: {repaid_first}");
        if !repaid_first {
            repay(&mut m, 1);
        }
        assert_eq!(
            warnings(&m),
            after_repayment,
            "repaid first: {repaid_first}"
        );
    }
}

#[test]
fn a_car_from_another_market_is_not_judged_by_a_local_loan_on_a_lot_of_the_same_id() {
    // (who sold the car the alliance holds as item 1, the warnings after its retail sale)
    type Row = (Option<&'static str>, &'static [(&'static str, bool)]);
    let table: [Row; 2] = [
        (None, &[("sold_out_of_trust", false)]),
        // Beijing's auction of the same id is another car; its loan, if any, is Beijing's.
        (Some("beijing"), &[]),
    ];
    for (market, expected) in table {
        let (mut m, lot) = financed(100_000 * Y);
        let record = purchase(lot);
        m.alliance(match market {
            Some(market) => AllianceCommand::HandOffFrom {
                market: market.into(),
                record,
                vehicle: Box::new(crate::alliance::tests::car()),
            },
            None => AllianceCommand::HandOff(record),
        });
        let events = retail_item_1(&mut m);
        assert!(retailed(&events), "{market:?}: {events:?}");
        assert_eq!(warnings(&m), expected, "{market:?}");
    }
}

#[test]
fn a_car_from_another_market_is_judged_by_that_markets_loan_and_only_its_repayment_corrects_it() {
    // This book financed its lot with L1; Beijing sold a car at its auction of the same
    // id, financed it with its own L1, and the relay notes that loan here.
    let (mut m, lot) = financed(100_000 * Y);
    m.alliance(AllianceCommand::HandOffFrom {
        market: "beijing".into(),
        record: purchase(lot),
        vehicle: Box::new(crate::alliance::tests::car()),
    });
    let note = |repaid| AllianceCommand::NoteRemoteLoan {
        market: "beijing".into(),
        auction: lot,
        loan: LoanId(1),
        dealer: DealerId(1),
        repaid,
    };
    m.alliance(note(false));
    let events = retail_item_1(&mut m);
    assert!(retailed(&events), "{events:?}");
    assert_eq!(warnings(&m), [("sold_out_of_trust", false)]);
    // This book's L1 is repaid (its `LoanRepaid`, through the market): not Beijing's.
    assert_eq!(refusal(&repay(&mut m, 1)), None);
    assert_eq!(warnings(&m), [("sold_out_of_trust", false)]);
    let events = m.alliance(note(true));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Alliance(AllianceEvent::WarningChanged(w)) if w.corrected()
        )),
        "{events:?}"
    );
    assert_eq!(warnings(&m), [("sold_out_of_trust", true)]);
    // The noted loan and its correction survive a snapshot.
    let bytes = rmp_serde::to_vec(&m.market).expect("snapshot");
    let back: Market = rmp_serde::from_slice(&bytes).expect("load");
    assert_eq!(back, m.market);
}

#[test]
fn a_loan_open_at_its_due_time_is_a_late_repayment() {
    // (repaid at, ticked at its due time first, the warnings after the repayment)
    let due = T0 + 60 * DAY;
    type Row = (u64, bool, &'static [(&'static str, bool)]);
    let table: [Row; 4] = [
        (due - 1, false, &[]),
        // At the due time, before a tick saw it: late all the same.
        (due, false, &[("late_repayment", true)]),
        (due + DAY, false, &[("late_repayment", true)]),
        (due + DAY, true, &[("late_repayment", true)]),
    ];
    for (repaid_at, ticked, expected) in table {
        let (mut m, _) = financed(100_000 * Y);
        let loan = m.market.book().loan(LoanId(1)).expect("loan").clone();
        assert_eq!(loan.due_at, due, "every test step runs at T0");
        if ticked {
            let events = m.tick_at(due);
            assert!(events.iter().any(|e| matches!(
                e,
                Event::Auction(AuctionEvent::LoanOverdue {
                    loan: LoanId(1),
                    ..
                })
            )));
            assert_eq!(warnings(&m), [("late_repayment", false)]);
            assert_eq!(m.market.next_deadline(), None, "overdue once");
            assert!(!m
                .tick_at(due + 1)
                .iter()
                .any(|e| matches!(e, Event::Auction(AuctionEvent::LoanOverdue { .. }))));
        }
        m.now = repaid_at;
        repay(&mut m, 1);
        assert_eq!(
            warnings(&m),
            expected,
            "repaid at due{:+}",
            repaid_at as i64 - due as i64
        );
        let loan = m.market.book().loan(LoanId(1)).expect("loan");
        assert_eq!(loan.overdue, !expected.is_empty());
    }
}

#[test]
fn a_dealer_with_two_open_warnings_is_expelled_by_a_third_late_loan() {
    let mut m = sim();
    set_limit(&mut m, 1_000_000 * Y);
    for _ in 0..3 {
        let record = m.buy(1, clean());
        finance(&mut m, record.auction, Borrower::Dealer(DealerId(1)));
    }
    let events = m.tick_at(T0 + 60 * DAY);
    let expelled = events.iter().any(|e| {
        matches!(
            e,
            Event::Auction(AuctionEvent::DealerChanged {
                status: DealerStatus::Expelled,
                ..
            })
        )
    });
    assert!(expelled, "{events:?}");
    assert_eq!(warnings(&m).len(), 3);
}

#[test]
fn loans_that_fell_due_during_an_outage_get_the_outage_grace() {
    let (mut m, _) = financed(100_000 * Y);
    let due = T0 + 60 * DAY;
    m.now = due + H;
    let events = m.apply(AuctionCommand::Resume);
    let grace = m.market.book().rules().after_outage(due + H);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Auction(AuctionEvent::LoanChanged(l)) if l.due_at == grace
    )));
    assert_eq!(m.market.next_deadline(), Some(grace));
    repay(&mut m, 1);
    assert_eq!(warnings(&m), []);
}

#[test]
fn the_line_and_its_loans_survive_a_snapshot() {
    let (mut m, _) = financed(100_000 * Y);
    let record = m.buy(1, clean());
    set_limit(&mut m, 30_000 * Y);
    for bytes in [
        rmp_serde::to_vec(&m.market).expect("positional"),
        rmp_serde::to_vec_named(&m.market).expect("named"),
    ] {
        let back: Market = rmp_serde::from_slice(&bytes).expect("loads");
        assert_eq!(back, m.market);
        assert_eq!(back.next_deadline(), m.market.next_deadline());
        assert_eq!(back.book().loan_for_lot(record.auction), None);
        assert_eq!(
            back.book().loan_for_lot(LotId(1)).map(|l| l.id),
            Some(LoanId(1))
        );
    }
    // A market without a line writes no trace of credit: the bytes of before.
    let plain = Sim::new();
    let bytes = rmp_serde::to_vec_named(&plain.market).expect("encodes");
    for absent in [&b"credit"[..], b"loans"] {
        assert!(!bytes.windows(absent.len()).any(|w| w == absent));
    }
}

#[test]
fn a_loan_term_other_than_the_default_is_journaled_with_the_rules() {
    let mut rules = Rules::default();
    rules.auction.credit_due_ms = 7 * DAY;
    let bytes = rmp_serde::to_vec_named(&rules).expect("encodes");
    let back: Rules = rmp_serde::from_slice(&bytes).expect("decodes");
    assert_eq!(back, rules);
    let positional = rmp_serde::to_vec(&rules).expect("encodes");
    assert_eq!(
        rmp_serde::from_slice::<Rules>(&positional).ok().as_ref(),
        Some(&rules)
    );
    // The first version's rules with another term: the version is written before it.
    let mut first = Rules::first();
    first.auction.credit_due_ms = 7 * DAY;
    let positional = rmp_serde::to_vec(&first).expect("encodes");
    assert_eq!(
        rmp_serde::from_slice::<Rules>(&positional).ok(),
        Some(first)
    );
    // The default term is not written.
    let default = rmp_serde::to_vec_named(&Rules::default()).expect("encodes");
    assert!(!default.windows(13).any(|w| w == b"credit_due_ms"));
    let mut m = sim();
    m.apply(Command::Configure(Box::new(rules)));
    set_limit(&mut m, 100_000 * Y);
    let record = m.buy(1, clean());
    finance(&mut m, record.auction, Borrower::Admin);
    assert_eq!(
        m.market.book().loan(LoanId(1)).map(|l| l.due_at),
        Some(T0 + 7 * DAY)
    );
}
