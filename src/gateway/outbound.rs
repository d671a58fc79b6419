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
//!
//! Two ways out of the queue. A push wakes the session's writer task, which writes what
//! is queued. The engine's task instead pushes [`deferred`](Outbound::push_deferred) and,
//! at the end of its pass, [`flush`](Outbound::flush)es each queue it touched: the frames
//! go into the socket right there, in one call, when nothing is ahead of them and the
//! socket takes them; only what is left wakes the writer. A hot lot's update thus reaches
//! 10,000 sockets without 10,000 task wake-ups. Every write into the socket happens under
//! the queue's lock or from frames the writer took under it while it was marked
//! `writing`, so frames never reorder or interleave.

use crate::vocab::LotId;
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
    /// A frame the socket took only part of in a flush, and the bytes it took: the writer
    /// sends the rest before anything else, and it is never replaced.
    partial: Option<(F, usize)>,
    /// The writer holds frames it took and has not finished writing: a flush must not
    /// write past them.
    writing: bool,
    /// Deferred pushes are waiting for the flush that the pusher promised.
    unflushed: bool,
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
    /// The socket, for writes from [`flush`](Self::flush).
    wire: Option<Box<dyn Wire<F>>>,
}

/// A socket a queue may write into without waiting.
pub trait Wire<F>: Send + Sync {
    /// Writes what the socket takes now of `frames`, the first from byte `skip` of its
    /// wire form, in one call; the bytes written (0 when full or failed: the writer finds
    /// out which).
    fn write_now(&self, frames: &mut dyn Iterator<Item = &F>, skip: usize) -> usize;
    /// A frame's length on the wire.
    fn wire_len(&self, frame: &F) -> usize;
}

/// What the writer took: the frames are in the caller's vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Bytes of the first frame already written (by a flush the socket took part of).
    pub skip: usize,
    /// Once closing, the reason: the writer sends the frames, then the close.
    pub close: Option<CloseReason>,
}

