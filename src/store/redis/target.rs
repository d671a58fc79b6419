//! Where the journal's Redis is — one node, or a Redis Cluster — and how one request is
//! sent there.
//!
//! Owns the choice between the two and the routing: on a cluster, every request of a
//! journal goes to the master of the one slot its hash-tagged prefix maps to (all its keys
//! live there, so the scripts may touch several keys at once), including the requests
//! that name no key (`CONFIG GET`, `PING`, `WAIT`, `SCRIPT LOAD`), which would otherwise go
//! to a random node. The cluster client follows `MOVED`/`ASK` and refreshes its slot map
//! after a failover, retrying within the caller's deadline.
//!
//! It must not decide what an error means or bound a call's time (`link` does both), and
//! must not change the single-node path: there a request is sent on the one multiplexed
//! connection exactly as before clusters were supported.

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{get_slot, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Cmd, Pipeline, RedisResult, Value};
use std::time::Duration;

/// Where a Redis is. Cheap to clone (a clone connects on its own).
#[derive(Clone)]
pub enum RedisTarget {
    /// One Redis server (a master, or a proxy in front of one).
    Single(Client),
    /// A Redis Cluster: every request goes to the master owning `slot`.
    Cluster {
        /// Knows the seeds; discovers the other nodes and the slot map on connect.
        client: ClusterClient,
        /// The slot of the key the target was made for (its hash tag's slot).
        slot: u16,
    },
}

impl RedisTarget {
    /// One node at `url` when `cluster_urls` is empty, else the cluster those seeds belong
    /// to, routed to the master of `key`'s slot. `timeout` bounds the cluster client's own
    /// connects and replies (a reply slower than it is retried by the client, so callers
    /// pass at least their own deadline). Errors are in words, without the URLs' passwords.
    pub fn new(
        url: &str,
        cluster_urls: &[String],
        key: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        if cluster_urls.is_empty() {
            return Client::open(url)
                .map(Self::Single)
                .map_err(|e| format!("redis url {}: {e}", super::redact_url(url)));
        }
        let client = ClusterClientBuilder::new(cluster_urls.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| {
                let seeds: Vec<String> =
                    cluster_urls.iter().map(|u| super::redact_url(u)).collect();
                format!("redis cluster seeds {seeds:?}: {e}")
            })?;
        Ok(Self::Cluster {
            client,
            slot: get_slot(key.as_bytes()),
        })
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// A new connection (on a cluster: to every master, with the slot map).
    pub async fn connect(&self) -> RedisResult<RedisConn> {
        match self {
            Self::Single(client) => client
                .get_multiplexed_async_connection()
                .await
                .map(RedisConn::Single),
            Self::Cluster { client, slot } => client
                .get_async_connection()
                .await
                .map(|conn| RedisConn::Cluster { conn, slot: *slot }),
        }
    }
}

/// A connection made by [`RedisTarget::connect`]. Cheap to clone: clones share it.
#[derive(Clone)]
pub enum RedisConn {
    /// The one multiplexed connection to a single node.
    Single(MultiplexedConnection),
    /// A cluster connection, and the slot whose master every request goes to.
    Cluster {
        /// Keeps a connection per node and the slot map.
        conn: ClusterConnection,
        /// See [`RedisTarget::Cluster`].
        slot: u16,
    },
}

impl RedisConn {
    fn home(slot: u16) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
    }

    /// Sends one command; an error reply is an `Err`.
    pub async fn cmd(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(conn) => cmd.query_async(conn).await,
            Self::Cluster { conn, slot } => {
                conn.route_command(cmd, RoutingInfo::SingleNode(Self::home(*slot)))
                    .await
            }
        }
    }

    /// Sends a (non-transactional) pipeline in one write on one connection; the replies
    /// come back as one array, and an error reply to any command is an `Err`, as from
    /// `Pipeline::query_async`.
    pub async fn pipe(&mut self, pipe: &Pipeline) -> RedisResult<Value> {
        match self {
            Self::Single(conn) => pipe.query_async(conn).await,
            Self::Cluster { conn, slot } => {
                let count = pipe.cmd_iter().count();
                conn.route_pipeline(pipe, 0, count, Self::home(*slot))
                    .await
                    .map(Value::Array)
            }
        }
    }
}

/// The hash tag of a key prefix (`m:north` in `{m:north}`): the part between its first
/// `{` and the first `}` after it, if not empty. Every key that starts with the prefix
/// then hashes to the tag's slot, as Redis Cluster computes it.
pub fn hash_tag(prefix: &str) -> Option<&str> {
    let open = prefix.find('{')?;
    let rest = &prefix[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag("{m:north}"), Some("m:north"));
        assert_eq!(hash_tag("gavel{a}b"), Some("a"));
        assert_eq!(
            hash_tag("{}x{y}"),
            None,
            "an empty first tag hashes the whole key"
        );
        assert_eq!(hash_tag("gavel"), None);
        assert_eq!(hash_tag("{open"), None);
        // The tag decides the slot, whatever follows the prefix.
        assert_eq!(get_slot(b"{m:north}:log"), get_slot(b"{m:north}:lease"));
        assert_ne!(get_slot(b"{m:north}:log"), get_slot(b"{m:south}:log"));
    }
}
