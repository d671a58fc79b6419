//! The connection to Redis: one lazily (re)connected multiplexed connection, one request
//! at a time under a deadline, and what each Redis error means for the journal.
//!
//! Owns the only second attempts there are, both within the call's deadline: a request
//! that meets a connection found dead since the last call is sent once more on a fresh
//! one, and a script Redis does not know (`NOSCRIPT`) is loaded and run again. It must not
//! retry anything else or back off: a timeout or an unreachable Redis is `Unavailable` at
//! once, and the engine decides when to try again.

use super::scripts::Lua;
use crate::store::StoreError;
use redis::aio::MultiplexedConnection;
use redis::{Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Value};
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
pub(super) struct Link {
    pub(super) client: Client,
    conn: Option<MultiplexedConnection>,
    pub(super) op_timeout: Duration,
    /// Whether the last `query` sent its request twice (the first on a dead connection).
    pub(super) resent: bool,
}

impl Link {
    pub(super) fn new(client: Client, op_timeout: Duration) -> Self {
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
    pub(super) async fn query<T: FromRedisValue>(
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
