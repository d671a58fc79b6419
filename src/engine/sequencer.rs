//! The sequencer: spawns the engine and runs the loop that owns the `Market`.
//!
//! The loop takes commands off the queue, stamps and applies them, hands batches to the
//! writer (`writer.rs`) and answers each command once its batch is durable. What to do
//! next — take more commands, fire a timer, start a write, start a snapshot, wait before
//! a retry, finish — is the `Policy`'s to decide (`policy.rs`); this file does the I/O.
//! Snapshots stay off its critical path: it only copies the book at the end of a batch
//! (`snapshot.rs`).

use super::clock::monotonic_now;
use super::handle::{Applied, EngineHandle, Reply, Request, Unavailable};
use super::metrics::EngineMetrics;
use super::policy::Policy;
use super::publisher::Publisher;
use super::recovery::Recovered;
use super::snapshot::{PendingSnapshot, Snapshots};
use super::writer::{self, recover_via, Job};
use super::EngineConfig;
use crate::auction;
use crate::market::{Command, Event, Market, Rules};
use crate::store::{Batch, Entry, Journal, OutcomeRecord, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Recovers the book from `journal`, journals a `Configure` if `rules` differ from the
/// journaled ones, and starts the engine. Fails if the first recovery fails: an engine
/// that cannot read its journal must not start.
pub async fn spawn<J: Journal, P: Publisher>(
    journal: J,
    rules: Rules,
    publisher: P,
    config: EngineConfig,
) -> Result<(EngineHandle, JoinHandle<Result<(), StoreError>>), StoreError> {
    let metrics = Arc::new(EngineMetrics::default());
    // The sequencer keeps one write in flight, so its queue never fills; pings have their
    // own small queue so a burst of readiness checks can never crowd out a write.
    let (jobs, job_rx) = mpsc::channel(2);
    let (pings, ping_rx) = mpsc::channel(4);
    let writer = tokio::spawn(writer::run(
        journal,
        job_rx,
        ping_rx,
        config.append_timeout,
        metrics.clone(),
    ));
    let Recovered {
        market, replayed, ..
    } = recover_via(&jobs).await?;
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let (stop, stop_rx) = watch::channel(false);
    let mut policy = Policy::new(&config, market.last_now(), monotonic_now());
    policy.recovered(market.last_now(), replayed);
    let mut seq = Sequencer {
        policy,
        wall_clock: config.wall_clock,
        market,
        rules,
        publisher,
        jobs,
        rx,
        pending: Vec::new(),
        batch: Batch::default(),
        inflight: None,
        snapshots: Snapshots::new(),
        metrics: metrics.clone(),
        events: Vec::new(),
        stop: stop_rx,
    };
    seq.after_recovery();
    // The commands recovery journals (new rules, the outage grace) are durable and
    // published before anyone gets a handle: until then the views still show the book as
    // it was before the outage (a lot "live" past its close), and a server that announced
    // itself would serve that.
    seq.settle().await?;
    // The engine is done once its writer has closed the journal, not merely once the last
    // batch is durable: whoever awaits the engine may reopen the journal right after.
    let task = tokio::spawn(async move {
        let result = seq.run().await;
        let _ = writer.await;
        result
    });
    Ok((
        EngineHandle {
            tx,
            stop: Arc::new(stop),
            pings,
            max_wait: config.max_wait,
            metrics,
        },
        task,
    ))
}

/// A command applied to the book, waiting for its batch to be durable.
struct Pending {
    events: Vec<Event>,
    reply: Option<Reply>,
}

struct Inflight {
    batch: Arc<Batch>,
    pending: Vec<Pending>,
    started: Instant,
    done: oneshot::Receiver<Result<(), StoreError>>,
}

struct Sequencer<P> {
    /// Decides what to do next; this struct does it.
    policy: Policy,
    /// The wall clock commands are stamped with (`EngineConfig::wall_clock`).
    wall_clock: fn() -> u64,
    market: Market,
    /// The configured rules: journaled as a `Configure` when the book's differ.
    rules: Rules,
    publisher: P,
    jobs: mpsc::Sender<Job>,
    rx: mpsc::Receiver<Request>,
    /// Applied, not yet handed to the writer; parallel to `batch.entries`.
    pending: Vec<Pending>,
    batch: Batch,
    inflight: Option<Inflight>,
    snapshots: Snapshots,
    metrics: Arc<EngineMetrics>,
    /// Reused buffer for `Market::apply_into`.
    events: Vec<Event>,
    /// Becomes true when the engine is asked to stop.
    stop: watch::Receiver<bool>,
}

impl<P: Publisher> Sequencer<P> {
    async fn run(mut self) -> Result<(), StoreError> {
        loop {
            let room = self.policy.has_room();
            let open = self.policy.is_open();
            let timer = self
                .market
                .next_deadline()
                .map(|t| tokio::time::sleep(self.policy.timer_in(t, (self.wall_clock)())));
            tokio::select! {
                biased;
                done = async { (&mut self.inflight.as_mut().expect("guarded").done).await },
                    if self.inflight.is_some() =>
                {
                    let res = done.unwrap_or_else(|_| Err(StoreError::Unavailable("journal writer stopped".into())));
                    self.write_finished(res).await?;
                }
                req = self.rx.recv(), if open && room => match req {
                    Some(req) => {
                        self.sequence(req);
                        // Take whatever else is already queued: one wake-up, many commands.
                        while self.policy.has_room() {
                            match self.rx.try_recv() {
                                Ok(req) => self.sequence(req),
                                Err(_) => break,
                            }
                        }
                    }
                    None => self.policy.queue_ended(),
                },
                () = async { timer.expect("guarded").await }, if timer.is_some() && room => {
                    let now = self.now_ms();
                    self.apply(now, auction::Command::Tick.into(), None);
                }
                _ = self.stop.changed(), if open => {
                    // Refuse new sends; what is queued is still drained below.
                    self.rx.close();
                }
            }
            if self.policy.should_write() {
                self.start_write();
            }
            if self.policy.may_finish() {
                return Ok(());
            }
        }
    }

    /// Waits until nothing is in flight (retrying through journal failures like `run`).
    async fn settle(&mut self) -> Result<(), StoreError> {
        while let Some(inflight) = self.inflight.as_mut() {
            let res = (&mut inflight.done)
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("journal writer stopped".into())));
            self.write_finished(res).await?;
        }
        Ok(())
    }

    /// The engine's time now (see `Policy::now_ms`).
    fn now_ms(&mut self) -> u64 {
        self.policy.now_ms((self.wall_clock)())
    }

    fn sequence(&mut self, req: Request) {
        if self.policy.expired(req.deadline, monotonic_now()) {
            self.metrics.unavailable.inc();
            req.reply.send(Err(Unavailable));
            return;
        }
        let now = self.now_ms();
        // Due timers run first, so a bid is judged against a book that is up to date.
        if self.policy.timer_due(self.market.next_deadline(), now) {
            self.apply(now, auction::Command::Tick.into(), None);
        }
        self.apply(now, req.command, Some(req.reply));
    }

    fn apply(&mut self, now: u64, command: Command, reply: Option<Reply>) {
        let seq = self.market.last_seq() + 1;
        let entry = Entry {
            seq,
            now_ms: now,
            command: command.clone(),
        };
        self.events.clear();
        self.market.apply_into(seq, now, command, &mut self.events);
        self.batch.outcomes.extend(
            self.events
                .iter()
                .filter_map(|e| OutcomeRecord::from_event(seq, e)),
        );
        self.batch.entries.push(entry);
        self.pending.push(Pending {
            events: std::mem::take(&mut self.events),
            reply,
        });
        self.policy.applied();
    }

    fn start_write(&mut self) {
        // The next batch is sized like this one: under steady load it is about as long,
        // and filling it then moves no entry twice (growing by doubling would copy each
        // batch's entries about once over, on the one task every command waits for).
        let n = self.pending.len();
        debug_assert_eq!(n, self.policy.pending());
        let now = monotonic_now();
        let next = Batch {
            entries: Vec::with_capacity(n),
            outcomes: Vec::new(),
        };
        let batch = Arc::new(std::mem::replace(&mut self.batch, next));
        let snapshot = if self.policy.snapshot_due(now) {
            self.start_snapshot(batch.last_seq(), now)
        } else {
            None
        };
        let (done, rx) = oneshot::channel();
        let job = Job::Append {
            batch: batch.clone(),
            snapshot,
            done,
        };
        // The writer takes one job at a time and we keep one write in flight, so the
        // channel has room; if the writer is gone, the failure shows up on `rx`.
        let _ = self.jobs.try_send(job);
        self.inflight = Some(Inflight {
            batch,
            pending: std::mem::replace(&mut self.pending, Vec::with_capacity(n)),
            started: monotonic_now(),
            done: rx,
        });
        self.policy.write_started();
    }

    /// Starts a snapshot of the book as of the end of the batch being handed to the
    /// writer, unless the previous one is still in flight (then it stays due).
    fn start_snapshot(&mut self, batch_last_seq: u64, now: Instant) -> Option<PendingSnapshot> {
        // Every applied command is in the batch being written, so the copy is the book as
        // of that batch's end, which is what the writer's rule relies on.
        debug_assert_eq!(self.market.last_seq(), batch_last_seq);
        let pending = self.snapshots.start(&self.market)?;
        self.metrics.snapshots_started.inc();
        self.policy.snapshot_started(now);
        Some(pending)
    }

    async fn write_finished(&mut self, res: Result<(), StoreError>) -> Result<(), StoreError> {
        let Some(inflight) = self.inflight.take() else {
            return Ok(());
        };
        self.policy.write_finished(res.is_ok());
        match res {
            Ok(()) => {
                self.metrics
                    .batch_size
                    .observe(inflight.pending.len() as u64);
                self.metrics.write_latency_us.observe(
                    monotonic_now()
                        .saturating_duration_since(inflight.started)
                        .as_micros() as u64,
                );
                self.deliver(inflight);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; rebuilding from the journal");
                // What was applied after the batch in flight was never sent: nothing
                // happened to it. The batch itself may have landed all the same (a journal
                // that applied it and failed before answering), so its replies wait until
                // the journal tells: `unavailable` must mean that nothing happened.
                self.fail_pending();
                self.recover_after_failure(e, inflight).await
            }
        }
    }

    /// Answers `unavailable` to every command applied but not yet sent to the journal,
    /// and drops them from memory.
    fn fail_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.batch = Batch::default();
        self.fail(pending);
    }

    fn fail(&self, pending: Vec<Pending>) {
        for p in pending {
            if let Some(reply) = p.reply {
                self.metrics.unavailable.inc();
                reply.send(Err(Unavailable));
            }
        }
    }

    /// Answers the commands of a batch whose write failed, once the journal has told
    /// whether it holds the batch: as durable (published, then replied to) if it does,
    /// `unavailable` if it does not.
    fn settle_held(&mut self, held: Inflight, landed: bool) {
        if !landed {
            self.fail(held.pending);
            return;
        }
        tracing::info!(
            first = held.batch.first_seq(),
            last = held.batch.last_seq(),
            "the failed write had landed; answering its commands as durable"
        );
        self.deliver(held);
    }

    /// A durable batch: publishes each command's events and answers it, in order; the
    /// updates and the results of the whole batch leave together at the flush.
    fn deliver(&mut self, durable: Inflight) {
        self.metrics.commands.add(durable.pending.len() as u64);
        self.metrics.batches.inc();
        for (entry, p) in durable.batch.entries.iter().zip(durable.pending) {
            self.publisher.publish(entry, &p.events);
            if let Some(reply) = p.reply {
                reply.send(Ok(Applied {
                    seq: entry.seq,
                    events: p.events,
                }));
            }
        }
        self.publisher.flush();
    }

    /// After a fatal journal error (this engine lost the journal to another): whether the
    /// batch in flight landed is read back from the journal, if it still answers, so its
    /// commands hear the truth before the engine stops. If it does not answer, they are
    /// told `unavailable`; the engine that owns the journal now answers a retry with the
    /// same `bid_id` from what the journal holds.
    async fn settle_held_after_loss(&mut self, held: Inflight) {
        let (done, rx) = oneshot::channel();
        let job = Job::Holds {
            batch: held.batch.clone(),
            done,
        };
        let landed = match self.jobs.send(job).await {
            Ok(()) => matches!(rx.await, Ok(Ok(true))),
            Err(_) => false,
        };
        if landed {
            // Published and answered, but the views are not reset: the engine stops.
            self.settle_held(held, true);
        } else {
            self.fail(held.pending);
        }
    }

    async fn recover_after_failure(
        &mut self,
        first: StoreError,
        held: Inflight,
    ) -> Result<(), StoreError> {
        self.metrics.ready.set(0);
        self.metrics.recoveries.inc();
        if matches!(first, StoreError::Fenced(_)) {
            self.settle_held_after_loss(held).await;
            return Err(first);
        }
        loop {
            let wait = self.policy.retry_wait();
            // Whatever arrives meanwhile is answered at once rather than left to age.
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    Some(req) = self.rx.recv() => {
                        self.metrics.unavailable.inc();
                        req.reply.send(Err(Unavailable));
                    }
                }
            }
            match recover_via(&self.jobs).await {
                Ok(Recovered {
                    market, replayed, ..
                }) => {
                    tracing::info!(seq = market.last_seq(), "journal back; market rebuilt");
                    // One engine writes this journal (the lease, the lock), so the batch
                    // landed exactly when the rebuilt market has its last seq; its entries
                    // are then the ones applied here, and so are their events.
                    let landed = market.last_seq() >= held.batch.last_seq();
                    self.market = market;
                    self.policy.recovered(self.market.last_now(), replayed);
                    self.after_recovery();
                    // After the reset: the views already hold the batch if it landed, and
                    // publishing it again only sends its updates to subscribers.
                    self.settle_held(held, landed);
                    return Ok(());
                }
                Err(e @ StoreError::Fenced(_)) | Err(e @ StoreError::Corrupt(_)) => {
                    self.settle_held_after_loss(held).await;
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "journal still unavailable");
                    self.policy.retry_failed();
                }
            }
        }
    }

    /// After the book was rebuilt: tell the publisher, journal new rules if the
    /// configuration changed, and give lots whose close passed during the outage their
    /// grace period (both as journaled commands, so replays see them).
    fn after_recovery(&mut self) {
        self.publisher.reset(&self.market);
        self.metrics.ready.set(1);
        if self.market.rules() != self.rules {
            let now = self.now_ms();
            self.apply(now, Command::Configure(Box::new(self.rules.clone())), None);
        }
        let now = self.now_ms();
        if self.policy.timer_due(self.market.next_deadline(), now) {
            self.apply(now, auction::Command::Resume.into(), None);
        }
        if self.policy.should_write() {
            self.start_write();
        }
    }
}
