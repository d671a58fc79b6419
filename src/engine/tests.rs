//! Engine tests on the memory journal: ack after durable, group commit, failure and
//! recovery, timers, snapshots, restart.
//!
//! They run on tokio's paused clock (`start_paused`): a sleep, a journal delay or a timeout
//! moves time by exactly its length as soon as every task is waiting, so the order of
//! events each test relies on does not depend on how loaded the machine is. The engine's
//! wall clock is that same paused clock (`paused_wall_ms`), so lots close and outages pass
//! on it too. The one thing the paused clock does not wait for is the snapshot serializer,
//! a real thread: waits for a saved snapshot (`wait_until`) also give it real time.

use super::*;
use crate::auction::{
    self, BidOutcome, Command as AuctionCommand, Event as AuctionEvent, Listing, Outcome,
};
use crate::engine::recover;
use crate::market::{Command, Event, Market, Rules};
use crate::store::memory::{LandThenFail, MemoryJournal};
use crate::store::{Entry, StoreError};
use crate::vocab::{DealerId, Inspection, LotId, SellerId, Vehicle};
use parking_lot::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What one durable command published: its seq and events.
type Published = (u64, Vec<Event>);

/// Records what the engine published, so tests can check nothing leaves before durable.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Published>>>);

impl Publisher for Recorder {
    fn reset(&mut self, _: &Market) {}
    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        self.0.lock().push((entry.seq, events.to_vec()));
    }
}

fn fast_rules() -> Rules {
    // Short lots and a soft-close window short enough not to extend them in a test.
    Rules {
        auction: auction::Rules {
            min_duration_ms: 1,
            extend_window_ms: 10,
            extend_by_ms: 10,
            ..auction::Rules::default()
        },
        ..Rules::default()
    }
}

/// The engine's wall clock in these tests: tokio's clock (paused, and advanced only by
/// the test's own waits) read as ms since the Unix epoch, from a fixed reading. A test that
/// sleeps 300 ms moves the engine's time by exactly 300 ms.
fn paused_wall_ms() -> u64 {
    const EPOCH_MS: u64 = 1_700_000_000_000;
    // The instant that reads `EPOCH_MS`: the first any test asked for. Earlier instants
    // (another test's runtime may have started before it) read below it: the mapping is
    // the same straight line either way, so each test's clock still moves with its own.
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let now = tokio::time::Instant::now().into_std();
    let origin = *ORIGIN.get_or_init(|| now);
    match now.checked_duration_since(origin) {
        Some(after) => EPOCH_MS + after.as_millis() as u64,
        None => EPOCH_MS - origin.duration_since(now).as_millis() as u64,
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        max_wait: Duration::from_millis(500),
        append_timeout: Duration::from_millis(300),
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        wall_clock: paused_wall_ms,
        ..EngineConfig::default()
    }
}

async fn start(
    journal: &MemoryJournal,
    config: EngineConfig,
) -> (
    EngineHandle,
    tokio::task::JoinHandle<Result<(), StoreError>>,
    Recorder,
) {
    let rec = Recorder::default();
    let (h, task) = spawn(journal.clone(), fast_rules(), rec.clone(), config)
        .await
        .expect("engine starts");
    (h, task, rec)
}

fn listing(duration_ms: u64) -> Command {
    Command::Auction(AuctionCommand::ListCar {
        seller: SellerId(1),
        listing: Box::new(Listing {
            vehicle: Vehicle {
                vin: "1M8GDM9AXKP042788".into(),
                make: "Toyota".into(),
                model: "Corolla".into(),
                year: 2020,
                mileage_km: 50_000,
                city: None,
            },
            inspection: Inspection {
                structural_damage: false,
                fire: false,
                flood: false,
                odometer_tampered: false,
                title_transferable: true,
                grade: 4,
                notes: String::new(),
            },
            start_price: 10_000,
            reserve: 50_000,
            buy_now: None,
            starts_at: None,
            duration_ms: Some(duration_ms),
        }),
    })
}

fn bid(dealer: u32, amount: u64, id: &str) -> Command {
    Command::Auction(AuctionCommand::PlaceBid {
        dealer: DealerId(dealer),
        lot: LotId(1),
        amount,
        max: None,
        bid_id: id.into(),
    })
}

