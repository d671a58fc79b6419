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

use super::{Batch, Journal, OutcomeStream, Snapshot, StoreError};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Script, Value,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant, MissedTickBehavior};

/// Bytes of a snapshot per Redis call. Redis runs one command at a time, so an append
/// queued behind a part waits for it: 1 MiB costs a few ms, where a 77 MiB book saved in
/// one call held appends up for about a second.
const SNAPSHOT_PART_BYTES: usize = 1 << 20;

/// Parts per read when a snapshot is loaded.
const SNAPSHOT_READ_PARTS: usize = 16;

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

// The scripts. Conventions shared by all of them:
// - KEYS[1] = lease, KEYS[2] = epoch; ARGV[1] = our lease value "{epoch}:{owner}",
//   ARGV[2] = our epoch, ARGV[3] = lease TTL in ms.
// - Sequence numbers travel as decimal strings and are compared as strings, never through
//   Lua numbers (doubles), so a seq above 2^53 cannot be silently rounded.
// - Errors are `redis.error_reply("CODE detail")`; the first word becomes the error code
//   the Rust side maps to a `StoreError`.
// - All checks come before the first write. Redis does not roll a script back, so a
//   script that wrote and then failed would leave half a batch; this order means a refused
//   call writes nothing.
//
// The lease check accepts two states: the lease holds our value, or the lease is gone
// (expired while Redis or this engine was stalled) and the epoch is still ours, i.e. no
// other engine has taken the journal since. In the second case the script re-lets the
// lease to us as part of its writes. That is safe because every takeover increments the
// epoch atomically with setting the lease (OPEN below), so "epoch unchanged" proves nobody
// else wrote; and it spares the engine a restart after a Redis outage longer than the TTL.

/// Takes the lease if free: KEYS lease, epoch; ARGV owner, ttl. Returns the new epoch, or
/// errors `HELD {current lease value}`. Incrementing the epoch only on success keeps a
/// refused engine from disturbing the owner.
const OPEN_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  return redis.error_reply('HELD ' .. cur .. ' ' .. redis.call('PTTL', KEYS[1]))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
"#;

/// The lease check, shared by every writing script (prepended to its body). Sets `relet`,
/// which `RELET_LUA` (appended to the append and snapshot scripts) acts on.
const LEASE_CHECK_LUA: &str = r#"
local relet = false
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then
  local epoch = redis.call('GET', KEYS[2])
  if cur == false and epoch == ARGV[2] then
    relet = true
  else
    return redis.error_reply('FENCED lease=' .. (cur or 'none') .. ' epoch=' .. (epoch or 'none')
      .. ' ours=' .. ARGV[1])
  end
end
"#;

/// The end of every writing script (after its writes): re-let a lapsed lease that is
/// still ours (see the lease check), and return 1.
const RELET_LUA: &str = r#"
if relet then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
return 1
"#;

/// Append: KEYS lease, epoch, last_seq, log, outcomes; ARGV value, epoch, ttl, prev_seq,
/// stream id, last_seq, batch bytes, outcome bytes... Returns 1.
const APPEND_BODY_LUA: &str = r#"
local last = redis.call('GET', KEYS[3]) or '0'
if last ~= ARGV[4] then
  return redis.error_reply('OUT_OF_ORDER ' .. last)
