//! The engine's two clock reads. Nothing else in the engine asks the host for the time:
//! the sequencing loop reads these and hands the readings to its `Policy`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time, for queue deadlines, the snapshot interval and write latency. Read
/// through tokio so that a test on a paused runtime (`start_paused`) moves it with the
/// clock it advances; in a build without tokio's `test-util` this is the host's
/// monotonic clock.
pub(super) fn monotonic_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Milliseconds since the Unix epoch by the host clock: the engine's wall clock, which it
/// stamps into every command, unless `EngineConfig::wall_clock` names another.
pub(super) fn system_wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