/// Bid `i` of a war between dealers 1 and 2, each raising by 10,000 from `from`.
fn war_bid(i: u64, from: u64, prefix: &str) -> Command {
    bid(
        1 + (i % 2) as u32,
        from + i * 10_000,
        &format!("{prefix}{i}"),
    )
}

/// Stops the engine and waits until it has closed the journal.
async fn stop(h: EngineHandle, task: tokio::task::JoinHandle<Result<(), StoreError>>) {
    h.close();
    drop(h);
    task.await.expect("join").expect("clean stop");
}

/// Snapshots every 6 commands: the fixture `setup` writes (Configure, the seller, two
/// dealers, the listing) are commands 1-5, so a snapshot is due with the first bid's write.
fn snapshot_at_first_bid() -> EngineConfig {
    EngineConfig {
        snapshot_every_commands: 6,
        ..config()
    }
}

async fn setup(h: &EngineHandle, duration_ms: u64) {
    h.submit(Command::Auction(AuctionCommand::RegisterSeller {
        name: "s".into(),
        token_hash: [1; 32],
    }))
    .await
    .expect("seller");
    for i in 0..2u8 {
        h.submit(Command::Auction(AuctionCommand::RegisterDealer {
            name: format!("d{i}"),
            deposit: 10_000_000,
            linked_sellers: vec![],
            token_hash: [10 + i; 32],
        }))
        .await
        .expect("dealer");
    }
    let listed = h.submit(listing(duration_ms)).await.expect("listed");
    assert!(
        matches!(
            listed.events[0],
            Event::Auction(AuctionEvent::Listed { .. })
        ),
        "{listed:?}"
    );
}

