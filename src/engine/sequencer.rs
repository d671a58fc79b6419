//! The sequencer task, the journal writer task, and the handle clients submit through.
//!
//! Snapshots stay off both tasks' critical paths. The sequencer only copies the book at
//! the end of a batch; a blocking thread serializes the copy; the writer saves the bytes
//! after it has acknowledged that batch, and only if no append failed in between — after
//! a failure the book is rebuilt from the journal and the lost seqs are handed out again,
//! so an older copy may hold commands the journal never got. The save goes a part at a
//! time (`Journal::save_snapshot_part`) with appends in between, so an append waits for
//! one part at most. One snapshot at a time: a due one waits while the previous is still
//! being serialized or saved.

use crate::auction::{Book, Command, Event, Rules};
use crate::metrics::{Counter, Gauge, Histogram, BATCH_SIZE, LATENCY_US};
use crate::store::{Batch, Entry, Journal, OutcomeRecord, Snapshot, StoreError};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::background;
use super::recovery::recover;

/// Engine settings (see `[engine]` in config/default.toml for the reasons behind each).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Bound of the command queue in front of the sequencer.
    pub queue_capacity: usize,
    /// Most commands in one journal write.
    pub max_batch: usize,
    /// How long a command may wait to be sequenced before it is answered `unavailable`.
    pub max_wait: Duration,
    /// A journal write slower than this counts as failed.
    pub append_timeout: Duration,
    /// Take a snapshot after this many commands ...
    pub snapshot_every_commands: u64,
    /// ... or this much time, whichever comes first (0 commands disables snapshots).
    pub snapshot_every: Duration,
    /// First wait before retrying a failed journal; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait between journal retries.
    pub retry_max: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_batch: 4_096,
            max_wait: Duration::from_secs(2),
            append_timeout: Duration::from_secs(2),
            snapshot_every_commands: 1_000_000,
            snapshot_every: Duration::from_secs(300),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
        }
    }
}

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

/// Receives every durable command, in order, after its batch is durable.
pub trait Publisher: Send + 'static {
    /// The durable state after (re)covery: rebuild every view from it.
    fn reset(&mut self, book: &Book);
    /// One durable command and its events.
    fn publish(&mut self, entry: &Entry, events: &[Event]);
    /// A durable batch was published and its commands answered: send what was queued.
    fn flush(&mut self) {}
}

/// Does nothing; for tools and tests that only want replies.
impl Publisher for () {
    fn reset(&mut self, _: &Book) {}
    fn publish(&mut self, _: &Entry, _: &[Event]) {}
}

/// Two publishers, called in order: the first sees each entry before the second does.
impl<A: Publisher, B: Publisher> Publisher for (A, B) {
    fn reset(&mut self, book: &Book) {
        self.0.reset(book);
        self.1.reset(book);
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
    fn reset(&mut self, book: &Book) {
        if let Some(p) = self {
            p.reset(book);
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

/// The engine's measurements.
#[derive(Debug)]
pub struct EngineMetrics {
    /// Commands made durable.
    pub commands: Counter,
    /// Journal writes made durable.
    pub batches: Counter,
    /// Commands per journal write.
    pub batch_size: Histogram,
    /// Journal write latency (µs).
    pub write_latency_us: Histogram,
    /// Commands answered `unavailable`.
    pub unavailable: Counter,
    /// Journal failures that forced a rebuild from the journal.
    pub recoveries: Counter,
    /// 1 while the journal is usable, 0 while recovering.
    pub ready: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            commands: Counter::default(),
            batches: Counter::default(),
            batch_size: Histogram::new(BATCH_SIZE),
            write_latency_us: Histogram::new(LATENCY_US),
            unavailable: Counter::default(),
            recoveries: Counter::default(),
            ready: Gauge::default(),
        }
    }
}

/// Where a command's result goes once it is durable, or known never to be.
enum Reply {
    /// A `submit` waiting on its own task.
    Wait(oneshot::Sender<Result<Applied, Unavailable>>),
    /// A `submit_then` callback, called on the engine's task.
    Call(Callback),
}

impl Reply {
    fn send(self, result: Result<Applied, Unavailable>) {
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
struct Callback(Option<Box<ThenFn>>);

/// What `submit_then` calls.
type ThenFn = dyn FnOnce(Result<Applied, Unavailable>) + Send;

impl Drop for Callback {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Unavailable));
        }
    }
}