end
-- The log entry goes first: it is the only write that can be refused (an id not above the
-- stream's top, which means last_seq and the stream disagree), and if it is, nothing has
-- been written yet.
local added = redis.pcall('XADD', KEYS[4], ARGV[5], 'b', ARGV[7])
if type(added) == 'table' and added.err then
  return redis.error_reply('CORRUPT log stream refused id ' .. ARGV[5] .. ' with last_seq '
    .. last .. ': ' .. added.err)
end
for i = 8, #ARGV do
  redis.call('XADD', KEYS[5], '*', 'o', ARGV[i])
end
redis.call('SET', KEYS[3], ARGV[6])
"#;

/// One part of a snapshot: KEYS lease, epoch, staging; ARGV value, epoch, ttl, index,
/// bytes. Part 0 starts the staging list over; any other must come right after the parts
/// staged (`PARTS {staged}` otherwise). Returns 1.
const SNAPSHOT_PART_BODY_LUA: &str = r#"
local index = tonumber(ARGV[4])
local staged = redis.call('LLEN', KEYS[3])
if index ~= 0 and staged ~= index then
  return redis.error_reply('PARTS ' .. staged .. ' staged, this is part ' .. index)
end
if index == 0 then
  redis.call('DEL', KEYS[3])
end
redis.call('RPUSH', KEYS[3], ARGV[5])
"#;

/// A snapshot's last step: KEYS lease, epoch, last_seq, snapshot, staging, parts; ARGV
/// value, epoch, ttl, seq, part count, byte length. Refuses (`AHEAD {last_seq}`) a
/// snapshot claiming entries the log does not hold, and (`PARTS`) one whose parts are not
/// all staged; otherwise the staged parts become the snapshot's, in one step (`RENAME` is
/// O(1) however large the book).
const SNAPSHOT_BODY_LUA: &str = r#"
local last = redis.call('GET', KEYS[3]) or '0'
local seq = ARGV[4]
if #seq > #last or (#seq == #last and seq > last) then
  return redis.error_reply('AHEAD ' .. last)
end
local expected = tonumber(ARGV[5])
local staged = redis.call('LLEN', KEYS[5])
if expected > 0 and staged ~= expected then
  return redis.error_reply('PARTS ' .. staged .. ' staged, ' .. ARGV[5] .. ' expected')
end
if expected == 0 then
  -- An empty book has no parts; whatever an unfinished save staged goes too.
  redis.call('DEL', KEYS[5], KEYS[6])
else
  redis.call('RENAME', KEYS[5], KEYS[6])
end
redis.call('HSET', KEYS[4], 'seq', seq, 'parts', ARGV[5], 'len', ARGV[6])
redis.call('HDEL', KEYS[4], 'bytes')
"#;

/// Renew: KEYS lease, epoch; ARGV value, epoch, ttl. Returns 1.
const RENEW_BODY_LUA: &str = r#"
if relet then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"#;

/// Release: KEYS lease; ARGV value. Deletes the lease only if it is ours.
const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A Lua script and the command that loads it (for `NOSCRIPT`, after a Redis restart or a
/// `SCRIPT FLUSH`).
struct Lua {
    sha: String,
    load: Cmd,
}

impl Lua {
    fn new(code: &str) -> Self {
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(code);
        Self {
            sha: Script::new(code).get_hash().to_owned(),
            load,
        }
    }

    /// `EVALSHA sha numkeys keys...`; the caller adds the ARGV.
    fn evalsha(&self, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len()).arg(keys);
        cmd
    }
}

/// The scripts this journal runs.
struct Scripts {
    open: Lua,
    append: Lua,
    snapshot_part: Lua,
    snapshot: Lua,
    renew: Lua,
    release: Lua,
}

impl Scripts {
    fn new() -> Self {
        let guarded = |body: &str| Lua::new(&format!("{LEASE_CHECK_LUA}{body}"));
        let write = |body: &str| Lua::new(&format!("{LEASE_CHECK_LUA}{body}{RELET_LUA}"));
        Self {
            open: Lua::new(OPEN_LUA),
            append: write(APPEND_BODY_LUA),
            snapshot_part: write(SNAPSHOT_PART_BODY_LUA),
            snapshot: write(SNAPSHOT_BODY_LUA),
            renew: guarded(RENEW_BODY_LUA),
            release: Lua::new(RELEASE_LUA),
        }
    }

    fn all(&self) -> [&Lua; 6] {
        [
            &self.open,
            &self.append,
            &self.snapshot_part,
            &self.snapshot,
            &self.renew,
            &self.release,
        ]
    }
}

/// What the lease-guarded scripts need to know about the lease.
#[derive(Clone, Debug)]
struct Lease {
    /// `{epoch}:{owner}`: what the lease key must hold for our writes to go through.
    value: String,
    epoch: u64,
    ttl_ms: u64,
}

impl Lease {
    /// `EVALSHA` of a guarded script: KEYS lease, epoch, `extra`...; ARGV value, epoch,
    /// ttl, then whatever the caller adds.
    fn guarded(&self, keys: &Keys, script: &Lua, extra: &[&str]) -> Cmd {
        let mut all = vec![keys.lease.as_str(), keys.epoch.as_str()];
        all.extend_from_slice(extra);
        let mut cmd = script.evalsha(&all);
        cmd.arg(&self.value).arg(self.epoch).arg(self.ttl_ms);
        cmd
    }
}

/// A failure of one Redis call, before the caller knows which seq it concerned.
enum Failure {
    Store(StoreError),
    /// No answer within the op timeout (already in words).
    TimedOut(String),
    /// The script's `OUT_OF_ORDER` or `AHEAD`: Redis's last durable seq.
    Behind(u64),
}

impl Failure {
    /// `got`: the seq the caller offered. `ahead`: the call was a snapshot, for which
    /// `expected` is the newest seq it may cover rather than the next one.
    fn into_store(self, got: u64, ahead: bool) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::TimedOut(why) => StoreError::Unavailable(why),
            Self::Behind(last) if ahead => StoreError::OutOfOrder {
                expected: last,
                got,
            },
            Self::Behind(last) => StoreError::OutOfOrder {
                expected: last.saturating_add(1),
                got,
            },
        }
    }

    /// For calls that carry no seq.
    fn plain(self) -> StoreError {
        self.into_store(0, false)
    }
}

