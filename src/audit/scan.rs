//! The replay behind every audit: the journal through a fresh market, one [`Attempt`]
//! per `PlaceBid` with the result the core decided, and the lots' own events beside them.

use crate::auction::{self, BidId, BidOutcome, Rejection};
use crate::engine::{replay, ReplayObserver};
use crate::market::{Command, Event, Market, Rules};
use crate::store::{Entry, JournalRead, StoreError};
use crate::vocab::{DealerId, Fen, LotId, SellerId};

/// What the core decided for one bid command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Accepted; whether the bidder led right after it (a proxy may have answered).
    Accepted {
        /// The bidder leads after the step.
        leading: bool,
    },
    /// Refused, with the contract's reason; nothing changed.
    Rejected(Rejection),
    /// The `bid_id` was seen before: nothing was applied and the first result was
    /// answered again (carried here).
    Duplicate(BidOutcome),
}

impl AttemptResult {
    /// `accepted`, `rejected` or `duplicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Rejected(_) => "rejected",
            Self::Duplicate(_) => "duplicate",
        }
    }

    /// Whether the bidder led after the step (for a duplicate, after the first one).
    pub fn leading(self) -> Option<bool> {
        match self {
            Self::Accepted { leading } => Some(leading),
            Self::Duplicate(BidOutcome::Accepted { leading, .. }) => Some(leading),
            _ => None,
        }
    }

    /// The refusal's reason (for a duplicate, the first one's).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Rejected(r) | Self::Duplicate(BidOutcome::Rejected(r)) => Some(r.reason()),
            _ => None,
        }
    }
}

/// One bid attempt that reached the engine, as the journal and the core say it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The command's sequence number: the order of attempts.
    pub seq: u64,
    /// The engine's time for the command (ms since the epoch; never behind an earlier one).
    pub at: u64,
    /// The bidder.
    pub dealer: DealerId,
    /// The auction the command named.
    pub lot: LotId,
    /// That auction's seller (`None` for an auction that did not exist).
    pub seller: Option<SellerId>,
    /// The client's id for the bid.
    pub bid_id: BidId,
    /// The amount placed.
    pub amount: Fen,
    /// The proxy maximum, if any.
    pub max: Option<Fen>,
    /// What the core decided.
    pub result: AttemptResult,
    /// The auction's price when the attempt arrived.
    pub price_before: Option<Fen>,
    /// The lowest acceptable bid when the attempt arrived (`None`: no such auction).
    pub min_next_before: Option<Fen>,
    /// The auction's price right after the step.
    pub price_after: Option<Fen>,
    /// The increment the rules in force give at `amount`: what "a full increment above
    /// the bid" means for the probe detector.
    pub increment: Fen,
}

impl Attempt {
    /// Whether the core accepted it (a duplicate is not: nothing was applied).
    pub fn accepted(&self) -> bool {
        matches!(self.result, AttemptResult::Accepted { .. })
    }
}

/// Receives what a scan finds, in journal order.
pub trait AuditSink {
    /// One bid attempt, complete with its result.
    fn attempt(&mut self, attempt: Attempt);
    /// Every other auction event, with the seq and time of the command that caused it.
    fn lot_event(&mut self, _seq: u64, _at: u64, _event: &auction::Event) {}
}

/// What a scan covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Commands replayed.
    pub commands: u64,
    /// The last command's seq.
    pub last_seq: u64,
    /// The last command's time (ms): "now" for a window that ends at the journal's end.
    pub last_at: u64,
}

/// Turns replayed steps into attempts for a sink.
struct Collector<S> {
    sink: S,
    /// The bid command being applied, waiting for its `Bid` event.
    pending: Option<Attempt>,
    /// The current command's time.
    at: u64,
}

impl<S: AuditSink> ReplayObserver for Collector<S> {
    fn before(&mut self, entry: &Entry, market: &Market) {
        // The market's time never runs backwards: a stamp behind it is read as its time.
        self.at = entry.now_ms.max(market.last_now());
        self.pending = None;
        let Command::Auction(auction::Command::PlaceBid {
            dealer,
            lot,
            amount,
            max,
            bid_id,
        }) = &entry.command
        else {
            return;
        };
        let book = market.book();
        let increments = &book.rules().increments;
        let known = book.lot(*lot);
        self.pending = Some(Attempt {
            seq: entry.seq,
            at: self.at,
            dealer: *dealer,
            lot: *lot,
            seller: known.map(|l| l.seller),
            bid_id: bid_id.clone(),
            amount: *amount,
            max: *max,
            // Overwritten by the step's `Bid` event, which every bid command produces.
            result: AttemptResult::Rejected(Rejection::Invalid),
            price_before: known.and_then(|l| l.price),
            min_next_before: known.map(|l| l.min_next(increments)),
            price_after: known.and_then(|l| l.price),
            increment: increments.increment(*amount),
        });
    }

    fn entry(&mut self, seq: u64, events: &[Event]) {
        for event in events {
            let Event::Auction(event) = event else {
                continue;
            };
            match event {
                auction::Event::Bid {
                    outcome, duplicate, ..
                } => {
                    let Some(mut a) = self.pending.take() else {
                        continue;
                    };
                    a.result = match *outcome {
                        _ if *duplicate => AttemptResult::Duplicate(*outcome),
                        BidOutcome::Accepted { leading, price, .. } => {
                            a.price_after = Some(price);
                            AttemptResult::Accepted { leading }
                        }
                        BidOutcome::Rejected(r) => AttemptResult::Rejected(r),
                    };
                    self.sink.attempt(a);
                }
                other => self.sink.lot_event(seq, self.at, other),
            }
        }
    }
}

/// Replays the whole journal from its first command (snapshots are not used: the log
/// alone is the evidence) and hands every attempt and lot event to `sink`. A journal whose
/// early segments were dropped by retention cannot be audited: the replay stops at the
/// gap with an error.
pub async fn scan<J: JournalRead, S: AuditSink>(
    journal: &mut J,
    sink: S,
) -> Result<(S, Scanned), StoreError> {
    let mut collector = Collector {
        sink,
        pending: None,
        at: 0,
    };
    let (market, commands) = replay(journal, Market::new(Rules::first()), &mut collector).await?;
    let scanned = Scanned {
        commands,
        last_seq: market.last_seq(),
        last_at: market.last_now(),
    };
    Ok((collector.sink, scanned))
}
