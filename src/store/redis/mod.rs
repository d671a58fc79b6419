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
//! For Redis Cluster, wrap the prefix in braces (`{gavel}`) so that every key hashes to
//! the same slot: the scripts touch several keys at once.
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
//!   connection if the kept one was dead, and what each Redis error means;
//! - `persistence`: what Redis's persistence settings promise about an acknowledged batch.

mod journal;
mod lease;
mod link;
mod persistence;
mod scripts;

#[doc(hidden)]
pub use journal::decode_entry;
pub use journal::{RedisJournal, RedisLog};
pub use persistence::{Durability, Persistence};

/// Settings of the Redis journal. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisJournalConfig {
    /// Where Redis is, as a `redis://` or `rediss://` URL (a password in it is never
    /// logged). Default `redis://127.0.0.1:6379/0`.
    pub url: String,
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
}

impl Default for RedisJournalConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            prefix: "gavel".to_owned(),
            lease_ttl_ms: 10_000,
            op_timeout_ms: 2_000,
            require_fsync: false,
            retain_commands_behind_snapshot: None,
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
        if redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).is_err() {
            errors.push(format!(
                "redis url {:?} is not a valid URL",
                redact_url(&self.url)
            ));
        }
        errors
    }
}

/// The journal's key names, derived once from the prefix.
#[derive(Clone, Debug)]
struct Keys {
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
}
