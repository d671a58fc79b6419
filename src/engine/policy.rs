//! The engine's rulebook: every decision the sequencing loop makes about time, batching,
//! snapshots and retries, as a plain struct with no I/O.
//!
//! Like quinn-proto's `Connection`, it gets no timestamps from the operating system: each
//! question comes with the time as an argument (an `Instant` for monotonic time, ms since
//! the Unix epoch for wall time), and the loop tells it what happened (`applied`,
//! `write_started`, `write_finished`, ...). The tokio loop in `sequencer.rs` asks it and
//! does the I/O; the rules themselves are tested here on a virtual clock, with no runtime
//! and no sleeping.
//!
//! Must not: read a clock, touch a channel, the journal or the book, or hold a command.

use super::EngineConfig;
use std::time::{Duration, Instant};

/// What the sequencing loop does next, given the time and what has happened so far.
#[derive(Debug)]
pub(super) struct Policy {
    /// Most commands in one journal write.
    max_batch: usize,
    /// A snapshot after this many commands (0 disables snapshots) ...
    snapshot_every_commands: u64,
    /// ... or this much time since the last one, whichever comes first.
    snapshot_every: Duration,
    /// A recovery that replayed this many commands makes a snapshot due (0: never).
    snapshot_after_replay: u64,
    /// First wait before retrying a failed journal.
    retry_min: Duration,
    /// Longest wait between journal retries.
    retry_max: Duration,
    /// The engine's clock (ms since the Unix epoch): the latest wall-clock reading it was
    /// given, and never below the journal's last stamp. The book ignores a `now_ms` below
    /// one it has seen, so a clock that ran backwards would freeze its time anyway; keeping
    /// the stamps themselves monotonic makes the journal say the same thing.
    clock: u64,
    /// Commands applied and collecting for the next write.
    pending: usize,
    /// Whether a write is in flight. At most one is: the next batch collects meanwhile.
    in_flight: bool,
    /// Whether commands may still arrive: false once the queue has ended.
    open: bool,
    /// Commands applied since the last snapshot was started.
    since_snapshot: u64,
    /// When the last snapshot was started (or the engine started).
    last_snapshot: Instant,
    /// How long to wait before the next attempt to rebuild from the journal.
    retry_wait: Duration,
}

impl Policy {
    /// A policy for an engine whose journal's last stamp is `journal_now_ms`, started at
    /// `now`.
    pub(super) fn new(config: &EngineConfig, journal_now_ms: u64, now: Instant) -> Self {
        Self {
            max_batch: config.max_batch,
            snapshot_every_commands: config.snapshot_every_commands,
            snapshot_every: config.snapshot_every,
            snapshot_after_replay: config.snapshot_after_replay_commands,
            retry_min: config.retry_min,
            retry_max: config.retry_max,
            clock: journal_now_ms,
            pending: 0,
            in_flight: false,
            open: true,
            since_snapshot: 0,
            last_snapshot: now,
            retry_wait: config.retry_min,
        }
    }

    // --- The clock -------------------------------------------------------------------

    /// The time to stamp a command with, given the wall clock reads `wall_ms`: that
    /// reading, unless the engine has already stamped a later one.
    pub(super) fn now_ms(&mut self, wall_ms: u64) -> u64 {
        self.clock = self.clock.max(wall_ms);
        self.clock
    }

    // --- Timers ----------------------------------------------------------------------

    /// How long to sleep until the book's next deadline `deadline_ms`, by the wall clock
    /// reading `wall_ms` (zero once it has passed).
    pub(super) fn timer_in(&self, deadline_ms: u64, wall_ms: u64) -> Duration {
        Duration::from_millis(deadline_ms.saturating_sub(wall_ms))
    }

    /// Whether the book's next deadline has come at `now_ms`: then a `Tick` runs before
    /// the next command, so a bid is judged against a book that is up to date (and after
    /// a recovery, a `Resume` gives the lots whose close passed during the outage their
    /// grace period).
    pub(super) fn timer_due(&self, next_deadline: Option<u64>, now_ms: u64) -> bool {
        next_deadline.is_some_and(|t| t <= now_ms)
    }

