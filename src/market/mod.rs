//! The market: the domain's root. It owns the auction book and the alliance's state and
//! applies one journaled [`Command`] as one deterministic step.
//!
//! The engine drives exactly one `Market`: it stamps each command with a sequence number
//! and its clock reading, journals it, and calls [`Market::apply`]. Everything the step
//! changes — an auction, an inventory item, a sanction and the dealer status it takes
//! away — changes inside that one call, so a replay of the journal reaches the same state
//! with the same events, and no crash can fall between a violation and its sanction.
//!
//! Must not: read a clock, draw a random number, do I/O, or let hash-map order reach its
//! output (the same rules as for the two rule books it holds), or import anything above
//! the domain.
//!
//! - [`durable`]: the journal's and the snapshot's byte format for commands, rules and
//!   the market, unchanged from the journals earlier builds wrote.

pub mod durable;

#[cfg(test)]
mod credit_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod transfer_tests;

use crate::alliance::{Alliance, AllianceCommand, AllianceEvent, AllianceRules, Registry, Sale};
use crate::auction::{self, Book, Dealer, LotStatus, Membership, Refusal};
use crate::vocab::{DealerId, DealerStatus, LoanId, LotId, FIRST_RULES_VERSION};

/// Every input to the market: what the journal holds, one per sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Replace the rules from now on (journaled at start when the configuration changed).
    Configure(Box<Rules>),
    /// An auction command: accounts, listings, bids, decisions, timers.
    Auction(auction::Command),
    /// An alliance command (hand-off, retail, return, refund, complaint, rating).
    Alliance(AllianceCommand),
}

impl From<auction::Command> for Command {
    fn from(c: auction::Command) -> Self {
        Self::Auction(c)
    }
}

impl From<AllianceCommand> for Command {
    fn from(c: AllianceCommand) -> Self {
        Self::Alliance(c)
    }
}

/// Everything a step reports, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The rules were replaced.
    Configured,
    /// What the auction book did (its refusals included; a command out of sequence is
    /// refused whole as `Refused(OutOfOrder)`, whatever kind it is).
    Auction(auction::Event),
    /// What an alliance command or an alliance deadline did (its refusals included).
    Alliance(AllianceEvent),
}

impl From<auction::Event> for Event {
    fn from(e: auction::Event) -> Self {
        Self::Auction(e)
    }
}

impl Event {
    /// The auction's event, if this is one.
    pub fn into_auction(self) -> Option<auction::Event> {
        match self {
            Self::Auction(e) => Some(e),
            _ => None,
        }
    }
}

/// Every tunable rule of the market: the auction's and the alliance's. Journaled whole
/// (`Command::Configure`), in the shape `durable` gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Durations, soft close, increments, leverage, retention.
    pub auction: auction::Rules,
    /// The return and complaint windows.
    pub alliance: AllianceRules,
}

impl Rules {
    /// The rules an empty journal starts from: the defaults of the first version, which
    /// every journal written before versions was decided by (the engine journals a
    /// `Configure` whenever its own rules differ, so the log says which rules applied).
    pub fn first() -> Self {
        Self {
            auction: auction::Rules {
                version: FIRST_RULES_VERSION,
                ..auction::Rules::default()
            },
            alliance: AllianceRules {
                version: FIRST_RULES_VERSION,
                ..AllianceRules::default()
            },
        }
    }
}

/// The auction book and the alliance, and the one function that changes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Market {
    book: Book,
    alliance: Alliance,
    alliance_rules: AllianceRules,
}

