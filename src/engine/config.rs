//! The engine's settings.

use super::clock;
use std::time::Duration;

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
    /// A recovery that replayed at least this many commands on top of its snapshot makes
    /// the next write carry a snapshot (0: never), so that an engine restarted again and
    /// again (a crash loop) does not replay an ever longer tail.
    pub snapshot_after_replay_commands: u64,
    /// First wait before retrying a failed journal; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait between journal retries.
    pub retry_max: Duration,
    /// The wall clock the engine stamps commands with and times lots by (ms since the
    /// Unix epoch). The host's clock by default; a test can put a clock it controls here.
    pub wall_clock: fn() -> u64,
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
            snapshot_after_replay_commands: 100_000,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            wall_clock: clock::system_wall_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn host_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
    }

    #[test]
    fn the_default_wall_clock_is_the_hosts() {
        let before = host_ms();
        let read = (EngineConfig::default().wall_clock)();
        let after = host_ms();
        assert!(
            before <= read && read <= after,
            "{before} <= {read} <= {after}"
        );
    }
}
