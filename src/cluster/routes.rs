//! Where each market is served, as the last heartbeat saw it: the front door's answer to
//! "which node has market X?".
//!
//! Refreshed from the registry every heartbeat, so it can be one heartbeat stale: a client
//! sent to a node that just lost the market finds the market server gone (connection
//! refused) or fenced (`unavailable`), and asks again.

use super::registry::NodeInfo;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// A market's server: the node that runs it and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The node.
    pub node: String,
    /// `http://host:port` of the market's server.
    pub url: String,
}

/// Live nodes and markets' routes.
#[derive(Default)]
pub struct RouteTable {
    inner: RwLock<Snapshot>,
}

/// One consistent reading of the table.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Live node → its front door.
    pub nodes: BTreeMap<String, String>,
    /// Market → where it is served (absent: nobody serves it right now).
    pub markets: BTreeMap<String, Route>,
}

impl RouteTable {
    /// Replaces the table with what the registry said.
    ///
    /// Two nodes can both claim a market for a moment (one was stopped past its lease and
    /// has not noticed yet); the one that claimed it most recently cannot be told from the
    /// registry, so the smaller node id wins the tie and the stale one disappears from the
    /// registry at its next heartbeat (it stops every market first, see `node`).
    pub fn update(&self, live: &BTreeMap<String, NodeInfo>) {
        let mut next = Snapshot::default();
        for (node, info) in live {
            next.nodes.insert(node.clone(), info.url.clone());
            for (market, url) in &info.markets {
                next.markets.entry(market.clone()).or_insert_with(|| Route {
                    node: node.clone(),
                    url: url.clone(),
                });
            }
        }
        if let Ok(mut t) = self.inner.write() {
            *t = next;
        }
    }

    /// The current table.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Where `market` is served now.
    pub fn route(&self, market: &str) -> Option<Route> {
        self.inner
            .read()
            .ok()
            .and_then(|t| t.markets.get(market).cloned())
    }
}