struct Request {
    command: Command,
    deadline: Instant,
    reply: Reply,
}

/// Submits commands to the engine. Cheap to clone; the engine stops once every handle is
/// dropped and its last batch is durable.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
    stop: Arc<watch::Sender<bool>>,
    pings: mpsc::Sender<oneshot::Sender<Result<(), StoreError>>>,
    max_wait: Duration,
    metrics: Arc<EngineMetrics>,
}

impl EngineHandle {
    /// Sequences `command`, waits until it is durable, and returns what it did — or
    /// `Unavailable` if that could not happen within the configured wait (then nothing
    /// happened: retrying is safe).
    pub async fn submit(&self, command: Command) -> Result<Applied, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(command, Reply::Wait(reply)).await;
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
    pub async fn submit_then<F>(&self, command: Command, then: F)
    where
        F: FnOnce(Result<Applied, Unavailable>) + Send + 'static,
    {
        self.enqueue(command, Reply::Call(Callback(Some(Box::new(then)))))
            .await;
    }

    async fn enqueue(&self, command: Command, reply: Reply) {
        let deadline = Instant::now() + self.max_wait;
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

/// A snapshot of the book as of the end of one batch, being serialized off the engine's
/// tasks. Resolves once the bytes are ready; an error means there will be none (the
/// serialization failed, or gave up because nobody was waiting any more).
type PendingSnapshot = oneshot::Receiver<Serialized>;

/// A serialized book on its way to the journal.
pub(super) struct Serialized {
    snapshot: Snapshot,
    /// When the sequencer took the copy, for the log line.
    started: Instant,
    /// The engine's one snapshot permit, released when this is saved or dropped: at most
    /// one book copy and one set of snapshot bytes (77 MiB for a million receipts) are
    /// alive because of snapshots.
    _permit: OwnedSemaphorePermit,
}

/// Work for the task that owns the journal.
enum Job {
    Append {
        batch: Arc<Batch>,
        /// The book as of `batch.last_seq()`. Saved only if this append succeeds and no
        /// later one fails before the bytes are ready: only then is every entry it covers
        /// durable *and* the same as the entries the book applied (after a failure the
        /// sequencer rebuilds from the journal and reuses the seqs that were lost).
        snapshot: Option<PendingSnapshot>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Recover {
        done: oneshot::Sender<Result<Book, StoreError>>,
    },
}

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
    let writer = tokio::spawn(writer(journal, job_rx, ping_rx, config.append_timeout));
    let book = recover_via(&jobs).await?;
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let (stop, stop_rx) = watch::channel(false);
    let mut seq = Sequencer {
        clock: book.last_now(),
        book,
        rules,
        publisher,
        jobs,
        rx,
        pending: Vec::new(),
        batch: Batch::default(),
        inflight: None,
        since_snapshot: 0,
        last_snapshot: Instant::now(),
        snapshot_permit: Arc::new(Semaphore::new(1)),
        metrics: metrics.clone(),
        config: config.clone(),
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

async fn recover_via(jobs: &mpsc::Sender<Job>) -> Result<Book, StoreError> {
    let (done, rx) = oneshot::channel();
    jobs.send(Job::Recover { done })
        .await
        .map_err(|_| StoreError::Unavailable("journal writer stopped".into()))?;
    rx.await
        .map_err(|_| StoreError::Unavailable("journal writer stopped".into()))?
}

/// Owns the journal: appends batches in order, saves snapshots once the batch they cover
/// is durable and acknowledged, and rebuilds the book on request.
async fn writer<J: Journal>(
    mut journal: J,
    mut jobs: mpsc::Receiver<Job>,
    mut pings: mpsc::Receiver<oneshot::Sender<Result<(), StoreError>>>,
    timeout: Duration,
) {
    // A snapshot whose batch is durable, still being serialized, and then one being saved.
    // At most one of the two exists (the sequencer's permit travels with the snapshot).
    let mut snapshot: Option<PendingSnapshot> = None;
    let mut saving: Option<Saving> = None;
    loop {
        let job = tokio::select! {
            biased;
            // First, so a steady stream of appends cannot starve it. The save never holds
            // up the acknowledgement of the batch it covers: that was sent before.
            ready = async { snapshot.as_mut().expect("guarded").await }, if snapshot.is_some() => {
                snapshot = None;
                // `Err`: no bytes are coming (the serializer logged why).
                let Ok(ready) = ready else { continue };
                if jobs.is_closed() {
                    // Shutting down: the sequencer has seen its last append durable and
                    // dropped its sender. Saving 77 MiB now would only delay `close`, and
                    // shutdown runs to a deadline past which the journal is left unclosed
                    // (a Redis lease then blocks the restart for its TTL). Without it the
                    // restart replays a longer tail from the previous snapshot.
                    tracing::info!(seq = ready.snapshot.seq, "shutting down; snapshot dropped");
                    continue;
                }
                saving = Some(Saving::new(ready));
                continue;
            }
            job = jobs.recv() => match job {
                Some(job) => job,
                // Shutting down: an unfinished save is dropped with `saving` (see above);
                // the journal still holds the previous snapshot.
                None => break,
            },
            Some(done) = pings.recv() => {
                let res = match tokio::time::timeout(timeout, journal.ping()).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Unavailable("journal ping timed out".into())),
                };
                let _ = done.send(res);
                continue;
            }
            // Last: when idle, the next part. An append that arrives meanwhile waits for one
            // part, not for the whole book (77 MiB on Redis held appends up for about a
            // second when it was saved in one call).
            () = std::future::ready(()), if saving.is_some() => {
                let Some(current) = saving.take() else { continue };
                saving = current.save_next_part(&mut journal).await;
                continue;
            }
        };
        match job {
            Job::Append {
                batch,
                snapshot: covered,
                done,
            } => {
                let res = match tokio::time::timeout(timeout, journal.append(&batch)).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Unavailable(format!(
                        "journal write took longer than {timeout:?}"
                    ))),
                };
                if res.is_ok() {
                    if covered.is_some() {
                        snapshot = covered;
                    }
                } else {
                    // The sequencer will answer `unavailable`, rebuild the book from the
                    // journal and hand out the lost seqs again, to other commands: a book
                    // copied before this moment must never be saved. (One whose own batch
                    // did land would still be right, but keeping that apart is not worth a
                    // snapshot that only shortens a replay.) Dropping the receiver also
                    // stops its serialization.
                    snapshot = None;
                    saving = None;
                }
                let _ = done.send(res);
                // One part after every append while a save is under way, even when the
                // next append is already waiting: a busy engine still finishes its
                // snapshot, and an append still waits for one part at most.
                if let Some(current) = saving.take() {
                    saving = current.save_next_part(&mut journal).await;
                }
            }
            Job::Recover { done } => {
                // Only ever after a failed append, which dropped any snapshot already.
                snapshot = None;
                saving = None;
                let res = recover(&mut journal, true, &mut ()).await.map(|r| r.book);
                let _ = done.send(res);
            }
        }
    }
    // The sequencer is gone (shutdown, or a fatal error): release the journal so another
    // engine, or this process restarting, can open it at once. A snapshot still being
    // serialized is dropped with `snapshot` (see above for why), which stops the
    // serializer at its next check rather than holding the runtime's shutdown.
    drop(snapshot);
    drop(saving);
    if let Err(e) = journal.close().await {
        tracing::warn!(error = %e, "journal did not close cleanly");
    }
}

