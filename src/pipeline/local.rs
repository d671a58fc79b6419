//! The hand-off for the file journal: sold outcomes from the engine's publication.
//!
//! The file journal keeps outcomes inside its batches and has no stream to consume, so the
//! [`FeedPublisher`] queues a record for every sold outcome it is shown — after the
//! outcome is durable — and a task submits them. The queue lives in memory; what a crash
//! takes from it, the next start puts back, because the publisher's `reset` refills the
//! queue from the durable book (every sold lot without an item). The book's hand-off is
//! idempotent, so a record queued twice is harmless.

use super::{hand_off_record, submit_hand_off, Handed};
use crate::alliance::HandOffRecord;
use crate::auction::{Event as AuctionEvent, LotStatus, Outcome};
use crate::engine::{EngineHandle, Publisher};
use crate::market::{Event, Market};
use crate::store::Entry;
use crate::views::Lots;
use crate::vocab::LotId;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Sold auctions waiting to be handed off. One entry per auction, so the queue is bounded
/// by the number of sold lots not yet handed off.
#[derive(Default)]
pub struct LocalFeed {
    pending: Mutex<BTreeMap<LotId, HandOffRecord>>,
    wake: Notify,
}

impl LocalFeed {
    /// An empty feed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queues one record (called on the engine's task: takes a short lock, never waits).
    pub fn push(&self, record: HandOffRecord) {
        self.pending.lock().insert(record.auction, record);
        self.wake.notify_one();
    }

    /// Replaces the queue (after a recovery, from the durable book).
    pub fn replace(&self, records: impl IntoIterator<Item = HandOffRecord>) {
        let mut pending = self.pending.lock();
        pending.clear();
        pending.extend(records.into_iter().map(|r| (r.auction, r)));
        drop(pending);
        self.wake.notify_one();
    }

    /// Auctions waiting, in order.
    pub fn pending(&self) -> Vec<LotId> {
        self.pending.lock().keys().copied().collect()
    }

    /// Submits queued records until `shutdown` turns true. A record leaves the queue once
    /// the engine answered it durably (item created, already there, or refused); while
    /// the engine is unavailable it stays and is retried with backoff.
    pub async fn run(self: Arc<Self>, engine: EngineHandle, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let batch: Vec<HandOffRecord> = self.pending.lock().values().cloned().collect();
            let mut failed = false;
            for record in batch {
                let auction = record.auction;
                match submit_hand_off(&engine, record.clone()).await {
                    Ok(handed) => {
                        if let Handed::Refused(r) = handed {
                            tracing::error!(%auction, refusal = ?r, "hand-off refused by the book");
                        } else {
                            tracing::debug!(%auction, ?handed, "handed off");
                        }
                        // Only if no newer record for it arrived meanwhile (same anyway).
                        let mut pending = self.pending.lock();
                        if pending.get(&auction) == Some(&record) {
                            pending.remove(&auction);
                        }
                    }
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let wait = if failed {
                tracing::warn!(retry_in = ?backoff, "engine unavailable; hand-offs wait");
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(w)
            } else {
                backoff = Duration::from_millis(50);
                None
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                () = self.wake.notified(), if wait.is_none() => {}
                () = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            }
        }
    }
}

/// Feeds a [`LocalFeed`] from the engine's durable publication: every sold outcome, and
/// after a recovery every sold lot the alliance has no item for yet.
pub struct FeedPublisher {
    /// Where records go.
    pub feed: Arc<LocalFeed>,
    /// Where a sold lot's listing is read (see `Lots::listing` for why it is always there).
    pub lots: Arc<Lots>,
}

impl Publisher for FeedPublisher {
    fn reset(&mut self, market: &Market) {
        let (book, alliance) = (market.book(), market.alliance());
        // Every sold lot without an item: the outcomes a crash may have kept from the
        // alliance. The book is durable state, so this is as complete as the journal.
        let pending = book
            .lots()
            .iter()
            .filter(|l| l.status == LotStatus::Sold)
            .filter(|l| alliance.item_for_auction(l.id).is_none())
            .filter_map(|l| {
                let (lead, price) = (l.lead?, l.price?);
                Some(hand_off_record(
                    l.id,
                    l.seller,
                    lead.dealer,
                    price,
                    &l.listing,
                ))
            });
        self.feed.replace(pending);
    }

    fn publish(&mut self, _entry: &Entry, events: &[Event]) {
        for event in events {
            if let Event::Auction(AuctionEvent::Closed {
                lot,
                outcome: Outcome::Sold,
                price: Some(price),
                leader: Some(dealer),
                seller,
            }) = *event
            {
                match self.lots.listing(lot) {
                    Some(listing) => self
                        .feed
                        .push(hand_off_record(lot, seller, dealer, price, &listing)),
                    // Cannot happen (see `Lots::listing`); if it did, the next start would
                    // find the lot in the book and hand it off then.
                    None => {
                        tracing::error!(%lot, "sold lot without a listing view; hand-off deferred to the next start")
                    }
                }
            }
        }
    }
}
