//! Several `gavel node` child processes sharing one Redis, for the cluster tests: started
//! from one generated config file in a temp dir, each reporting its front door on stdout.
//!
//! The Redis under the nodes is a parameter ([`SharedRedis`]): a single `redis-server`, or
//! a Redis Cluster (`store.redis_cluster_urls`, a braced prefix, and as many replicas to
//! wait for as the test asks). The
//! harness kills (SIGKILL), stops (SIGSTOP), continues, terminates (SIGTERM), restarts and
//! adds nodes, and reads the cluster map from whichever front door still answers. Every
//! child is killed (SIGKILL, which ends a stopped one too) when the `ClusterNodes` is
//! dropped, including when a test panics: each is a `support::gavel::Gavel`.
//!
//! Front doors that a test may still ask are kept in a shared list ([`Fronts`]): a killed
//! or stopped node's front door leaves it at once, so clients running beside the test
//! (bidders) never wait on a process the test froze.

use super::gavel::{Gavel, GavelOpts, JournalArg, ADMIN};
use super::http;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The Redis every node shares.
#[derive(Clone, Debug)]
pub enum SharedRedis {
    /// One `redis-server` (`store.redis_url`).
    Single(String),
    /// A Redis Cluster: its seed URLs (`store.redis_cluster_urls`) and
    /// `store.replicas_to_wait` (each append acknowledged only once that many replicas
    /// have it: Redis `WAIT`).
    Cluster {
        seeds: Vec<String>,
        replicas_to_wait: u32,
    },
}

/// The prefix on a Redis Cluster: braced, so the registry and the control stream share
/// one slot; each market's keys are tagged `{gavel:<market>}` (see [`SharedRedis::log_key`]).
const CLUSTER_PREFIX: &str = "{gavel}";

impl SharedRedis {
    fn toml(&self) -> String {
        match self {
            Self::Single(url) => format!("redis_url = {url:?}\nredis_prefix = \"gt\"\n"),
            Self::Cluster {
                seeds,
                replicas_to_wait,
            } => format!(
                "redis_cluster_urls = {seeds:?}\nredis_prefix = {CLUSTER_PREFIX:?}\n\
                 replicas_to_wait = {replicas_to_wait}\n"
            ),
        }
    }

    /// The key of `market`'s journal stream, to find the Redis node that holds it.
    pub fn log_key(&self, market: &str) -> String {
        let base = match self {
            Self::Single(_) => "gt",
            Self::Cluster { .. } => CLUSTER_PREFIX.trim_matches(['{', '}']),
        };
        format!("{{{base}:{market}}}:log")
    }
}

/// The cluster's markets and timings.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Market → the one city the tests list its cars in.
    pub markets: Vec<(String, String)>,
    /// `cluster.lease_ttl_ms`.
    pub lease_ttl_ms: u64,
    /// `cluster.heartbeat_ms`.
    pub heartbeat_ms: u64,
    /// Appended to the generated config: the sections a test sets beyond `[cluster]`
    /// (`[alliance]` windows short enough to pass during a test).
    pub extra_toml: String,
}

impl ClusterSpec {
    /// The four markets of config/default.toml, one city each, a 1 s lease and a 200 ms
    /// heartbeat (the goal is measured at a 1 s lease).
    pub fn four_markets() -> Self {
        Self {
            markets: [
                ("north", "Beijing"),
                ("east", "Shanghai"),
                ("south", "Guangzhou"),
                ("west", "Chengdu"),
            ]
            .iter()
            .map(|(m, c)| ((*m).to_owned(), (*c).to_owned()))
            .collect(),
            lease_ttl_ms: 1000,
            heartbeat_ms: 200,
            extra_toml: String::new(),
        }
    }

    /// The market names.
    pub fn market_names(&self) -> Vec<String> {
        self.markets.iter().map(|(m, _)| m.clone()).collect()
    }

    /// The city listed cars of `market` carry.
    pub fn city(&self, market: &str) -> &str {
        self.markets
            .iter()
            .find(|(m, _)| m == market)
            .map(|(_, c)| c.as_str())
            .unwrap_or_else(|| panic!("no market {market:?} in the spec"))
    }

    fn toml(&self, redis: &SharedRedis) -> String {
        let names: Vec<&str> = self.markets.iter().map(|(m, _)| m.as_str()).collect();
        let mut t = format!(
            "[server]\nadmin_token = {ADMIN:?}\n\n[store]\n{}\n\
             [cluster]\nmarkets = {names:?}\ndefault_market = {:?}\nlease_ttl_ms = {}\n\
             heartbeat_ms = {}\n\n[cluster.cities]\n",
            redis.toml(),
            names[0],
            self.lease_ttl_ms,
            self.heartbeat_ms,
        );
        for (m, c) in &self.markets {
            t.push_str(&format!("{c:?} = {m:?}\n"));
        }
        t.push('\n');
        t.push_str(&self.extra_toml);
        t
    }
}

