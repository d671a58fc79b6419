//! Scale-out: markets partitioned over gavel nodes sharing one Redis (Cluster).
//!
//! A *market* is the unit of partitioning: each listing belongs to one market (its city,
//! through `[cluster] cities`; a car with no city, or a city not in the table, goes to
//! `default_market`). Each market is a complete single-node gavel — its own sequencer,
//! book, journal stream, snapshots, lease and outcomes — whose Redis keys share the hash
//! tag `{<prefix>:<market>}`, so one market lives in one cluster slot and its scripts stay
//! atomic there. One node serves a market at a time, fenced by the market's lease exactly
//! as the single journal is.
//!
//! The alliance is one: one market, the *alliance market* (`[cluster] alliance_market`),
//! holds the inventory every market's sold cars reach (through its inbox stream, see
//! `crate::pipeline::redis_consumer`), and the front doors send the alliance's routes to
//! it; sanctions, warnings and loans reach every market through the control stream.
//!
//! - [`placement`]: which node should serve which market (pure, balanced rendezvous);
//! - [`registry`]: live nodes and what they serve, heartbeated into Redis;
//! - [`verify`]: what must hold across markets, on their rebuilt books;
//! - [`routes`]: the front door's table of where each market is served;
//! - [`node`]: the loop that starts and hands over market servers to match;
//! - [`control`]: the control stream: accounts, statuses, alliance warnings, loans and
//!   transfers every market applies;
//! - [`metrics`]: what a node counts about its markets;
//! - [`front`]: the node's own listener (the front door): the cluster map, redirects to a
//!   market's server (and to the alliance market's for the alliance's routes), and the
//!   accounts every market shares.
//!
//! Clients talk to a market's server with the unchanged single-node protocol; they find it
//! through any node's front door (see docs/protocol.md, "Cluster").

pub mod control;
pub mod front;
pub mod metrics;
pub mod node;
pub mod placement;
pub mod registry;
pub mod routes;
pub mod verify;

use crate::config::Config;
use std::collections::BTreeMap;
use std::time::Duration;

/// The settings a node runs with: `[cluster]` plus the Redis it shares with the others.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// This node's id.
    pub node_id: String,
    /// Every market.
    pub markets: Vec<String>,
    /// City → market.
    pub cities: BTreeMap<String, String>,
    /// The market of a car without a (known) city.
    pub default_market: String,
    /// The market whose alliance holds every market's sold cars.
    pub alliance_market: String,
    /// Lease and registry TTL.
    pub lease_ttl_ms: u64,
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Where market servers bind.
    pub market_listen_host: String,
    /// Where others reach this node.
    pub advertise_host: String,
    /// `store.redis_prefix` without braces: the registry's hash tag, and the start of
    /// every market's.
    pub prefix: String,
    /// `store.redis_url` (single Redis) ...
    pub redis_url: String,
    /// ... or the cluster's seed URLs.
    pub redis_cluster: Vec<String>,
    /// `store.redis_timeout_ms`.
    pub op_timeout_ms: u64,
}

impl ClusterSettings {
    /// `[cluster]` with the Redis of `[store]`.
    pub fn from_config(config: &Config) -> Self {
        let c = &config.cluster;
        Self {
            node_id: if c.node_id.is_empty() {
                default_node_id()
            } else {
                c.node_id.clone()
            },
            markets: c.markets.clone(),
            cities: c.cities.clone(),
            default_market: c.default_market.clone(),
            alliance_market: if c.alliance_market.is_empty() {
                c.default_market.clone()
            } else {
                c.alliance_market.clone()
            },
            lease_ttl_ms: c.lease_ttl_ms,
            heartbeat_ms: c.heartbeat_ms,
            market_listen_host: c.market_listen_host.clone(),
            advertise_host: c.advertise_host.clone(),
            // `{gavel}` (as a Redis Cluster's single journal needs it) and `gavel` name the
            // same base: the node adds its own braces.
            prefix: config
                .store
                .redis_prefix
                .trim_matches(|c| c == '{' || c == '}')
                .to_owned(),
            redis_url: config.store.redis_url.clone(),
            redis_cluster: config.store.redis_cluster_urls.clone(),
            op_timeout_ms: config.store.redis_timeout_ms,
        }
    }

    /// The prefix of `market`'s journal keys: one hash tag, so one slot.
    pub fn market_prefix(&self, market: &str) -> String {
        format!("{{{}:{market}}}", self.prefix)
    }

    /// The stream other markets send their sold cars to: on the alliance market's slot.
    pub fn alliance_inbox(&self) -> String {
        format!(
            "{}:alliance_inbox",
            self.market_prefix(&self.alliance_market)
        )
    }

    /// The market a car in `city` is listed in.
    pub fn market_of_city(&self, city: Option<&str>) -> &str {
        city.and_then(|c| self.cities.get(c.trim()))
            .map_or(self.default_market.as_str(), String::as_str)
    }

