//! The hub: who is connected, who watches which auction, and the durable public state.
//!
//! It is the engine's `Publisher`: the engine calls it, in sequence order, only for
//! commands whose batch is durable. So every view it keeps and every frame it queues is
//! durable state — a client never sees a price the journal could still lose.
//!
//! Must not: block. `publish` runs on the engine's task, so it only takes short locks and
//! pushes into bounded, conflating session queues; it never waits for a client.

use super::codec::{encode, Broadcast, Format, Frame};
use super::outbound::{Deferred, Kind, Outbound, Pushed};
use super::wire::{AuctionView, Outbid, ServerMessage, Viewer};
use crate::auction::{
    Book, Command, DealerId, Event, Increments, Lead, Lot, LotId, SellerId, ServiceId, TokenHash,
};
use crate::engine::Publisher;
use crate::metrics::Counter;
use crate::store::Entry;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Who a bearer token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator.
    Admin,
    /// A dealer: the only principal that may bid.
    Dealer(DealerId),
    /// A private seller.
    Seller(SellerId),
    /// A service principal (the alliance's consumer site).
    Service(ServiceId),
}

impl std::fmt::Display for Principal {
    /// For logs: the account id (`D3`, `S5`, `V1`) or `admin`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Dealer(d) => d.fmt(f),
            Self::Seller(s) => s.fmt(f),
            Self::Service(v) => v.fmt(f),
        }
    }
}

impl Principal {
    /// The dealer behind the principal, if it is one.
    pub fn dealer(self) -> Option<DealerId> {
        match self {
            Self::Dealer(d) => Some(d),
            _ => None,
        }
    }

    /// How this principal sees a lot.
    pub fn viewer(self) -> Viewer {
        match self {
            Self::Dealer(d) => Viewer::Dealer(d),
            Self::Seller(s) => Viewer::Seller(s),
            Self::Admin | Self::Service(_) => Viewer::Other,
        }
    }
}

/// One connected WebSocket session, as the hub knows it.
pub struct SessionLink {
    /// Unique per process, to find the session again on unsubscribe.
    pub id: u64,
    /// Who is connected.
    pub principal: Principal,
    /// Its encoding.
    pub format: Format,
    /// Its outbound queue.
    pub out: Arc<Outbound<Frame>>,
}

/// The hub's measurements.
#[derive(Debug, Default)]
pub struct HubMetrics {
    /// Unsent updates replaced in a session queue by a newer one for the same lot.
    pub conflations: Counter,
    /// Sessions closed because they did not read.
    pub slow_closes: Counter,
    /// Lots closed (any outcome, including seller decisions).
    pub closes: Counter,
}

/// Durable public state and the subscriptions of every session.
pub struct Hub {
    /// Token digest → principal, for every account in the book. Admin is not here: its
    /// token comes from configuration, not from the journal.
    principals: DashMap<TokenHash, Principal>,
    admin: Option<TokenHash>,
    /// The public projection of every lot. `lead` carries only the leader's id (the hub
    /// never learns a max), which is all a view needs.
    lots: DashMap<LotId, Lot>,
    increments: RwLock<Increments>,
    leverage: AtomicU64,
    /// Sessions watching each lot, by session id: subscribing and leaving are O(log n)
    /// (a hot lot has 10,000 watchers; a scan per subscribe made its setup quadratic).
    subs: DashMap<LotId, BTreeMap<u64, Arc<SessionLink>>>,
    /// Sessions of each dealer, for `outbid` and for the seller's later `closed`.
    dealer_sessions: DashMap<DealerId, Vec<Arc<SessionLink>>>,
    /// Dealers who had a bid accepted on each lot: they get the seller's decision.
    bidders: DashMap<LotId, BTreeSet<DealerId>>,
    next_session: AtomicU64,
    /// Queues pushed to in the engine's current pass, to flush at its end.
    unflushed: Mutex<Vec<Arc<Outbound<Frame>>>>,
    /// What the hub counted.
    pub metrics: HubMetrics,
}

impl Hub {
    /// An empty hub; `admin` is the digest of the configured admin token, if any.
    pub fn new(admin: Option<TokenHash>) -> Arc<Self> {
        Arc::new(Self {
            principals: DashMap::new(),
            admin,
            lots: DashMap::new(),
            increments: RwLock::new(Increments::default()),
            leverage: AtomicU64::new(1),
            subs: DashMap::new(),
            dealer_sessions: DashMap::new(),
            bidders: DashMap::new(),
            next_session: AtomicU64::new(1),
            unflushed: Mutex::new(Vec::new()),
            metrics: HubMetrics::default(),
        })
    }

    /// The principal a token digest belongs to.
    pub fn authenticate(&self, token: &TokenHash) -> Option<Principal> {
        if self.admin.as_ref() == Some(token) {
            return Some(Principal::Admin);
        }
        self.principals.get(token).map(|p| *p)
    }

    /// The view of one lot for `viewer`.
    pub fn view(&self, lot: LotId, viewer: Viewer) -> Option<AuctionView> {
        let inc = self.increments.read();
        self.lots
            .get(&lot)
            .map(|l| AuctionView::new(&l, &inc, viewer))
    }

