//! A soak's ack latency window by window, each window marked by whether the server had a
//! snapshot under way during any part of it: the question "does a snapshot stall
//! acknowledgements?" compares the two kinds of window.
//!
//! The marking comes from the server's snapshot counters (`/metrics`), sampled through the
//! run: snapshot number k (counting from 1) overlaps the window `[a, b)` when it started
//! before `b` and was not saved before `a`, so the window holds part of some snapshot
//! exactly when `started(b) > saved(a)`. Sampled counters read `started` at the first
//! sample at or after `b` and `saved` at the last sample at or before `a`, so a window is
//! marked whenever a snapshot may have run in it: a window left unmarked had none, with a
//! sampling interval's margin on both sides.

use crate::stats::{new_hist, record, Latency};
use hdrhistogram::Histogram;
use serde::Serialize;

/// The server's snapshot counters at one moment.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SnapshotCounters {
    /// When read, ns on the run's clock.
    pub at_ns: u64,
    /// Snapshots started so far.
    pub started: u64,
    /// Snapshots saved so far.
    pub saved: u64,
    /// Size of the newest saved snapshot, bytes.
    pub bytes: u64,
}

/// The counters' names in the server's Prometheus text.
const STARTED: &str = "gavel_snapshots_started_total";
const SAVED: &str = "gavel_snapshots_saved_total";
const BYTES: &str = "gavel_snapshot_bytes";

/// Reads the snapshot counters out of Prometheus text; `None` if the server has none.
pub fn parse_counters(metrics: &str, at_ns: u64) -> Option<SnapshotCounters> {
    let value = |name: &str| {
        metrics.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    Some(SnapshotCounters {
        at_ns,
        started: value(STARTED)?,
        saved: value(SAVED)?,
        bytes: value(BYTES).unwrap_or(0),
    })
}

/// One window's acks, by the bids' due times.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Its start, s after the first bid was due.
    pub start_s: f64,
    /// Whether a snapshot may have run in it (`None`: the server reports no counters).
    pub snapshot: Option<bool>,
    /// From due time to result, over the bids due in it that were answered.
    pub ack: Latency,
    /// Bids due in it that never got a result.
    pub unanswered: u64,
}

/// Every window, and the two kinds pooled.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Windows {
    /// Window length, s.
    pub window_s: f64,
    /// In order.
    pub windows: Vec<Window>,
    /// Windows marked as holding a snapshot.
    pub with_snapshot: usize,
    /// Ack latency over every bid due in those windows.
    pub ack_with_snapshot: Latency,
    /// Windows with none.
    pub without_snapshot: usize,
    /// Ack latency over every bid due in them.
    pub ack_without_snapshot: Latency,
    /// Snapshots started during the run (first sample to last).
    pub snapshots_started: u64,
    /// Snapshots saved during the run.
    pub snapshots_saved: u64,
    /// Size of the newest snapshot saved by the run's end, bytes.
    pub last_snapshot_bytes: u64,
    /// Every sample of the counters, for lining windows up with the server's log.
    pub samples: Vec<SnapshotCounters>,
}

/// Splits `bids` (due time, result time if any, ns) into windows of `window_ns` from the
/// first due time and marks each from `samples` (in time order).
pub fn windows(
    bids: &[(u64, Option<u64>)],
    window_ns: u64,
    samples: &[SnapshotCounters],
) -> Windows {
    let window_ns = window_ns.max(1);
    let Some(t0) = bids.iter().map(|b| b.0).min() else {
        return Windows::default();
    };
    let n = bids
        .iter()
        .map(|b| (b.0 - t0) / window_ns + 1)
        .max()
        .unwrap_or(0) as usize;
    let mut hists: Vec<Histogram<u64>> = (0..n).map(|_| new_hist()).collect();
    let mut unanswered = vec![0u64; n];
    for &(due, ack) in bids {
        let i = ((due - t0) / window_ns) as usize;
        match ack {
            Some(at) => record(&mut hists[i], at.saturating_sub(due) / 1000),
            None => unanswered[i] += 1,
        }
    }
    let (mut with, mut without) = (new_hist(), new_hist());
    let mut out = Windows {
        window_s: window_ns as f64 / 1e9,
        samples: samples.to_vec(),
        ..Windows::default()
    };
    for (i, h) in hists.iter().enumerate() {
        let a = t0 + i as u64 * window_ns;
        let snapshot = marked(samples, a, a + window_ns);
        match snapshot {
            Some(true) => {
                out.with_snapshot += 1;
                let _ = with.add(h);
            }
            Some(false) => {
                out.without_snapshot += 1;
                let _ = without.add(h);
            }
            None => {}
        }
        out.windows.push(Window {
            start_s: (i as u64 * window_ns) as f64 / 1e9,
            snapshot,
            ack: Latency::of(h),
            unanswered: unanswered[i],
        });
    }
    out.ack_with_snapshot = Latency::of(&with);
    out.ack_without_snapshot = Latency::of(&without);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        out.snapshots_started = last.started - first.started.min(last.started);
        out.snapshots_saved = last.saved - first.saved.min(last.saved);
        out.last_snapshot_bytes = last.bytes;
    }
    out
}

