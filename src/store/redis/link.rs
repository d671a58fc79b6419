//! The connection to Redis: one lazily (re)connected connection (multiplexed to one node,
//! or to a Redis Cluster, see `target`), one request at a time under a deadline, and what
//! each Redis error means for the journal.
//!
//! Owns the only second attempts there are, both within the call's deadline: a request
//! that meets a connection found dead since the last call is sent once more on a fresh
//! one, and a script Redis does not know (`NOSCRIPT`) is loaded and run again (on a
//! cluster: sent again as `EVAL` with its body, in one request to the slot's master, since
//! a `SCRIPT LOAD` and the retry could reach two different masters across a failover). It
//! must not retry anything else or back off: a timeout or an unreachable Redis is
//! `Unavailable` at once, and the engine decides when to try again. (The cluster client
//! itself follows `MOVED`/`ASK` and waits out `TRYAGAIN`/`CLUSTERDOWN` within that same
//! deadline; what it cannot settle in time is `Unavailable` too.)
//!
//! # Waiting for replicas
//!
//! With `replicas_to_wait = n > 0`, a durable write (`query_replicated`) is sent in one
//! pipeline with `WAIT n timeout` behind it, on the same connection to the same master:
//! `WAIT` counts the replicas that acknowledged every write this connection made before
//! it, so sending both together is what ties the count to this write. Fewer than `n` is
//! `Unavailable`: the write is on the master but not acknowledged as durable, and the
//! caller treats it like any append whose outcome is unknown.
//!
//! What `WAIT` does and does not promise (Redis 7.0, which has no `WAITAOF`): `n` replicas
//! *received* the write, in memory; it is on a replica's disk only as that replica's own
//! `appendfsync` says. With `appendfsync always` on the master it is also on the master's
//! disk. A failover that promotes one of those replicas keeps the write; a manual
//! `CLUSTER FAILOVER` (without `FORCE`) waits for the replica to catch up with the master
//! anyway. An automatic failover after a master crash promotes the replica with the most
//! data first (replicas start their election sooner the further their replication offset
//! is), which is a preference, not a guarantee: with `n` below the number of replicas a
//! replica without the write can win, and a crash of the master *and* the acknowledging
//! replicas at once loses what was only in their memory.

use super::scripts::Lua;
use super::target::{RedisConn, RedisTarget};
use crate::store::StoreError;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Value};
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// A failure of one Redis call, before the caller knows which seq it concerned.
pub(super) enum Failure {
    Store(StoreError),
    /// No answer within the op timeout (already in words).
    TimedOut(String),
    /// The script's `OUT_OF_ORDER` or `AHEAD`: Redis's last durable seq.
    Behind(u64),
}

impl Failure {
    /// `got`: the seq the caller offered. `ahead`: the call was a snapshot, for which
    /// `expected` is the newest seq it may cover rather than the next one.
    pub(super) fn into_store(self, got: u64, ahead: bool) -> StoreError {
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
    pub(super) fn plain(self) -> StoreError {
        self.into_store(0, false)
    }
}

/// One request to Redis. Requests are plain data so that a call on a connection that
/// turns out to be dead can be sent again on a fresh one.
#[derive(Clone, Copy)]
pub(super) enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
    /// `EVALSHA`, loading the script first if Redis does not know it (`NOSCRIPT`).
    Script {
        evalsha: &'a Cmd,
        lua: &'a Lua,
    },
    /// A `Script`, then `wait` (`WAIT n timeout`) in the same pipeline; the reply is the
    /// pair of replies.
    Waited {
        evalsha: &'a Cmd,
        lua: &'a Lua,
        wait: &'a Cmd,
    },
}

impl Request<'_> {
    async fn send(self, conn: &mut RedisConn) -> RedisResult<Value> {
        match self {
            Self::Cmd(cmd) => conn.cmd(cmd).await,
            Self::Pipe(pipe) => conn.pipe(pipe).await,
            Self::Script { evalsha, lua } => match conn.cmd(evalsha).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => match conn {
                    RedisConn::Single(_) => {
                        conn.cmd(&lua.load).await?;
                        conn.cmd(evalsha).await
                    }
                    RedisConn::Cluster { .. } => conn.cmd(&lua.eval_of(evalsha)).await,
                },
                other => other,
            },
            Self::Waited { evalsha, lua, wait } => {
                let pair = |script: Cmd| {
                    let mut pipe = redis::pipe();
                    pipe.add_command(script).add_command(wait.clone());
                    pipe
                };
                match conn.pipe(&pair(evalsha.clone())).await {
                    Err(e) if e.kind() == ErrorKind::NoScriptError => match conn {
                        RedisConn::Single(_) => {
                            conn.cmd(&lua.load).await?;
                            conn.pipe(&pair(evalsha.clone())).await
                        }
                        RedisConn::Cluster { .. } => conn.pipe(&pair(lua.eval_of(evalsha))).await,
                    },
                    other => other,
                }
            }
        }
    }
}