/// Submits until the engine is back from a journal failure (bounded: 2 s).
async fn retry_until_ok(h: &EngineHandle, command: impl Fn() -> Command) -> Applied {
    for _ in 0..100 {
        if let Ok(a) = h.submit(command()).await {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the engine did not come back within 2 s");
}

/// Checks every snapshot the engine ever saved against the journal: decoded, it must be
/// exactly the book a replay of the log up to its seq gives. A snapshot made from a book
/// that the journal does not back (one applied commands that were never durable) fails.
fn assert_snapshots_match_the_log(journal: &MemoryJournal) {
    let entries = journal.entries();
    for snap in journal.saved_snapshots() {
        let saved: Market = rmp_serde::from_slice(&snap.bytes).expect("snapshot decodes");
        let mut replayed = Market::new(Rules::first());
        let mut events = Vec::new();
        for e in entries.iter().take_while(|e| e.seq <= snap.seq) {
            replayed.apply_into(e.seq, e.now_ms, e.command.clone(), &mut events);
        }
        assert_eq!(replayed.last_seq(), snap.seq, "snapshot past the log");
        assert!(
            saved == replayed,
            "the snapshot at seq {} is not the journal's market at that seq",
            snap.seq
        );
    }
}

/// Waits until `done` holds, looking every 10 ms of engine time; false once 2 s have
/// passed both on the engine's clock and in real time.
///
/// A snapshot is serialized on a real thread, which the paused clock does not wait for:
/// with nothing else to do, tokio would run the 10 ms steps back to back while that thread
/// has had no time at all. So each step also blocks for a real millisecond (the thread
/// runs meanwhile, the engine's tasks do not), and the bound holds in real time too.
async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let (engine, real) = (tokio::time::Instant::now(), std::time::Instant::now());
    let bound = Duration::from_secs(2);
    while !done() {
        if engine.elapsed() >= bound && real.elapsed() >= bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Waits (bounded: 2 s) until the journal holds at least `n` saved snapshots.
async fn wait_for_snapshots(journal: &MemoryJournal, n: usize) {
    if !wait_until(|| journal.saved_snapshots().len() >= n).await {
        panic!(
            "{} snapshots saved within 2 s, expected {n}",
            journal.saved_snapshots().len()
        );
    }
}

/// The book from the snapshot and the tail, and the book from the whole log, must agree.
async fn assert_snapshot_recovery_matches_full_replay(journal: &MemoryJournal) -> u64 {
    let from_snapshot = recover(&mut journal.clone(), true, &mut ())
        .await
        .expect("recover from the snapshot");
    let from_log = recover(&mut journal.clone(), false, &mut ())
        .await
        .expect("replay the log");
    assert!(
        from_snapshot.market == from_log.market,
        "snapshot + tail gives another market than the log"
    );
    from_snapshot.snapshot_seq
}

fn bid_outcome(events: &[Event]) -> (BidOutcome, bool) {
    events
        .iter()
        .find_map(|e| match e {
            Event::Auction(AuctionEvent::Bid {
                outcome, duplicate, ..
            }) => Some((*outcome, *duplicate)),
            _ => None,
        })
        .expect("a bid event")
}

#[tokio::test(start_paused = true)]
async fn replies_and_broadcasts_wait_for_the_journal() {
    let journal = MemoryJournal::new();
    let (h, _task, rec) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.delay_appends(Some(Duration::from_millis(150)));
    let published_before = rec.0.lock().len();
    let h2 = h.clone();
    let pending = tokio::spawn(async move { h2.submit(bid(1, 10_000, "b1")).await });
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Applied in memory, but not durable: nothing may have left the engine.
    assert!(!pending.is_finished(), "replied before durable");
    assert_eq!(
        rec.0.lock().len(),
        published_before,
        "published before durable"
    );
    let applied = pending.await.expect("join").expect("durable");
    assert!(journal.entries().iter().any(|e| e.seq == applied.seq));
    assert!(rec.0.lock().iter().any(|(s, _)| *s == applied.seq));
}

#[tokio::test(start_paused = true)]
async fn commands_arriving_during_a_write_share_the_next_one() {
    let journal = MemoryJournal::new();
    let (h, _task, _) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    let before = journal.batches().len();
    journal.delay_appends(Some(Duration::from_millis(40)));
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.submit(war_bid(i, 10_000, "g")).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("durable");
    }
    let writes = journal.batches().len() - before;
    assert!(
        writes <= 10,
        "200 commands took {writes} writes: no group commit"
    );
    assert!(journal.batches().iter().any(|b| b.entries.len() > 10));
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_answers_unavailable_and_applies_nothing() {
    let journal = MemoryJournal::new();
    let (h, _task, rec) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.fail_next(1);
    assert_eq!(
        h.submit(bid(1, 10_000, "lost")).await.err(),
        Some(Unavailable)
    );
    assert!(!journal.entries().iter().any(|e| matches!(
        &e.command,
        Command::Auction(AuctionCommand::PlaceBid { bid_id, .. }) if &**bid_id == "lost"
    )));
    assert!(!rec.0.lock().iter().any(|(_, ev)| ev
        .iter()
        .any(|e| matches!(e, Event::Auction(AuctionEvent::Bid { .. })))));
    // The engine rebuilds itself from the journal (answering `unavailable` meanwhile);
    // then the same bid_id is a fresh attempt and the price starts from scratch.
    let retry = retry_until_ok(&h, || bid(1, 10_000, "lost")).await;
    let (outcome, duplicate) = bid_outcome(&retry.events);
    assert!(!duplicate);
    assert!(
        matches!(outcome, BidOutcome::Accepted { price: 10_000, .. }),
        "{outcome:?}"
    );
    assert_eq!(h.metrics().recoveries.get(), 1);
}

/// A journal that applied a write and failed before answering: the write's commands are
/// answered from what the journal holds once the engine has rebuilt itself, so
/// `unavailable` keeps meaning that nothing happened.
#[tokio::test(start_paused = true)]
async fn a_write_that_landed_but_failed_is_answered_from_the_journal() {
    let journal = MemoryJournal::new();
    let (h, _task, rec) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.land_then_fail_next(LandThenFail::Unavailable);
    let applied = h
        .submit(bid(1, 10_000, "landed"))
        .await
        .expect("the bid landed, so it is not unavailable");
    let (outcome, duplicate) = bid_outcome(&applied.events);
    assert!(!duplicate);
    assert!(
        matches!(outcome, BidOutcome::Accepted { price: 10_000, seq, .. } if seq == applied.seq),
        "{outcome:?}"
    );
    // It is in the journal once, at the seq it was answered with.
    let stored: Vec<u64> = journal
        .entries()
        .iter()
        .filter(|e| {
            matches!(
                &e.command,
                Command::Auction(AuctionCommand::PlaceBid { bid_id, .. }) if &**bid_id == "landed"
            )
        })
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored, [applied.seq]);
    // Its events were published (after the rebuild), and the engine went on.
    assert!(rec.0.lock().iter().any(|(seq, ev)| *seq == applied.seq
        && ev
            .iter()
            .any(|e| matches!(e, Event::Auction(AuctionEvent::Bid { .. })))));
    assert_eq!(h.metrics().recoveries.get(), 1);
    assert_eq!(h.metrics().unavailable.get(), 0);
    let next = h
        .submit(bid(2, 20_000, "next"))
        .await
        .expect("engine goes on");
    assert!(next.seq > applied.seq);
}

/// The same when the journal was lost to another engine right after it stored the write:
/// the engine reads the journal back before it stops, and answers from it.
#[tokio::test(start_paused = true)]
async fn a_write_that_landed_before_the_journal_was_lost_is_answered_from_it() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.land_then_fail_next(LandThenFail::Fenced);
    let applied = h
        .submit(bid(1, 10_000, "landed-then-fenced"))
        .await
        .expect("the bid landed, so it is not unavailable");
    assert!(matches!(
        bid_outcome(&applied.events).0,
        BidOutcome::Accepted { .. }
    ));
    let res = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("engine stops")
        .expect("join");
    assert!(matches!(res, Err(StoreError::Fenced(_))), "{res:?}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_journal_times_out_into_unavailable_then_recovers() {
    let journal = MemoryJournal::new();
    let (h, _task, _) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.delay_appends(Some(Duration::from_secs(5)));
    let started = tokio::time::Instant::now();
    assert_eq!(
        h.submit(bid(1, 10_000, "slow")).await.err(),
        Some(Unavailable)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "wait was not bounded"
    );
    journal.delay_appends(None);
    let a = retry_until_ok(&h, || bid(1, 10_000, "slow")).await;
    assert!(matches!(
        bid_outcome(&a.events).0,
        BidOutcome::Accepted { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_fenced_journal_stops_the_engine() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, config()).await;
    setup(&h, 600_000).await;
    journal.fence();
    assert_eq!(h.submit(bid(1, 10_000, "f")).await.err(), Some(Unavailable));
    let res = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("engine stops")
        .expect("join");
    assert!(matches!(res, Err(StoreError::Fenced(_))), "{res:?}");
}

#[tokio::test(start_paused = true)]
async fn timers_close_lots_and_outcomes_are_journaled() {
    let journal = MemoryJournal::new();
    let (h, _task, rec) = start(&journal, config()).await;
    setup(&h, 150).await;
    h.submit(bid(1, 60_000, "t1")).await.expect("bid");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let outcomes: Vec<_> = journal
        .batches()
        .iter()
        .flat_map(|b| b.outcomes.clone())
        .collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?} {:#?}", journal.entries());
    assert_eq!(outcomes[0].outcome, Outcome::Sold);
    assert_eq!(outcomes[0].dealer, Some(DealerId(1)));
    assert!(rec.0.lock().iter().any(|(_, ev)| ev
        .iter()
        .any(|e| matches!(e, Event::Auction(AuctionEvent::Closed { .. })))));
    // The Tick that closed it is in the journal like any command.
    assert!(journal
        .entries()
        .iter()
        .any(|e| matches!(e.command, Command::Auction(AuctionCommand::Tick))));
}

/// A restart that replayed a long tail takes a snapshot with its next write, so that an
/// engine restarted again and again does not replay an ever longer tail; a short replay
/// does not.
#[tokio::test(start_paused = true)]
async fn a_restart_after_a_long_replay_takes_a_snapshot_with_its_next_write() {
    let journal = MemoryJournal::new();
    // No snapshot by count or time in this test: only the replay's length can cause one.
    let cfg = EngineConfig {
        snapshot_every_commands: 1_000_000,
        snapshot_every: Duration::from_secs(86_400),
        snapshot_after_replay_commands: 10,
        ..config()
    };
    let (h, task, _) = start(&journal, cfg.clone()).await;
    setup(&h, 600_000).await;
    for i in 0..12u64 {
        h.submit(war_bid(i, 10_000, "long")).await.expect("bid");
    }
    stop(h, task).await;
    assert!(
        journal.snapshot().is_none(),
        "no snapshot before the restart"
    );
    let replayed = journal.last_seq();
    assert!(replayed >= 10);

    // The restart replays every command; its first write carries a snapshot.
    let (h, task, _) = start(&journal, cfg.clone()).await;
    h.submit(war_bid(12, 10_000, "long")).await.expect("bid");
    wait_for_snapshots(&journal, 1).await;
    let snap = journal
        .snapshot()
        .expect("a snapshot after the long replay");
    assert!(snap.seq > replayed, "the snapshot covers the replayed tail");
    assert_snapshots_match_the_log(&journal);
    stop(h, task).await;

    // The next restart replays only what followed that snapshot (one or two commands),
    // and takes no new snapshot for it.
    let (h, task, _) = start(&journal, cfg).await;
    h.submit(war_bid(13, 10_000, "long")).await.expect("bid");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        journal.saved_snapshots().len(),
        1,
        "a short replay took a snapshot"
    );
    stop(h, task).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_recovers_state_from_snapshot_and_tail() {
    let journal = MemoryJournal::new();
    let cfg = EngineConfig {
        snapshot_every_commands: 5,
        ..config()
    };
    let (h, task, _) = start(&journal, cfg.clone()).await;
    setup(&h, 600_000).await;
    for i in 0..12u64 {
        h.submit(war_bid(i, 10_000, "r")).await.expect("bid");
    }
    // Serialized off the engine's tasks and saved after the ack: wait for the first
    // rather than race the shutdown, which drops one still in flight.
    wait_for_snapshots(&journal, 1).await;
    stop(h, task).await;
    let snap = journal.snapshot().expect("a snapshot was taken");
    assert!(snap.seq >= 5 && snap.seq <= journal.last_seq());
    assert_snapshots_match_the_log(&journal);
    let snapshot_seq = assert_snapshot_recovery_matches_full_replay(&journal).await;
    assert_eq!(
        snapshot_seq, snap.seq,
        "recovery did not start from the snapshot"
    );

    let (h, _task, _) = start(&journal, cfg).await;
    // The repeated bid_id answers with the first result: state survived the restart.
    let again = h.submit(bid(1, 10_000, "r0")).await.expect("after restart");
    let (outcome, duplicate) = bid_outcome(&again.events);
    assert!(duplicate);
    assert!(matches!(
        outcome,
        BidOutcome::Accepted { price: 10_000, .. }
    ));
    // Dealer 2 leads after the twelve alternating bids; dealer 1 bids too low.
    let next = h.submit(bid(1, 10_000, "fresh")).await.expect("bid");
    assert!(
        matches!(
            bid_outcome(&next.events).0,
            BidOutcome::Rejected(crate::auction::Rejection::BelowMinimum { .. })
        ),
        "{:?}",
        next.events
    );
}

#[tokio::test(start_paused = true)]
async fn changed_rules_and_an_outage_are_journaled_commands() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, config()).await;
    setup(&h, 200).await;
    // The engine's rules differ from the defaults an empty log starts with.
    assert!(matches!(
        journal.entries()[0].command,
        Command::Configure(_)
    ));
    stop(h, task).await;
    // Down past the lot's close: on restart it gets the outage grace instead of closing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_h, _task, _) = start(&journal, config()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let entries = journal.entries();
    assert!(
        entries
            .iter()
            .any(|e| matches!(e.command, Command::Auction(AuctionCommand::Resume))),
        "no Resume journaled"
    );
    let configures = entries
        .iter()
        .filter(|e| matches!(e.command, Command::Configure(_)))
        .count();
    assert_eq!(configures, 1, "unchanged rules must not be journaled again");
}

/// Runs `submit_then` and hands back what its callback saw, checking it ran exactly once
/// and (for a durable result) after the command's events were published.
async fn submit_then_collect(
    h: &EngineHandle,
    rec: &Recorder,
    command: Command,
) -> Result<Applied, Unavailable> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rec = rec.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    h.submit_then(command, move |result| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let published = match &result {
            Ok(a) => rec.0.lock().iter().any(|(s, _)| *s == a.seq),
            Err(_) => true,
        };
        let _ = tx.send((result, published));
    })
    .await;
    let (result, published) = rx.await.expect("the callback ran");
    assert!(published, "the result left before the update was published");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    result
}

