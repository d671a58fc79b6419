//! Rebuilding the book from a journal: newest snapshot, then the tail of the log.

use crate::market::{Event, Market, Rules};
use crate::store::{Entry, Journal, JournalRead, OutcomeRecord, Snapshot, StoreError};
use futures_util::future::maybe_done;
use std::future::Future;
use std::task::Poll;

/// Batches read per round trip while replaying.
const READ_PAGE: usize = 256;

/// A book rebuilt from the journal, and what the replay saw.
pub struct Recovered {
    /// The book after the last durable command.
    pub market: Market,
    /// Sequence number the snapshot covered (0 without one).
    pub snapshot_seq: u64,
    /// Commands replayed on top of the snapshot.
    pub replayed: u64,
}

/// Sees what a replay applies, for callers that check it (`gavel replay --verify`).
pub trait ReplayObserver {
    /// One entry about to be applied, and the market it will be applied to (its state
    /// just before). The command is moved into the market next, so an observer that
    /// needs the command's own fields (a bid's amount and `bid_id`) reads them here.
    fn before(&mut self, _entry: &Entry, _market: &Market) {}
    /// One replayed entry and the events it produced.
    fn entry(&mut self, _seq: u64, _events: &[Event]) {}
    /// The outcomes a replayed batch published when it was written.
    fn published(&mut self, _outcomes: &[OutcomeRecord]) {}
}

/// Observes nothing.
impl ReplayObserver for () {}

/// Loads the newest snapshot (when `use_snapshot`; else the log is replayed from its first
/// entry) and replays every later entry, showing each to `observer`.
///
/// An empty log starts from the default rules: the engine journals a `Configure` when its
/// configuration differs, so the log alone says which rules applied.
pub async fn recover<J: Journal>(
    journal: &mut J,
    use_snapshot: bool,
    observer: &mut impl ReplayObserver,
) -> Result<Recovered, StoreError> {
    let snapshot = if use_snapshot {
        journal.load_snapshot().await?
    } else {
        None
    };
    let (market, snapshot_seq) = match snapshot {
        Some(s) => {
            // Named by where it is kept: an operator must know which file to look at.
            let market = market_from_snapshot(&s).map_err(|e| match e {
                StoreError::Corrupt(m) => {
                    StoreError::Corrupt(format!("{}: {m}", journal.snapshot_origin(s.seq)))
                }
                other => other,
            })?;
            (market, s.seq)
        }
        None => (Market::new(Rules::first()), 0),
    };
    let (market, replayed) = replay(journal, market, observer).await?;
    Ok(Recovered {
        market,
        snapshot_seq,
        replayed,
    })
}

/// The market a snapshot holds, checked against the seq the journal stored it under:
/// bytes that do not decode, or a book of another seq, are `Corrupt` (never a panic: the
/// bytes come from disk or Redis and may be damaged).
pub fn market_from_snapshot(s: &Snapshot) -> Result<Market, StoreError> {
    let market: Market = rmp_serde::from_slice(&s.bytes)
        .map_err(|e| StoreError::Corrupt(format!("snapshot at seq {}: {e}", s.seq)))?;
    if market.last_seq() != s.seq {
        return Err(StoreError::Corrupt(format!(
            "snapshot claims seq {} but holds seq {}",
            s.seq,
            market.last_seq()
        )));
    }
    Ok(market)
}

/// Replays every entry of `journal` after `market`'s last seq onto `market`, showing each
/// to `observer`; returns the market and how many commands were applied. Reads only, so it
/// serves a read-only view as well as the engine's own journal.
pub async fn replay<J: JournalRead>(
    journal: &mut J,
    mut market: Market,
    observer: &mut impl ReplayObserver,
) -> Result<(Market, u64), StoreError> {
    let mut replayed = 0u64;
    let mut events = Vec::new();
    // Reading (and decoding) the next page overlaps with applying this one: the journal
    // works on its own thread (file) or connection (Redis) once the request is sent, and
    // the book is all this task's work, so a long replay takes about as long as the slower
    // of the two, not their sum.
    let mut read = Box::pin(maybe_done(journal.read_after(market.last_seq(), READ_PAGE)));
    loop {
        (&mut read).await;
        let batches = read
            .as_mut()
            .take_output()
            .expect("a finished read has its output");
        // Moved out (not overwritten) before the next read borrows the journal again.
        drop(read);
        let batches = batches?;
        let Some(last) = batches.last().map(|b| b.last_seq()) else {
            break;
        };
        let mut ahead = Box::pin(maybe_done(journal.read_after(last, READ_PAGE)));
        // One poll sends the request; its answer is collected after this page is applied.
        std::future::poll_fn(|cx| {
            let _ = ahead.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
        read = ahead;
        for batch in batches {
            for entry in batch.entries {
                if entry.seq <= market.last_seq() {
                    continue; // covered by the snapshot
                }
                if entry.seq != market.last_seq() + 1 {
                    return Err(StoreError::Corrupt(format!(
                        "gap in the log: seq {} follows {}",
                        entry.seq,
                        market.last_seq()
                    )));
                }
                events.clear();
                observer.before(&entry, &market);
                market.apply_into(entry.seq, entry.now_ms, entry.command, &mut events);
                observer.entry(entry.seq, &events);
                replayed += 1;
            }
            observer.published(&batch.outcomes);
        }
    }
    Ok((market, replayed))
}
