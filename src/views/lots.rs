//! The durable public state of every lot: what HTTP reads, what a `subscribe` snapshots,
//! and where the alliance's hand-off finds a sold car's listing.
//!
//! A [`LotView`] has no field for a leader's max or placed amount: the hidden proxy
//! ceilings stay in the book, so no reader of a view can leak one. Only durable state
//! reaches it (the engine publishes a command after its batch is durable).

use super::auction::{AuctionView, Viewer};
use crate::auction::{Increments, Listing, Lot, LotStatus, LotUpdate};
use crate::vocab::{DealerId, Fen, LotId, SellerId};
use dashmap::DashMap;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One lot as anyone may know it: the listing and the public bidding state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotView {
    /// Its id.
    pub id: LotId,
    /// Who listed it.
    pub seller: SellerId,
    /// The listing as the seller gave it (its reserve is shown only to that seller).
    pub listing: Arc<Listing>,
    /// Where it is in its life.
    pub status: LotStatus,
    /// When bidding opens.
    pub starts_at: u64,
    /// When bidding closes.
    pub ends_at: u64,
    /// Accepted bids.
    pub bids: u32,
    /// Current price; `None` before the first accepted bid.
    pub price: Option<Fen>,
    /// Who leads (shown to no one but that dealer, as `leading`).
    pub leader: Option<DealerId>,
    /// While `pending_seller`: the last moment the seller may decide.
    pub decide_by: Option<u64>,
}

impl LotView {
    /// The public part of a lot of the book.
    pub fn of(lot: &Lot) -> Self {
        Self {
            id: lot.id,
            seller: lot.seller,
            listing: lot.listing.clone(),
            status: lot.status,
            starts_at: lot.starts_at,
            ends_at: lot.ends_at,
            bids: lot.bids,
            price: lot.price,
            leader: lot.lead.map(|l| l.dealer),
            decide_by: lot
                .decision_deadline
                .filter(|_| lot.status == LotStatus::PendingSeller),
        }
    }

    /// Whether `viewer` may see this lot. Once it opens, anyone; in its preview
    /// (`scheduled`), its seller, the operators, and dealers in good standing
    /// (`sees_previews`, from [`super::AllianceBoard::sees_previews`]): the preview and its
    /// pre-bids are a member's benefit, so another dealer learns of the car when it goes
    /// live.
    pub fn visible_to(&self, viewer: Viewer, sees_previews: bool) -> bool {
        match viewer {
            _ if self.status != LotStatus::Scheduled => true,
            Viewer::Seller(s) => s == self.seller,
            Viewer::Dealer(_) | Viewer::Other => sees_previews,
        }
    }

    /// Whether the price has reached the reserve.
    pub fn reserve_met(&self) -> bool {
        self.listing.reserve_met_at(self.price)
    }

    /// The buy-now price while it is still on offer (withdrawn once the reserve is met).
    pub fn buy_now(&self) -> Option<Fen> {
        self.listing.buy_now_at(self.price)
    }

    /// Lowest acceptable next bid: the start price, then price + increment(price).
    pub fn min_next(&self, increments: &Increments) -> Fen {
        self.listing.min_next_after(self.price, increments)
    }

    fn apply(&mut self, u: &LotUpdate) {
        self.status = u.status;
        self.price = u.price;
        self.bids = u.bids;
        self.ends_at = u.ends_at;
        self.leader = u.leader;
        if u.status != LotStatus::PendingSeller {
            self.decide_by = None;
        }
    }
}

/// Every lot's [`LotView`], and the terms views are computed under (the increment ladder,
/// the leverage), as of the last durable `Configure`.
pub struct Lots {
    lots: DashMap<LotId, LotView>,
    increments: RwLock<Increments>,
    leverage: AtomicU64,
}

