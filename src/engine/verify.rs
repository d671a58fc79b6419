//! `gavel replay --verify`: rebuild every auction from the log alone and check that each
//! outcome equals the one the live engine published.

use super::recovery::{replay, ReplayObserver};
use crate::auction::LotStatus;
use crate::market::{Event, Market, Rules};
use crate::store::{JournalRead, OutcomeRecord, StoreError};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// What a verifying replay found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Commands replayed.
    pub commands: u64,
    /// Outcomes the replay produced.
    pub recomputed: u64,
    /// Outcomes the journal holds as published.
    pub published: u64,
    /// Every difference, in log order; empty means the log and the outcomes agree.
    pub mismatches: Vec<String>,
    /// One line per auction: id, status, price, bids and a digest of its final state.
    pub digests: Vec<String>,
    /// The market the log alone rebuilds (the read models a server would rebuild from it,
    /// the market data's among them, can be derived from it).
    pub market: Market,
}

impl Verification {
    /// Whether replay and publication agree.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Collects the outcomes a replay recomputes and compares them, batch by batch, with the
/// ones stored as published.
#[derive(Default)]
struct Checker {
    recomputed: Vec<OutcomeRecord>,
    verification: Verification,
}

impl ReplayObserver for Checker {
    fn entry(&mut self, seq: u64, events: &[Event]) {
        self.recomputed.extend(
            events
                .iter()
                .filter_map(|e| OutcomeRecord::from_event(seq, e)),
        );
    }

    fn published(&mut self, outcomes: &[OutcomeRecord]) {
        let recomputed = std::mem::take(&mut self.recomputed);
        let v = &mut self.verification;
        v.recomputed += recomputed.len() as u64;
        v.published += outcomes.len() as u64;
        let n = recomputed.len().max(outcomes.len());
        for i in 0..n {
            match (recomputed.get(i), outcomes.get(i)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => v.mismatches.push(format!(
                    "replay gives {} but the journal published {}",
                    describe(a),
                    describe(b)
                )),
            }
        }
    }
}

fn describe(o: Option<&OutcomeRecord>) -> String {
    match o {
        None => "nothing".into(),
        Some(o) => format!(
            "{} {} at seq {} (price {:?}, dealer {:?})",
            o.lot,
            o.outcome.as_str(),
            o.seq,
            o.price,
            o.dealer.map(|d| d.to_string())
        ),
    }
}

/// Replays the whole journal from the first entry (ignoring snapshots: the log alone is
/// the evidence) and checks every published outcome.
pub async fn verify<J: JournalRead>(journal: &mut J) -> Result<Verification, StoreError> {
    let mut checker = Checker::default();
    let empty = Market::new(Rules::first());
    let (market, replayed) = replay(journal, empty, &mut checker).await?;
    let mut v = checker.verification;
    v.commands = replayed;
    v.digests = digests(&market);
    v.market = market;
    Ok(v)
}

/// One line per auction, in id order.
pub fn digests(market: &Market) -> Vec<String> {
    market
        .book()
        .lots()
        .iter()
        .map(|lot| {
            let bytes = rmp_serde::to_vec(lot).unwrap_or_default();
            let hash = Sha256::digest(&bytes);
            let mut line = format!(
                "{} {} price={} bids={} winner={} sha256=",
                lot.id,
                lot.status.as_str(),
                lot.price.map_or("-".to_string(), |p| p.to_string()),
                lot.bids,
                match (lot.status, lot.lead) {
                    (LotStatus::Sold, Some(l)) => l.dealer.to_string(),
                    _ => "-".to_string(),
                }
            );
            for b in &hash[..8] {
                let _ = write!(line, "{b:02x}");
            }
            line
        })
        .collect()
}
