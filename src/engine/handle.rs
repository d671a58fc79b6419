//! The handle clients submit commands through, and how each command's result reaches them.
//!
//! Owns the client's side of the queue in front of the sequencer: a command's `max_wait`
//! deadline is set here, and a request that finds the queue closed, or no room in it by
//! then, is answered `unavailable` without reaching the engine.
//! Must not: touch the book or the journal.

use super::clock::monotonic_now;
use super::metrics::EngineMetrics;
use super::writer::Ping;
use crate::market::{Command, Event};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// A command that is durable and applied.
#[derive(Debug)]
pub struct Applied {
    /// Its sequence number.
    pub seq: u64,
    /// What it did.
    pub events: Vec<Event>,
}

/// The engine could not make the command durable in time; nothing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine could not make the command durable in time")]
pub struct Unavailable;

/// Where a command's result goes once it is durable, or known never to be.
pub(super) enum Reply {
    /// A `submit` waiting on its own task.
    Wait(oneshot::Sender<Result<Applied, Unavailable>>),
    /// A `submit_then` callback, called on the engine's task.
    Call(Callback),
}

impl Reply {
    pub(super) fn send(self, result: Result<Applied, Unavailable>) {
        match self {
            // The submitter may have given up waiting; nothing else is owed to it.
            Self::Wait(tx) => drop(tx.send(result)),
            Self::Call(mut cb) => {
                if let Some(f) = cb.0.take() {
                    f(result)
                }
            }
        }
    }
}

/// A `submit_then` callback that is called exactly once: with the result, or with
/// `Unavailable` when it is dropped unanswered — the engine stopped on a fatal error with
/// the request still queued, say. A dropped oneshot tells a `submit` the same thing; a
/// callback has to be told, or a dealer's bid would go unanswered.
pub(super) struct Callback(Option<Box<ThenFn>>);

/// What `submit_then` calls.
type ThenFn = dyn FnOnce(Result<Applied, Unavailable>) + Send;

impl Drop for Callback {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Unavailable));
        }
    }
}

/// A command on its way to the sequencer.
pub(super) struct Request {
    pub(super) command: Command,
    /// When its `max_wait` runs out: sequenced after this, it is answered `unavailable`.
    pub(super) deadline: Instant,
    pub(super) reply: Reply,
}

/// Submits commands to the engine. Cheap to clone; the engine stops once every handle is
/// dropped and its last batch is durable.
#[derive(Clone)]
pub struct EngineHandle {
    /// The queue in front of the sequencer (bounded: `queue_capacity`).
    pub(super) tx: mpsc::Sender<Request>,
    /// Set to true by `close`.
    pub(super) stop: Arc<watch::Sender<bool>>,
    /// Readiness checks, answered by the journal's writer.
    pub(super) pings: mpsc::Sender<Ping>,
    pub(super) max_wait: Duration,
    pub(super) metrics: Arc<EngineMetrics>,
}

impl EngineHandle {
    /// Sequences `command`, waits until it is durable, and returns what it did — or
    /// `Unavailable` if that could not happen within the configured wait (then nothing
    /// happened: retrying is safe).
    pub async fn submit(&self, command: impl Into<Command>) -> Result<Applied, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(command.into(), Reply::Wait(reply)).await;
        // The engine answers every request it took (applied or unavailable); a dropped
        // sender means it stopped, which is unavailable too.
        rx.await.unwrap_or(Err(Unavailable))
    }

    /// Like [`submit`](Self::submit), but instead of waiting for the result, `then` is
    /// called with it — exactly once, and on the engine's task right after the command's
    /// events were published when it became durable. So `then` must be quick and must not
    /// block: queue a frame, not a network write. This saves a task and a wake-up per
    /// command, and lets the result leave in the same socket write as the `update` it
    /// caused. Returns once the command is queued (or refused: then `then` has already
    /// been called with `Unavailable`).
    pub async fn submit_then<F>(&self, command: impl Into<Command>, then: F)
    where
        F: FnOnce(Result<Applied, Unavailable>) + Send + 'static,
    {
        self.enqueue(command.into(), Reply::Call(Callback(Some(Box::new(then)))))
            .await;
    }

    async fn enqueue(&self, command: Command, reply: Reply) {
        let deadline = monotonic_now() + self.max_wait;
        let req = Request {
            command,
            deadline,
            reply,
        };
        // Room in the queue is the common case: no timer for it.
        let req = match self.tx.try_send(req) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(req)) => req,
            Err(mpsc::error::TrySendError::Full(req)) => {
                let permit = tokio::time::timeout_at(deadline.into(), self.tx.reserve()).await;
                match permit {
                    Ok(Ok(permit)) => return permit.send(req),
                    _ => req,
                }
            }
        };
        self.metrics.unavailable.inc();
        req.reply.send(Err(Unavailable));
    }

    /// Whether the journal answers now and the engine is not rebuilding (for `/readyz`).
    pub async fn ready(&self) -> bool {
        if self.metrics.ready.get() == 0 {
            return false;
        }
        let (done, rx) = oneshot::channel();
        let ping = async {
            self.pings.try_send(done).ok()?;
            rx.await.ok()
        };
        matches!(
            tokio::time::timeout(self.max_wait, ping).await,
            Ok(Some(Ok(())))
        )
    }

    /// Stops taking commands: those already queued are applied and made durable, later
    /// submissions are `unavailable`, and the engine task ends once the journal has
    /// everything (await its `JoinHandle` to know).
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }

    /// The engine's measurements.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Reply, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (ok, unavailable) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, u) = (ok.clone(), unavailable.clone());
        let reply = Reply::Call(Callback(Some(Box::new(move |r| {
            let count = if r.is_ok() { &o } else { &u };
            count.fetch_add(1, Ordering::SeqCst);
        }))));
        (reply, ok, unavailable)
    }

    #[test]
    fn a_callback_is_called_once_with_the_result() {
        let (reply, ok, unavailable) = counting();
        reply.send(Ok(Applied {
            seq: 1,
            events: Vec::new(),
        }));
        assert_eq!(
            (
                ok.load(Ordering::SeqCst),
                unavailable.load(Ordering::SeqCst)
            ),
            (1, 0)
        );
    }

    #[test]
    fn a_callback_dropped_unanswered_is_told_unavailable() {
        let (reply, ok, unavailable) = counting();
        drop(reply);
        assert_eq!(
            (
                ok.load(Ordering::SeqCst),
                unavailable.load(Ordering::SeqCst)
            ),
            (0, 1)
        );
    }
}
