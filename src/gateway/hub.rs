//! The hub: who is connected, who watches which auction, and the fan-out to them.
//!
//! It is one of the engine's publishers: the engine calls it, in sequence order, only for
//! commands whose batch is durable. So every frame it queues is durable state — a client
//! never sees a price the journal could still lose. The state a `subscribe` snapshots is
//! not here but in `crate::views`, which the server publishes to before the hub.
//!
//! Must not: block. `publish` runs on the engine's task, so it only takes short locks and
//! pushes into bounded, conflating session queues; it never waits for a client.

use super::codec::{encode, Broadcast, Format, Frame};
use super::outbound::{Deferred, Kind, Outbound, Pushed};
use super::wire::{ComplaintNotice, Outbid, ServerMessage};
use crate::alliance::AllianceEvent;
use crate::auction::Event;
use crate::directory::Principal;
use crate::engine::Publisher;
use crate::market::{self, Market};
use crate::metrics::Counter;
use crate::store::Entry;
use crate::vocab::{DealerId, LotId};
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

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

/// The subscriptions of every session, and what fan-out needs to reach them.
pub struct Hub {
    /// Sessions watching each lot, by session id: subscribing and leaving are O(log n)
    /// (a hot lot has 10,000 watchers; a scan per subscribe would make its setup
    /// quadratic).
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
    /// An empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            subs: DashMap::new(),
            dealer_sessions: DashMap::new(),
            bidders: DashMap::new(),
            next_session: AtomicU64::new(1),
            unflushed: Mutex::new(Vec::new()),
            metrics: HubMetrics::default(),
        })
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

    /// Starts sending a lot's updates to a session (the caller checks that the lot
    /// exists).
    pub fn subscribe(&self, link: &Arc<SessionLink>, lot: LotId) {
        self.subs
            .entry(lot)
            .or_default()
            .entry(link.id)
            .or_insert_with(|| link.clone());
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
}

/// The engine-facing side of the hub.
pub struct HubPublisher(pub Arc<Hub>);

impl Publisher for HubPublisher {
    fn reset(&mut self, _market: &Market) {
        // Nothing durable lives here: subscriptions outlive a rebuild, and the views a
        // subscriber reads are rebuilt by their own publisher.
    }

    fn flush(&mut self) {
        self.0.flush();
    }

    fn publish(&mut self, entry: &Entry, events: &[market::Event]) {
        let hub = &self.0;
        let now = Instant::now();
        for event in events {
            let event = match event {
                market::Event::Auction(event) => event,
                market::Event::Alliance(AllianceEvent::ComplaintChanged(c)) => {
                    let msg = ServerMessage::Complaint(ComplaintNotice::from(&**c));
                    hub.send_to_dealer(c.dealer, &msg, now);
                    continue;
                }
                _ => continue,
            };
            match *event {
                Event::Listed {
                    lot,
                    status,
                    ends_at,
                    ..
                } => {
                    let _auction = tracing::info_span!("auction", id = %lot).entered();
                    tracing::info!(seq = entry.seq, status = status.as_str(), ends_at, "listed");
                }
                Event::Bid {
                    lot,
                    dealer,
                    outcome: crate::auction::BidOutcome::Accepted { .. },
                    duplicate: false,
                    .. // the bidder's exposure is the views' business, never sent
                } => {
                    hub.bidders.entry(lot).or_default().insert(dealer);
                }
                Event::Updated(u) => {
                    hub.fan_out(u.lot, &Broadcast::update(entry.seq, &u), true, now);
                }
                Event::Outbid {
                    lot,
                    dealer,
                    price,
                    min_next,
                    .. // the loser's exposure is the views' business, never sent
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