/// One request to Redis. Requests are plain data so that a call on a connection that
/// turns out to be dead can be sent again on a fresh one.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
    /// `EVALSHA`, loading the script first if Redis does not know it (`NOSCRIPT`).
    Script {
        evalsha: &'a Cmd,
        lua: &'a Lua,
    },
}

impl Request<'_> {
    async fn send(self, conn: &mut MultiplexedConnection) -> RedisResult<Value> {
        match self {
            Self::Cmd(cmd) => cmd.query_async(conn).await,
            Self::Pipe(pipe) => pipe.query_async(conn).await,
            Self::Script { evalsha, lua } => match evalsha.query_async(conn).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => {
                    lua.load.exec_async(conn).await?;
                    evalsha.query_async(conn).await
                }
                other => other,
            },
        }
    }
}

/// One lazily (re)connected multiplexed connection with a per-call deadline.
struct Link {
    client: Client,
    conn: Option<MultiplexedConnection>,
    op_timeout: Duration,
    /// Whether the last `query` sent its request twice (the first on a dead connection).
    resent: bool,
}

impl Link {
    fn new(client: Client, op_timeout: Duration) -> Self {
        Self {
            client,
            conn: None,
            op_timeout,
            resent: false,
        }
    }

    /// Runs one request, connecting first if needed, the whole call (connecting and one
    /// retry included) bounded by `op_timeout`, and converts the reply.
    ///
    /// A timeout or a connection-level error drops the connection, so the next call
    /// reconnects. If a connection kept from an earlier call turns out dead (Redis was
    /// restarted since), the request is sent once more on a fresh one: for reads that is
    /// harmless, and for an append the journal resolves the "did the first one land?"
    /// question itself (see `RedisJournal::append`).
    async fn query<T: FromRedisValue>(
        &mut self,
        what: &str,
        request: Request<'_>,
    ) -> Result<T, Failure> {
        let deadline = Instant::now() + self.op_timeout;
        self.resent = false;
        loop {
            let (mut conn, reused) = match &self.conn {
                Some(conn) => (conn.clone(), true),
                None => {
                    let connect = self.client.get_multiplexed_async_connection();
                    let conn = match timeout_at(deadline, connect).await {
                        Ok(Ok(conn)) => conn,
                        Ok(Err(e)) => {
                            return Err(Failure::Store(StoreError::Unavailable(format!(
                                "{what}: cannot connect to redis: {e}"
                            ))))
                        }
                        Err(_) => return Err(self.timed_out(what)),
                    };
                    self.conn = Some(conn.clone());
                    (conn, false)
                }
            };
            let error = match timeout_at(deadline, request.send(&mut conn)).await {
                Ok(Ok(value)) => {
                    return T::from_owned_redis_value(value).map_err(|e| {
                        Failure::Store(StoreError::Corrupt(format!(
                            "{what}: unexpected reply from redis: {e}"
                        )))
                    })
                }
                Ok(Err(error)) => error,
                Err(_) => return Err(self.timed_out(what)),
            };
            let failure = classify(what, &error);
            if matches!(failure, Failure::Store(StoreError::Unavailable(_))) {
                self.conn = None;
                if reused && !self.resent && error.is_io_error() {
                    tracing::debug!(what, %error, "redis connection was dead; reconnecting");
                    self.resent = true;
                    continue;
                }
            }
            return Err(failure);
        }
    }