/// `replicas_to_wait` and `replica_wait_timeout_ms`, as the `WAIT` command sent after
/// each durable write.
#[derive(Clone)]
pub(super) struct Replication {
    pub(super) replicas: u32,
    pub(super) timeout_ms: u64,
    wait: Cmd,
}

impl Replication {
    /// `None` when `replicas` is 0 (no `WAIT` at all).
    pub(super) fn new(replicas: u32, timeout_ms: u64) -> Option<Self> {
        (replicas > 0).then(|| {
            let mut wait = redis::cmd("WAIT");
            wait.arg(replicas).arg(timeout_ms);
            Self {
                replicas,
                timeout_ms,
                wait,
            }
        })
    }
}

/// One lazily (re)connected connection with a per-call deadline.
pub(super) struct Link {
    pub(super) target: RedisTarget,
    conn: Option<RedisConn>,
    pub(super) op_timeout: Duration,
    /// Whether the last `query` may have sent its request twice: it did (the first on a
    /// dead connection), or the connection is to a cluster, whose client re-sends a request
    /// on its own after a lost connection or a redirect.
    pub(super) resent: bool,
    /// What `query_replicated` waits for; `None`: nothing beyond the master's reply.
    pub(super) replication: Option<Replication>,
}

impl Link {
    pub(super) fn new(target: RedisTarget, op_timeout: Duration) -> Self {
        Self {
            target,
            conn: None,
            op_timeout,
            resent: false,
            replication: None,
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
    pub(super) async fn query<T: FromRedisValue>(
        &mut self,
        what: &str,
        request: Request<'_>,
    ) -> Result<T, Failure> {
        let deadline = Instant::now() + self.op_timeout;
        self.resent = self.target.is_cluster();
        loop {
            let (mut conn, reused) = match &self.conn {
                Some(conn) => (conn.clone(), true),
                None => {
                    let conn = match timeout_at(deadline, self.target.connect()).await {
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

    /// Runs a lease-guarded script that makes something durable: as `query`, and with
    /// `replication` set, followed by its `WAIT` on the same connection (see the module
    /// docs). Fewer replicas than asked is `Unavailable`: the write may stay on the master,
    /// but it is not acknowledged.
    pub(super) async fn query_replicated<T: FromRedisValue>(
        &mut self,
        what: &str,
        evalsha: &Cmd,
        lua: &Lua,
    ) -> Result<T, Failure> {
        let Some(replication) = self.replication.clone() else {
            return self.query(what, Request::Script { evalsha, lua }).await;
        };
        let request = Request::Waited {
            evalsha,
            lua,
            wait: &replication.wait,
        };
        let (reply, acked): (Value, u64) = self.query(what, request).await?;
        if acked < u64::from(replication.replicas) {
            return Err(Failure::Store(StoreError::Unavailable(format!(
                "{what}: written on the redis master, but only {acked} of {} replicas \
                 acknowledged it within {} ms; not acknowledged as durable",
                replication.replicas, replication.timeout_ms
            ))));
        }
        T::from_owned_redis_value(reply).map_err(|e| {
            Failure::Store(StoreError::Corrupt(format!(
                "{what}: unexpected reply from redis: {e}"
            )))
        })
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
        // A cluster in the middle of a change: a slot moving (`MOVED`/`ASK` the client
        // could not follow in time, `TRYAGAIN`), no quorum or an uncovered slot
        // (`CLUSTERDOWN`), a master just demoted (`READONLY`, `MASTERDOWN`). All pass once
        // the cluster settles: "not now", like an unreachable Redis.
        Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" | "MASTERDOWN") => {
            Failure::Store(StoreError::Unavailable(format!(
                "{what}: redis cluster is changing: {e}"
            )))
        }
        // Everything else (I/O, a dropped connection, LOADING after a restart, READONLY on
        // a replica, OOM, ...) is "not now": the engine retries later.
        _ => Failure::Store(StoreError::Unavailable(format!("{what}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &str) -> RedisError {
        redis::parse_redis_value(format!("-{reply}\r\n").as_bytes())
            .and_then(|v| v.extract_error())
            .expect_err("an error reply")
    }

    #[test]
    fn cluster_changes_are_unavailable() {
        for reply in [
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
        ] {
            let failure = classify("append", &server_error(reply));
            assert!(
                matches!(failure, Failure::Store(StoreError::Unavailable(_))),
                "{reply}"
            );
        }
        assert!(matches!(
            classify("append", &server_error("FENCED lease=none")),
            Failure::Store(StoreError::Fenced(_))
        ));
        assert!(matches!(
            classify("append", &server_error("OUT_OF_ORDER 41")),
            Failure::Behind(41)
        ));
    }
}