/// A serialized snapshot being saved a part at a time, between appends.
struct Saving {
    ready: Serialized,
    /// Where the next part starts.
    next: usize,
    /// How long the serialization took, for the log line.
    serialized: Duration,
    since: Instant,
    parts: u32,
}

impl Saving {
    fn new(ready: Serialized) -> Self {
        Self {
            serialized: ready.started.elapsed(),
            ready,
            next: 0,
            since: Instant::now(),
            parts: 0,
        }
    }

    /// Saves the next part; `Some` while parts remain. A failed snapshot costs only
    /// replay time at the next start, so it is logged and dropped.
    async fn save_next_part<J: Journal>(mut self, journal: &mut J) -> Option<Self> {
        let seq = self.ready.snapshot.seq;
        let bytes = self.ready.snapshot.bytes.len();
        match journal
            .save_snapshot_part(&self.ready.snapshot, self.next)
            .await
        {
            Ok(next) if next >= bytes => {
                tracing::info!(
                    seq,
                    bytes,
                    parts = self.parts + 1,
                    serialize_ms = self.serialized.as_millis() as u64,
                    save_ms = self.since.elapsed().as_millis() as u64,
                    "snapshot saved"
                );
                None
            }
            Ok(next) if next > self.next => {
                self.next = next;
                self.parts += 1;
                Some(self)
            }
            Ok(next) => {
                tracing::error!(
                    seq,
                    from = self.next,
                    next,
                    "snapshot save made no progress"
                );
                None
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "snapshot not saved");
                None
            }
        }
    }
}

