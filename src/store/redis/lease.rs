//! The lease that makes this engine the journal's only writer: its value and epoch, the
//! task that renews it, and the owner id written into it.
//!
//! Owns what every lease-guarded script is sent with (`Lease::guarded`) and the renewal:
//! every `ttl / 3`, on its own connection, until fenced. Taking the lease at open and
//! releasing it at close are `RedisJournal`'s calls. It must not decide whether a write is
//! allowed (the scripts decide that inside Redis, against the lease value, at the moment
//! of the write), and must not stop renewing over an outage: the lease may still be ours
//! when Redis comes back.

use super::link::{Failure, Link, Request};
use super::scripts::{Lua, Scripts};
use super::Keys;
use crate::store::StoreError;
use redis::Cmd;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// What the lease-guarded scripts need to know about the lease.
#[derive(Clone, Debug)]
pub(super) struct Lease {
    /// `{epoch}:{owner}`: what the lease key must hold for our writes to go through.
    pub(super) value: String,
    pub(super) epoch: u64,
    pub(super) ttl_ms: u64,
}

impl Lease {
    /// `EVALSHA` of a guarded script: KEYS lease, epoch, `extra`...; ARGV value, epoch,
    /// ttl, then whatever the caller adds.
    pub(super) fn guarded(&self, keys: &Keys, script: &Lua, extra: &[&str]) -> Cmd {
        let mut all = vec![keys.lease.as_str(), keys.epoch.as_str()];
        all.extend_from_slice(extra);
        let mut cmd = script.evalsha(&all);
        cmd.arg(&self.value).arg(self.epoch).arg(self.ttl_ms);
        cmd
    }
}

/// The background renewal: every `ttl / 3`, extend the lease if it is still ours. Stops
/// for good once fenced; keeps trying through outages (each attempt bounded by the op
/// timeout), since the lease may still be ours when Redis comes back.
pub(super) async fn renew_lease(mut link: Link, keys: Keys, scripts: Arc<Scripts>, lease: Lease) {
    let mut every = tokio::time::interval(Duration::from_millis(lease.ttl_ms / 3));
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    every.tick().await; // the first tick is immediate; the lease was just set
    let renew = lease.guarded(&keys, &scripts.renew, &[]);
    let epoch = lease.epoch;
    loop {
        every.tick().await;
        let request = Request::Script {
            evalsha: &renew,
            lua: &scripts.renew,
        };
        match link.query::<i64>("renew lease", request).await {
            Ok(_) => tracing::trace!(epoch, "redis journal lease renewed"),
            Err(Failure::Store(StoreError::Fenced(why))) => {
                tracing::error!(
                    epoch,
                    %why,
                    "redis journal lease lost to another engine; this engine's appends \
                     will be refused"
                );
                return;
            }
            Err(f) => {
                tracing::warn!(epoch, error = %f.plain(), "redis journal lease renewal failed")
            }
        }
    }
}

/// Who holds the lease, for operators reading `{prefix}:lease`: host, pid and a random
/// part (so two engines in one container image never look alike).
pub(super) fn owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
