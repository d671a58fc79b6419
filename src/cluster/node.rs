//! One cluster node: it heartbeats into the registry, computes which markets it should
//! serve, and starts or hands over market servers to match.
//!
//! A market server is the single-node server of `crate::server`, unchanged, on its own
//! listener, journaling to its market's keys (`{<prefix>:<market>}:…`) under its market's
//! lease. So everything a single node guarantees — durable before acknowledged, fencing,
//! snapshots, recovery, the whole protocol — holds per market; this module only decides
//! where each market runs.
//!
//! The loop, every `heartbeat_ms`:
//! 1. if the last successful heartbeat is older than the lease TTL (the process was
//!    stopped, or Redis was out of reach), every market this node served may already have
//!    moved: stop them all before saying anything (their journals fence them anyway; this
//!    makes the node rejoin clean instead of advertising markets it lost);
//! 2. heartbeat (advertising the markets served now) and read the live nodes;
//! 3. `placement::assign` over the live nodes: start the markets assigned here (taking a
//!    market's lease fails while its old owner still holds it; the next round tries again),
//!    hand over the markets assigned elsewhere (stop taking commands, flush, release the
//!    lease: `Running::shutdown`), and drop any market whose engine stopped by itself
//!    (fenced: another node owns it now).
//!
//! Invariants: a market is in at most one of starting / serving / stopping on this node;
//! a market is started only once its previous stop on this node has finished.

use super::control::{self, ControlKeys, RunningParts};
use super::metrics::NodeMetrics;
use super::placement::assign;
use super::registry::{Conn, NodeInfo, Registry};
use super::routes::RouteTable;
use super::ClusterSettings;
use crate::config::{Config, SoldCars};
use crate::server::{self, Running};
use crate::store::redis::RedisJournal;
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// What happened to a market this node tried to start or stop.
enum Report {
    Started(String, Box<Running>),
    /// Could not start: the lease is held elsewhere, or Redis refused; try again later.
    NotStarted(String, String),
    Stopped(String),
}

/// A market server this node runs.
struct Serving {
    running: Running,
    url: String,
    /// Stops the market's control-stream tasks.
    tasks: watch::Sender<bool>,
}

/// The node's markets and where they stand.
#[derive(Default)]
struct Markets {
    serving: BTreeMap<String, Serving>,
    starting: BTreeSet<String>,
    stopping: BTreeSet<String>,
}

impl Markets {
    fn busy(&self, market: &str) -> bool {
        self.serving.contains_key(market)
            || self.starting.contains(market)
            || self.stopping.contains(market)
    }

    fn info(&self, front: &str) -> NodeInfo {
        NodeInfo {
            url: front.to_owned(),
            markets: self
                .serving
                .iter()
                .map(|(m, s)| (m.clone(), s.url.clone()))
                .collect(),
        }
    }
}

