//! A session's outbound queue: bounded, conflating, never dropping a reply.
//!
//! The hub pushes from the engine's task and must never wait on a slow client. An `update`
//! the writer has not taken yet is replaced by a newer one for the same auction (the newest
//! state is all a client needs): below the bound only while no reply or event was queued
//! after it, so frames never change order; at the bound wherever it is. Replies to the dealer's
//! own requests are always kept, and a queue that stays full past the slow-consumer timeout
//! marks the session for closing. So memory per session is bounded by the queue bound, one
//! update per subscribed auction and the dealer's in-flight requests — provided the
//! session stops reading requests while its queue is at the bound ([`Outbound::room`]):
//! replies are never dropped, so a client that sends without reading would otherwise
//! queue one reply per frame it sends, as fast as it can send them.

use crate::auction::LotId;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What a queued frame is, which decides what may happen to it under pressure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An answer to this client's own request (`bid_result`, `snapshot`, `pong`, `error`):
    /// never dropped or replaced.
    Reply,
    /// A state broadcast for one auction: replaced by a newer one when the queue is full.
    Update(LotId),
    /// Any other push (`outbid`, `closed`): kept.
    Event,
}

/// Why a session must close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client did not read for longer than the slow-consumer timeout.
    SlowConsumer,
    /// The session's reader ended (the client left or misbehaved, or the server is
    /// shutting down): send what is queued, then a close frame with this code and reason.
    Ended(u16, &'static str),
}

struct State<F> {
    items: VecDeque<(Kind, F)>,
    /// When the queue first reached its bound without being drained since.
    full_since: Option<Instant>,
    close: Option<CloseReason>,
    conflated: u64,
}

/// The queue shared by the hub (producer) and the session's writer (consumer).
pub struct Outbound<F> {
    state: Mutex<State<F>>,
    notify: Notify,
    /// Wakes the session's reader when the writer took frames (or the session closes).
    drained: Notify,
    bound: usize,
    slow_timeout: Duration,
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued at the back.
    Queued,
    /// Replaced a queued update for the same auction.
    Conflated,
    /// The session is closing; the frame was discarded.
    Closed,
}

