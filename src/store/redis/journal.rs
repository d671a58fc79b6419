//! [`RedisJournal`]: opening (persistence check, scripts loaded, lease taken) and the
//! `Journal` operations on Redis Streams.
//!
//! Owns the journal's calls: which script or command each operation sends, with which keys
//! and arguments, and what the reply means; and settling an append whose outcome is
//! unknown. It must not write except through a lease-guarded script, and must not retry on
//! its own beyond what `link` does.

use super::lease::{owner_id, renew_lease, Lease};
use super::link::{Failure, Link, Replication, Request};
use super::persistence::{read_persistence, Durability, Persistence};
use super::scripts::{Lua, Scripts};
use super::{Keys, RedisJournalConfig};
use crate::store::{Batch, Journal, JournalRead, OutcomeStream, Snapshot, StoreError};
use redis::streams::StreamRangeReply;
use redis::{Cmd, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Bytes of a snapshot per Redis call. Redis runs one command at a time, so an append
/// queued behind a snapshot call waits for all of it: a large book saved in one call would
/// hold up every append queued behind it, and parts bound that wait to one part's.
const SNAPSHOT_PART_BYTES: usize = 1 << 20;

/// Parts per read when a snapshot is loaded.
const SNAPSHOT_READ_PARTS: usize = 16;

/// The Redis journal. See the `store::redis` module docs for the keys, and its `scripts`
/// module for the scripts.
///
/// Opening takes the lease; dropping the journal stops renewing it, so another engine can
/// take over once the TTL runs out ([`RedisJournal::close`] releases it at once).
pub struct RedisJournal {
    link: Link,
    keys: Keys,
    scripts: Arc<Scripts>,
    lease: Lease,
    persistence: Persistence,
    description: String,
    /// The outcomes stream, for the alliance's consumer group.
    outcomes: OutcomeStream,
    /// The seq range of an append whose outcome is unknown (it failed `Unavailable`, so
    /// Redis may or may not have applied it). Set before each append is sent, cleared on
    /// any definite answer.
    uncertain: Option<(u64, u64)>,
    /// `RedisJournalConfig::retain_commands_behind_snapshot`.
    config_retain: Option<u64>,
    /// Renews the lease every `lease_ttl_ms / 3`; aborted on drop.
    renewer: JoinHandle<()>,
}

impl fmt::Debug for RedisJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJournal")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisJournal {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl RedisJournal {
    /// Connects, reads and checks Redis's persistence settings, and takes the lease.
    ///
    /// Fails with `Misconfigured` when the configuration is invalid or `require_fsync` is
    /// set and Redis does not fsync every write, with `Fenced` when another engine holds
    /// the lease, and with `Unavailable` when Redis cannot be reached in time. Must be
    /// called inside a tokio runtime (it spawns the lease renewal).
    pub async fn open(config: &RedisJournalConfig) -> Result<Self, StoreError> {
        let errors = config.validate();
        if !errors.is_empty() {
            return Err(StoreError::Misconfigured(errors.join("; ")));
        }
        let url = config.describe_where();
        let mut link = Link::new(
            config.target()?,
            Duration::from_millis(config.op_timeout_ms),
        );
        let keys = Keys::new(&config.prefix);
        let scripts = Arc::new(Scripts::new());

        let persistence = read_persistence(&mut link).await?;
        tracing::info!(
            redis = %url,
            appendonly = %persistence.appendonly,
            appendfsync = %persistence.appendfsync,
            "redis journal durability: {}",
            persistence.durability
        );
        if config.require_fsync && persistence.durability != Durability::EveryBatch {
            return Err(StoreError::Misconfigured(format!(
                "store.require_fsync is set but redis at {url} has appendonly={} \
                 appendfsync={} ({}); run redis with appendonly yes and appendfsync always",
                persistence.appendonly, persistence.appendfsync, persistence.durability
            )));
        }

        // Load every script now, so the first append does not pay for a NOSCRIPT round
        // trip. (After a Redis restart the cache is empty again; `Request::Script` reloads.)
        let mut load = redis::pipe();
        for lua in scripts.all() {
            load.add_command(lua.load.clone());
        }
        let _: Vec<String> = link
            .query("load scripts", Request::Pipe(&load))
            .await
            .map_err(Failure::plain)?;

        let owner = owner_id();
        let mut take = scripts.open.evalsha(&[&keys.lease, &keys.epoch]);
        take.arg(&owner).arg(config.lease_ttl_ms);
        let epoch: u64 = link
            .query(
                "take lease",
                Request::Script {
                    evalsha: &take,
                    lua: &scripts.open,
                },
            )
            .await
            .map_err(Failure::plain)?;
        let lease = Lease {
            value: format!("{epoch}:{owner}"),
            epoch,
            ttl_ms: config.lease_ttl_ms,
        };
        tracing::info!(redis = %url, prefix = %config.prefix, epoch, owner = %owner,
            "redis journal lease taken");

        let mut description = format!(
            "redis {url} prefix={} epoch={epoch} appendonly={} appendfsync={} ({})",
            config.prefix, persistence.appendonly, persistence.appendfsync, persistence.durability
        );
        // Set after open: taking the lease needs no replica (a takeover after a failover
        // that lost the lease is fenced by the epoch, which is written with it).
        link.replication =
            Replication::new(config.replicas_to_wait, config.replica_wait_timeout_ms);
        if let Some(r) = &link.replication {
            description.push_str(&format!(
                " replicas_to_wait={} within {} ms",
                r.replicas, r.timeout_ms
            ));
        }
        let renewer = tokio::spawn(renew_lease(
            Link::new(link.target.clone(), link.op_timeout),
            keys.clone(),
            scripts.clone(),
            lease.clone(),
        ));
        let outcomes = OutcomeStream {
            url: config.url.clone(),
            cluster_urls: config.cluster_urls.clone(),
            key: keys.outcomes.clone(),
        };
        Ok(Self {
            link,
            keys,
            scripts,
            lease,
            persistence,
            description,
            outcomes,
            uncertain: None,
            config_retain: config.retain_commands_behind_snapshot,
            renewer,
        })
    }

    /// This engine's fencing token: every takeover of the journal increments it.
    pub fn epoch(&self) -> u64 {
        self.lease.epoch
    }

    /// Redis's persistence settings as read at open.
    pub fn persistence(&self) -> &Persistence {
        &self.persistence
    }

    /// The last durable seq according to Redis (0 for an empty journal).
    ///
    /// Another way to settle an `append` that failed with `Unavailable` (besides sending
    /// the same batch again): if this returns the batch's last seq, the batch is durable
    /// (only the lease owner writes, and that is us); if it returns the seq before the
    /// batch, it is not, and it will not become durable on its own later.
    pub async fn last_seq(&mut self) -> Result<u64, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(&self.keys.last_seq);
        let raw: Option<String> = self
            .link
            .query("read last_seq", Request::Cmd(&get))
            .await
            .map_err(Failure::plain)?;
        match raw {
            None => Ok(0),
            Some(s) => s.parse().map_err(|_| {
                StoreError::Corrupt(format!("{} holds {s:?}, not a seq", self.keys.last_seq))
            }),
        }
    }

    /// Stops renewing the lease and releases it if it is still ours, so another engine can
    /// take over at once instead of after the TTL.
    pub async fn close(mut self) -> Result<(), StoreError> {
        self.renewer.abort();
        let mut release = self.scripts.release.evalsha(&[&self.keys.lease]);
        release.arg(&self.lease.value);
        let released: i64 = self
            .link
            .query(
                "release lease",
                Request::Script {
                    evalsha: &release,
                    lua: &self.scripts.release,
                },
            )
            .await
            .map_err(Failure::plain)?;
        tracing::info!(
            epoch = self.lease.epoch,
            released = released == 1,
            "redis journal closed"
        );
        Ok(())
    }

    /// Whether the log entry for `first..=last` holds exactly `bytes`.
    async fn holds(&mut self, first: u64, last: u64, bytes: &[u8]) -> Result<bool, StoreError> {
        let id = format!("{first}-{last}");
        let mut range = redis::cmd("XRANGE");
        range.arg(&self.keys.log).arg(&id).arg(&id);
        let found: StreamRangeReply = self
            .link
            .query("check log entry", Request::Cmd(&range))
            .await
            .map_err(Failure::plain)?;
        Ok(found
            .ids
            .first()
            .and_then(|entry| entry.map.get("b"))
            .is_some_and(|stored| matches!(stored, Value::BulkString(b) if b == bytes)))
    }

    /// Runs one of the snapshot's lease-guarded scripts; `AHEAD` means `snapshot` claims
    /// entries the log does not hold. `commit`: the step that makes the snapshot the
    /// newest, which waits for replicas when so configured (the parts before it reach
    /// the replicas first: one master replicates its writes in order).
    async fn snapshot_script(
        &mut self,
        what: &str,
        evalsha: &Cmd,
        lua: &Lua,
        snapshot: &Snapshot,
        commit: bool,
    ) -> Result<(), StoreError> {
        let reply: Result<i64, Failure> = if commit {
            self.link.query_replicated(what, evalsha, lua).await
        } else {
            self.link
                .query(what, Request::Script { evalsha, lua })
                .await
        };
        reply.map_err(|f| f.into_store(snapshot.seq, true))?;
        Ok(())
    }

    /// A write that proves to `WAIT` that everything this engine wrote before it has
    /// reached the replicas: a lease renewal (a write on the same master), then `WAIT`.
    /// For an append settled as "an earlier attempt landed": that attempt's own `WAIT`
    /// did not count, or went on another connection.
    async fn replication_barrier(&mut self) -> Result<(), StoreError> {
        let scripts = Arc::clone(&self.scripts);
        let renew = self.lease.guarded(&self.keys, &scripts.renew, &[]);
        let _: i64 = self
            .link
            .query_replicated("wait for replicas", &renew, &scripts.renew)
            .await
            .map_err(Failure::plain)?;
        Ok(())
    }

    /// The newest snapshot's `parts` parts, concatenated, read a few at a time so that no
    /// reply is larger than `SNAPSHOT_READ_PARTS` parts (each read has the op timeout).
    async fn read_snapshot_parts(&mut self, parts: usize) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        let mut from = 0;
        while from < parts {
            let to = from.saturating_add(SNAPSHOT_READ_PARTS).min(parts) - 1;
            let mut range = redis::cmd("LRANGE");
            range.arg(&self.keys.snapshot_parts).arg(from).arg(to);
            let got: Vec<Vec<u8>> = self
                .link
                .query("load snapshot parts", Request::Cmd(&range))
                .await
                .map_err(Failure::plain)?;
            if got.len() != to + 1 - from {
                return Err(StoreError::Corrupt(format!(
                    "{} holds {} parts from {from}; the snapshot says {parts}",
                    self.keys.snapshot_parts,
                    from + got.len()
                )));
            }
            for part in got {
                bytes.extend_from_slice(&part);
            }
            from = to + 1;
        }
        Ok(bytes)
    }
}