/// Runs the node until `stop` turns true, then hands every market over cleanly and leaves
/// the registry.
pub async fn run(
    config: Config,
    settings: ClusterSettings,
    front_url: String,
    routes: Arc<RouteTable>,
    metrics: Arc<NodeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let registry = Registry::new(&settings.prefix, settings.op_timeout());
    let (tx, mut rx) = mpsc::channel::<Report>(settings.markets.len().max(1) * 4);
    let mut markets = Markets::default();
    let mut conn: Option<Conn> = None;
    let mut last_ok = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(settings.heartbeat_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ttl = Duration::from_millis(settings.lease_ttl_ms);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            Some(report) = rx.recv() => {
                let started = matches!(report, Report::Started(..));
                settle(&mut markets, report, &settings, &metrics);
                if started {
                    // Advertise a newly served market now, not a heartbeat later: clients
                    // of a market that just moved are waiting for it.
                    every.reset_immediately();
                }
                continue;
            }
            _ = stop.changed() => break,
        }
        metrics.served.set(markets.serving.len() as u64);
        // 1. Out of touch longer than a lease: whatever we served may have moved.
        if last_ok.elapsed() > ttl && !markets.serving.is_empty() {
            metrics.out_of_touch.inc();
            tracing::warn!(
                node = %settings.node_id,
                out_of_touch_ms = last_ok.elapsed().as_millis() as u64,
                "out of touch with the registry for longer than the lease; stopping every market here"
            );
            for market in markets.serving.keys().cloned().collect::<Vec<_>>() {
                hand_over(&mut markets, &market, &tx);
            }
        }
        // Engines that stopped by themselves were fenced: the market is someone else's.
        let fenced: Vec<String> = markets
            .serving
            .iter()
            .filter(|(_, s)| s.running.has_stopped())
            .map(|(m, _)| m.clone())
            .collect();
        for market in fenced {
            tracing::warn!(node = %settings.node_id, %market, "market's engine stopped (fenced or failed); dropping it");
            metrics.fenced.inc();
            hand_over(&mut markets, &market, &tx);
        }
        // 2. Heartbeat.
        if conn.is_none() {
            match Conn::open(
                &settings.redis_url,
                &settings.redis_cluster,
                settings.op_timeout(),
            )
            .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(node = %settings.node_id, error = %e, "cannot reach redis for the registry");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let info = markets.info(&front_url);
        let live = match registry
            .heartbeat(c, &settings.node_id, settings.lease_ttl_ms, &info, false)
            .await
        {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(node = %settings.node_id, error = %e, "registry heartbeat failed");
                metrics.heartbeat_failures.inc();
                conn = None;
                continue;
            }
        };
        last_ok = Instant::now();
        routes.update(&live);
        // 3. Converge on the assignment.
        let nodes: Vec<String> = live.keys().cloned().collect();
        let target = assign(&settings.markets, &nodes);
        for (market, owner) in &target {
            if *owner == settings.node_id && !markets.busy(market) {
                markets.starting.insert(market.clone());
                tokio::spawn(start_market(
                    config.clone(),
                    settings.clone(),
                    market.clone(),
                    tx.clone(),
                ));
            }
        }
        let moved: Vec<String> = markets
            .serving
            .keys()
            .filter(|m| target.get(*m) != Some(&settings.node_id))
            .cloned()
            .collect();
        for market in moved {
            tracing::info!(node = %settings.node_id, %market, "handing market over");
            metrics.handed_over.inc();
            hand_over(&mut markets, &market, &tx);
        }
    }
    // Leaving: hand every market over, wait for them, then leave the registry so the
    // others take over at their next heartbeat rather than after our entry expires.
    for market in markets.serving.keys().cloned().collect::<Vec<_>>() {
        metrics.handed_over.inc();
        hand_over(&mut markets, &market, &tx);
    }
    metrics.served.set(0);
    while !markets.starting.is_empty() || !markets.stopping.is_empty() {
        match rx.recv().await {
            Some(Report::Started(market, running)) => {
                markets.starting.remove(&market);
                markets.stopping.insert(market.clone());
                spawn_stop(market, *running, tx.clone());
            }
            Some(report) => settle(&mut markets, report, &settings, &metrics),
            None => break,
        }
    }
    if let Some(c) = conn.as_mut() {
        let _ = registry
            .heartbeat(
                c,
                &settings.node_id,
                settings.lease_ttl_ms,
                &NodeInfo::default(),
                true,
            )
            .await;
    }
    tracing::info!(node = %settings.node_id, "left the cluster");
}

fn settle(
    markets: &mut Markets,
    report: Report,
    settings: &ClusterSettings,
    metrics: &NodeMetrics,
) {
    match report {
        Report::Started(market, running) => {
            markets.starting.remove(&market);
            metrics.taken.inc();
            let url = format!("http://{}:{}", settings.advertise_host, running.addr.port());
            tracing::info!(node = %settings.node_id, %market, %url, "serving market");
            let (tasks, stop) = watch::channel(false);
            tokio::spawn(market_tasks(
                settings.clone(),
                market.clone(),
                RunningParts::of(&running),
                stop,
            ));
            markets.serving.insert(
                market,
                Serving {
                    running: *running,
                    url,
                    tasks,
                },
            );
        }
        Report::NotStarted(market, why) => {
            markets.starting.remove(&market);
            tracing::debug!(node = %settings.node_id, %market, %why, "market not started");
        }
        Report::Stopped(market) => {
            markets.stopping.remove(&market);
        }
    }
}