#[tokio::test(start_paused = true)]
async fn submit_then_calls_back_once_after_publishing_or_with_unavailable() {
    let journal = MemoryJournal::new();
    let (h, _task, rec) = start(&journal, config()).await;
    setup(&h, 600_000).await;

    // Durable: called with the applied command, after its events were published.
    journal.delay_appends(Some(Duration::from_millis(50)));
    let applied = submit_then_collect(&h, &rec, bid(1, 10_000, "t1"))
        .await
        .expect("durable");
    assert!(journal.entries().iter().any(|e| e.seq == applied.seq));
    journal.delay_appends(None);

    // A failed write: called with `unavailable`, and the bid is not in the journal.
    journal.fail_next(1);
    assert_eq!(
        submit_then_collect(&h, &rec, bid(2, 20_000, "t2"))
            .await
            .err(),
        Some(Unavailable)
    );
    assert!(!journal.entries().iter().any(|e| matches!(
        &e.command,
        Command::Auction(AuctionCommand::PlaceBid { bid_id, .. }) if &**bid_id == "t2"
    )));
}

#[tokio::test(start_paused = true)]
async fn submit_then_to_a_stopped_engine_calls_back_unavailable() {
    let journal = MemoryJournal::new();
    let (h, task, rec) = start(&journal, config()).await;
    h.close();
    task.await.expect("join").expect("clean stop");
    assert_eq!(
        submit_then_collect(&h, &rec, bid(1, 10_000, "late"))
            .await
            .err(),
        Some(Unavailable)
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_snapshot_save_does_not_delay_the_ack_of_the_batch_it_covers() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, snapshot_at_first_bid()).await;
    setup(&h, 600_000).await;
    assert!(journal.saved_snapshots().is_empty());
    journal.delay_snapshots(Some(Duration::from_millis(1_000)));

    let started = tokio::time::Instant::now();
    let first = h.submit(bid(1, 10_000, "s1")).await.expect("durable");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the ack waited {:?} for the snapshot save",
        started.elapsed()
    );
    assert!(
        journal.saved_snapshots().is_empty(),
        "acknowledged only after the snapshot was saved"
    );
    // Bids sent meanwhile are sequenced, not refused, and acknowledged.
    let second = h.submit(bid(2, 20_000, "s2")).await.expect("durable");
    assert!(second.seq > first.seq);

    wait_for_snapshots(&journal, 1).await;
    let saved = journal.saved_snapshots();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        saved[0].seq, first.seq,
        "the snapshot covers the first bid's batch"
    );
    assert_snapshots_match_the_log(&journal);
    stop(h, task).await;
    assert_snapshot_recovery_matches_full_replay(&journal).await;
}