/// A Redis journal opened read-only: for `gavel replay` and audits, beside a running engine
/// or not. It takes no lease, loads no script and writes nothing; it reads the log stream
/// as it is at each read.
pub struct RedisLog {
    link: Link,
    keys: Keys,
    description: String,
}

impl fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("description", &self.description)
            .finish()
    }
}

impl RedisLog {
    /// Connects to the journal `config` names. A prefix whose log and last-seq keys do not
    /// exist is `NoJournal`: a mistyped prefix or database must not read as an empty log.
    pub async fn open(config: &RedisJournalConfig) -> Result<Self, StoreError> {
        let url = config.describe_where();
        let mut link = Link::new(
            config.target()?,
            Duration::from_millis(config.op_timeout_ms),
        );
        let keys = Keys::new(&config.prefix);
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&keys.log).arg(&keys.last_seq);
        let found: u64 = link
            .query("look for the journal", Request::Cmd(&exists))
            .await
            .map_err(Failure::plain)?;
        if found == 0 {
            return Err(StoreError::NoJournal(format!(
                "redis at {url} has no journal under the prefix {:?} ({} and {} are absent)",
                config.prefix, keys.log, keys.last_seq
            )));
        }
        Ok(Self {
            link,
            description: format!(
                "redis journal at {url}, prefix {:?} (read-only)",
                config.prefix
            ),
            keys,
        })
    }
}