impl Lots {
    /// No lots (filled by the engine's first `reset`).
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            lots: DashMap::new(),
            increments: RwLock::new(Increments::default()),
            leverage: AtomicU64::new(1),
        })
    }

    /// The view of one lot for `viewer`.
    pub fn view(&self, lot: LotId, viewer: Viewer) -> Option<AuctionView> {
        let inc = self.increments.read();
        self.lots
            .get(&lot)
            .map(|l| AuctionView::new(&l, &inc, viewer))
    }

    /// The view of one lot for `viewer`, if it may see it (see [`LotView::visible_to`]).
    pub fn view_for(&self, lot: LotId, viewer: Viewer, sees_previews: bool) -> Option<AuctionView> {
        let inc = self.increments.read();
        self.lots
            .get(&lot)
            .filter(|l| l.visible_to(viewer, sees_previews))
            .map(|l| AuctionView::new(&l, &inc, viewer))
    }

    /// Whether the lot exists and `viewer` may see it.
    pub fn visible(&self, lot: LotId, viewer: Viewer, sees_previews: bool) -> bool {
        self.lots
            .get(&lot)
            .is_some_and(|l| l.visible_to(viewer, sees_previews))
    }

    /// Views of every lot that `keep` accepts, in id order.
    pub fn views(&self, viewer: Viewer, keep: impl Fn(&LotView) -> bool) -> Vec<AuctionView> {
        let inc = self.increments.read();
        let mut v: Vec<_> = self
            .lots
            .iter()
            .filter(|l| keep(l.value()))
            .map(|l| AuctionView::new(l.value(), &inc, viewer))
            .collect();
        v.sort_by_key(|a| a.id.lot().map_or(0, |l| l.0));
        v
    }

    /// One seller's lots, newest first, from before `before` (a lot id), at most `limit`,
    /// each with its decision deadline while `pending_seller`.
    pub fn of_seller(
        &self,
        seller: SellerId,
        before: Option<LotId>,
        limit: usize,
    ) -> Vec<(AuctionView, Option<u64>)> {
        let inc = self.increments.read();
        let mut mine: Vec<_> = self
            .lots
            .iter()
            .filter(|l| l.seller == seller && before.is_none_or(|b| l.id.0 < b.0))
            .map(|l| {
                (
                    l.id.0,
                    AuctionView::new(&l, &inc, Viewer::Seller(seller)),
                    l.decide_by,
                )
            })
            .collect();
        mine.sort_by_key(|(id, ..)| std::cmp::Reverse(*id));
        mine.truncate(limit);
        mine.into_iter().map(|(_, v, d)| (v, d)).collect()
    }

    /// A lot's car (for the catalogue, which shows the car an item came from).
    pub fn vehicle_of(&self, lot: LotId) -> Option<crate::vocab::Vehicle> {
        self.lots.get(&lot).map(|l| l.listing.vehicle.clone())
    }

    /// Whether the lot exists (durably).
    pub fn contains(&self, lot: LotId) -> bool {
        self.lots.contains_key(&lot)
    }

    /// The seller of a lot.
    pub fn seller_of(&self, lot: LotId) -> Option<SellerId> {
        self.lots.get(&lot).map(|l| l.seller)
    }

    /// A lot's listing. It is here from the publication of the command that listed the
    /// lot on, and no command both lists and sells a lot, so a reader that learns of a
    /// sale from a later command (a publisher, the outcomes stream) always finds it,
    /// whatever order the engine's publishers run in.
    pub fn listing(&self, lot: LotId) -> Option<Arc<Listing>> {
        self.lots.get(&lot).map(|l| l.listing.clone())
    }

    /// Buying power per fen of deposit.
    pub fn leverage(&self) -> u64 {
        self.leverage.load(Ordering::Relaxed)
    }

    pub(super) fn configure(&self, increments: &Increments, leverage: u64) {
        *self.increments.write() = increments.clone();
        self.leverage.store(leverage, Ordering::Relaxed);
    }

    pub(super) fn reset(&self, lots: &[Lot]) {
        self.lots.clear();
        for lot in lots {
            self.lots.insert(lot.id, LotView::of(lot));
        }
    }

    pub(super) fn insert(&self, view: LotView) {
        self.lots.insert(view.id, view);
    }

    pub(super) fn decision_window(&self, lot: LotId, until: u64) {
        if let Some(mut l) = self.lots.get_mut(&lot) {
            l.decide_by = Some(until);
        }
    }

    pub(super) fn update(&self, u: &LotUpdate) {
        if let Some(mut l) = self.lots.get_mut(&u.lot) {
            l.apply(u);
        }
    }
}