    /// Views of every lot that `keep` accepts, in id order.
    pub fn views(&self, viewer: Viewer, keep: impl Fn(&Lot) -> bool) -> Vec<AuctionView> {
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

    /// Buying power per fen of deposit.
    pub fn leverage(&self) -> u64 {
        self.leverage.load(Ordering::Relaxed)
    }

    /// Open WebSocket sessions of a dealer.
    pub fn dealer_connections(&self, dealer: DealerId) -> usize {
        self.dealer_sessions.get(&dealer).map_or(0, |v| v.len())
    }

    /// Frames waiting in the outbound queue of each of a dealer's open sessions (empty
    /// when none is open): what a slow consumer costs, for diagnostics and tests.
    pub fn dealer_queues(&self, dealer: DealerId) -> Vec<usize> {
        self.dealer_sessions
            .get(&dealer)
            .map_or_else(Vec::new, |v| v.iter().map(|s| s.out.len()).collect())
    }

    /// The seller of a lot.
    pub fn seller_of(&self, lot: LotId) -> Option<SellerId> {
        self.lots.get(&lot).map(|l| l.seller)
    }

    /// A lot's durable public state, listing included (the alliance's hand-off reads the
    /// VIN and the inspection report from it). `lead` carries the leader's id only.
    pub fn lot(&self, lot: LotId) -> Option<Lot> {
        self.lots.get(&lot).map(|l| l.clone())
    }

    /// Registers a new session.
    pub fn connect(
        &self,
        principal: Principal,
        format: Format,
        out: Arc<Outbound<Frame>>,
    ) -> Arc<SessionLink> {
        let link = Arc::new(SessionLink {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            principal,
            format,
            out,
        });
        if let Some(d) = principal.dealer() {
            self.dealer_sessions
                .entry(d)
                .or_default()
                .push(link.clone());
        }
        link
    }

    /// Removes a session and all its subscriptions.
    pub fn disconnect(&self, link: &SessionLink, subscribed: impl IntoIterator<Item = LotId>) {
        for lot in subscribed {
            self.unsubscribe(link, lot);
        }
        if let Some(d) = link.principal.dealer() {
            self.dealer_sessions.remove_if_mut(&d, |_, v| {
                v.retain(|s| s.id != link.id);
                v.is_empty()
            });
        }
    }

    /// Starts sending a lot's updates to a session; false when the lot does not exist.
    pub fn subscribe(&self, link: &Arc<SessionLink>, lot: LotId) -> bool {
        if !self.lots.contains_key(&lot) {
            return false;
        }
        self.subs
            .entry(lot)
            .or_default()
            .entry(link.id)
            .or_insert_with(|| link.clone());
        true
    }

    /// Stops sending a lot's updates to a session.
    pub fn unsubscribe(&self, link: &SessionLink, lot: LotId) {
        self.subs.remove_if_mut(&lot, |_, v| {
            v.remove(&link.id);
            v.is_empty()
        });
    }

    /// Sessions watching a lot (for tests and metrics).
    pub fn subscribers(&self, lot: LotId) -> usize {
        self.subs.get(&lot).map_or(0, |v| v.len())
    }

    /// Queues a frame from the engine's task; it leaves at the pass's [`flush`](Self::flush).
    fn push(&self, link: &SessionLink, kind: Kind, frame: Frame, now: Instant) {
        let (pushed, deferred) = link.out.push_deferred(kind, frame, now);
        if pushed == Pushed::Conflated {
            self.metrics.conflations.inc();
        }
        if deferred == Deferred::Flush {
            self.unflushed.lock().push(link.out.clone());
        }
    }

    /// Queues a reply from the engine's task (a bid's result, right after the `update` it
    /// caused); it leaves at the pass's [`flush`](Self::flush), in the same write.
    pub fn reply(&self, link: &SessionLink, frame: Frame, now: Instant) {
        self.push(link, Kind::Reply, frame, now);
    }

    /// Sends what the engine's pass queued: each queue touched is written into its socket
    /// now, in one call, where the socket takes it (see [`Outbound::flush`]).
    pub fn flush(&self) {
        let queues = std::mem::take(&mut *self.unflushed.lock());
        for out in queues {
            out.flush();
        }
    }

    fn fan_out(&self, lot: LotId, broadcast: &Broadcast, conflate: bool, now: Instant) {
        let Some(subs) = self.subs.get(&lot) else {
            return;
        };
        let kind = if conflate {
            Kind::Update(lot)
        } else {
            Kind::Event
        };
        for s in subs.values() {
            let frame = broadcast.frame_for(s.format, s.principal.dealer());
            self.push(s, kind.clone(), frame, now);
        }
    }

    fn send_to_dealer(&self, dealer: DealerId, msg: &ServerMessage, now: Instant) {
        let Some(sessions) = self.dealer_sessions.get(&dealer) else {
            return;
        };
        let mut frames: [Option<Frame>; 2] = [None, None];
        for s in sessions.iter() {
            let i = usize::from(s.format == Format::MsgPack);
            let frame = frames[i]
                .get_or_insert_with(|| encode(s.format, msg))
                .clone();
            self.push(s, Kind::Event, frame, now);
        }
    }

    fn project_listing(
        &self,
        entry: &Entry,
        lot: LotId,
        status: crate::auction::LotStatus,
        starts_at: u64,
        ends_at: u64,
    ) {
        let Command::ListCar { seller, listing } = &entry.command else {
            return;
        };
        self.lots.insert(
            lot,
            Lot {
                id: lot,
                seller: *seller,
                listing: Arc::new((**listing).clone()),
                status,
                starts_at,
                ends_at,
                decision_deadline: None,
                extensions: 0,
                bids: 0,
                price: None,
                lead: None,
                settled: false,
            },
        );
    }

    fn register(&self, entry: &Entry, principal: Principal) {
        let hash = match &entry.command {
            Command::RegisterSeller { token_hash, .. }
            | Command::RegisterDealer { token_hash, .. }
            | Command::RegisterService { token_hash, .. } => *token_hash,
            _ => return,
        };
        self.principals.insert(hash, principal);
    }
}

/// The engine-facing side of the hub.
pub struct HubPublisher(pub Arc<Hub>);

impl Publisher for HubPublisher {
    fn reset(&mut self, book: &Book) {
        let hub = &self.0;
        *hub.increments.write() = book.rules().increments.clone();
        hub.leverage.store(book.rules().leverage, Ordering::Relaxed);
        hub.principals.clear();
        for s in book.sellers() {
            hub.principals.insert(s.token_hash, Principal::Seller(s.id));
        }
        for d in book.dealers() {
            hub.principals.insert(d.token_hash, Principal::Dealer(d.id));
        }
        for v in book.services() {
            hub.principals
                .insert(v.token_hash, Principal::Service(v.id));
        }
        hub.lots.clear();
        for lot in book.lots() {
            let mut public = lot.clone();
            public.lead = lot.lead.map(|l| Lead {
                dealer: l.dealer,
                max: 0,
                amount: 0,
            });
            hub.lots.insert(lot.id, public);
        }
    }

