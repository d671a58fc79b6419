//! The alliance as the API reads it: inventory items, complaints, standings.
//!
//! A copy of the book's alliance state, kept by absorbing the alliance's durable events
//! (the rules are not run again here) and rebuilt from the book after every recovery.

use crate::alliance::{
    Alliance, AllianceRules, Complaint, ComplaintId, Item, ItemId, RemoteLoan, RemoteWarning,
    Standing, Warning, WarningId,
};
use crate::auction::Event as AuctionEvent;
use crate::market::{Event, Market};
use crate::views::Viewer;
use crate::vocab::{DealerId, DealerStatus, LotId, Vehicle};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The alliance as the API reads it: items, complaints, standings. Holds only durable
/// state.
#[derive(Default)]
pub struct AllianceBoard {
    state: RwLock<View>,
}

#[derive(Default)]
struct View {
    /// A copy of the book's alliance, kept by absorbing its events.
    alliance: Alliance,
    /// Every dealer's status in the book (standings show it).
    statuses: BTreeMap<DealerId, DealerStatus>,
    /// The alliance's rules as of the last durable `Configure` (good standing's threshold).
    rules: AllianceRules,
}

impl AllianceBoard {
    /// An empty view (filled by the engine's first `reset`).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Rebuilds the view from the durable book.
    pub(super) fn reset(&self, market: &Market) {
        let mut v = self.state.write();
        v.alliance = market.alliance().clone();
        let dealers = market.book().dealers();
        v.statuses = dealers.iter().map(|d| (d.id, d.status)).collect();
        v.rules = market.rules().alliance;
    }

    /// Takes in the rules of a durable `Configure`.
    pub(super) fn configure(&self, rules: &AllianceRules) {
        self.state.write().rules = rules.clone();
    }

    /// Whether a dealer is in good standing now (the condition of a member's resources:
    /// seeing and pre-bidding on lots in their preview, market data); `false` for a dealer
    /// the book does not know.
    pub fn good_standing(&self, dealer: DealerId) -> bool {
        let v = self.state.read();
        v.statuses
            .get(&dealer)
            .is_some_and(|&status| v.alliance.good_standing(dealer, status, &v.rules))
    }

    /// Whether `viewer` sees lots in their preview (see [`super::LotView::visible_to`]).
    pub fn sees_previews(&self, viewer: Viewer) -> bool {
        match viewer {
            Viewer::Dealer(d) => self.good_standing(d),
            Viewer::Seller(_) => false,
            Viewer::Other => true,
        }
    }

    /// Takes in one durable command's events.
    pub(super) fn publish(&self, events: &[Event]) {
        let mut v = None;
        for event in events {
            let v = v.get_or_insert_with(|| self.state.write());
            match event {
                Event::Alliance(e) => v.alliance.absorb(e),
                Event::Auction(AuctionEvent::DealerRegistered { dealer }) => {
                    v.statuses.insert(*dealer, DealerStatus::Active);
                }
                Event::Auction(AuctionEvent::DealerChanged { dealer, status, .. }) => {
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

    /// A page of items in id order: those `keep` accepts, after `after`, at most `limit`.
    pub fn items_page(
        &self,
        keep: impl Fn(&Item) -> bool,
        after: Option<ItemId>,
        limit: usize,
    ) -> Vec<Item> {
        self.state
            .read()
            .alliance
            .items()
            .filter(|i| after.is_none_or(|a| i.id > a) && keep(i))
            .take(limit)
            .cloned()
            .collect()
    }

    /// A page of complaints in id order: those `keep` accepts, after `after`, at most
    /// `limit`.
    pub fn complaints_page(
        &self,
        keep: impl Fn(&Complaint) -> bool,
        after: Option<ComplaintId>,
        limit: usize,
    ) -> Vec<Complaint> {
        self.state
            .read()
            .alliance
            .complaints()
            .filter(|c| after.is_none_or(|a| c.id > a) && keep(c))
            .take(limit)
            .cloned()
            .collect()
    }

    /// A page of the warnings this market issued, in id order: after `after`, at most
    /// `limit` (what a cluster relays to the other markets).
    pub fn warnings_page(&self, after: Option<WarningId>, limit: usize) -> Vec<Warning> {
        self.state
            .read()
            .alliance
            .warnings()
            .filter(|w| after.is_none_or(|a| w.id > a))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The loan `market` noted on its auction `auction`, if one was noted here.
    pub fn remote_loan(&self, market: &str, auction: LotId) -> Option<RemoteLoan> {
        self.state
            .read()
            .alliance
            .remote_loan(market, auction)
            .cloned()
    }

    /// The warning `market` issued to `dealer` as `warning`, if it was noted here.
    pub fn remote_warning(
        &self,
        dealer: DealerId,
        market: &str,
        warning: WarningId,
    ) -> Option<RemoteWarning> {
        self.state
            .read()
            .alliance
            .remote_warnings(dealer)
            .iter()
            .find(|w| w.market == market && w.warning == warning)
            .cloned()
    }

    /// One item.
    pub fn item(&self, id: ItemId) -> Option<Item> {
        self.state.read().alliance.item(id).cloned()
    }

    /// The market of the cluster that sold `item`, if another market did (its auction id
    /// is then that market's).
    pub fn origin(&self, item: ItemId) -> Option<String> {
        let state = self.state.read();
        state
            .alliance
            .origin(item)
            .map(|(market, _)| market.to_owned())
    }

    /// For an item another market of the cluster sold: that market, and the car as its
    /// seller described it.
    pub fn sold_elsewhere(&self, item: ItemId) -> Option<(String, Vehicle)> {
        let state = self.state.read();
        let (market, _, vehicle) = state.alliance.sold_elsewhere(item)?;
        Some((market.to_owned(), vehicle.clone()))
    }

    /// The item of an auction, once handed off.
    pub fn item_for_auction(&self, lot: crate::vocab::LotId) -> Option<Item> {
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
