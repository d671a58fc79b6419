//! Where durable commands go: the `Publisher` the engine calls after each durable batch.

use crate::market::{Event, Market};
use crate::store::Entry;

/// Receives every durable command, in order, after its batch is durable.
pub trait Publisher: Send + 'static {
    /// The durable state after (re)covery: rebuild every view from it.
    fn reset(&mut self, market: &Market);
    /// One durable command and its events.
    fn publish(&mut self, entry: &Entry, events: &[Event]);
    /// A durable batch was published and its commands answered: send what was queued.
    fn flush(&mut self) {}
}

/// Does nothing; for tools and tests that only want replies.
impl Publisher for () {
    fn reset(&mut self, _: &Market) {}
    fn publish(&mut self, _: &Entry, _: &[Event]) {}
}

/// Two publishers, called in order: the first sees each entry before the second does.
impl<A: Publisher, B: Publisher> Publisher for (A, B) {
    fn reset(&mut self, market: &Market) {
        self.0.reset(market);
        self.1.reset(market);
    }
    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        self.0.publish(entry, events);
        self.1.publish(entry, events);
    }
    fn flush(&mut self) {
        self.0.flush();
        self.1.flush();
    }
}

/// A publisher that may be absent: `None` hears nothing.
impl<P: Publisher> Publisher for Option<P> {
    fn reset(&mut self, market: &Market) {
        if let Some(p) = self {
            p.reset(market);
        }
    }
    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        if let Some(p) = self {
            p.publish(entry, events);
        }
    }
    fn flush(&mut self) {
        if let Some(p) = self {
            p.flush();
        }
    }
}