/// Bytes the serializer writes between two checks that its snapshot is still wanted.
const ABANDON_CHECK_BYTES: usize = 1 << 20;

/// Serializes `book` (on the snapshot thread, at background priority: a million receipts
/// take about half a second, sorted so the bytes do not depend on hash order) and sends
/// the result to `to`.
/// Gives up early once `to` is closed, i.e. the writer dropped the snapshot after a failed
/// append or at shutdown, so an unwanted snapshot does not keep a core busy.
fn serialize_snapshot(
    book: Book,
    started: Instant,
    permit: OwnedSemaphorePermit,
    to: oneshot::Sender<Serialized>,
) {
    let seq = book.last_seq();
    let mut out = Abandonable::new(&to);
    let res = rmp_serde::encode::write(&mut out, &book);
    let bytes = out.bytes;
    // The copy is freed here, before the bytes travel on, so the two are not both held
    // while the snapshot waits for the writer.
    drop(book);
    match res {
        Ok(()) => {
            let _ = to.send(Serialized {
                snapshot: Snapshot { seq, bytes },
                started,
                _permit: permit,
            });
        }
        Err(_) if to.is_closed() => tracing::debug!(seq, "snapshot no longer wanted"),
        Err(e) => tracing::error!(seq, error = %e, "book did not serialize; no snapshot"),
    }
}

/// The serializer's output: a `Vec` that fails the write once nobody wants the bytes.
pub(super) struct Abandonable<'a> {
    bytes: Vec<u8>,
    wanted: &'a oneshot::Sender<Serialized>,
    /// Length at which to look at `wanted` again.
    next_check: usize,
}

impl<'a> Abandonable<'a> {
    pub(super) fn new(wanted: &'a oneshot::Sender<Serialized>) -> Self {
        Self {
            bytes: Vec::new(),
            wanted,
            next_check: 0,
        }
    }
}

impl Write for Abandonable<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() >= self.next_check {
            if self.wanted.is_closed() {
                return Err(io::Error::other("snapshot no longer wanted"));
            }
            self.next_check = self.bytes.len() + ABANDON_CHECK_BYTES;
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
    book: Book,
    rules: Rules,
    publisher: P,
    jobs: mpsc::Sender<Job>,
    rx: mpsc::Receiver<Request>,
    /// Applied, not yet handed to the writer; parallel to `batch.entries`.
    pending: Vec<Pending>,
    batch: Batch,
    inflight: Option<Inflight>,
    /// Latest clock reading: the engine's time never runs backwards.
    clock: u64,
    /// Commands applied since the last snapshot was started.
    since_snapshot: u64,
    /// When the last snapshot was started.
    last_snapshot: Instant,
    /// One permit: held from the book copy until its bytes are saved or dropped.
    snapshot_permit: Arc<Semaphore>,
    metrics: Arc<EngineMetrics>,
    config: EngineConfig,
    /// Reused buffer for `Book::apply_into`.
    events: Vec<Event>,
    /// Becomes true when the engine is asked to stop.
    stop: watch::Receiver<bool>,
}

