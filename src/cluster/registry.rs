//! The node registry in Redis: which nodes are alive, where they listen, and which markets
//! each one serves right now.
//!
//! Owns three keys, all under one hash tag (`{<prefix>}`) so one script touches them
//! atomically on a Redis Cluster:
//!
//! | key                        | type | holds                                             |
//! |----------------------------|------|---------------------------------------------------|
//! | `{prefix}:cluster:nodes`   | zset | node id → the Redis-clock time (ms) its entry expires |
//! | `{prefix}:cluster:info`    | hash | node id → JSON [`NodeInfo`]: its front door and the markets it serves |
//!
//! The registry is advice, not authority: it tells nodes whom each market should go to
//! and tells clients where a market is served. Whether a node may write a market's journal
//! is decided by that market's lease alone (see `crate::store::redis`), so a stale entry
//! can misdirect a client for one heartbeat but can never let two nodes write one market.
//!
//! Expiry is judged by Redis's clock (`TIME` inside the script), so the nodes' clocks need
//! not agree.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a node tells the others and the clients about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's front door, `http://host:port`.
    pub url: String,
    /// Market → the `http://host:port` of the market's server on this node, for every
    /// market this node serves now (recovered and accepting commands).
    pub markets: BTreeMap<String, String>,
}

/// A connection to a single Redis or to a Redis Cluster (following MOVED/ASK redirects).
#[derive(Clone)]
pub enum Conn {
    /// One Redis server.
    Single(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Connects to `cluster` seeds when there are any, else to the single `url`.
    pub async fn open(
        url: &str,
        cluster: &[String],
        timeout: Duration,
    ) -> redis::RedisResult<Self> {
        let connect = async {
            if cluster.is_empty() {
                let client = redis::Client::open(url)?;
                Ok(Self::Single(
                    client.get_multiplexed_async_connection().await?,
                ))
            } else {
                let client = redis::cluster::ClusterClient::builder(cluster.to_vec())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "redis did not answer in time"))
}

/// The heartbeat: prune expired nodes, renew (or remove) this one, return every live node
/// with its info. KEYS nodes, info; ARGV id, ttl_ms, info JSON, leave ("1" removes).
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
end
return out
";

/// The registry's keys and its one script.
pub struct Registry {
    nodes_key: String,
    info_key: String,
    script: Script,
    timeout: Duration,
}

impl Registry {
    /// The registry under `{prefix}` (the braces are added here).
    pub fn new(prefix: &str, timeout: Duration) -> Self {
        Self {
            nodes_key: format!("{{{prefix}}}:cluster:nodes"),
            info_key: format!("{{{prefix}}}:cluster:info"),
            script: Script::new(HEARTBEAT),
            timeout,
        }
    }

    /// Renews this node's entry (or removes it when `leave`) and returns every live node's
    /// info, by node id.
    pub async fn heartbeat(
        &self,
        conn: &mut Conn,
        id: &str,
        ttl_ms: u64,
        info: &NodeInfo,
        leave: bool,
    ) -> redis::RedisResult<BTreeMap<String, NodeInfo>> {
        let json = serde_json::to_string(info).unwrap_or_default();
        let mut invocation = self.script.key(&self.nodes_key);
        invocation
            .key(&self.info_key)
            .arg(id)
            .arg(ttl_ms)
            .arg(json)
            .arg(if leave { "1" } else { "0" });
        let flat: Vec<String> =
            match tokio::time::timeout(self.timeout, invocation.invoke_async(conn)).await {
                Ok(r) => r?,
                Err(_) => return Err(timed_out()),
            };
        let mut live = BTreeMap::new();
        for pair in flat.chunks_exact(2) {
            // An entry another build wrote in a shape we cannot read still counts as a
            // live node (it takes part in the assignment); it just serves nothing we know.
            let info = serde_json::from_str(&pair[1]).unwrap_or_default();
            live.insert(pair[0].clone(), info);
        }
        Ok(live)
    }
}