#[tokio::test(start_paused = true)]
async fn appends_go_between_the_parts_of_a_snapshot_save() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, snapshot_at_first_bid()).await;
    setup(&h, 600_000).await;
    // Four parts of 300 ms: 1.2 s for the whole save.
    journal.split_snapshots(Some(4));
    journal.delay_snapshots(Some(Duration::from_millis(300)));
    let first = h.submit(bid(1, 10_000, "p1")).await.expect("durable");

    assert!(
        wait_until(|| journal.snapshot_parts_saved() > 0).await,
        "no snapshot part saved"
    );
    // A part is under way now; the bid's append waits for it and no more.
    let started = tokio::time::Instant::now();
    let second = h.submit(bid(2, 20_000, "p2")).await.expect("durable");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "the append waited {:?}: longer than one part",
        started.elapsed()
    );
    assert!(
        journal.saved_snapshots().is_empty(),
        "the save finished before the append went through: nothing went between its parts"
    );
    assert!(second.seq > first.seq);

    wait_for_snapshots(&journal, 1).await;
    let saved = journal.saved_snapshots();
    assert_eq!(
        saved[0].seq, first.seq,
        "the snapshot covers the first bid's batch"
    );
    assert_eq!(journal.snapshot_parts_saved(), 4);
    assert_snapshots_match_the_log(&journal);
    stop(h, task).await;
    assert_snapshot_recovery_matches_full_replay(&journal).await;
}

