//! The dispute queries: every attempt on an auction in order, every attempt by a dealer
//! in a time range, a `bid_id`'s fate, and who led an auction at a moment.
//!
//! Each query is a sink that keeps one page (at most `limit` attempts, plus the knowledge
//! that more follow), so an answer's memory is bounded whatever the journal's length.
//! Pages are keyed by seq: `after` is the last seq of the previous page.

use super::scan::{Attempt, AuditSink};
use crate::auction::{self, BidId, LotStatus};
use crate::vocab::{DealerId, Fen, LotId};

/// One page of attempts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Attempts in seq order.
    pub attempts: Vec<Attempt>,
    /// The seq to pass as `after` for the next page; `None` when nothing follows.
    pub next: Option<u64>,
}

/// Keeps the first `limit` attempts after `after` that `matches` accepts.
#[derive(Debug)]
struct Pager {
    after: u64,
    limit: usize,
    page: Page,
}

impl Pager {
    fn new(after: u64, limit: usize) -> Self {
        Self {
            after,
            limit: limit.max(1),
            page: Page::default(),
        }
    }

    fn offer(&mut self, a: Attempt) {
        if a.seq <= self.after || self.page.next.is_some() {
            return;
        }
        if self.page.attempts.len() < self.limit {
            self.page.attempts.push(a);
        } else {
            // A full page and one more: the next page starts after this page's last.
            self.page.next = self.page.attempts.last().map(|l| l.seq);
        }
    }
}

/// Every attempt on one auction, in order.
#[derive(Debug)]
pub struct ByAuction {
    lot: LotId,
    pager: Pager,
    /// Whether the auction was ever listed (an unknown id is a 404, not an empty page).
    pub listed: bool,
}

impl ByAuction {
    /// Attempts on `lot` with seq above `after`, at most `limit`.
    pub fn new(lot: LotId, after: u64, limit: usize) -> Self {
        Self {
            lot,
            pager: Pager::new(after, limit),
            listed: false,
        }
    }

    /// The page found.
    pub fn page(self) -> Page {
        self.pager.page
    }
}

impl AuditSink for ByAuction {
    fn attempt(&mut self, a: Attempt) {
        if a.lot == self.lot {
            self.pager.offer(a);
        }
    }

    fn lot_event(&mut self, _seq: u64, _at: u64, event: &auction::Event) {
        if matches!(event, auction::Event::Listed { lot, .. } if *lot == self.lot) {
            self.listed = true;
        }
    }
}

/// Every attempt by one dealer with `from <= at < to`, in order.
#[derive(Debug)]
pub struct ByDealer {
    dealer: DealerId,
    from: u64,
    to: u64,
    pager: Pager,
}

impl ByDealer {
    /// Attempts by `dealer` in `[from, to)` (ms) with seq above `after`, at most `limit`.
    pub fn new(dealer: DealerId, from: u64, to: u64, after: u64, limit: usize) -> Self {
        Self {
            dealer,
            from,
            to,
            pager: Pager::new(after, limit),
        }
    }

    /// The page found.
    pub fn page(self) -> Page {
        self.pager.page
    }
}

impl AuditSink for ByDealer {
    fn attempt(&mut self, a: Attempt) {
        if a.dealer == self.dealer && (self.from..self.to).contains(&a.at) {
            self.pager.offer(a);
        }
    }
}

/// A `bid_id`'s fate: the attempt that decided it, and every repeat answered from it.
#[derive(Debug)]
pub struct BidFate {
    dealer: DealerId,
    bid_id: BidId,
    pager: Pager,
}

impl BidFate {
    /// Attempts by `dealer` with `bid_id`, at most `limit` (the first decides; the rest are
    /// `duplicate`).
    pub fn new(dealer: DealerId, bid_id: &str, limit: usize) -> Self {
        Self {
            dealer,
            bid_id: bid_id.into(),
            pager: Pager::new(0, limit),
        }
    }

    /// The page found (empty: the engine never saw this `bid_id` from this dealer).
    pub fn page(self) -> Page {
        self.pager.page
    }
}