fn hand_over(markets: &mut Markets, market: &str, tx: &mpsc::Sender<Report>) {
    if let Some(serving) = markets.serving.remove(market) {
        let _ = serving.tasks.send(true);
        markets.stopping.insert(market.to_owned());
        spawn_stop(market.to_owned(), serving.running, tx.clone());
    }
}

fn spawn_stop(market: String, running: Running, tx: mpsc::Sender<Report>) {
    tokio::spawn(async move {
        if let Err(e) = running.shutdown().await {
            tracing::warn!(%market, error = %e, "market stopped with an error");
        }
        let _ = tx.send(Report::Stopped(market)).await;
    });
}

/// The configuration of one market's server: the node's, with the market's journal keys,
/// the cluster's lease, and a listener of its own on a free port.
pub fn market_config(config: &Config, settings: &ClusterSettings, market: &str) -> Config {
    let mut c = config.clone();
    c.server.listen = format!("{}:0", settings.market_listen_host);
    c.server.demo = false;
    c.server.cluster_market = true;
    let inbox = settings.alliance_inbox();
    c.server.sold_cars = if market == settings.alliance_market {
        SoldCars::HereAndFromInbox {
            market: market.to_owned(),
            inbox,
        }
    } else {
        SoldCars::ToInbox {
            market: market.to_owned(),
            inbox,
        }
    };
    c.store.redis_prefix = settings.market_prefix(market);
    c.store.lease_ttl_ms = settings.lease_ttl_ms;
    c
}

async fn start_market(
    config: Config,
    settings: ClusterSettings,
    market: String,
    tx: mpsc::Sender<Report>,
) {
    let c = market_config(&config, &settings, &market);
    let report = match RedisJournal::open(&c.redis_journal()).await {
        Err(e) => Report::NotStarted(market, e.to_string()),
        Ok(journal) => match server::start(&c, journal).await {
            Ok(running) => Report::Started(market, Box::new(running)),
            Err(server::ServeError::Store(StoreError::Fenced(why))) => {
                Report::NotStarted(market, why)
            }
            Err(e) => Report::NotStarted(market, e.to_string()),
        },
    };
    if let Err(mpsc::error::SendError(Report::Started(market, running))) = tx.send(report).await {
        // The node is gone: release what we just took.
        tracing::info!(%market, "node stopping; releasing a market it had just started");
        let _ = running.shutdown().await;
    }
}

/// The control stream's two tasks for one served market: apply the stream, relay the
/// market's own status changes. Each has its own connection (a blocking read would hold
/// up anything sharing it).
async fn market_tasks(
    settings: ClusterSettings,
    market: String,
    parts: RunningParts,
    stop: watch::Receiver<bool>,
) {
    let keys = ControlKeys::new(&settings.prefix);
    let open = || {
        Conn::open(
            &settings.redis_url,
            &settings.redis_cluster,
            settings.op_timeout(),
        )
    };
    let (ingest_conn, relay_conn) = loop {
        match (open().await, open().await) {
            (Ok(a), Ok(b)) => break (a, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(%market, error = %e, "control stream: cannot reach redis");
                if *stop.borrow() || *parts.done.borrow() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(settings.heartbeat_ms)).await;
            }
        }
    };
    let ingest = control::ingest(
        ingest_conn,
        keys.clone(),
        market.clone(),
        settings.market_prefix(&market),
        parts.clone(),
        stop.clone(),
    );
    let relay = control::relay_status(
        relay_conn,
        keys,
        market.clone(),
        settings.market_prefix(&market),
        parts,
        stop,
    );
    tokio::join!(ingest, relay);
}