impl JournalRead for RedisLog {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        read_log(&mut self.link, &self.keys, after, max_batches).await
    }
}

impl JournalRead for RedisJournal {
    fn describe(&self) -> String {
        self.description.clone()
    }

    /// One round trip: the batch that may straddle `after` (the last one starting at or
    /// before it) and the batches starting after it. `max_batches` of 0 is taken as 1.
    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        read_log(&mut self.link, &self.keys, after, max_batches).await
    }
}

impl Journal for RedisJournal {
    fn close(self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        // The inherent `close`, which releases the lock/lease before returning.
        RedisJournal::close(self)
    }

    fn outcome_stream(&self) -> Option<OutcomeStream> {
        Some(self.outcomes.clone())
    }

    /// One `EVALSHA` of the append script: lease and seq checks, then the batch, its
    /// outcomes and `last_seq` in one atomic step. An empty batch is a no-op.
    ///
    /// After `Unavailable` the outcome is unknown: the request may have reached Redis.
    /// Sending the same batch again settles it: `Ok` if it is durable now (from either
    /// attempt), `OutOfOrder` only if something else holds those seqs. A batch appended
    /// twice without a failure in between is refused (`OutOfOrder`) like any duplicate —
    /// except on a Redis Cluster, whose client may re-send a request on its own (after a
    /// lost connection or a redirect): there every `OUT_OF_ORDER` at exactly this batch's
    /// last seq is checked against the stored entry, and the same bytes are `Ok`.
    ///
    /// With `replicas_to_wait` set, `Ok` also means that many replicas have the batch
    /// (`WAIT`, see the `link` module docs); fewer is `Unavailable`, and the batch is then
    /// uncertain like any other: sending it again settles it, `Ok` only once the replicas
    /// have it.
    async fn append(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let (first, last) = (batch.first_seq(), batch.last_seq());
        if batch.entries.is_empty() {
            return Ok(());
        }
        for pair in batch.entries.windows(2) {
            if pair[1].seq != pair[0].seq.wrapping_add(1) {
                return Err(StoreError::OutOfOrder {
                    expected: pair[0].seq.wrapping_add(1),
                    got: pair[1].seq,
                });
            }
        }
        let Some(prev) = first.checked_sub(1) else {
            return Err(StoreError::OutOfOrder {
                expected: 1,
                got: first,
            });
        };
        let bytes = rmp_serde::to_vec_named(batch)
            .map_err(|e| StoreError::Corrupt(format!("encoding batch {first}-{last}: {e}")))?;
        let mut append = self.lease.guarded(
            &self.keys,
            &self.scripts.append,
            &[&self.keys.last_seq, &self.keys.log, &self.keys.outcomes],
        );
        append
            .arg(prev)
            .arg(format!("{first}-{last}"))
            .arg(last)
            .arg(&bytes[..]);
        for outcome in &batch.outcomes {
            let encoded = rmp_serde::to_vec_named(outcome).map_err(|e| {
                StoreError::Corrupt(format!("encoding outcome of seq {}: {e}", outcome.seq))
            })?;
            append.arg(encoded);
        }
        let was_uncertain = self.uncertain == Some((first, last));
        self.uncertain = Some((first, last));
        let scripts = Arc::clone(&self.scripts);
        let result: Result<i64, Failure> = self
            .link
            .query_replicated("append", &append, &scripts.append)
            .await;
        let failure = match result {
            Ok(_) => {
                self.uncertain = None;
                return Ok(());
            }
            Err(failure @ (Failure::TimedOut(_) | Failure::Store(StoreError::Unavailable(_)))) => {
                // Still uncertain: leave `self.uncertain` set for the retry.
                return Err(failure.into_store(first, false));
            }
            Err(failure) => failure,
        };
        // Redis already holds up to our last seq. If an attempt of this very batch may
        // have landed (the call before this one failed, or `Link::query` sent this one
        // twice), and the entry holds exactly our bytes, the batch is durable: say so.
        if matches!(failure, Failure::Behind(durable) if durable == last)
            && (was_uncertain || self.link.resent)
            && self.holds(first, last, &bytes).await?
        {
            if self.link.replication.is_some() {
                // Still uncertain until the replicas have it: leave `self.uncertain` set.
                self.replication_barrier().await?;
            }
            tracing::info!(first, last, "append settled: an earlier attempt had landed");
            self.uncertain = None;
            return Ok(());
        }
        self.uncertain = None;
        Err(failure.into_store(first, false))
    }