/// What a deferred push asks of the pusher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deferred {
    /// The queue was clean: call [`Outbound::flush`] on it once the pass is done.
    Flush,
    /// A flush is already owed (or the frame was replaced or discarded): nothing to add.
    Nothing,
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
    /// A queue holding about `bound` frames before it conflates, with no socket of its
    /// own: [`flush`](Self::flush) only wakes the writer.
    pub fn new(bound: usize, slow_timeout: Duration) -> Arc<Self> {
        Self::build(bound, slow_timeout, None)
    }

    /// A queue that [`flush`](Self::flush) may write straight into `wire`.
    pub fn writing_to(bound: usize, slow_timeout: Duration, wire: Box<dyn Wire<F>>) -> Arc<Self> {
        Self::build(bound, slow_timeout, Some(wire))
    }

    fn build(bound: usize, slow_timeout: Duration, wire: Option<Box<dyn Wire<F>>>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                partial: None,
                writing: false,
                unflushed: false,
                full_since: None,
                close: None,
                conflated: 0,
            }),
            notify: Notify::new(),
            drained: Notify::new(),
            bound: bound.max(1),
            slow_timeout,
            wire,
        })
    }

    /// Queues a frame and wakes the writer; `now` is passed in so the policy is testable
    /// without a clock.
    pub fn push(&self, kind: Kind, frame: F, now: Instant) -> Pushed {
        let pushed = self.enqueue(&mut self.state.lock(), kind, frame, now);
        if pushed != Pushed::Closed {
            self.notify.notify_one();
        }
        pushed
    }

    /// Queues a frame without waking the writer: the pusher promises a
    /// [`flush`](Self::flush) when [`Deferred::Flush`] comes back.
    pub fn push_deferred(&self, kind: Kind, frame: F, now: Instant) -> (Pushed, Deferred) {
        let mut s = self.state.lock();
        let pushed = self.enqueue(&mut s, kind, frame, now);
        // A replaced frame was queued before, and whoever queued it sends it; a frame
        // queued now is owed one flush, which the first such push asks for.
        let deferred = if pushed == Pushed::Queued && !std::mem::replace(&mut s.unflushed, true) {
            Deferred::Flush
        } else {
            Deferred::Nothing
        };
        (pushed, deferred)
    }

    /// Writes what is queued into the socket now, when nothing is ahead of it (the writer
    /// is not holding frames, no partly written frame); whatever the socket does not take
    /// is left to the writer, which is woken for it.
    pub fn flush(&self) {
        let mut s = self.state.lock();
        s.unflushed = false;
        if s.items.is_empty() {
            return;
        }
        let ready = !s.writing && s.partial.is_none() && s.close.is_none();
        let written = match self.wire.as_deref().filter(|_| ready) {
            Some(wire) => Self::write_front(wire, &mut s),
            None => 0,
        };
        if written > 0 {
            s.full_since = None;
        }
        let rest = !s.items.is_empty() || s.partial.is_some();
        drop(s);
        if written > 0 {
            self.drained.notify_one();
        }
        if rest {
            self.notify.notify_one();
        }
    }

    /// Writes the queue into `wire` in one call and drops what it took from the front; a
    /// frame it took only part of moves aside as the partial one. Returns the bytes taken.
    fn write_front(wire: &dyn Wire<F>, s: &mut State<F>) -> usize {
        let written = wire.write_now(&mut s.items.iter().map(|(_, f)| f), 0);
        let mut left = written;
        while let Some((_, front)) = s.items.front() {
            let len = wire.wire_len(front);
            if left < len {
                if left > 0 {
                    let (_, f) = s.items.pop_front().expect("the front was just seen");
                    s.partial = Some((f, left));
                }
                break;
            }
            left -= len;
            s.items.pop_front();
        }
        written
    }

    /// Queues a frame (see the module's policy); the caller wakes the writer or flushes.
    fn enqueue(&self, s: &mut State<F>, kind: Kind, frame: F, now: Instant) -> Pushed {
        if s.close.is_some() {
            return Pushed::Closed;
        }
        let full = s.items.len() >= self.bound;
        if full {
            let since = *s.full_since.get_or_insert(now);
            if now.duration_since(since) > self.slow_timeout {
                s.close = Some(CloseReason::SlowConsumer);
                s.items.clear();
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
        Pushed::Queued
    }

    /// Asks the session to close (its writer sends a close frame and stops).
    pub fn close(&self, reason: CloseReason) {
        self.state.lock().close.get_or_insert(reason);
        self.notify.notify_one();
        self.drained.notify_one();
    }

    /// Takes everything queued (a partly written frame first), waiting until there is
    /// something or the session must close. From then until the writer's next call, a
    /// flush leaves the socket to the writer.
    pub async fn take(&self, into: &mut Vec<F>) -> Taken {
        loop {
            // Register interest before checking, so a push between the check and the
            // wait is not missed.
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock();
                let close = s.close;
                if close.is_some() || !s.items.is_empty() || s.partial.is_some() {
                    let skip = match s.partial.take() {
                        Some((f, written)) => {
                            into.push(f);
                            written
                        }
                        None => 0,
                    };
                    into.extend(s.items.drain(..).map(|(_, f)| f));
                    s.full_since = None;
                    s.writing = true;
                    drop(s);
                    self.drained.notify_one();
                    return Taken { skip, close };
                }
                s.writing = false;
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
        assert_eq!(q.take(&mut got).await.close, None);
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

    /// A socket that takes up to `room` bytes in all; frame `f` is 10 bytes of value `f`.
    struct FakeWire {
        room: Mutex<usize>,
        wrote: Arc<Mutex<Vec<u8>>>,
    }

    impl Wire<u32> for FakeWire {
        fn write_now(&self, frames: &mut dyn Iterator<Item = &u32>, mut skip: usize) -> usize {
            let mut room = self.room.lock();
            let mut wrote = self.wrote.lock();
            let start = wrote.len();
            for &f in frames {
                let take = (10 - skip).min(*room);
                wrote.extend(std::iter::repeat_n(f as u8, take));
                *room -= take;
                skip = 0;
            }
            wrote.len() - start
        }

        fn wire_len(&self, _: &u32) -> usize {
            10
        }
    }

    /// A queue over a fake socket with `room` bytes, and what it wrote.
    fn wired(bound: usize, room: usize) -> (Arc<Outbound<u32>>, Arc<Mutex<Vec<u8>>>) {
        let wrote = Arc::new(Mutex::new(Vec::new()));
        let wire = FakeWire {
            room: Mutex::new(room),
            wrote: wrote.clone(),
        };
        let q = Outbound::writing_to(bound, Duration::from_secs(5), Box::new(wire));
        (q, wrote)
    }

    /// The frames written, one per 10 bytes (a partly written frame counts).
    fn frames_in(wrote: &Mutex<Vec<u8>>) -> Vec<u32> {
        wrote.lock().chunks(10).map(|c| u32::from(c[0])).collect()
    }

    #[tokio::test]
    async fn a_flush_writes_what_the_socket_takes_and_leaves_the_rest_to_the_writer() {
        let (q, wrote) = wired(8, 25);
        let t = Instant::now();
        assert_eq!(
            q.push_deferred(Kind::Reply, 1, t),
            (Pushed::Queued, Deferred::Flush)
        );
        assert_eq!(
            q.push_deferred(Kind::Reply, 2, t),
            (Pushed::Queued, Deferred::Nothing)
        );
        assert_eq!(
            q.push_deferred(Kind::Reply, 3, t),
            (Pushed::Queued, Deferred::Nothing)
        );
        assert!(wrote.lock().is_empty(), "nothing leaves before the flush");
        q.flush();
        assert_eq!(wrote.lock().len(), 25);
        assert_eq!(frames_in(&wrote), vec![1, 2, 3]);
        // The writer was woken for the rest: frame 3, from its sixth byte.
        let mut got = Vec::new();
        let taken = tokio::time::timeout(Duration::from_secs(1), q.take(&mut got))
            .await
            .expect("the writer is woken for what the socket did not take");
        assert_eq!((got, taken.skip, taken.close), (vec![3], 5, None));
    }

    #[test]
    fn a_partly_written_update_is_never_replaced() {
        let (q, wrote) = wired(1, 5);
        let t = Instant::now();
        q.push_deferred(Kind::Update(LotId(1)), 1, t);
        q.flush();
        assert_eq!(wrote.lock().len(), 5);
        // Even at the bound, the newer state queues behind the half-sent frame.
        let (pushed, deferred) = q.push_deferred(Kind::Update(LotId(1)), 2, t);
        assert_eq!((pushed, deferred), (Pushed::Queued, Deferred::Flush));
        assert_eq!(
            q.push_deferred(Kind::Update(LotId(1)), 3, t).0,
            Pushed::Conflated
        );
        // A flush does not write past the partly written frame.
        q.flush();
        assert_eq!(wrote.lock().len(), 5);
        let s = q.state.lock();
        assert_eq!(s.partial, Some((1, 5)));
        assert_eq!(s.items.iter().map(|(_, f)| *f).collect::<Vec<_>>(), vec![3]);
    }

    #[tokio::test]
    async fn a_flush_leaves_the_socket_to_a_writer_holding_frames() {
        let (q, wrote) = wired(8, 1000);
        let t = Instant::now();
        q.push(Kind::Reply, 1, t);
        let mut got = Vec::new();
        q.take(&mut got).await; // the writer holds frame 1 and has not written it
        q.push_deferred(Kind::Reply, 2, t);
        q.flush();
        assert!(wrote.lock().is_empty(), "frame 2 must not overtake frame 1");
        // The writer, back for more, gets frame 2.
        got.clear();
        q.take(&mut got).await;
        assert_eq!(got, vec![2]);
        // Once it found the queue empty, a flush writes again.
        let (q2, _) = (q.clone(), ());
        let waiting = tokio::spawn(async move { q2.take(&mut Vec::new()).await });
        tokio::task::yield_now().await;
        q.push_deferred(Kind::Reply, 3, t);
        q.flush();
        assert_eq!(frames_in(&wrote), vec![3]);
        waiting.abort();
    }

    #[test]
    fn each_pass_owes_one_flush_whatever_else_was_pushed() {
        let (q, wrote) = wired(8, 1000);
        let t = Instant::now();
        // A push that wakes the writer does not stand in for the flush.
        q.push(Kind::Reply, 1, t);
        assert_eq!(q.push_deferred(Kind::Reply, 2, t).1, Deferred::Flush);
        q.flush();
        assert_eq!(frames_in(&wrote), vec![1, 2]);
        // A replaced update owes nothing, and leaves the next pass its flush.
        q.push_deferred(Kind::Update(LotId(1)), 3, t);
        assert_eq!(
            q.push_deferred(Kind::Update(LotId(1)), 4, t),
            (Pushed::Conflated, Deferred::Nothing)
        );
        q.flush();
        assert_eq!(frames_in(&wrote), vec![1, 2, 4]);
        assert_eq!(q.push_deferred(Kind::Reply, 5, t).1, Deferred::Flush);
        // Nor does a frame discarded by a closing queue.
        q.flush();
        q.close(CloseReason::Ended(1000, ""));
        assert_eq!(
            q.push_deferred(Kind::Reply, 6, t),
            (Pushed::Closed, Deferred::Nothing)
        );
        assert_eq!(frames_in(&wrote), vec![1, 2, 4, 5]);
    }

    #[tokio::test]
    async fn take_waits_for_a_push_and_reports_close() {
        let q = Outbound::<u32>::new(4, Duration::from_secs(5));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            let closed = q2.take(&mut got).await.close;
            (got, closed)
        });
        tokio::task::yield_now().await;
        q.push(Kind::Reply, 7, Instant::now());
        let (got, closed) = waiter.await.expect("join");
        assert_eq!((got, closed), (vec![7], None));
        q.close(CloseReason::Ended(1000, ""));
        let mut got = Vec::new();
        assert_eq!(
            q.take(&mut got).await.close,
            Some(CloseReason::Ended(1000, ""))
        );
    }
}
