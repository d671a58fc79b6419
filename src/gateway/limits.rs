//! Per-dealer and per-connection limits: the bid-rate token bucket and the bad-frame
//! counter.
//!
//! Both are plain state machines with time passed in as milliseconds on a monotonic clock
//! chosen by the caller (for instance, ms since the process started, from `Instant`). They
//! never read a clock themselves, so tests drive them on a virtual clock and a clock that
//! steps backwards (it should not, but) cannot make them panic or over-grant.

use std::collections::VecDeque;

/// WebSocket close code: policy violation (sent after too many bad frames).
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// WebSocket close code: message too big (a frame over the size limit).
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// A bid rate: `burst` bids at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BidRate {
    /// Bucket size: bids a dealer may place back to back.
    pub burst: u32,
    /// Sustained bids per second.
    pub per_second: u32,
}

impl Default for BidRate {
    /// 10 at once, 5 per second sustained. A person bidding by hand does not reach that;
    /// a bidding tool that needs more should send a proxy `max` instead of a bid stream,
    /// and the limit keeps one dealer's loop from taking the sequencer's time from others.
    fn default() -> Self {
        Self {
            burst: 10,
            per_second: 5,
        }
    }
}

/// One thousandth of a token: refill is computed in whole milli-tokens, so no floats and
/// no drift however the calls are spaced.
const MILLI: u64 = 1_000;