    /// The whole snapshot, a part at a time (see `save_snapshot_part`).
    async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        crate::store::save_all_parts(self, snapshot).await
    }

    /// One `EVALSHA` per part of at most [`SNAPSHOT_PART_BYTES`], `RPUSH`ed to
    /// `{prefix}:snapshot:staging`; the last call then runs the commit script, which
    /// checks the lease and the seq and renames the staged parts to the snapshot's. A
    /// snapshot past the log's last durable seq is refused with `OutOfOrder { expected:
    /// last_seq }`. Between parts Redis serves the engine's appends, so a large book
    /// holds each of them up for one part at most.
    async fn save_snapshot_part(
        &mut self,
        snapshot: &Snapshot,
        from: usize,
    ) -> Result<usize, StoreError> {
        let len = snapshot.bytes.len();
        if from > len || !from.is_multiple_of(SNAPSHOT_PART_BYTES) {
            return Err(StoreError::Unavailable(format!(
                "snapshot part at byte {from} of {len}: parts start every {SNAPSHOT_PART_BYTES} bytes"
            )));
        }
        let end = from.saturating_add(SNAPSHOT_PART_BYTES).min(len);
        let scripts = Arc::clone(&self.scripts);
        if end > from {
            let mut part = self.lease.guarded(
                &self.keys,
                &scripts.snapshot_part,
                &[&self.keys.snapshot_staging],
            );
            part.arg(from / SNAPSHOT_PART_BYTES)
                .arg(&snapshot.bytes[from..end]);
            self.snapshot_script(
                "save snapshot part",
                &part,
                &scripts.snapshot_part,
                snapshot,
                false,
            )
            .await?;
            if end < len {
                return Ok(end);
            }
        }
        let mut commit = self.lease.guarded(
            &self.keys,
            &scripts.snapshot,
            &[
                &self.keys.last_seq,
                &self.keys.snapshot,
                &self.keys.snapshot_staging,
                &self.keys.snapshot_parts,
            ],
        );
        commit
            .arg(snapshot.seq)
            .arg(len.div_ceil(SNAPSHOT_PART_BYTES))
            .arg(len);
        self.snapshot_script("save snapshot", &commit, &scripts.snapshot, snapshot, true)
            .await?;
        if let Some(keep) = self.config_retain {
            // Entries are `{first}-{last}` and the engine snapshots at a batch's end, so
            // every entry starting at or after `min` is kept and recovery (snapshot + the
            // entries after it) is unaffected. A failed trim costs only disk.
            let min = snapshot.seq.saturating_sub(keep).saturating_add(1);
            let mut trim = redis::cmd("XTRIM");
            trim.arg(&self.keys.log)
                .arg("MINID")
                .arg(format!("{min}-0"));
            match self
                .link
                .query::<i64>("trim log", Request::Cmd(&trim))
                .await
            {
                Ok(n) => tracing::debug!(removed = n, min, "redis log trimmed behind the snapshot"),
                Err(_) => tracing::warn!(min, "redis log not trimmed behind the snapshot"),
            }
        }
        Ok(len)
    }

    async fn load_snapshot(&mut self) -> Result<Option<Snapshot>, StoreError> {
        let mut get = redis::cmd("HMGET");
        get.arg(&self.keys.snapshot)
            .arg("seq")
            .arg("bytes")
            .arg("parts")
            .arg("len");
        type Fields = (
            Option<String>,
            Option<Vec<u8>>,
            Option<usize>,
            Option<usize>,
        );
        let (seq, bytes, parts, len): Fields = self
            .link
            .query("load snapshot", Request::Cmd(&get))
            .await
            .map_err(Failure::plain)?;
        let key = self.keys.snapshot.clone();
        let corrupt = |what: String| StoreError::Corrupt(format!("{key} {what}"));
        let Some(seq) = seq else {
            return match (bytes, parts) {
                (None, None) => Ok(None),
                _ => Err(corrupt("lacks its seq".into())),
            };
        };
        let seq = seq
            .parse()
            .map_err(|_| corrupt(format!("seq holds {seq:?}, not a seq")))?;
        let bytes = match (bytes, parts, len) {
            // Written before snapshots were saved in parts.
            (Some(bytes), None, _) => bytes,
            (None, Some(parts), Some(len)) => {
                let bytes = self.read_snapshot_parts(parts).await?;
                if bytes.len() != len {
                    return Err(corrupt(format!(
                        "says {len} bytes in {parts} parts; the parts hold {}",
                        bytes.len()
                    )));
                }
                bytes
            }
            _ => return Err(corrupt("lacks its bytes, or its parts and length".into())),
        };
        Ok(Some(Snapshot { seq, bytes }))
    }

    async fn ping(&mut self) -> Result<(), StoreError> {
        let _: String = self
            .link
            .query("ping", Request::Cmd(&redis::cmd("PING")))
            .await
            .map_err(Failure::plain)?;
        Ok(())
    }
}