    // --- The queue and the batch -----------------------------------------------------

    /// Whether the loop may take another command (or fire a timer) into the batch that is
    /// collecting: it holds fewer than `max_batch`, which bounds the size of one write.
    pub(super) fn has_room(&self) -> bool {
        self.pending < self.max_batch
    }

    /// Whether a command whose wait ends at `deadline` has expired at `now`: then it is
    /// answered `unavailable` instead of being sequenced, and nothing happens.
    pub(super) fn expired(&self, deadline: Instant, now: Instant) -> bool {
        now > deadline
    }

    /// A command (a client's, a timer's or recovery's) was applied to the book and joined
    /// the collecting batch.
    pub(super) fn applied(&mut self) {
        self.pending += 1;
        self.since_snapshot += 1;
    }

    /// Commands applied and not yet handed to the journal.
    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    /// Whether to hand the collecting batch to the journal now: nothing is in flight and
    /// something is pending. While a write is in flight, new commands collect for the
    /// next one (group commit).
    pub(super) fn should_write(&self) -> bool {
        !self.in_flight && self.pending > 0
    }

    /// The collecting batch was handed to the journal.
    pub(super) fn write_started(&mut self) {
        debug_assert!(!self.in_flight, "one write in flight at a time");
        self.pending = 0;
        self.in_flight = true;
    }

    /// The write in flight finished. A failed one costs everything not yet durable — the
    /// batch written and the one collecting — which is answered `unavailable`.
    pub(super) fn write_finished(&mut self, durable: bool) {
        self.in_flight = false;
        if !durable {
            self.pending = 0;
        }
    }

    /// Whether commands may still arrive.
    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    /// The command queue has ended: it was closed and drained, or every handle is gone.
    pub(super) fn queue_ended(&mut self) {
        self.open = false;
    }

    /// Whether the loop may finish: no more commands can arrive, nothing is in flight and
    /// nothing is pending, so everything ever applied is durable.
    pub(super) fn may_finish(&self) -> bool {
        !self.open && !self.in_flight && self.pending == 0
    }

    // --- Snapshots -------------------------------------------------------------------

    /// Whether the write starting at `now` should carry a snapshot: enough commands since
    /// the last one, or enough time; never when `snapshot_every_commands` is 0.
    pub(super) fn snapshot_due(&self, now: Instant) -> bool {
        self.snapshot_every_commands > 0
            && (self.since_snapshot >= self.snapshot_every_commands
                || now.saturating_duration_since(self.last_snapshot) >= self.snapshot_every)
    }

    /// A snapshot was started at `now`. A due one that could not start (the previous one
    /// still in flight) is not reported: it stays due, and the next write tries again.
    pub(super) fn snapshot_started(&mut self, now: Instant) {
        self.since_snapshot = 0;
        self.last_snapshot = now;
    }

    // --- Recovery --------------------------------------------------------------------

    /// How long to wait before the next attempt to rebuild from the journal.
    pub(super) fn retry_wait(&self) -> Duration {
        self.retry_wait
    }

    /// An attempt to rebuild from the journal failed: the next wait doubles, up to
    /// `retry_max`.
    pub(super) fn retry_failed(&mut self) {
        self.retry_wait = (self.retry_wait * 2).min(self.retry_max);
    }

