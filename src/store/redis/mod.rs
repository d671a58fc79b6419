//! The production journal: Redis Streams, guarded by a lease with a fencing token.
//!
//! Owns the journal's keys in one Redis database, all under a configurable prefix:
//!
//! | key                   | type   | holds                                                    |
//! |-----------------------|--------|----------------------------------------------------------|
//! | `{prefix}:log`        | stream | one entry per batch, id `{first_seq}-{last_seq}`, field `b` = MessagePack `Batch` |
//! | `{prefix}:outcomes`   | stream | one entry per `OutcomeRecord`, auto id, field `o` = MessagePack record |
//! | `{prefix}:last_seq`   | string | the last durable seq (absent = 0)                         |
//! | `{prefix}:epoch`      | string | fencing counter, incremented by every engine that takes the lease |
//! | `{prefix}:lease`      | string | `{epoch}:{owner}` of the engine that owns the journal, with a TTL |
//! | `{prefix}:snapshot`   | hash   | `seq`, `parts`, `len` of the newest snapshot (or `seq`, `bytes` as written before snapshots were saved in parts; still read) |
//! | `{prefix}:snapshot:parts` | list | the newest snapshot's bytes, in parts of at most 1 MiB |
//! | `{prefix}:snapshot:staging` | list | the parts of a snapshot being saved; renamed to `snapshot:parts` by the save's last step |
//!
//! Every write is one Lua script, so Redis runs it atomically, and every script checks
//! before it writes: a refused append or snapshot writes nothing. The fencing does not rest
//! on clocks: the lease TTL only decides when another engine may *take over*; whether a
//! write is allowed is decided inside Redis, against the lease value, at the moment of the
//! write.
//!
//! It must not apply commands, or retry and back off on its own: when Redis is unreachable
//! it fails fast (`StoreError::Unavailable`, bounded by `op_timeout_ms`) and the engine
//! decides when to try again; the next call reconnects. (The one exception: a request that
//! meets a connection found dead since the last call is sent once more on a fresh one,
//! within the same deadline, so a Redis restart between two calls costs no error.)
//!
//! # Redis Cluster
//!
//! With `cluster_urls` set, the journal runs on a Redis Cluster. Its prefix must hold a
//! hash tag (`{m:north}`, checked by `validate`), so that every key above hashes to one
//! slot, served by one master: the scripts touch several keys at once, and one slot is
//! what lets them stay atomic. Every request goes to that slot's master (see `target`),
//! the persistence settings read at open are that master's, and `replicas_to_wait`
//! makes an append wait for its replicas (see `link` for what that does and does not
//! promise across a failover). Several journals (markets) on one cluster use several
//! tags, which spread over the masters.
//!
//! # Where the code is
//!
//! - this file: the settings, the key names, and `redact_url`;
//! - `journal`: [`RedisJournal`] and its `Journal` operations (append, read back,
//!   snapshots in parts, close);
//! - `scripts`: the Lua scripts (the `.lua` files under `scripts/`), how they are composed
//!   and loaded, and the conventions they all keep;
//! - `lease`: the lease, its renewal task, and the owner id written into it;
//! - `link`: the connection: one request with a deadline, sent once more on a fresh
//!   connection if the kept one was dead, what each Redis error means, and the `WAIT`
//!   for replicas;
//! - `target`: one node or a cluster, and routing every request to the prefix's slot;
//! - `persistence`: what Redis's persistence settings promise about an acknowledged batch.

mod journal;
mod lease;
mod link;
mod persistence;
mod scripts;
mod target;

#[doc(hidden)]
pub use journal::decode_entry;
pub use journal::{RedisJournal, RedisLog};
pub use persistence::{Durability, Persistence};
pub use target::{hash_tag, RedisConn, RedisTarget};

use crate::store::StoreError;
use std::time::Duration;