#[tokio::test(start_paused = true)]
async fn the_metrics_show_a_snapshot_in_flight_from_its_start_to_its_save() {
    let journal = MemoryJournal::new();
    let (h, task, _) = start(&journal, snapshot_at_first_bid()).await;
    setup(&h, 600_000).await;
    let m = h.metrics().clone();
    assert_eq!((m.snapshots_started.get(), m.snapshots_saved.get()), (0, 0));
    journal.split_snapshots(Some(2));
    journal.delay_snapshots(Some(Duration::from_millis(300)));
    h.submit(bid(1, 10_000, "m1")).await.expect("durable");

    assert!(
        wait_until(|| journal.snapshot_parts_saved() > 0).await,
        "no snapshot part saved"
    );
    // Half saved: started, not yet saved.
    assert_eq!((m.snapshots_started.get(), m.snapshots_saved.get()), (1, 0));
    assert_eq!(m.snapshot_bytes.get(), 0);

    assert!(
        wait_until(|| m.snapshots_saved.get() == 1).await,
        "the save was not counted"
    );
    let saved = journal.saved_snapshots();
    assert_eq!(saved.len(), 1);
    assert_eq!(m.snapshot_bytes.get(), saved[0].bytes.len() as u64);
    let mut text = String::new();
    crate::engine::render_metrics(&m, &mut text);
    for line in [
        "gavel_snapshots_started_total 1",
        "gavel_snapshots_saved_total 1",
        &format!("gavel_snapshot_bytes {}", saved[0].bytes.len()),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    stop(h, task).await;
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_whose_batch_failed_is_never_saved() {
    let journal = MemoryJournal::new();
    let cfg = snapshot_at_first_bid();
    let (h, task, _) = start(&journal, cfg.clone()).await;
    setup(&h, 600_000).await;
    let before = journal.last_seq();
    // The write carrying the snapshot (the book with dealer 1's "lost" bid at seq 6)
    // fails.
    journal.fail_next(1);
    assert_eq!(
        h.submit(bid(1, 10_000, "lost")).await.err(),
        Some(Unavailable)
    );
    // After the rebuild, seq 6 goes to another command; more bids take the log past the
    // next snapshot, so a stale book at seq 6 would have had every chance to be saved.
    let other = retry_until_ok(&h, || bid(2, 20_000, "other")).await;
    assert_eq!(other.seq, before + 1, "the lost seq is reused");
    for i in 0..8u64 {
        h.submit(war_bid(i, 30_000, "n")).await.expect("bid");
    }
    // The snapshot whose batch failed keeps the one snapshot permit until its thread sees
    // nobody wants it, and a snapshot due meanwhile is deferred to the next write. That
    // thread runs in real time, which the paused clock does not wait for (and which eight
    // quick bids may not give it on a loaded machine): bid on, a real millisecond apart,
    // until the next snapshot is saved (bounded: 2 s).
    let real = std::time::Instant::now();
    let mut i = 8u64;
    while journal.saved_snapshots().is_empty() {
        assert!(
            real.elapsed() < Duration::from_secs(2),
            "0 snapshots saved within 2 s, expected 1"
        );
        std::thread::sleep(Duration::from_millis(1));
        h.submit(war_bid(i, 30_000, "n")).await.expect("bid");
        i += 1;
    }
    stop(h, task).await;

    assert!(!journal.entries().iter().any(|e| matches!(
        &e.command,
        Command::Auction(AuctionCommand::PlaceBid { bid_id, .. }) if &**bid_id == "lost"
    )));
    assert!(
        journal.saved_snapshots().iter().all(|s| s.seq > other.seq),
        "a snapshot at or before the reused seq was saved: {:?}",
        journal
            .saved_snapshots()
            .iter()
            .map(|s| s.seq)
            .collect::<Vec<_>>()
    );
    assert_snapshots_match_the_log(&journal);
    assert!(assert_snapshot_recovery_matches_full_replay(&journal).await > other.seq);

    // Restarted from that snapshot, "lost" is a bid never seen: a fresh attempt.
    let (h, _task, _) = start(&journal, cfg).await;
    let retry = h.submit(bid(1, 200_000, "lost")).await.expect("bid");
    let (outcome, duplicate) = bid_outcome(&retry.events);
    assert!(!duplicate, "{outcome:?}");
}