    /// The book was rebuilt from the journal, whose last stamp is `journal_now_ms`, by
    /// replaying `replayed` commands on top of its snapshot: the clock does not go below
    /// that stamp, the next failure starts again from `retry_min`, and a long replay makes
    /// a snapshot due (with snapshots enabled), so the next restart replays less.
    pub(super) fn recovered(&mut self, journal_now_ms: u64, replayed: u64) {
        self.clock = self.clock.max(journal_now_ms);
        self.retry_wait = self.retry_min;
        if self.snapshot_after_replay > 0 && replayed >= self.snapshot_after_replay {
            self.since_snapshot = self.since_snapshot.max(self.snapshot_every_commands);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rules, one table per decision, on a virtual clock: `at(ms)` is a fixed origin
    //! plus `ms`, and wall-clock readings are plain numbers.

    use super::*;

    /// The virtual clock's origin: any `Instant` serves, only offsets from it matter.
    fn origin() -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    /// `ms` milliseconds after the origin on the virtual monotonic clock.
    fn at(ms: u64) -> Instant {
        origin() + Duration::from_millis(ms)
    }

    fn config() -> EngineConfig {
        EngineConfig {
            max_batch: 3,
            snapshot_every_commands: 4,
            snapshot_every: Duration::from_millis(1_000),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(300),
            ..EngineConfig::default()
        }
    }

    fn policy(config: &EngineConfig, journal_now_ms: u64) -> Policy {
        Policy::new(config, journal_now_ms, at(0))
    }

    #[test]
    fn the_engine_clock_follows_the_wall_clock_and_never_runs_backwards() {
        // (rule, the journal's last stamp, wall readings in turn, the stamps they give)
        let cases: &[(&str, u64, &[u64], &[u64])] = &[
            (
                "a command is stamped with the wall clock's reading",
                1_000,
                &[1_005, 1_010],
                &[1_005, 1_010],
            ),
            (
                "a wall clock behind the journal's last stamp gives that stamp",
                1_000,
                &[990, 999, 1_001],
                &[1_000, 1_000, 1_001],
            ),
            (
                "a wall clock stepping back gives the latest stamp again",
                0,
                &[2_000, 1_500, 1_999, 2_001],
                &[2_000, 2_000, 2_000, 2_001],
            ),
            (
                "the same reading twice gives the same stamp",
                0,
                &[7, 7],
                &[7, 7],
            ),
        ];
        for &(rule, journal, readings, stamps) in cases {
            let mut p = policy(&config(), journal);
            let got: Vec<u64> = readings.iter().map(|&w| p.now_ms(w)).collect();
            assert_eq!(got, stamps, "{rule}");
        }
    }

    #[test]
    fn a_rebuilt_book_raises_the_clock_to_the_journals_last_stamp() {
        // (rule, the stamp before the failure, the rebuilt journal's last stamp, the wall
        // reading after, the stamp it gives)
        let cases = [
            (
                "a journal stamped later than the engine's clock raises it",
                1_000,
                5_000,
                4_000,
                5_000,
            ),
            (
                "a journal stamped earlier does not lower it",
                5_000,
                1_000,
                4_000,
                5_000,
            ),
            ("a wall clock past both wins", 1_000, 5_000, 6_000, 6_000),
        ];
        for (rule, before, journal, wall, stamp) in cases {
            let mut p = policy(&config(), 0);
            p.now_ms(before);
            p.recovered(journal, 0);
            assert_eq!(p.now_ms(wall), stamp, "{rule}");
        }
    }

    #[test]
    fn timers_are_due_at_the_books_next_deadline() {
        // (rule, the book's next deadline, the engine's time, Tick before the command?)
        let cases = [
            ("no deadline, no Tick", None, 1_000, false),
            ("a deadline still ahead waits", Some(1_001), 1_000, false),
            ("a deadline reached runs first", Some(1_000), 1_000, true),
            ("a deadline passed runs first", Some(900), 1_000, true),
        ];
        let p = policy(&config(), 0);
        for (rule, deadline, now, due) in cases {
            assert_eq!(p.timer_due(deadline, now), due, "{rule}");
        }
    }

    #[test]
    fn the_timer_sleeps_until_the_deadline_by_the_wall_clock() {
        // (rule, the deadline, the wall reading, the sleep)
        let cases = [
            ("ahead: the difference", 1_250, 1_000, 250),
            ("reached: no wait", 1_000, 1_000, 0),
            ("passed: no wait", 900, 1_000, 0),
        ];
        let p = policy(&config(), 0);
        for (rule, deadline, wall, ms) in cases {
            assert_eq!(
                p.timer_in(deadline, wall),
                Duration::from_millis(ms),
                "{rule}"
            );
        }
    }

    #[test]
    fn a_queued_command_expires_after_its_deadline() {
        // (rule, its deadline, the time it is sequenced, expired?)
        let cases = [
            ("sequenced before its deadline: applied", 500, 499, false),
            ("sequenced at its deadline: applied", 500, 500, false),
            ("sequenced after its deadline: unavailable", 500, 501, true),
        ];
        let p = policy(&config(), 0);
        for (rule, deadline, now, expired) in cases {
            assert_eq!(p.expired(at(deadline), at(now)), expired, "{rule}");
        }
    }

    /// Something that happens to the loop, for the batching table.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Apply,
        StartWrite,
        Durable,
        Failed,
        QueueEnds,
    }

    fn run(steps: &[Step]) -> Policy {
        let mut p = policy(&config(), 0);
        for step in steps {
            match step {
                Step::Apply => p.applied(),
                Step::StartWrite => p.write_started(),
                Step::Durable => p.write_finished(true),
                Step::Failed => p.write_finished(false),
                Step::QueueEnds => p.queue_ended(),
            }
        }
        p
    }

    #[test]
    fn batches_are_bounded_and_one_write_is_in_flight() {
        use Step::*;
        // (rule, what happened, room for more?, start a write now?)
        let cases: &[(&str, &[Step], bool, bool)] = &[
            (
                "an idle engine takes commands and writes nothing",
                &[],
                true,
                false,
            ),
            ("a pending command is written at once", &[Apply], true, true),
            (
                "a batch below max_batch takes more",
                &[Apply, Apply],
                true,
                true,
            ),
            (
                "a batch at max_batch takes no more",
                &[Apply, Apply, Apply],
                false,
                true,
            ),
            (
                "while a write is in flight the next batch collects",
                &[Apply, StartWrite, Apply],
                true,
                false,
            ),
            (
                "a collecting batch at max_batch takes no more even while a write is in flight",
                &[Apply, StartWrite, Apply, Apply, Apply],
                false,
                false,
            ),
            (
                "a durable write lets the collected batch go",
                &[Apply, StartWrite, Apply, Durable],
                true,
                true,
            ),
            (
                "a durable write with nothing collected leaves nothing to write",
                &[Apply, StartWrite, Durable],
                true,
                false,
            ),
            (
                "a failed write drops the collected batch too",
                &[Apply, StartWrite, Apply, Apply, Apply, Failed],
                true,
                false,
            ),
        ];
        for &(rule, steps, room, write) in cases {
            let p = run(steps);
            assert_eq!((p.has_room(), p.should_write()), (room, write), "{rule}");
        }
    }

    #[test]
    fn the_loop_finishes_once_everything_applied_is_durable() {
        use Step::*;
        // (rule, what happened, may the loop finish?)
        let cases: &[(&str, &[Step], bool)] = &[
            ("an open queue keeps the loop", &[], false),
            (
                "an ended queue with nothing left finishes",
                &[QueueEnds],
                true,
            ),
            (
                "an ended queue with a pending command waits for its write",
                &[Apply, QueueEnds],
                false,
            ),
            (
                "an ended queue with a write in flight waits for it",
                &[Apply, StartWrite, QueueEnds],
                false,
            ),
            (
                "the last write durable: finished",
                &[Apply, StartWrite, QueueEnds, Durable],
                true,
            ),
            (
                "the last write failed: nothing is left to make durable",
                &[Apply, StartWrite, Apply, QueueEnds, Failed],
                true,
            ),
        ];
        for &(rule, steps, finish) in cases {
            let p = run(steps);
            assert_eq!(p.may_finish(), finish, "{rule}");
            assert_eq!(
                p.is_open(),
                !steps.iter().any(|s| matches!(s, QueueEnds)),
                "{rule}"
            );
        }
    }

    #[test]
    fn snapshots_are_due_by_commands_or_by_time() {
        // (rule, snapshot every n commands, commands applied, ms since the last snapshot,
        // due?) with `snapshot_every` = 1,000 ms.
        let cases = [
            ("none yet: not due", 4, 0, 0, false),
            (
                "fewer commands than the count, early: not due",
                4,
                3,
                999,
                false,
            ),
            ("the count reached: due", 4, 4, 0, true),
            ("past the count: due", 4, 9, 0, true),
            ("the interval passed: due", 4, 1, 1_000, true),
            (
                "the interval passed with no command: due",
                4,
                0,
                1_000,
                true,
            ),
            ("0 commands disables snapshots, by count", 0, 9, 0, false),
            (
                "0 commands disables snapshots, by time",
                0,
                0,
                60_000,
                false,
            ),
        ];
        for (rule, every, commands, elapsed, due) in cases {
            let cfg = EngineConfig {
                snapshot_every_commands: every,
                ..config()
            };
            let mut p = policy(&cfg, 0);
            for _ in 0..commands {
                p.applied();
            }
            assert_eq!(p.snapshot_due(at(elapsed)), due, "{rule}");
        }
    }

    #[test]
    fn a_started_snapshot_restarts_both_counts() {
        // (rule, commands after the snapshot started at 5,000 ms, the time asked, due?)
        let cases = [
            ("right after: not due", 0, 5_000, false),
            ("commands count from the start", 3, 5_500, false),
            ("the count reached again: due", 4, 5_500, true),
            ("time counts from the start", 0, 5_999, false),
            ("the interval passed again: due", 0, 6_000, true),
        ];
        for (rule, commands, now, due) in cases {
            let mut p = policy(&config(), 0);
            for _ in 0..10 {
                p.applied();
            }
            assert!(p.snapshot_due(at(5_000)));
            p.snapshot_started(at(5_000));
            for _ in 0..commands {
                p.applied();
            }
            assert_eq!(p.snapshot_due(at(now)), due, "{rule}");
        }
    }

    #[test]
    fn a_long_replay_makes_a_snapshot_due_a_short_one_does_not() {
        // (rule, snapshot every n commands, snapshot after a replay of n, replayed, due?)
        // Asked right after the recovery, with no command applied and no time passed.
        let cases = [
            ("a replay as long as the threshold: due", 4, 100, 100, true),
            ("a longer one: due", 4, 100, 5_000, true),
            ("a shorter one: not due", 4, 100, 99, false),
            ("no replay at all: not due", 4, 100, 0, false),
            ("0 disables it", 4, 0, 5_000, false),
            ("snapshots disabled: never", 0, 100, 5_000, false),
        ];
        for (rule, every, after_replay, replayed, due) in cases {
            let cfg = EngineConfig {
                snapshot_every_commands: every,
                snapshot_after_replay_commands: after_replay,
                ..config()
            };
            let mut p = policy(&cfg, 0);
            p.recovered(0, replayed);
            assert_eq!(p.snapshot_due(at(0)), due, "{rule}");
        }
    }

    #[test]
    fn a_deferred_snapshot_stays_due() {
        // The previous snapshot still in flight: the loop does not report a start, so the
        // next write asks again and is told the same.
        let mut p = policy(&config(), 0);
        for _ in 0..4 {
            p.applied();
        }
        assert!(p.snapshot_due(at(10)));
        p.applied();
        assert!(p.snapshot_due(at(20)), "deferred, not skipped");
    }

    #[test]
    fn failed_rebuilds_back_off_doubling_to_a_ceiling_and_reset_after_success() {
        // retry_min 50 ms, retry_max 300 ms.
        // (rule, failed attempts so far, recovered in between?, the next wait in ms)
        let cases = [
            ("the first retry waits retry_min", 0, false, 50),
            ("each failed attempt doubles the wait", 1, false, 100),
            ("and again", 2, false, 200),
            ("up to retry_max", 3, false, 300),
            ("and no further", 6, false, 300),
            ("a rebuilt market resets it to retry_min", 6, true, 50),
        ];
        for (rule, failures, recovered, wait) in cases {
            let mut p = policy(&config(), 0);
            for _ in 0..failures {
                p.retry_failed();
            }
            if recovered {
                p.recovered(0, 0);
            }
            assert_eq!(p.retry_wait(), Duration::from_millis(wait), "{rule}");
        }
    }
}
