//! The alliance's durable read view, and the engine publisher that keeps it.

use super::hand_off_record;
use super::local::LocalFeed;
use crate::alliance::{Alliance, Complaint, ComplaintId, Item, ItemId, Standing};
use crate::auction::{Book, DealerId, DealerStatus, Event, LotStatus, Outcome};
use crate::engine::Publisher;
use crate::gateway::hub::Hub;
use crate::store::Entry;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The alliance as the API reads it: items, complaints, standings. Holds only durable
/// state (see the module docs of `crate::pipeline`).
#[derive(Default)]
pub struct Board {
    state: RwLock<View>,
}

#[derive(Default)]
struct View {
    /// A copy of the book's alliance, kept by absorbing its events.
    alliance: Alliance,
    /// Every dealer's status in the book (standings show it).
    statuses: BTreeMap<DealerId, DealerStatus>,
}

impl Board {
    /// An empty view (filled by the engine's first `reset`).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Rebuilds the view from the durable book.
    pub fn reset(&self, book: &Book) {
        let mut v = self.state.write();
        v.alliance = book.alliance().clone();
        v.statuses = book.dealers().iter().map(|d| (d.id, d.status)).collect();
    }

    /// Takes in one durable command's events.
    pub fn publish(&self, events: &[Event]) {
        let mut v = None;
        for event in events {
            let v = v.get_or_insert_with(|| self.state.write());
            match event {
                Event::Alliance(e) => v.alliance.absorb(e),
                Event::DealerRegistered { dealer } => {
                    v.statuses.insert(*dealer, DealerStatus::Active);
                }
                Event::DealerChanged { dealer, status, .. } => {
                    v.statuses.insert(*dealer, *status);
                }
                _ => {}
            }
        }
    }

    /// Items, in id order, filtered by certification and holding dealer.
    pub fn items(&self, certified: Option<bool>, dealer: Option<DealerId>) -> Vec<Item> {
        self.state
            .read()
            .alliance
            .items()
            .filter(|i| certified.is_none_or(|c| i.certified == c))
            .filter(|i| dealer.is_none_or(|d| i.dealer == d))
            .cloned()
            .collect()
    }

    /// One item.
    pub fn item(&self, id: ItemId) -> Option<Item> {
        self.state.read().alliance.item(id).cloned()
    }

    /// The item of an auction, once handed off.
    pub fn item_for_auction(&self, lot: crate::auction::LotId) -> Option<Item> {
        self.state.read().alliance.item_for_auction(lot).cloned()
    }

    /// One complaint.
    pub fn complaint(&self, id: ComplaintId) -> Option<Complaint> {
        self.state.read().alliance.complaint(id).cloned()
    }

    /// A dealer's standing; `None` for a dealer the book does not know.
    pub fn standing(&self, dealer: DealerId) -> Option<Standing> {
        let v = self.state.read();
        let status = *v.statuses.get(&dealer)?;
        Some(v.alliance.standing(dealer, status))
    }
}

/// The engine-facing side: keeps the [`Board`], and with the file journal feeds sold
/// outcomes to the [`LocalFeed`].
pub struct AlliancePublisher {
    board: Arc<Board>,
    /// For the listing of a sold lot (its VIN and report). The hub publisher runs first,
    /// so the hub already holds every lot this publisher hears of.
    hub: Arc<Hub>,
    feed: Option<Arc<LocalFeed>>,
}

impl AlliancePublisher {
    /// A publisher for `board`; `feed` is `Some` when hand-offs come from publication
    /// (file journal) rather than from a Redis stream.
    pub fn new(board: Arc<Board>, hub: Arc<Hub>, feed: Option<Arc<LocalFeed>>) -> Self {
        Self { board, hub, feed }
    }
}

impl Publisher for AlliancePublisher {
    fn reset(&mut self, book: &Book) {
        self.board.reset(book);
        if let Some(feed) = &self.feed {
            // Every sold lot without an item: the outcomes a crash may have kept from the
            // alliance. The book is durable state, so this is as complete as the journal.
            let pending = book
                .lots()
                .iter()
                .filter(|l| l.status == LotStatus::Sold)
                .filter(|l| book.alliance().item_for_auction(l.id).is_none())
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
            feed.replace(pending);
        }
    }

    fn publish(&mut self, _entry: &Entry, events: &[Event]) {
        self.board.publish(events);
        let Some(feed) = &self.feed else {
            return;
        };
        for event in events {
            if let Event::Closed {
                lot,
                outcome: Outcome::Sold,
                price: Some(price),
                leader: Some(dealer),
                seller,
            } = *event
            {
                match self.hub.lot(lot) {
                    Some(l) => feed.push(hand_off_record(lot, seller, dealer, price, &l.listing)),
                    // Cannot happen while the hub publishes first; if it did, the next
                    // start would find the lot in the book and hand it off then.
                    None => {
                        tracing::error!(%lot, "sold lot unknown to the hub; hand-off deferred to the next start")
                    }
                }
            }
        }
    }
}