impl Market {
    /// An empty market under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            book: Book::new(rules.auction),
            alliance: Alliance::default(),
            alliance_rules: rules.alliance,
        }
    }

    /// The auction book.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The alliance's state.
    pub fn alliance(&self) -> &Alliance {
        &self.alliance
    }

    /// The rules in force.
    pub fn rules(&self) -> Rules {
        Rules {
            auction: self.book.rules().clone(),
            alliance: self.alliance_rules.clone(),
        }
    }

    /// Sequence number of the last command applied (0 for an empty market).
    pub fn last_seq(&self) -> u64 {
        self.book.last_seq()
    }

    /// The market's time: the latest `now_ms` it was given.
    pub fn last_now(&self) -> u64 {
        self.book.last_now()
    }

    /// The earliest time a `Tick` has work to do: a lot's timer, or an open complaint's
    /// due time.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.book.next_deadline(), self.alliance.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies one command and returns what it did.
    pub fn apply(&mut self, seq: u64, now_ms: u64, command: Command) -> Vec<Event> {
        let mut out = Vec::new();
        self.apply_into(seq, now_ms, command, &mut out);
        out
    }

    /// Applies one command, appending its events to `out` (the hot path: `out` is reused).
    ///
    /// `seq` must exceed the last applied sequence number, else the command is refused
    /// whole. Time never runs backwards: a `now_ms` below the latest one seen is read as
    /// the latest one, so a clock step back on the engine's host cannot reopen a closed
    /// window.
    pub fn apply_into(&mut self, seq: u64, now_ms: u64, command: Command, out: &mut Vec<Event>) {
        let Some(now) = self.book.stamp(seq, now_ms) else {
            out.push(Event::Auction(auction::Event::Refused(Refusal::OutOfOrder)));
            return;
        };
        match command {
            Command::Auction(command) => {
                let (tick, resume) = (
                    matches!(command, auction::Command::Tick),
                    matches!(command, auction::Command::Resume),
                );
                // Only these two can move a loan past its due time or repay it.
                let loans = tick || matches!(command, auction::Command::Repay { .. });
                let at = out.len();
                // The book writes its events straight into `out`: no buffer per step. Who
                // may pre-bid is the alliance's good standing as of this step.
                let members = Members {
                    alliance: &self.alliance,
                    rules: &self.alliance_rules,
                };
                self.book.run_among(seq, now, command, &members, out);
                if loans {
                    self.loan_events(now, at, out);
                }
                // Lots first, then the alliance's deadlines, in the same step.
                if tick && self.alliance.next_deadline().is_some_and(|t| t <= now) {
                    let mut events = Vec::new();
                    self.alliance.tick(now, &registry(&self.book), &mut events);
                    self.alliance_events(events, out);
                }
                if resume {
                    let until = self.book.rules().after_outage(now);
                    let mut events = Vec::new();
                    self.alliance.resume(now, until, &mut events);
                    self.alliance_events(events, out);
                }
            }
            Command::Alliance(command) => {
                let mut events = Vec::new();
                self.alliance.apply(
                    now,
                    &self.alliance_rules,
                    command,
                    &registry(&self.book),
                    &mut events,
                );
                self.alliance_events(events, out);
            }
            Command::Configure(rules) => {
                let Rules { auction, alliance } = *rules;
                // One version for both books: the auction's is the one journaled.
                let version = auction.version;
                self.book.configure(auction);
                self.alliance_rules = AllianceRules {
                    version,
                    ..alliance
                };
                out.push(Event::Configured);
            }
        }
    }

    /// What the alliance's rules make of the loans this step moved (the book's events
    /// from `out[at..]`): an overdue loan is a violation, a repayment corrects what the
    /// loan caused. In the same step, so a replay reaches the same warnings.
    fn loan_events(&mut self, now: u64, at: usize, out: &mut Vec<Event>) {
        let moved: Vec<auction::Event> = out[at..]
            .iter()
            .filter_map(|e| match e {
                Event::Auction(
                    e @ (auction::Event::LoanOverdue { .. } | auction::Event::LoanRepaid { .. }),
                ) => Some(e.clone()),
                _ => None,
            })
            .collect();
        for event in moved {
            let mut events = Vec::new();
            match event {
                auction::Event::LoanOverdue { loan, dealer } => self.alliance.loan_overdue(
                    now,
                    dealer,
                    loan,
                    &registry(&self.book),
                    &mut events,
                ),
                auction::Event::LoanRepaid { loan, dealer, .. } => {
                    self.alliance.loan_repaid(now, dealer, loan, &mut events)
                }
                _ => {}
            }
            self.alliance_events(events, out);
        }
    }

    /// Passes alliance events on, carrying out expulsions in the same step: the sanction
    /// is part of the journaled command (or tick) that caused it, so no crash can fall
    /// between a violation and the dealer losing the right to bid, and a replay reaches
    /// the same statuses.
    fn alliance_events(&mut self, events: Vec<AllianceEvent>, out: &mut Vec<Event>) {
        for event in events {
            let AllianceEvent::Expelled { dealer, .. } = event else {
                out.push(Event::Alliance(event));
                continue;
            };
            let expelled = self
                .book
                .dealer(dealer)
                .is_none_or(|d| d.status == DealerStatus::Expelled);
            if expelled {
                continue; // already expelled (earlier in this step, or before)
            }
            out.push(Event::Alliance(event));
            // Its open leading bids stand, as for an admin's expulsion.
            self.book
                .set_dealer_status(dealer, DealerStatus::Expelled, out);
        }
    }
}

/// The alliance's good standing, as the book asks for it before a pre-bid.
struct Members<'a> {
    alliance: &'a Alliance,
    rules: &'a AllianceRules,
}

impl Membership for Members<'_> {
    fn in_good_standing(&self, dealer: &Dealer) -> bool {
        self.alliance
            .good_standing(dealer.id, dealer.status, self.rules)
    }
}

/// The book as the alliance sees it: sold lots, dealers' statuses, open loans.
fn registry(book: &Book) -> BookRegistry<'_> {
    BookRegistry(book)
}

/// Borrows the book, not the market, so the alliance can be changed while it is
/// consulted.
struct BookRegistry<'a>(&'a Book);

impl Registry for BookRegistry<'_> {
    fn sale(&self, lot: LotId) -> Option<Sale<'_>> {
        let lot = self.0.lot(lot)?;
        match (lot.status, lot.lead, lot.price) {
            (LotStatus::Sold, Some(lead), Some(price)) => Some(Sale {
                vin: &lot.listing.vehicle.vin,
                inspection: &lot.listing.inspection,
                seller: lot.seller,
                buyer: lead.dealer,
                price,
            }),
            _ => None,
        }
    }

    fn dealer_status(&self, dealer: DealerId) -> Option<DealerStatus> {
        self.0.dealer(dealer).map(|d| d.status)
    }

    fn open_loan(&self, lot: LotId) -> Option<LoanId> {
        self.0
            .loan_for_lot(lot)
            .filter(|l| l.is_open())
            .map(|l| l.id)
    }
}