    /// Bound on each registry call.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }

    /// Every problem with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.markets.is_empty() {
            p.push("cluster.markets must name at least one market".to_owned());
        }
        let valid = |m: &str| {
            !m.is_empty()
                && m.len() <= 32
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        for m in &self.markets {
            if !valid(m) {
                p.push(format!(
                    "cluster.markets: {m:?} must be 1 to 32 of a-z, A-Z, 0-9, - and _"
                ));
            }
        }
        if !self.markets.contains(&self.alliance_market) {
            p.push(format!(
                "cluster.alliance_market {:?} is not one of cluster.markets",
                self.alliance_market
            ));
        }
        if !self.markets.contains(&self.default_market) {
            p.push(format!(
                "cluster.default_market {:?} is not one of cluster.markets",
                self.default_market
            ));
        }
        for (city, m) in &self.cities {
            if !self.markets.contains(m) {
                p.push(format!(
                    "cluster.cities: {city:?} maps to unknown market {m:?}"
                ));
            }
        }
        if self.lease_ttl_ms < 100 {
            p.push("cluster.lease_ttl_ms must be at least 100".to_owned());
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms.saturating_mul(2) > self.lease_ttl_ms {
            p.push(
                "cluster.heartbeat_ms must be at least 1 and at most half of lease_ttl_ms"
                    .to_owned(),
            );
        }
        if self.redis_url.is_empty() && self.redis_cluster.is_empty() {
            p.push("a cluster node needs store.redis_url or store.redis_cluster_urls".to_owned());
        }
        p
    }
}

/// `<hostname>-<pid>`: unique per process on a host, readable in the registry.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A running node: its front door and its market loop.
pub struct Node {
    /// The front door's address.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    front: tokio::task::JoinHandle<()>,
    markets: tokio::task::JoinHandle<()>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `[cluster]` or `[store]` is not usable for a node.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// The shared Redis cannot be reached.
    #[error("cannot reach redis: {0}")]
    Redis(String),
    /// The front door's listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Node {
    /// Starts a node: the front door on `server.listen`, and the loop that serves this
    /// node's share of the markets.
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        let settings = ClusterSettings::from_config(&config);
        let problems = settings.validate();
        if !problems.is_empty() {
            return Err(NodeError::Config(problems.join("; ")));
        }
        let conn = registry::Conn::open(
            &settings.redis_url,
            &settings.redis_cluster,
            settings.op_timeout(),
        )
        .await
        .map_err(|e| NodeError::Redis(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: config.server.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
        let front_url = format!("http://{}:{}", settings.advertise_host, addr.port());
        let routes = std::sync::Arc::new(routes::RouteTable::default());
        let node_metrics = std::sync::Arc::new(metrics::NodeMetrics::default());
        let admin = (!config.server.admin_token.is_empty())
            .then(|| crate::directory::token::hash_token(&config.server.admin_token));
        let state = std::sync::Arc::new(front::FrontState {
            settings: settings.clone(),
            routes: routes.clone(),
            admin,
            conn,
            wait: Duration::from_secs(10),
            metrics: node_metrics.clone(),
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let app = front::router(state);
        let mut front_stop = stop_rx.clone();
        let front = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = front_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "front door stopped");
            }
        });
        tracing::info!(node = %settings.node_id, %addr, markets = ?settings.markets, "cluster node starting");
        let markets = tokio::spawn(node::run(
            config,
            settings,
            front_url,
            routes,
            node_metrics,
            stop_rx,
        ));
        Ok(Self {
            addr,
            stop,
            front,
            markets,
        })
    }

    /// Leaves the cluster cleanly: every market handed over (flushed, lease released),
    /// the registry entry removed, the front door closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.markets.await;
        let _ = self.front.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(overlay: &str) -> ClusterSettings {
        let overlay = format!("[store]\nredis_url = \"redis://127.0.0.1/\"\n{overlay}");
        let config = Config::from_layers(Some(&overlay), []).expect("config");
        ClusterSettings::from_config(&config)
    }

    #[test]
    fn the_alliance_market_is_the_default_market_unless_named_and_must_be_a_market() {
        let s = settings("");
        assert_eq!(s.alliance_market, "north");
        assert_eq!(s.alliance_inbox(), "{gavel:north}:alliance_inbox");
        assert!(s.validate().is_empty(), "{:?}", s.validate());

        let s = settings("[cluster]\nalliance_market = \"west\"\n");
        assert_eq!(s.alliance_inbox(), "{gavel:west}:alliance_inbox");
        assert!(s.validate().is_empty(), "{:?}", s.validate());

        let s = settings("[cluster]\nalliance_market = \"moon\"\n");
        assert_eq!(
            s.validate(),
            vec!["cluster.alliance_market \"moon\" is not one of cluster.markets".to_owned()]
        );
    }
}