    fn timed_out(&mut self, what: &str) -> Failure {
        // The request may still be queued in Redis or on the wire: a reply that arrives
        // later must not be taken for the next call's, so start over on a fresh connection.
        self.conn = None;
        Failure::TimedOut(format!(
            "{what}: redis did not answer within {} ms",
            self.op_timeout.as_millis()
        ))
    }
}

/// Maps a Redis error to what it means for the journal.
fn classify(what: &str, e: &RedisError) -> Failure {
    let detail = e.detail().unwrap_or_default();
    match e.code() {
        Some("FENCED") => Failure::Store(StoreError::Fenced(detail.to_owned())),
        Some("HELD") => Failure::Store(StoreError::Fenced(format!(
            "the lease is held by another engine (value, ms left: {detail})"
        ))),
        Some("OUT_OF_ORDER" | "AHEAD") => match detail.parse::<u64>() {
            Ok(last) => Failure::Behind(last),
            Err(_) => Failure::Store(StoreError::Corrupt(format!(
                "{what}: last_seq holds {detail:?}, not a sequence number"
            ))),
        },
        Some("CORRUPT") => Failure::Store(StoreError::Corrupt(format!("{what}: {detail}"))),
        // Everything else (I/O, a dropped connection, LOADING after a restart, READONLY on
        // a replica, OOM, ...) is "not now": the engine retries later.
        _ => Failure::Store(StoreError::Unavailable(format!("{what}: {e}"))),
    }
}

