//! What Redis's persistence settings promise about an acknowledged batch, read once at
//! open.
//!
//! Owns reading `appendonly` and `appendfsync` and putting them in words. It must not
//! change Redis's settings, and must not fail the open because Redis refuses `CONFIG`
//! (that is `Durability::Unknown`, and only `require_fsync` then refuses to start); an
//! unreachable Redis is `Unavailable`, as everywhere.

use super::link::{Failure, Link, Request};
use crate::store::StoreError;
use std::fmt;

/// What Redis's persistence settings promise about an acknowledged batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `appendonly yes`, `appendfsync always`: Redis fsyncs the AOF before it replies, so
    /// every acknowledged batch is on disk.
    EveryBatch,
    /// `appendonly yes`, `appendfsync everysec`: a crash of the Redis host can lose up to
    /// about one second of acknowledged batches (two, Redis's docs say, when the disk is
    /// slow to fsync).
    AboutOneSecond,
    /// `appendonly yes`, `appendfsync no`: the operating system decides when the AOF
    /// reaches the disk (often within 30 s); a host crash loses what it had not flushed.
    OsFlush,
    /// `appendonly no`: acknowledged batches survive only while Redis keeps running (RDB
    /// snapshots, if any, are periodic and lose everything since the last one).
    WhileRunning,
    /// The settings could not be read (e.g. `CONFIG` is disabled, as on some managed
    /// services) or hold values this code does not know.
    Unknown(String),
}

impl Durability {
    fn from_settings(appendonly: &str, appendfsync: &str) -> Self {
        match (appendonly, appendfsync) {
            ("no", _) => Self::WhileRunning,
            ("yes", "always") => Self::EveryBatch,
            ("yes", "everysec") => Self::AboutOneSecond,
            ("yes", "no") => Self::OsFlush,
            (a, f) => Self::Unknown(format!("appendonly={a} appendfsync={f}")),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EveryBatch => f.write_str("every acknowledged batch is on disk"),
            Self::AboutOneSecond => f.write_str(
                "up to ~1 s of acknowledged batches can be lost if the Redis host crashes",
            ),
            Self::OsFlush => f.write_str(
                "the OS decides when batches reach the disk; a Redis host crash can lose \
                 tens of seconds of acknowledged batches",
            ),
            Self::WhileRunning => f.write_str(
                "acknowledged batches survive only while Redis keeps running; a Redis \
                 restart loses them",
            ),
            Self::Unknown(why) => write!(f, "unknown durability ({why})"),
        }
    }
}

/// Redis's persistence settings as read at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// `CONFIG GET appendonly`, or `?` if it could not be read.
    pub appendonly: String,
    /// `CONFIG GET appendfsync`, or `?` if it could not be read.
    pub appendfsync: String,
    /// What they promise.
    pub durability: Durability,
}

/// Reads `appendonly` and `appendfsync`. A Redis that refuses `CONFIG` (managed services
/// often rename it) gives `Durability::Unknown` rather than an error, so the journal still
/// starts unless `require_fsync` is set.
pub(super) async fn read_persistence(link: &mut Link) -> Result<Persistence, StoreError> {
    // Two CONFIG GETs in one pipeline: CONFIG GET with several names needs Redis 7.
    let mut pipe = redis::pipe();
    pipe.cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync");
    let reply: Result<(Vec<String>, Vec<String>), Failure> = link
        .query("read persistence settings", Request::Pipe(&pipe))
        .await;
    match reply {
        Ok((appendonly, appendfsync)) => {
            let value = |pair: &[String]| pair.get(1).cloned().unwrap_or_else(|| "?".into());
            let (appendonly, appendfsync) = (value(&appendonly), value(&appendfsync));
            let durability = Durability::from_settings(&appendonly, &appendfsync);
            Ok(Persistence {
                appendonly,
                appendfsync,
                durability,
            })
        }
        Err(Failure::Store(StoreError::Unavailable(why))) => {
            // A server error (CONFIG disabled) or a lost connection. Tell the two apart with
            // a PING: if Redis answers, the settings are just unreadable.
            let ping: Result<String, Failure> =
                link.query("ping", Request::Cmd(&redis::cmd("PING"))).await;
            match ping {
                Ok(_) => Ok(Persistence {
                    appendonly: "?".into(),
                    appendfsync: "?".into(),
                    durability: Durability::Unknown(format!("CONFIG GET failed: {why}")),
                }),
                Err(f) => Err(f.plain()),
            }
        }
        Err(f) => Err(f.plain()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_in_words() {
        assert_eq!(
            Durability::from_settings("yes", "always"),
            Durability::EveryBatch
        );
        assert_eq!(
            Durability::from_settings("yes", "everysec"),
            Durability::AboutOneSecond
        );
        assert_eq!(Durability::from_settings("yes", "no"), Durability::OsFlush);
        assert_eq!(
            Durability::from_settings("no", "always"),
            Durability::WhileRunning
        );
        assert!(matches!(
            Durability::from_settings("?", "?"),
            Durability::Unknown(_)
        ));
    }
}