/// Whether a snapshot may have run in `[a, b)`: `started(b) > saved(a)` (see the module).
fn marked(samples: &[SnapshotCounters], a: u64, b: u64) -> Option<bool> {
    let started = samples
        .iter()
        .find(|s| s.at_ns >= b)
        .or(samples.last())?
        .started;
    let saved = samples
        .iter()
        .rev()
        .find(|s| s.at_ns <= a)
        .or(samples.first())?
        .saved;
    Some(started > saved)
}

impl Windows {
    /// The human summary's lines.
    pub fn lines(&self) -> String {
        let mut s = format!(
            "windows of {:.0} s: {} with a snapshot, {} without; snapshots started {}, saved {}, newest {:.1} MiB\n",
            self.window_s,
            self.with_snapshot,
            self.without_snapshot,
            self.snapshots_started,
            self.snapshots_saved,
            self.last_snapshot_bytes as f64 / (1 << 20) as f64
        );
        s += &format!("  with a snapshot   {}\n", self.ack_with_snapshot.line());
        s += &format!("  without           {}\n", self.ack_without_snapshot.line());
        for w in &self.windows {
            s += &format!(
                "  {:>6.0} s {:<10} {}{}\n",
                w.start_s,
                match w.snapshot {
                    Some(true) => "snapshot",
                    Some(false) => "",
                    None => "?",
                },
                w.ack.line(),
                if w.unanswered > 0 {
                    format!("  unanswered {}", w.unanswered)
                } else {
                    String::new()
                }
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn at(t_s: u64, started: u64, saved: u64) -> SnapshotCounters {
        SnapshotCounters {
            at_ns: t_s * S,
            started,
            saved,
            bytes: saved * 100,
        }
    }

    #[test]
    fn reads_the_counters_and_only_whole_names() {
        let text = "# TYPE gavel_snapshots_started_total counter\n\
                    gavel_snapshots_started_total_x 9\n\
                    gavel_snapshots_started_total 3\n\
                    gavel_snapshots_saved_total 2\n\
                    gavel_snapshot_bytes 81234567\n";
        assert_eq!(
            parse_counters(text, 7),
            Some(SnapshotCounters {
                at_ns: 7,
                started: 3,
                saved: 2,
                bytes: 81_234_567
            })
        );
        assert_eq!(parse_counters("gavel_bids_total 5\n", 0), None);
    }

    #[test]
    fn a_window_is_marked_when_a_snapshot_ran_in_any_part_of_it() {
        // Windows of 10 s from t = 100 s. Snapshot 1 runs 112–114 s (inside window 1),
        // snapshot 2 runs 128–133 s (across windows 2 and 3); window 0 and 4 have none.
        // Counters sampled every second; one snapshot saved before the run.
        let mut samples = Vec::new();
        for t in 99..=151 {
            let started = 1 + u64::from(t >= 112) + u64::from(t >= 128);
            let saved = 1 + u64::from(t >= 114) + u64::from(t >= 133);
            samples.push(at(t, started, saved));
        }
        // Bids every 100 ms from 100 s to 150 s: 5 ms each, but 900 ms while a snapshot
        // runs; one bid due at 131 s is never answered.
        let mut bids = Vec::new();
        for k in 0..500u64 {
            let due = 100 * S + k * S / 10;
            let stalled = (112 * S..114 * S).contains(&due) || (128 * S..133 * S).contains(&due);
            let lat = if stalled { 900_000_000 } else { 5_000_000 };
            let ack = (due != 131 * S).then_some(due + lat);
            bids.push((due, ack));
        }
        let w = windows(&bids, 10 * S, &samples);
        let marks: Vec<Option<bool>> = w.windows.iter().map(|x| x.snapshot).collect();
        assert_eq!(
            marks,
            [Some(false), Some(true), Some(true), Some(true), Some(false)]
        );
        assert_eq!((w.with_snapshot, w.without_snapshot), (3, 2));
        assert_eq!((w.snapshots_started, w.snapshots_saved), (2, 2));
        assert_eq!(w.last_snapshot_bytes, 300);
        assert_eq!(w.windows[3].unanswered, 1);
        assert_eq!(w.ack_without_snapshot.count, 200);
        assert!(w.ack_without_snapshot.max_ms < 6.0);
        assert_eq!(w.ack_with_snapshot.count, 299);
        assert!(w.ack_with_snapshot.p999_ms > 800.0);
        assert_eq!(w.windows[0].ack.count, 100);
        assert!((w.windows[4].start_s - 40.0).abs() < 1e-9);
    }

    #[test]
    fn without_counters_no_window_is_classed() {
        let bids = [(0, Some(1_000_000)), (15 * S, Some(15 * S + 2_000_000))];
        let w = windows(&bids, 10 * S, &[]);
        assert_eq!(w.windows.len(), 2);
        assert!(w.windows.iter().all(|x| x.snapshot.is_none()));
        assert_eq!((w.with_snapshot, w.without_snapshot), (0, 0));
        assert_eq!(w.windows[1].ack.count, 1);
    }
}