/// Settings of the Redis journal. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisJournalConfig {
    /// Where Redis is, as a `redis://` or `rediss://` URL (a password in it is never
    /// logged). Default `redis://127.0.0.1:6379/0`. Not used when `cluster_urls` is set.
    pub url: String,
    /// Seeds of a Redis Cluster (`redis://host:port` of some of its nodes; the others are
    /// discovered). Empty (the default): one Redis at `url`. Set: the journal runs on the
    /// cluster, and `prefix` must hold a hash tag (see the module docs).
    pub cluster_urls: Vec<String>,
    /// Prefix of every key (see the module docs). Default `gavel`; one prefix is one
    /// journal, so two markets on one Redis use two prefixes.
    pub prefix: String,
    /// How long the lease outlives its owner's last renewal. Default 10 000 ms: a crashed
    /// engine's successor can take over 10 s after the crash, while a Redis hiccup of a few
    /// seconds does not lose the lease. Renewed every third of it.
    pub lease_ttl_ms: u64,
    /// Upper bound on every Redis call, connecting included. Default 2 000 ms: an fsync
    /// on a healthy disk takes a few ms, so 2 s means Redis or the network is in trouble,
    /// and the engine should tell waiting clients `unavailable` rather than hold them.
    pub op_timeout_ms: u64,
    /// Refuse to start unless Redis runs with `appendonly yes` and `appendfsync always`,
    /// the only setting under which every acknowledged batch is on disk. Default `false`
    /// (the durability Redis gives is logged at start either way).
    pub require_fsync: bool,
    /// `None` (the default) keeps the whole log: it is the audit trail that settles bid
    /// disputes. `Some(n)` trims, after each snapshot, the log entries holding only
    /// commands more than `n` behind the snapshot (recovery needs only the snapshot and
    /// what follows it; `gavel replay --verify` then cannot start from the first command).
    pub retain_commands_behind_snapshot: Option<u64>,
    /// After each append and snapshot, wait until this many replicas of the master have
    /// the write (`WAIT`); fewer within `replica_wait_timeout_ms` is `Unavailable`, so the
    /// batch is not acknowledged. Default 0: no wait, the master's reply is enough (as
    /// with a single Redis). See `link` for what `WAIT` promises across a failover.
    pub replicas_to_wait: u32,
    /// How long one `WAIT` may take. Default 500 ms: replicas on the same network answer
    /// in about a millisecond, so 500 ms means a replica is in trouble; it must stay below
    /// `op_timeout_ms`, which bounds the append and its `WAIT` together.
    pub replica_wait_timeout_ms: u64,
}

impl Default for RedisJournalConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            cluster_urls: Vec::new(),
            prefix: "gavel".to_owned(),
            lease_ttl_ms: 10_000,
            op_timeout_ms: 2_000,
            require_fsync: false,
            retain_commands_behind_snapshot: None,
            replicas_to_wait: 0,
            replica_wait_timeout_ms: 500,
        }
    }
}

