//! The dealer credit line (车商贷): the limit the alliance grants a dealer, the loans
//! drawn on it to pay for won cars, and their repayment.
//!
//! Buying power is deposit × leverage + available credit, where available credit is the
//! limit less what is drawn (never below zero: an operator may lower a limit below what
//! is drawn, which leaves no credit to bid with until enough is repaid). Financing a won,
//! unpaid car pays the seller from the line: the car stops counting in the dealer's
//! exposure and its price is drawn instead, so financing never adds buying power; a
//! repayment restores the line. A loan still open at its due time is overdue (the
//! market makes that a violation of the alliance's rules), as is one repaid at or after
//! it before a tick saw it.
//!
//! Must not: read a clock (time is the command's), or decide anything of the alliance's
//! (selling a financed car is the alliance's business; it asks the market, which asks
//! here).

use super::book::Book;
use super::event::{Event, LotStatus, Refusal};
use crate::vocab::{DealerId, DealerStatus, Fen, LoanId, LotId, MAX_AMOUNT};
use serde::{Deserialize, Serialize};

/// A dealer's credit line. Both amounts are at most `MAX_AMOUNT`: the limit is checked
/// when set, and a draw is only ever what the limit leaves available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    /// The most the dealer may draw, fen (0: no line).
    pub limit: Fen,
    /// The principal of every open loan, fen.
    pub drawn: Fen,
}

impl CreditLine {
    /// What is left to draw: the limit less what is drawn, 0 when the limit was lowered
    /// below it.
    pub fn available(&self) -> Fen {
        self.limit.saturating_sub(self.drawn)
    }

    /// A dealer that never had a line (or whose line is withdrawn and repaid) is written
    /// without one, as dealers were before credit existed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One car paid for from a dealer's credit line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loan {
    /// Its id.
    pub id: LoanId,
    /// The won auction it paid for (at most one loan per auction).
    pub lot: LotId,
    /// The borrower: the auction's buyer.
    pub dealer: DealerId,
    /// The hammer price, drawn from the line.
    pub principal: Fen,
    /// When it was drawn.
    pub drawn_at: u64,
    /// Repayment is on time strictly before this (`drawn_at` + the rules' `credit_due_ms`,
    /// or later after an outage).
    pub due_at: u64,
    /// When it was repaid, if it was.
    pub repaid_at: Option<u64>,
    /// Whether its due time passed before it was repaid (a violation was recorded).
    pub overdue: bool,
}

impl Loan {
    /// Not yet repaid.
    pub fn is_open(&self) -> bool {
        self.repaid_at.is_none()
    }
}

/// Who asks to finance a car.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Borrower {
    /// The buyer itself (any other dealer is refused).
    Dealer(DealerId),
    /// An operator, on the buyer's behalf.
    Admin,
}

impl Book {
    /// An operator grants, changes or withdraws (0) a dealer's credit limit.
    pub(super) fn set_credit_limit<E: From<Event>>(
        &mut self,
        dealer: DealerId,
        limit: Fen,
        out: &mut Vec<E>,
    ) {
        if limit > MAX_AMOUNT {
            return out.push(E::from(Event::Refused(Refusal::InvalidAmount)));
        }
        let Some(d) = self.dealers.get_mut(dealer.index()) else {
            return out.push(E::from(Event::Refused(Refusal::UnknownDealer)));
        };
        d.credit.limit = limit;
        self.credit_changed(dealer, out);
    }