impl<F> Outbound<F> {
    /// A queue holding about `bound` frames before it conflates.
    pub fn new(bound: usize, slow_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                full_since: None,
                close: None,
                conflated: 0,
            }),
            notify: Notify::new(),
            drained: Notify::new(),
            bound: bound.max(1),
            slow_timeout,
        })
    }

    /// Queues a frame; `now` is passed in so the policy is testable without a clock.
    pub fn push(&self, kind: Kind, frame: F, now: Instant) -> Pushed {
        let mut s = self.state.lock();
        if s.close.is_some() {
            return Pushed::Closed;
        }
        let full = s.items.len() >= self.bound;
        if full {
            let since = *s.full_since.get_or_insert(now);
            if now.duration_since(since) > self.slow_timeout {
                s.close = Some(CloseReason::SlowConsumer);
                s.items.clear();
                drop(s);
                self.notify.notify_one();
                return Pushed::Closed;
            }
        }
        if let Kind::Update(lot) = kind {
            // Full: the newest state replaces a queued update for the lot wherever it is.
            // Below the bound too, but only an update still among the newest frames (no
            // reply or event queued after it), so nothing is reordered: the writer is
            // behind (a hot lot's fan-out outpacing one core), and a state the client has
            // not been sent yet is worth nothing once a newer one exists.
            let queued = s
                .items
                .iter_mut()
                .rev()
                .take_while(|(k, _)| full || matches!(k, Kind::Update(_)))
                .find(|(k, _)| *k == Kind::Update(lot));
            if let Some(slot) = queued {
                slot.1 = frame;
                s.conflated += 1;
                return Pushed::Conflated;
            }
        }
        s.items.push_back((kind, frame));
        drop(s);
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Asks the session to close (its writer sends a close frame and stops).
    pub fn close(&self, reason: CloseReason) {
        self.state.lock().close.get_or_insert(reason);
        self.notify.notify_one();
        self.drained.notify_one();
    }

    /// Takes everything queued, waiting until there is something or the session must
    /// close. Returns the frames and, once closing, the reason.
    pub async fn take(&self, into: &mut Vec<F>) -> Option<CloseReason> {
        loop {
            // Register interest before checking, so a push between the check and the
            // wait is not missed.
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock();
                if let Some(r) = s.close {
                    into.extend(s.items.drain(..).map(|(_, f)| f));
                    drop(s);
                    self.drained.notify_one();
                    return Some(r);
                }
                if !s.items.is_empty() {
                    into.extend(s.items.drain(..).map(|(_, f)| f));
                    s.full_since = None;
                    drop(s);
                    self.drained.notify_one();
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Waits until the queue is below its bound or the session is closing: the session's
    /// reader calls this before it reads the next request, so a client that does not take
    /// its replies stops being read (TCP then pushes back on it) instead of growing the
    /// queue by one reply per request.
    pub async fn room(&self) {
        loop {
            // Register before checking, so a take between the check and the wait is
            // not missed (a stale wake-up only costs one more check).
            let drained = self.drained.notified();
            if self.has_room() {
                return;
            }
            drained.await;
        }
    }

    /// Whether [`room`](Self::room) would return at once: below the bound, or closing.
    pub fn has_room(&self) -> bool {
        let s = self.state.lock();
        s.items.len() < self.bound || s.close.is_some()
    }

    /// Updates replaced by newer ones so far.
    pub fn conflated(&self) -> u64 {
        self.state.lock().conflated
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &Outbound<u32>) -> Vec<u32> {
        let mut s = q.state.lock();
        s.full_since = None;
        s.items.drain(..).map(|(_, f)| f).collect()
    }

    #[test]
    fn below_the_bound_frames_queue_in_order() {
        let q = Outbound::new(8, Duration::from_secs(5));
        let t = Instant::now();
        assert_eq!(q.push(Kind::Update(LotId(1)), 1, t), Pushed::Queued);
        assert_eq!(q.push(Kind::Reply, 2, t), Pushed::Queued);
        // An older update behind a reply stays: replacing it would reorder the two.
        assert_eq!(q.push(Kind::Update(LotId(1)), 3, t), Pushed::Queued);
        assert_eq!(q.push(Kind::Event, 4, t), Pushed::Queued);
        assert_eq!(drain(&q), vec![1, 2, 3, 4]);
    }

    #[test]
    fn below_the_bound_an_unsent_update_among_the_newest_is_replaced() {
        let q = Outbound::new(8, Duration::from_secs(5));
        let t = Instant::now();
        q.push(Kind::Reply, 1, t);
        q.push(Kind::Update(LotId(1)), 10, t);
        q.push(Kind::Update(LotId(2)), 20, t);
        // Only updates follow lot 1's queued update: the newer state takes its place.
        assert_eq!(q.push(Kind::Update(LotId(1)), 11, t), Pushed::Conflated);
        assert_eq!(q.push(Kind::Update(LotId(2)), 21, t), Pushed::Conflated);
        assert_eq!(drain(&q), vec![1, 11, 21]);
        assert_eq!(q.conflated(), 2);
        // Once taken, the next update queues anew.
        assert_eq!(q.push(Kind::Update(LotId(1)), 12, t), Pushed::Queued);
    }

    #[test]
    fn at_the_bound_updates_conflate_and_replies_are_kept() {
        let q = Outbound::new(2, Duration::from_secs(5));
        let t = Instant::now();
        q.push(Kind::Update(LotId(1)), 10, t);
        q.push(Kind::Update(LotId(2)), 20, t);
        // Full: a newer update for lot 1 replaces the queued one in place.
        assert_eq!(q.push(Kind::Update(LotId(1)), 11, t), Pushed::Conflated);
        // A reply is never dropped, even past the bound.
        assert_eq!(q.push(Kind::Reply, 99, t), Pushed::Queued);
        // An update for a lot with nothing queued still gets its one slot.
        assert_eq!(q.push(Kind::Update(LotId(3)), 30, t), Pushed::Queued);
        assert_eq!(q.push(Kind::Update(LotId(3)), 31, t), Pushed::Conflated);
        assert_eq!(drain(&q), vec![11, 20, 99, 31]);
        assert_eq!(q.conflated(), 2);
    }

    #[test]
    fn full_past_the_timeout_closes_the_session() {
        let q = Outbound::new(1, Duration::from_secs(5));
        let t = Instant::now();
        q.push(Kind::Event, 1, t);
        q.push(Kind::Event, 2, t); // full from t
        assert_eq!(
            q.push(Kind::Event, 3, t + Duration::from_secs(4)),
            Pushed::Queued
        );
        assert_eq!(
            q.push(Kind::Event, 4, t + Duration::from_secs(6)),
            Pushed::Closed
        );
        assert_eq!(q.push(Kind::Reply, 5, t), Pushed::Closed);
        assert!(q.is_empty());
    }

    #[test]
    fn draining_resets_the_slow_consumer_clock() {
        let q = Outbound::new(1, Duration::from_secs(5));
        let t = Instant::now();
        q.push(Kind::Event, 1, t);
        q.push(Kind::Event, 2, t);
        drain(&q);
        q.push(Kind::Event, 3, t + Duration::from_secs(10));
        assert_eq!(
            q.push(Kind::Event, 4, t + Duration::from_secs(11)),
            Pushed::Queued
        );
    }

    #[tokio::test]
    async fn room_waits_until_the_writer_takes_or_the_session_closes() {
        let q = Outbound::<u32>::new(2, Duration::from_secs(5));
        let t = Instant::now();
        q.room().await; // empty: immediate
        q.push(Kind::Reply, 1, t);
        q.push(Kind::Reply, 2, t);
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.room().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "at the bound: no room");
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got).await, None);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("room after a take")
            .expect("join");
        q.push(Kind::Reply, 3, t);
        q.push(Kind::Reply, 4, t);
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.room().await });
        tokio::task::yield_now().await;
        q.close(CloseReason::Ended(1000, ""));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("room once closing")
            .expect("join");
    }

    #[tokio::test]
    async fn take_waits_for_a_push_and_reports_close() {
        let q = Outbound::<u32>::new(4, Duration::from_secs(5));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            let closed = q2.take(&mut got).await;
            (got, closed)
        });
        tokio::task::yield_now().await;
        q.push(Kind::Reply, 7, Instant::now());
        let (got, closed) = waiter.await.expect("join");
        assert_eq!((got, closed), (vec![7], None));
        q.close(CloseReason::Ended(1000, ""));
        let mut got = Vec::new();
        assert_eq!(q.take(&mut got).await, Some(CloseReason::Ended(1000, "")));
    }
}