/// Batches holding entries after `after`, at most `max_batches` (see
/// `JournalRead::read_after`): the batch that straddles `after`, then the ones after it.
async fn read_log(
    link: &mut Link,
    keys: &Keys,
    after: u64,
    max_batches: usize,
) -> Result<Vec<Batch>, StoreError> {
    let Some(next) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let max = max_batches.max(1);
    let mut pipe = redis::pipe();
    pipe.cmd("XREVRANGE")
        .arg(&keys.log)
        .arg(format!("{after}-{}", u64::MAX))
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .cmd("XRANGE")
        .arg(&keys.log)
        .arg(format!("{next}-0"))
        .arg("+")
        .arg("COUNT")
        .arg(max);
    let (straddling, following): (StreamRangeReply, StreamRangeReply) = link
        .query("read log", Request::Pipe(&pipe))
        .await
        .map_err(Failure::plain)?;
    let mut batches = Vec::with_capacity(max);
    for entry in &straddling.ids {
        let batch = decode_entry(&keys.log, entry)?;
        if batch.last_seq() > after {
            batches.push(batch);
        }
    }
    for entry in &following.ids {
        if batches.len() == max {
            break;
        }
        batches.push(decode_entry(&keys.log, entry)?);
    }
    Ok(batches)
}

/// Decodes one log entry, checking that its id matches the seqs inside. Public (hidden)
/// for the fuzz harness only.
#[doc(hidden)]
pub fn decode_entry(key: &str, entry: &redis::streams::StreamId) -> Result<Batch, StoreError> {
    let Some(Value::BulkString(bytes)) = entry.map.get("b") else {
        return Err(StoreError::Corrupt(format!(
            "{key} entry {} has no binary field b",
            entry.id
        )));
    };
    let batch: Batch = rmp_serde::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{key} entry {}: {e}", entry.id)))?;
    let expected_id = format!("{}-{}", batch.first_seq(), batch.last_seq());
    if batch.entries.is_empty() || entry.id != expected_id {
        return Err(StoreError::Corrupt(format!(
            "{key} entry {} holds seqs {expected_id}",
            entry.id
        )));
    }
    Ok(batch)
}