impl RedisJournalConfig {
    /// Every problem with the settings, or none.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.prefix.is_empty() || self.prefix.chars().any(char::is_whitespace) {
            errors.push(format!(
                "redis prefix {:?} must be non-empty and contain no whitespace",
                self.prefix
            ));
        }
        // Renewal runs every ttl/3; below 100 ms that is a busy loop against Redis.
        if self.lease_ttl_ms < 100 {
            errors.push(format!(
                "redis lease_ttl_ms = {} is below the minimum of 100",
                self.lease_ttl_ms
            ));
        }
        if self.op_timeout_ms == 0 {
            errors.push("redis op_timeout_ms must be at least 1".to_owned());
        }
        let valid = |url: &str| redis::IntoConnectionInfo::into_connection_info(url).is_ok();
        if self.cluster_urls.is_empty() {
            if !valid(&self.url) {
                errors.push(format!(
                    "redis url {:?} is not a valid URL",
                    redact_url(&self.url)
                ));
            }
        } else {
            for url in self.cluster_urls.iter().filter(|u| !valid(u)) {
                errors.push(format!(
                    "redis cluster url {:?} is not a valid URL",
                    redact_url(url)
                ));
            }
            // Without a tag the journal's keys spread over the slots, and every script
            // would fail with CROSSSLOT.
            if hash_tag(&self.prefix).is_none() {
                errors.push(format!(
                    "redis prefix {:?} has no hash tag: on a Redis Cluster it must hold one, \
                     e.g. {{{}}}, so that all its keys live in one slot",
                    self.prefix, self.prefix
                ));
            }
        }
        if self.replicas_to_wait > 0
            && (self.replica_wait_timeout_ms == 0
                || self.replica_wait_timeout_ms >= self.op_timeout_ms)
        {
            // WAIT with a timeout of 0 blocks for ever; at or past the op timeout the
            // append's deadline would cut every slow WAIT short.
            errors.push(format!(
                "redis replica_wait_timeout_ms = {} must be at least 1 and below \
                 op_timeout_ms = {}",
                self.replica_wait_timeout_ms, self.op_timeout_ms
            ));
        }
        errors
    }

    /// Where the journal's Redis is: `url`, or the cluster `cluster_urls` seeds, routed to
    /// the prefix's slot.
    pub fn target(&self) -> Result<RedisTarget, StoreError> {
        RedisTarget::new(
            &self.url,
            &self.cluster_urls,
            &Keys::new(&self.prefix).log,
            Duration::from_millis(self.op_timeout_ms),
        )
        .map_err(StoreError::Misconfigured)
    }

    /// The URLs for logs and `describe()`: `url`, or the cluster's seeds, without passwords.
    pub fn describe_where(&self) -> String {
        if self.cluster_urls.is_empty() {
            redact_url(&self.url)
        } else {
            let seeds: Vec<String> = self.cluster_urls.iter().map(|u| redact_url(u)).collect();
            format!("cluster [{}]", seeds.join(", "))
        }
    }
}

/// The journal's key names, derived once from the prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    log: String,
    outcomes: String,
    last_seq: String,
    epoch: String,
    lease: String,
    snapshot: String,
    snapshot_parts: String,
    snapshot_staging: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            log: format!("{prefix}:log"),
            outcomes: format!("{prefix}:outcomes"),
            last_seq: format!("{prefix}:last_seq"),
            epoch: format!("{prefix}:epoch"),
            lease: format!("{prefix}:lease"),
            snapshot: format!("{prefix}:snapshot"),
            snapshot_parts: format!("{prefix}:snapshot:parts"),
            snapshot_staging: format!("{prefix}:snapshot:staging"),
        }
    }
}

/// The URL with any user and password removed, for logs and `describe()`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("redis://:secret@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:pw@db:6380"),
            "rediss://***@db:6380"
        );
        assert_eq!(redact_url("redis://db:6379/2"), "redis://db:6379/2");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn default_config_is_valid() {
        assert!(RedisJournalConfig::default().validate().is_empty());
        let bad = RedisJournalConfig {
            prefix: String::new(),
            lease_ttl_ms: 10,
            op_timeout_ms: 0,
            url: "nope".into(),
            ..RedisJournalConfig::default()
        };
        assert_eq!(bad.validate().len(), 4);
    }

    #[test]
    fn cluster_settings_are_checked() {
        let cluster = RedisJournalConfig {
            url: String::new(),
            cluster_urls: vec!["redis://127.0.0.1:7000".into()],
            prefix: "{m:north}".into(),
            ..RedisJournalConfig::default()
        };
        assert!(cluster.validate().is_empty(), "{:?}", cluster.validate());
        let untagged = RedisJournalConfig {
            prefix: "gavel".into(),
            ..cluster.clone()
        };
        let errors = untagged.validate();
        assert!(
            errors.len() == 1 && errors[0].contains("hash tag"),
            "{errors:?}"
        );
        let bad_seed = RedisJournalConfig {
            cluster_urls: vec!["nope".into()],
            ..cluster.clone()
        };
        assert_eq!(bad_seed.validate().len(), 1);
        let wait_too_long = RedisJournalConfig {
            replicas_to_wait: 1,
            replica_wait_timeout_ms: 2_000,
            op_timeout_ms: 2_000,
            ..cluster.clone()
        };
        assert_eq!(wait_too_long.validate().len(), 1);
        assert!(cluster.target().is_ok_and(|t| t.is_cluster()));
        assert!(RedisJournalConfig::default()
            .target()
            .is_ok_and(|t| !t.is_cluster()));
    }
}