/// A market's entry in `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketRoute {
    /// The node serving it (`None` while it changes hands).
    pub node: Option<String>,
    /// Its server's `http://host:port`.
    pub url: Option<String>,
    /// Its server's WebSocket URL.
    pub ws: Option<String>,
}

impl MarketRoute {
    /// The market server's address, when it is served.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.url
            .as_deref()
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|a| a.parse().ok())
    }
}

/// `GET /v1/cluster`, read.
#[derive(Clone, Debug)]
pub struct ClusterMap {
    /// The node that answered.
    pub node: String,
    /// Market → where it is served.
    pub markets: BTreeMap<String, MarketRoute>,
    /// Live nodes, by id → front door.
    pub nodes: BTreeMap<String, String>,
}

impl ClusterMap {
    fn parse(v: &Value) -> Option<Self> {
        let mut markets = BTreeMap::new();
        for m in v["markets"].as_array()? {
            let s = |k: &str| m[k].as_str().map(str::to_owned);
            markets.insert(
                s("market")?,
                MarketRoute {
                    node: s("node"),
                    url: s("url"),
                    ws: s("ws"),
                },
            );
        }
        let mut nodes = BTreeMap::new();
        for n in v["nodes"].as_array()? {
            nodes.insert(
                n["node"].as_str()?.to_owned(),
                n["url"].as_str().unwrap_or_default().to_owned(),
            );
        }
        Some(Self {
            node: v["node"].as_str()?.to_owned(),
            markets,
            nodes,
        })
    }

    /// Whether every market has a server.
    pub fn all_served(&self) -> bool {
        self.markets
            .values()
            .all(|r| r.node.is_some() && r.url.is_some())
    }

    /// The markets `node` serves.
    pub fn served_by(&self, node: &str) -> Vec<String> {
        self.markets
            .iter()
            .filter(|(_, r)| r.node.as_deref() == Some(node))
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Every market served, by exactly the live nodes `ids`, each holding a fair share
    /// (between floor and ceil of markets / nodes).
    pub fn balanced_over(&self, ids: &[String]) -> bool {
        if !self.all_served() || ids.is_empty() {
            return false;
        }
        let mut listed: Vec<&String> = self.nodes.keys().collect();
        listed.sort();
        let mut want: Vec<&String> = ids.iter().collect();
        want.sort();
        if listed != want {
            return false;
        }
        let (m, n) = (self.markets.len(), ids.len());
        ids.iter().all(|id| {
            let k = self.served_by(id).len();
            k >= m / n && k <= m.div_ceil(n)
        }) && self
            .markets
            .values()
            .all(|r| r.node.as_ref().is_some_and(|n| ids.contains(n)))
    }
}

/// The front doors a client may ask right now (running, not stopped).
pub type Fronts = Arc<RwLock<Vec<SocketAddr>>>;

/// Reads `GET /v1/cluster` from the first of `fronts` that answers within `within` each.
pub async fn read_map(fronts: &Fronts, within: Duration) -> Option<ClusterMap> {
    let list = fronts.read().unwrap().clone();
    for addr in list {
        if let Ok(r) = http::try_request(addr, "GET", "/v1/cluster", None, None, within).await {
            if r.status == 200 {
                if let Some(m) = ClusterMap::parse(&r.body) {
                    return Some(m);
                }
            }
        }
    }
    None
}

/// One node process and how the harness left it.
struct Slot {
    id: String,
    gavel: Option<Gavel>,
    stopped: bool,
    /// What it printed before it was killed or terminated, for failure messages.
    last_output: String,
}

/// N `gavel node` processes on one config.
pub struct ClusterNodes {
    _dir: tempfile::TempDir,
    /// The config file every node (and `replay`) reads.
    pub config: PathBuf,
    /// The markets and timings.
    pub spec: ClusterSpec,
    slots: Vec<Slot>,
    fronts: Fronts,
}

impl ClusterNodes {
    /// Writes the config and starts `n` nodes (`n0`, `n1`, …), each up to its front door.
    /// Does not wait for markets to be served: see [`ClusterNodes::wait_until_all_served`].
    pub async fn start(redis: &SharedRedis, spec: ClusterSpec, n: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gavel-cluster-")
            .tempdir()
            .expect("create a temp dir for the cluster config");
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, spec.toml(redis)).expect("write the cluster config");
        let mut nodes = Self {
            _dir: dir,
            config,
            spec,
            slots: Vec::new(),
            fronts: Arc::default(),
        };
        for _ in 0..n {
            nodes.add_node().await;
        }
        nodes
    }

    fn opts(&self) -> GavelOpts {
        GavelOpts::new(JournalArg::Config(self.config.clone()))
    }

    async fn spawn(&self, id: &str) -> Gavel {
        let args: Vec<String> = [
            "node",
            "--config",
            &self.config.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            id,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        Gavel::start_command(&args, &self.opts())
            .await
            .unwrap_or_else(|f| panic!("node {id}: {f}"))
    }

    /// Starts one more node, `n<index>`; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let i = self.slots.len();
        let id = format!("n{i}");
        let gavel = self.spawn(&id).await;
        self.fronts.write().unwrap().push(gavel.addr);
        self.slots.push(Slot {
            id,
            gavel: Some(gavel),
            stopped: false,
            last_output: String::new(),
        });
        i
    }