impl AuditSink for BidFate {
    fn attempt(&mut self, a: Attempt) {
        if a.dealer == self.dealer && a.bid_id == self.bid_id {
            self.pager.offer(a);
        }
    }
}

/// An auction's public state and leader as of one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The auction.
    pub lot: LotId,
    /// The moment asked about (ms).
    pub at: u64,
    /// The seq of the last command that changed the auction at or before `at`.
    pub seq: u64,
    /// That command's time.
    pub changed_at: u64,
    /// Status then.
    pub status: LotStatus,
    /// Who led then (`None`: no accepted bid yet).
    pub leader: Option<DealerId>,
    /// The price then.
    pub price: Option<Fen>,
}

/// Who led an auction at a moment: the last change of the auction at or before it.
#[derive(Debug)]
pub struct LeaderAt {
    lot: LotId,
    at: u64,
    /// The state found; `None` if the auction did not exist yet at `at` (or ever).
    pub state: Option<Leader>,
}

impl LeaderAt {
    /// The state of `lot` as of `at` (ms).
    pub fn new(lot: LotId, at: u64) -> Self {
        Self {
            lot,
            at,
            state: None,
        }
    }
}

impl AuditSink for LeaderAt {
    fn attempt(&mut self, _a: Attempt) {}

    fn lot_event(&mut self, seq: u64, at: u64, event: &auction::Event) {
        if at > self.at {
            return;
        }
        let (status, leader, price) = match *event {
            auction::Event::Listed { lot, status, .. } if lot == self.lot => (status, None, None),
            auction::Event::Updated(u) if u.lot == self.lot => (u.status, u.leader, u.price),
            _ => return,
        };
        self.state = Some(Leader {
            lot: self.lot,
            at: self.at,
            seq,
            changed_at: at,
            status,
            leader,
            price,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::scan::AttemptResult;

    fn attempt(seq: u64, dealer: u32, lot: u32, bid_id: &str) -> Attempt {
        Attempt {
            seq,
            at: seq * 1000,
            dealer: DealerId(dealer),
            lot: LotId(lot),
            seller: None,
            bid_id: bid_id.into(),
            amount: 100,
            max: None,
            result: AttemptResult::Accepted { leading: true },
            price_before: None,
            min_next_before: Some(100),
            price_after: Some(100),
            increment: 10,
        }
    }

    #[test]
    fn pages_follow_each_other_without_gap_or_repeat() {
        let all: Vec<Attempt> = (1..=7)
            .map(|s| attempt(s, 1, 1, &format!("b{s}")))
            .collect();
        // (after, limit) → (seqs on the page, next)
        let table = [
            (0, 3, vec![1, 2, 3], Some(3)),
            (3, 3, vec![4, 5, 6], Some(6)),
            (6, 3, vec![7], None),
            (0, 7, vec![1, 2, 3, 4, 5, 6, 7], None),
            (7, 3, vec![], None),
        ];
        for (row, (after, limit, seqs, next)) in table.into_iter().enumerate() {
            let mut q = ByAuction::new(LotId(1), after, limit);
            for a in &all {
                q.attempt(a.clone());
            }
            let page = q.page();
            let got: Vec<u64> = page.attempts.iter().map(|a| a.seq).collect();
            assert_eq!((got, page.next), (seqs, next), "row {row}");
        }
    }

    #[test]
    fn a_dealer_range_is_half_open_and_other_dealers_are_left_out() {
        let mut q = ByDealer::new(DealerId(2), 2000, 4000, 0, 10);
        for s in 1..=5 {
            q.attempt(attempt(s, 2, 1, "x"));
            q.attempt(attempt(s, 3, 1, "x"));
        }
        let seqs: Vec<u64> = q.page().attempts.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn a_bid_ids_fate_is_its_dealers_attempts_with_that_id() {
        let mut q = BidFate::new(DealerId(1), "b", 10);
        q.attempt(attempt(1, 1, 1, "a"));
        q.attempt(attempt(2, 1, 1, "b"));
        q.attempt(attempt(3, 2, 1, "b"));
        q.attempt(attempt(4, 1, 2, "b"));
        let seqs: Vec<u64> = q.page().attempts.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, [2, 4]);
    }
}