    fn flush(&mut self) {
        self.0.flush();
    }

    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        let hub = &self.0;
        let now = Instant::now();
        for event in events {
            match *event {
                Event::SellerRegistered { seller } => {
                    hub.register(entry, Principal::Seller(seller))
                }
                Event::DealerRegistered { dealer } => {
                    hub.register(entry, Principal::Dealer(dealer))
                }
                Event::ServiceRegistered { service } => {
                    hub.register(entry, Principal::Service(service))
                }
                Event::Configured => {
                    if let Command::Configure(rules) = &entry.command {
                        *hub.increments.write() = rules.increments.clone();
                        hub.leverage.store(rules.leverage, Ordering::Relaxed);
                    }
                }
                Event::Listed {
                    lot,
                    status,
                    starts_at,
                    ends_at,
                } => {
                    let _auction = tracing::info_span!("auction", id = %lot).entered();
                    tracing::info!(seq = entry.seq, status = status.as_str(), ends_at, "listed");
                    hub.project_listing(entry, lot, status, starts_at, ends_at);
                }
                Event::Bid {
                    lot,
                    dealer,
                    outcome: crate::auction::BidOutcome::Accepted { .. },
                    duplicate: false,
                } => {
                    hub.bidders.entry(lot).or_default().insert(dealer);
                }
                Event::Updated(u) => {
                    if let Some(mut l) = hub.lots.get_mut(&u.lot) {
                        l.status = u.status;
                        l.price = u.price;
                        l.bids = u.bids;
                        l.ends_at = u.ends_at;
                        l.lead = u.leader.map(|dealer| Lead {
                            dealer,
                            max: 0,
                            amount: 0,
                        });
                    }
                    hub.fan_out(u.lot, &Broadcast::update(entry.seq, &u), true, now);
                }
                Event::Outbid {
                    lot,
                    dealer,
                    price,
                    min_next,
                } => {
                    let msg = ServerMessage::Outbid(Outbid::new(lot, price, min_next));
                    hub.send_to_dealer(dealer, &msg, now);
                }
                Event::Closed {
                    lot,
                    outcome,
                    price,
                    leader,
                    ..
                } => {
                    let _auction = tracing::info_span!("auction", id = %lot).entered();
                    tracing::info!(
                        seq = entry.seq,
                        outcome = outcome.as_str(),
                        ?price,
                        "closed"
                    );
                    hub.metrics.closes.inc();
                    let b = Broadcast::closed(lot, outcome, price, leader);
                    hub.fan_out(lot, &b, false, now);
                    // Dealers who bid but no longer watch still hear how it ended.
                    let bidders = hub.bidders.get(&lot).map(|b| b.clone()).unwrap_or_default();
                    for d in bidders {
                        if let Some(sessions) = hub.dealer_sessions.get(&d) {
                            for s in sessions.iter() {
                                let watching =
                                    hub.subs.get(&lot).is_some_and(|v| v.contains_key(&s.id));
                                if !watching {
                                    hub.push(s, Kind::Event, b.frame_for(s.format, Some(d)), now);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