    /// Starts node `i` again under its id (after a kill or a terminate).
    pub async fn restart(&mut self, i: usize) {
        assert!(
            self.slots[i].gavel.is_none(),
            "restart of a running node {i}"
        );
        let gavel = self.spawn(&self.slots[i].id.clone()).await;
        self.fronts.write().unwrap().push(gavel.addr);
        self.slots[i].gavel = Some(gavel);
        self.slots[i].stopped = false;
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> &str {
        &self.slots[i].id
    }

    /// The index of the node called `id`.
    pub fn index(&self, id: &str) -> usize {
        self.slots
            .iter()
            .position(|s| s.id == id)
            .unwrap_or_else(|| panic!("no node {id:?}"))
    }

    /// Ids of the nodes that run and are not stopped.
    pub fn live_ids(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|s| s.gavel.is_some() && !s.stopped)
            .map(|s| s.id.clone())
            .collect()
    }

    /// Node `i`'s front door.
    pub fn front(&self, i: usize) -> SocketAddr {
        self.slots[i].gavel.as_ref().expect("node runs").addr
    }

    /// The shared list of front doors that answer (for clients running beside the test).
    pub fn fronts(&self) -> Fronts {
        self.fronts.clone()
    }

    fn drop_front(&self, i: usize) {
        if let Some(g) = &self.slots[i].gavel {
            self.fronts.write().unwrap().retain(|a| *a != g.addr);
        }
    }

    /// SIGKILL node `i`: a crash, nothing handed over.
    pub fn kill9(&mut self, i: usize) {
        self.drop_front(i);
        let slot = &mut self.slots[i];
        // SIGKILL ends a stopped process too, without letting it run first.
        if let Some(mut g) = slot.gavel.take() {
            g.kill();
            slot.last_output = g.output();
        }
        slot.stopped = false;
    }

    /// SIGSTOP node `i`: frozen, its sockets open, nothing answered.
    pub fn stop(&mut self, i: usize) {
        self.drop_front(i);
        self.slots[i]
            .gavel
            .as_ref()
            .expect("node runs")
            .signal("-STOP");
        self.slots[i].stopped = true;
    }

    /// SIGCONT node `i`.
    pub fn cont(&mut self, i: usize) {
        let g = self.slots[i].gavel.as_ref().expect("node runs");
        g.signal("-CONT");
        self.fronts.write().unwrap().push(g.addr);
        self.slots[i].stopped = false;
    }

    /// SIGTERM node `i` and wait for its exit (a clean hand-over); its exit status.
    pub fn terminate(&mut self, i: usize) -> ExitStatus {
        self.drop_front(i);
        let slot = &mut self.slots[i];
        let mut g = slot.gavel.take().expect("node runs");
        let status = g.terminate();
        slot.last_output = g.output();
        status
    }

    /// The map from a front door that answers; panics if none does within 5 s.
    pub async fn map(&self) -> ClusterMap {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(m) = read_map(&self.fronts, Duration::from_secs(1)).await {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no front door answered GET /v1/cluster\n{}",
                self.outputs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the map (every 50 ms) until `done` holds on every answering front door's map;
    /// returns that map. Panics with `what`, the last map and the nodes' output after
    /// `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&ClusterMap) -> bool,
    ) -> ClusterMap {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            let list = self.fronts.read().unwrap().clone();
            let mut all = !list.is_empty();
            for addr in list {
                let got = http::try_request(
                    addr,
                    "GET",
                    "/v1/cluster",
                    None,
                    None,
                    Duration::from_secs(1),
                )
                .await
                .ok()
                .and_then(|r| ClusterMap::parse(&r.body));
                match got {
                    Some(m) if done(&m) => last = Some(m),
                    Some(m) => {
                        all = false;
                        last = Some(m);
                    }
                    None => all = false,
                }
            }
            if all {
                if let Some(m) = last {
                    return m;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not within {within:?}: {what}; last map: {last:#?}\n{}",
                self.outputs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every front door reports every market served by a live node, in fair
    /// shares over exactly the live nodes.
    pub async fn wait_until_all_served(&self, within: Duration) -> ClusterMap {
        let ids = self.live_ids();
        self.wait_until(
            within,
            &format!("every market served, balanced over {ids:?}"),
            |m| m.balanced_over(&ids),
        )
        .await
    }

    /// `gavel replay --verify --all-markets` on the nodes' config.
    pub fn replay_verify_all(&self) -> (ExitStatus, String) {
        super::gavel::replay_verify_with(
            &JournalArg::Config(self.config.clone()),
            &["--all-markets"],
        )
    }

    /// Every node's output, for a failure message.
    pub fn outputs(&self) -> String {
        let mut out = String::new();
        for s in &self.slots {
            let text = s
                .gavel
                .as_ref()
                .map_or_else(|| s.last_output.clone(), Gavel::output);
            out.push_str(&format!("--- node {} ---\n{text}\n", s.id));
        }
        out
    }
}