/// A token bucket for one dealer's bids (share it across that dealer's connections).
/// Starts full. 24 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: BidRate,
    /// Available tokens × 1000.
    milli_tokens: u64,
    /// The time of the last refill.
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ms`.
    pub fn new(rate: BidRate, now_ms: u64) -> Self {
        Self {
            rate,
            milli_tokens: u64::from(rate.burst) * MILLI,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        // A clock reading earlier than the last one refills nothing (and does not move the
        // reference back, so the time is not counted twice later).
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // per_second tokens per 1000 ms = per_second milli-tokens per ms.
        let gained = elapsed.saturating_mul(u64::from(self.rate.per_second));
        let cap = u64::from(self.rate.burst) * MILLI;
        self.milli_tokens = self.milli_tokens.saturating_add(gained).min(cap);
    }

    /// Takes one token if there is one: `true` lets the bid through, `false` answers it
    /// `rate_limited` (and the bid_id stays free for a retry).
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        match self.milli_tokens.checked_sub(MILLI) {
            Some(left) => {
                self.milli_tokens = left;
                true
            }
            None => false,
        }
    }

    /// Whole tokens available at `now_ms` (refills first).
    pub fn available(&mut self, now_ms: u64) -> u32 {
        self.refill(now_ms);
        u32::try_from(self.milli_tokens / MILLI).unwrap_or(u32::MAX)
    }
}

/// Counts bad frames on one connection: more than `limit` within `window_ms` means the
/// client is broken or hostile, and the connection is closed with
/// [`CLOSE_POLICY_VIOLATION`].
///
/// Keeps the times of the last `limit + 1` bad frames at most, allocated on the first bad
/// frame (a well-behaved connection pays nothing): 168 bytes at the default limit of 20.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFrames {
    limit: usize,
    window_ms: u64,
    times: VecDeque<u64>,
}

impl BadFrames {
    /// The contract's rule: more than 20 bad frames within 10 s.
    pub const CONTRACT_LIMIT: usize = 20;
    /// The contract's window, ms.
    pub const CONTRACT_WINDOW_MS: u64 = 10_000;

    /// A counter closing after more than `limit` bad frames within `window_ms`.
    pub fn new(limit: usize, window_ms: u64) -> Self {
        Self {
            limit,
            window_ms,
            times: VecDeque::new(),
        }
    }

    /// Records a bad frame at `now_ms`. Returns `true` when the connection must now be
    /// closed with [`CLOSE_POLICY_VIOLATION`].
    ///
    /// A frame counts while `now_ms - t < window_ms`: the 21st frame 9,999 ms after the
    /// first closes; 10,000 ms after it does not.
    pub fn record(&mut self, now_ms: u64) -> bool {
        // A clock that stepped back is treated as "no time passed".
        let now = self.times.back().map_or(now_ms, |&last| last.max(now_ms));
        while self
            .times
            .front()
            .is_some_and(|&t| now - t >= self.window_ms)
        {
            self.times.pop_front();
        }
        if self.times.capacity() == 0 {
            self.times
                .reserve_exact(self.limit.saturating_add(1).min(64));
        }
        self.times.push_back(now);
        let close = self.times.len() > self.limit;
        if close {
            // Keep the bound even if the caller ignores the verdict.
            self.times.pop_front();
        }
        close
    }

    /// Bad frames within the window ending at the last one recorded.
    pub fn recent(&self) -> usize {
        self.times.len()
    }
}

impl Default for BadFrames {
    fn default() -> Self {
        Self::new(Self::CONTRACT_LIMIT, Self::CONTRACT_WINDOW_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_sustained_rate() {
        let rate = BidRate {
            burst: 3,
            per_second: 2,
        };
        let mut b = TokenBucket::new(rate, 1_000);
        // (time ms, expected verdict): the burst, then one token per 500 ms.
        let table = [
            (1_000, true),
            (1_000, true),
            (1_000, true),
            (1_000, false),
            (1_499, false), // 998 milli-tokens: not yet one token
            (1_500, true),  // exactly one token after 500 ms
            (1_500, false),
            (2_000, true),
            (2_250, false),
            (2_500, true),
            // A long pause refills to the burst, not beyond.
            (60_000, true),
            (60_000, true),
            (60_000, true),
            (60_000, false),
        ];
        for (i, (now, want)) in table.into_iter().enumerate() {
            assert_eq!(b.try_take(now), want, "row {i} at {now} ms");
        }
    }

    #[test]
    fn bucket_survives_clock_steps_back_and_extreme_values() {
        let mut b = TokenBucket::new(
            BidRate {
                burst: 1,
                per_second: 1,
            },
            10_000,
        );
        assert!(b.try_take(10_000));
        // Back in time: nothing refilled, no panic.
        assert!(!b.try_take(5_000));
        // The step back did not move the reference: 1 s after the first reading refills.
        assert!(!b.try_take(10_999));
        assert!(b.try_take(11_000));
        // u64::MAX elapsed with a huge rate saturates to the burst.
        let mut b = TokenBucket::new(
            BidRate {
                burst: u32::MAX,
                per_second: u32::MAX,
            },
            0,
        );
        assert_eq!(b.available(u64::MAX), u32::MAX);
        // burst 0: never.
        let mut b = TokenBucket::new(
            BidRate {
                burst: 0,
                per_second: 100,
            },
            0,
        );
        assert!(!b.try_take(1_000_000));
        // rate 0: the burst and then never again.
        let mut b = TokenBucket::new(
            BidRate {
                burst: 2,
                per_second: 0,
            },
            0,
        );
        assert!(b.try_take(0) && b.try_take(0));
        assert!(!b.try_take(u64::MAX));
    }

    #[test]
    fn bad_frames_close_after_more_than_twenty_within_ten_seconds() {
        let mut c = BadFrames::default();
        for i in 0..20 {
            assert!(!c.record(1_000 + i * 100), "frame {} closed early", i + 1);
        }
        // The 21st within 10 s closes.
        assert!(c.record(1_000 + 9_999));

        // 21 frames spread so that the first has always left the window: never closes.
        let mut c = BadFrames::default();
        for i in 0..1_000u64 {
            assert!(!c.record(i * 500), "frame {i} closed");
        }
        assert!(c.recent() <= 20);

        // Exactly at the window edge the oldest no longer counts.
        let mut c = BadFrames::default();
        for _ in 0..20 {
            assert!(!c.record(0));
        }
        assert!(
            !c.record(10_000),
            "the first 20 are 10 s old: out of the window"
        );
        assert!(
            !c.record(10_000 - 1),
            "clock step back counts as no time passing"
        );
    }

    #[test]
    fn bad_frames_table() {
        // (limit, window, times, index of the first frame that closes)
        let table: &[(usize, u64, &[u64], Option<usize>)] = &[
            (2, 100, &[0, 1, 2], Some(2)),
            (2, 100, &[0, 50, 99], Some(2)),
            (2, 100, &[0, 50, 100, 150], None), // each arrival pushes the oldest out
            (2, 100, &[0, 100, 200, 300], None),
            (0, 100, &[5], Some(0)),
            (1, 0, &[0, 0, 0], None), // an empty window never closes
        ];
        for (row, &(limit, window, times, want)) in table.iter().enumerate() {
            let mut c = BadFrames::new(limit, window);
            let got = times.iter().position(|&t| c.record(t));
            assert_eq!(got, want, "row {row}");
        }
    }
}