/// The Redis journal. See the module docs for the keys and the scripts.
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
        let url = redact_url(&config.url);
        let client = Client::open(config.url.as_str())
            .map_err(|e| StoreError::Misconfigured(format!("redis url {url}: {e}")))?;
        let mut link = Link::new(client, Duration::from_millis(config.op_timeout_ms));
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

        let description = format!(
            "redis {url} prefix={} epoch={epoch} appendonly={} appendfsync={} ({})",
            config.prefix, persistence.appendonly, persistence.appendfsync, persistence.durability
        );
        let renewer = tokio::spawn(renew_lease(
            Link::new(link.client.clone(), link.op_timeout),
            keys.clone(),
            scripts.clone(),
            lease.clone(),
        ));
        let outcomes = OutcomeStream {
            url: config.url.clone(),
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
    /// entries the log does not hold.
    async fn snapshot_script(
        &mut self,
        what: &str,
        evalsha: &Cmd,
        lua: &Lua,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .link
            .query(what, Request::Script { evalsha, lua })
            .await
            .map_err(|f| f.into_store(snapshot.seq, true))?;
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

impl Journal for RedisJournal {
    fn close(self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        // The inherent `close`, which releases the lock/lease before returning.
        RedisJournal::close(self)
    }

    fn describe(&self) -> String {
        self.description.clone()
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
    /// twice without a failure in between is refused (`OutOfOrder`) like any duplicate.
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
            .query(
                "append",
                Request::Script {
                    evalsha: &append,
                    lua: &scripts.append,
                },
            )
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
            tracing::info!(first, last, "append settled: an earlier attempt had landed");
            self.uncertain = None;
            return Ok(());
        }
        self.uncertain = None;
        Err(failure.into_store(first, false))
    }

    /// One round trip: the batch that may straddle `after` (the last one starting at or
    /// before it) and the batches starting after it. `max_batches` of 0 is taken as 1.
    async fn read_after(
        &mut self,
        after: u64,
        max_batches: usize,
    ) -> Result<Vec<Batch>, StoreError> {
        let Some(next) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let max = max_batches.max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("XREVRANGE")
            .arg(&self.keys.log)
            .arg(format!("{after}-{}", u64::MAX))
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("XRANGE")
            .arg(&self.keys.log)
            .arg(format!("{next}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(max);
        let (straddling, following): (StreamRangeReply, StreamRangeReply) = self
            .link
            .query("read log", Request::Pipe(&pipe))
            .await
            .map_err(Failure::plain)?;
        let mut batches = Vec::with_capacity(max);
        for entry in &straddling.ids {
            let batch = decode_entry(&self.keys.log, entry)?;
            if batch.last_seq() > after {
                batches.push(batch);
            }
        }
        for entry in &following.ids {
            if batches.len() == max {
                break;
            }
            batches.push(decode_entry(&self.keys.log, entry)?);
        }
        Ok(batches)
    }

    /// The whole snapshot, a part at a time (see `save_snapshot_part`).
    async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        super::save_all_parts(self, snapshot).await
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
        self.snapshot_script("save snapshot", &commit, &scripts.snapshot, snapshot)
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

/// Decodes one log entry, checking that its id matches the seqs inside.
fn decode_entry(key: &str, entry: &redis::streams::StreamId) -> Result<Batch, StoreError> {
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

/// Reads `appendonly` and `appendfsync`. A Redis that refuses `CONFIG` (managed services
/// often rename it) gives `Durability::Unknown` rather than an error, so the journal still
/// starts unless `require_fsync` is set.
async fn read_persistence(link: &mut Link) -> Result<Persistence, StoreError> {
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

/// The background renewal: every `ttl / 3`, extend the lease if it is still ours. Stops
/// for good once fenced; keeps trying through outages (each attempt bounded by the op
/// timeout), since the lease may still be ours when Redis comes back.
async fn renew_lease(mut link: Link, keys: Keys, scripts: Arc<Scripts>, lease: Lease) {
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
fn owner_id() -> String {
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

    /// The SHA-1 of every script as Redis runs it (the lease check, the body and the re-let,
    /// composed as `Scripts::new` does). A change to any script's text changes its pin:
    /// such a change must be deliberate, and the new pin written here with it.
    #[test]
    fn scripts_are_pinned() {
        let s = Scripts::new();
        assert_eq!(s.open.sha, "af67319b57a92bcf74a3ee1ca7817a84cb58e074");
        assert_eq!(s.append.sha, "f2bbff2418cd6bd0e37b809af375ce41decff536");
        assert_eq!(
            s.snapshot_part.sha,
            "7c42e4d79d86542f4ccfa855f204605359245e36"
        );
        assert_eq!(s.snapshot.sha, "e8fad70a1759276f20ff754a9322bd8efcc276d9");
        assert_eq!(s.renew.sha, "4c86c39641535dc3b34c83f5b852c03e05abbe65");
        assert_eq!(s.release.sha, "f4f23e4b63559980e4fd8dd1b2bf8e156fe4c29f");
        assert_eq!(s.all().len(), 6, "a script without a pin");
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