impl<P: Publisher> Sequencer<P> {
    async fn run(mut self) -> Result<(), StoreError> {
        let mut open = true;
        loop {
            let room = self.pending.len() < self.config.max_batch;
            let timer = self.book.next_deadline().map(|t| self.sleep_until_ms(t));
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
                        while self.pending.len() < self.config.max_batch {
                            match self.rx.try_recv() {
                                Ok(req) => self.sequence(req),
                                Err(_) => break,
                            }
                        }
                    }
                    None => open = false,
                },
                () = async { timer.expect("guarded").await }, if timer.is_some() && room => {
                    let now = self.now_ms();
                    self.apply(now, Command::Tick, None);
                }
                _ = self.stop.changed(), if open => {
                    // Refuse new sends; what is queued is still drained below.
                    self.rx.close();
                }
            }
            if self.inflight.is_none() && !self.pending.is_empty() {
                self.start_write();
            }
            if !open && self.inflight.is_none() && self.pending.is_empty() {
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

    fn sleep_until_ms(&self, deadline_ms: u64) -> tokio::time::Sleep {
        let wait = deadline_ms.saturating_sub(wall_ms());
        tokio::time::sleep(Duration::from_millis(wait))
    }

    fn now_ms(&mut self) -> u64 {
        self.clock = self.clock.max(wall_ms());
        self.clock
    }

    fn sequence(&mut self, req: Request) {
        if Instant::now() > req.deadline {
            self.metrics.unavailable.inc();
            req.reply.send(Err(Unavailable));
            return;
        }
        let now = self.now_ms();
        // Due timers run first, so a bid is judged against a book that is up to date.
        if self.book.next_deadline().is_some_and(|t| t <= now) {
            self.apply(now, Command::Tick, None);
        }
        self.apply(now, req.command, Some(req.reply));
    }

    fn apply(&mut self, now: u64, command: Command, reply: Option<Reply>) {
        let seq = self.book.last_seq() + 1;
        let entry = Entry {
            seq,
            now_ms: now,
            command: command.clone(),
        };
        self.events.clear();
        self.book.apply_into(seq, now, command, &mut self.events);
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
        self.since_snapshot += 1;
    }

    fn start_write(&mut self) {
        // The next batch is sized like this one: under steady load it is about as long,
        // and filling it then moves no entry twice (growth by doubling copied each batch
        // about once over, 2% of the server's samples at 80,000 bids/s).
        let n = self.pending.len();
        let next = Batch {
            entries: Vec::with_capacity(n),
            outcomes: Vec::new(),
        };
        let batch = Arc::new(std::mem::replace(&mut self.batch, next));
        let snapshot = if self.snapshot_due() {
            self.start_snapshot(batch.last_seq())
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
            started: Instant::now(),
            done: rx,
        });
    }

    fn snapshot_due(&self) -> bool {
        self.config.snapshot_every_commands > 0
            && (self.since_snapshot >= self.config.snapshot_every_commands
                || self.last_snapshot.elapsed() >= self.config.snapshot_every)
    }

    /// Copies the book (all it costs this task; receipts are shared copy-on-write, so a
    /// million of them no longer make the copy slow) and serializes the copy on a blocking
    /// thread. `None` if
    /// the previous snapshot is still being serialized or saved: this one is deferred, not
    /// skipped, as `since_snapshot` keeps counting and the next write tries again.
    fn start_snapshot(&mut self, batch_last_seq: u64) -> Option<PendingSnapshot> {
        let Ok(permit) = self.snapshot_permit.clone().try_acquire_owned() else {
            tracing::debug!("previous snapshot still in flight; deferred");
            return None;
        };
        // Every applied command is in the batch being written, so the copy is the book as
        // of that batch's end, which is what the writer's rule relies on.
        debug_assert_eq!(self.book.last_seq(), batch_last_seq);
        self.since_snapshot = 0;
        self.last_snapshot = Instant::now();
        let started = Instant::now();
        let book = self.book.clone();
        let (to, pending) = oneshot::channel();
        // Not awaited: the writer takes the result through `pending`. On its own thread at
        // background priority, not tokio's blocking pool: lowering a pooled thread's
        // priority would stay with the thread, and raising it back needs privileges. A
        // thread that cannot start drops `to`, which the writer reads as "none".
        let spawned = background::spawn("gavel-snapshot", move || {
            serialize_snapshot(book, started, permit, to)
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the snapshot thread; snapshot skipped");
        }
        Some(pending)
    }

    async fn write_finished(&mut self, res: Result<(), StoreError>) -> Result<(), StoreError> {
        let Some(inflight) = self.inflight.take() else {
            return Ok(());
        };
        match res {
            Ok(()) => {
                let n = inflight.pending.len() as u64;
                self.metrics.commands.add(n);
                self.metrics.batches.inc();
                self.metrics.batch_size.observe(n);
                self.metrics
                    .write_latency_us
                    .observe(inflight.started.elapsed().as_micros() as u64);
                for (entry, p) in inflight.batch.entries.iter().zip(inflight.pending) {
                    self.publisher.publish(entry, &p.events);
                    if let Some(reply) = p.reply {
                        reply.send(Ok(Applied {
                            seq: entry.seq,
                            events: p.events,
                        }));
                    }
                }
                // The updates and the results of the whole batch leave together.
                self.publisher.flush();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; rebuilding from the journal");
                self.fail_all(inflight.pending);
                self.recover_after_failure(e).await
            }
        }
    }

    /// Answers `unavailable` to everything not durable and drops it from memory.
    fn fail_all(&mut self, inflight: Vec<Pending>) {
        let pending = std::mem::take(&mut self.pending);
        self.batch = Batch::default();
        for p in inflight.into_iter().chain(pending) {
            if let Some(reply) = p.reply {
                self.metrics.unavailable.inc();
                reply.send(Err(Unavailable));
            }
        }
    }

    async fn recover_after_failure(&mut self, first: StoreError) -> Result<(), StoreError> {
        self.metrics.ready.set(0);
        self.metrics.recoveries.inc();
        if matches!(first, StoreError::Fenced(_)) {
            return Err(first);
        }
        let mut wait = self.config.retry_min;
        loop {
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
                Ok(book) => {
                    tracing::info!(seq = book.last_seq(), "journal back; book rebuilt");
                    self.book = book;
                    self.clock = self.clock.max(self.book.last_now());
                    self.after_recovery();
                    return Ok(());
                }
                Err(e @ StoreError::Fenced(_)) | Err(e @ StoreError::Corrupt(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "journal still unavailable");
                    wait = (wait * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// After the book was rebuilt: tell the publisher, journal new rules if the
    /// configuration changed, and give lots whose close passed during the outage their
    /// grace period (both as journaled commands, so replays see them).
    fn after_recovery(&mut self) {
        self.publisher.reset(&self.book);
        self.metrics.ready.set(1);
        if *self.book.rules() != self.rules {
            let now = self.now_ms();
            self.apply(now, Command::Configure(Box::new(self.rules.clone())), None);
        }
        let now = self.now_ms();
        if self.book.next_deadline().is_some_and(|t| t <= now) {
            self.apply(now, Command::Resume, None);
        }
        if !self.pending.is_empty() {
            self.start_write();
        }
    }
}

/// Milliseconds since the Unix epoch by the host clock (the engine's only clock).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Renders the engine's measurements in Prometheus text.
pub fn render_metrics(m: &EngineMetrics, out: &mut String) {
    use crate::metrics::render_value;
    render_value(
        out,
        "gavel_engine_commands_total",
        "counter",
        "Commands made durable.",
        m.commands.get(),
    );
    render_value(
        out,
        "gavel_journal_batches_total",
        "counter",
        "Journal writes made durable.",
        m.batches.get(),
    );
    m.batch_size.render(
        out,
        "gavel_journal_batch_commands",
        "Commands per journal write.",
        "",
        1.0,
    );
    m.write_latency_us.render(
        out,
        "gavel_journal_write_seconds",
        "Journal write latency.",
        "",
        1e6,
    );
    render_value(
        out,
        "gavel_engine_unavailable_total",
        "counter",
        "Commands answered unavailable.",
        m.unavailable.get(),
    );
    render_value(
        out,
        "gavel_engine_recoveries_total",
        "counter",
        "Rebuilds from the journal after a failed write.",
        m.recoveries.get(),
    );
    render_value(
        out,
        "gavel_engine_ready",
        "gauge",
        "1 while the journal is usable.",
        m.ready.get(),
    );
}

#[cfg(test)]
mod reply_tests {
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