    /// Pays for a won, unpaid car from the buyer's credit line.
    pub(super) fn finance<E: From<Event>>(
        &mut self,
        now: u64,
        lot_id: LotId,
        by: Borrower,
        out: &mut Vec<E>,
    ) {
        let Some(lot) = self.lot(lot_id) else {
            return out.push(E::from(Event::Refused(Refusal::UnknownLot)));
        };
        let (LotStatus::Sold, false, Some(lead), Some(price)) =
            (lot.status, lot.settled, lot.lead, lot.price)
        else {
            return out.push(E::from(Event::Refused(Refusal::WrongState)));
        };
        let buyer = &self.dealers[lead.dealer.index()];
        let allowed = match by {
            Borrower::Admin => true,
            Borrower::Dealer(d) => d == lead.dealer && buyer.status == DealerStatus::Active,
        };
        if !allowed {
            return out.push(E::from(Event::Refused(Refusal::NotAllowed)));
        }
        if buyer.credit.available() < price {
            return out.push(E::from(Event::Refused(Refusal::CreditLimit)));
        }
        let loan = Loan {
            id: LoanId(super::book::next_id(self.loans.len())),
            lot: lot_id,
            dealer: lead.dealer,
            principal: price,
            drawn_at: now,
            due_at: now.saturating_add(self.rules().credit_due_ms),
            repaid_at: None,
            overdue: false,
        };
        // The price moves from exposure to the line: `available() >= price` above keeps
        // `drawn` within the limit, so it stays within MAX_AMOUNT.
        self.dealers[lead.dealer.index()].credit.drawn += price;
        let moved = self.transition(lot_id, |l| l.settled = true);
        self.loan_due.insert((loan.due_at, loan.id));
        self.loan_of.insert(lot_id, loan.id);
        out.push(E::from(Event::LoanChanged(Box::new(loan.clone()))));
        self.loans.push(loan);
        self.credit_changed(lead.dealer, out);
        self.report(moved, out);
    }

    /// Records a loan's repayment in full: the line is restored. A repayment at or after
    /// the due time that no tick has yet seen is late, and is reported overdue first.
    pub(super) fn repay<E: From<Event>>(&mut self, now: u64, id: LoanId, out: &mut Vec<E>) {
        let Some(loan) = self.loans.get_mut(id.index()) else {
            return out.push(E::from(Event::Refused(Refusal::UnknownLoan)));
        };
        if !loan.is_open() {
            return out.push(E::from(Event::Refused(Refusal::WrongState)));
        }
        self.loan_due.remove(&(loan.due_at, id));
        if !loan.overdue && now >= loan.due_at {
            loan.overdue = true;
            out.push(E::from(Event::LoanOverdue {
                loan: id,
                dealer: loan.dealer,
            }));
        }
        loan.repaid_at = Some(now);
        let (dealer, lot, principal) = (loan.dealer, loan.lot, loan.principal);
        out.push(E::from(Event::LoanChanged(Box::new(loan.clone()))));
        out.push(E::from(Event::LoanRepaid {
            loan: id,
            dealer,
            lot,
        }));
        let line = &mut self.dealers[dealer.index()].credit;
        // Every open loan's principal is in `drawn`, so this cannot underflow.
        line.drawn = line.drawn.saturating_sub(principal);
        self.credit_changed(dealer, out);
    }

    /// Marks every open loan whose due time is at or before `now` overdue (a tick).
    pub(super) fn loans_due<E: From<Event>>(&mut self, now: u64, out: &mut Vec<E>) {
        while let Some(&(due_at, id)) = self.loan_due.first() {
            if due_at > now {
                break;
            }
            self.loan_due.pop_first();
            let Some(loan) = self.loans.get_mut(id.index()) else {
                continue;
            };
            loan.overdue = true;
            out.push(E::from(Event::LoanChanged(Box::new(loan.clone()))));
            out.push(E::from(Event::LoanOverdue {
                loan: id,
                dealer: loan.dealer,
            }));
        }
    }

    /// After an outage: loans that fell due while the engine was down are due at
    /// `until` instead. The dealer could not have its repayment recorded meanwhile; this
    /// is the grace the lots and the complaints get.
    pub(super) fn loans_resume<E: From<Event>>(&mut self, now: u64, until: u64, out: &mut Vec<E>) {
        let late: Vec<(u64, LoanId)> = self
            .loan_due
            .range(..=(now, LoanId(u32::MAX)))
            .copied()
            .collect();
        for (due_at, id) in late {
            self.loan_due.remove(&(due_at, id));
            if let Some(loan) = self.loans.get_mut(id.index()) {
                loan.due_at = until;
                self.loan_due.insert((until, id));
                out.push(E::from(Event::LoanChanged(Box::new(loan.clone()))));
            }
        }
    }

    fn credit_changed<E: From<Event>>(&self, dealer: DealerId, out: &mut Vec<E>) {
        let d = &self.dealers[dealer.index()];
        out.push(E::from(Event::CreditChanged {
            dealer,
            limit: d.credit.limit,
            drawn: d.credit.drawn,
        }));
    }
}
