//! The server: the application state, one listener for the HTTP API and the WebSocket
//! endpoint, the engine's publishers, a connection limit and graceful shutdown.
//!
//! This is where the parts meet: it builds the directory, the views, the hub and the
//! hand-off, hands the engine one publisher that reaches them in a stated order, and
//! gives the HTTP routes and the gateway their parts of one application state.

use crate::api::audit::AuditState;
use crate::api::routes::{ApiMetrics, ApiState};
use crate::config::{Config, SoldCars};
use crate::directory::token::hash_token;
use crate::directory::{Directory, DirectoryPublisher};
use crate::engine::{self, EngineHandle, Publisher};
use crate::gateway::hub::{Hub, HubPublisher};
use crate::gateway::session::{SessionCtx, SessionMetrics};
use crate::gateway::socket;
use crate::gateway::upgrade::ConnectionSlot;
use crate::market::{Event, Market};
use crate::pipeline::{FeedPublisher, LocalFeed, RedisHandoff, RedisHandoffConfig, Role};
use crate::store::{Entry, Journal, StoreError};
use crate::views::{
    Accounts, AccountsPublisher, AllianceBoard, Lots, MarketData, MarketDataConfig, ViewsPublisher,
};
use axum::extract::FromRef;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The journal refused (owned elsewhere, unreachable, corrupt, misconfigured).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The engine did not finish flushing within the shutdown deadline.
    #[error("shutdown deadline passed before the journal was flushed")]
    ShutdownTimeout,
}

/// A running server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Submit commands directly (demo seeding, tests).
    pub engine: EngineHandle,
    /// Subscriptions and fan-out.
    pub hub: Arc<Hub>,
    /// The lots' durable public state.
    pub lots: Arc<Lots>,
    /// The alliance's durable read view.
    pub alliance: Arc<AllianceBoard>,
    /// Who each token is.
    pub directory: Arc<Directory>,
    /// The accounts' read view.
    pub accounts: Arc<Accounts>,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
    /// The alliance hand-off (Redis consumer group, or the local feed).
    handoff: JoinHandle<()>,
    engine_task: JoinHandle<Result<(), StoreError>>,
    /// Becomes true when the engine task has ended (a fatal journal error, or shutdown).
    engine_done: watch::Receiver<bool>,
    deadline: Duration,
    /// Connection slots: every open connection and session holds one, so all of them
    /// being free again means every session has sent its close frame and ended.
    slots: Arc<Semaphore>,
    max_connections: usize,
}

/// The application state: every part a handler may need, built once in [`start`]. The
/// HTTP routes and the gateway each take their part of it (`FromRef`), so neither reaches
/// into the other.
#[derive(Clone)]
struct AppState {
    api: Arc<ApiState>,
    sessions: Arc<SessionCtx>,
}

impl FromRef<AppState> for Arc<ApiState> {
    fn from_ref(app: &AppState) -> Self {
        app.api.clone()
    }
}

impl FromRef<AppState> for Arc<SessionCtx> {
    fn from_ref(app: &AppState) -> Self {
        app.sessions.clone()
    }
}

/// Everything the engine publishes to, in the order each durable command reaches them.
/// The views come before the hub's fan-out: a session subscribes (joins the fan-out) and
/// then reads its snapshot from the views, so with the views always at least as new as
/// what was fanned out, every update is either in the snapshot or sent after it (one may
/// arrive twice, none is missed). The directory and the hand-off depend on no order.
struct Publishers {
    directory: DirectoryPublisher,
    views: ViewsPublisher,
    accounts: AccountsPublisher,
    feed: Option<FeedPublisher>,
    fanout: HubPublisher,
}

impl Publisher for Publishers {
    fn reset(&mut self, market: &Market) {
        self.directory.reset(market);
        self.views.reset(market);
        self.accounts.reset(market);
        self.feed.reset(market);
        self.fanout.reset(market);
    }

    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        self.directory.publish(entry, events);
        self.views.publish(entry, events);
        self.accounts.publish(entry, events);
        self.feed.publish(entry, events);
        self.fanout.publish(entry, events);
    }

    fn flush(&mut self) {
        self.fanout.flush();
    }
}

/// How the market data groups and bounds, as `[market_data]` says.
pub fn market_data_config(config: &Config) -> MarketDataConfig {
    let m = &config.market_data;
    MarketDataConfig {
        year_band_years: m.year_band_years,
        window: m.window,
        history: m.history,
    }
}

/// Recovers the engine from `journal` and starts serving on `config.server.listen`.
pub async fn start<J: Journal>(config: &Config, journal: J) -> Result<Running, ServeError> {
    let admin =
        (!config.server.admin_token.is_empty()).then(|| hash_token(&config.server.admin_token));
    let directory = Directory::new(admin);
    let hub = Hub::new();
    let lots = Lots::new();
    let board = AllianceBoard::new();
    let accounts = Accounts::new();
    let market_data = MarketData::new(market_data_config(config));
    let describe = journal.describe();
    // Sold outcomes reach the alliance from the journal's outcomes stream when it has one
    // (Redis), else from the engine's durable publication (see `crate::pipeline`).
    let stream = journal.outcome_stream();
    let feed = stream.is_none().then(LocalFeed::new);
    let publisher = Publishers {
        directory: DirectoryPublisher(directory.clone()),
        views: ViewsPublisher {
            lots: lots.clone(),
            alliance: board.clone(),
            market_data: market_data.clone(),
        },
        accounts: AccountsPublisher(accounts.clone()),
        feed: feed.clone().map(|feed| FeedPublisher {
            feed,
            lots: lots.clone(),
        }),
        fanout: HubPublisher(hub.clone()),
    };
    let (engine, engine_task) =
        engine::spawn(journal, config.rules(), publisher, config.engine()).await?;
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.server.listen.clone(),
        source,
    })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let sessions = Arc::new(SessionCtx {
        hub: hub.clone(),
        lots: lots.clone(),
        alliance: board.clone(),
        directory: directory.clone(),
        engine: engine.clone(),
        config: config.gateway.clone(),
        rates: Default::default(),
        epoch: Instant::now(),
        shutdown: shutdown_rx.clone(),
        metrics: SessionMetrics::new(),
    });
    let handoff = match (stream, feed) {
        (Some(stream), _) => {
            let a = &config.alliance;
            let consumer = |key: String, role: Role| RedisHandoffConfig {
                url: stream.url.clone(),
                cluster_urls: stream.cluster_urls.clone(),
                stream: key,
                group: a.consumer_group.clone(),
                consumer: a.consumer_name.clone(),
                claim_idle: Duration::from_millis(a.claim_idle_ms),
                block: Duration::from_millis(a.read_block_ms),
                count: a.read_count,
                op_timeout: Duration::from_millis(config.store.redis_timeout_ms),
                role,
            };
            let consumers = match &config.server.sold_cars {
                SoldCars::Here => vec![consumer(stream.key.clone(), Role::HandOff)],
                SoldCars::ToInbox { market, inbox } => vec![consumer(
                    stream.key.clone(),
                    Role::Forward {
                        market: market.clone(),
                        inbox: inbox.clone(),
                    },
                )],
                SoldCars::HereAndFromInbox { inbox, .. } => vec![
                    consumer(stream.key.clone(), Role::HandOff),
                    consumer(inbox.clone(), Role::Collect),
                ],
            };
            let (engine, lots, shutdown) = (engine.clone(), lots.clone(), shutdown_rx.clone());
            tokio::spawn(async move {
                let runs = consumers
                    .into_iter()
                    .map(|c| RedisHandoff::run(c, engine.clone(), lots.clone(), shutdown.clone()));
                futures_util::future::join_all(runs).await;
            })
        }
        (None, Some(feed)) => tokio::spawn(feed.run(engine.clone(), shutdown_rx.clone())),
        (None, None) => tokio::spawn(async {}),
    };
    let engine_metrics = engine.metrics().clone();
    let gateway_metrics = sessions.clone();
    let api_metrics = Arc::new(ApiMetrics::default());
    let rendered_api_metrics = api_metrics.clone();
    let audit = AuditState {
        source: Arc::new(config.audit_source()),
        // The window is set per request; the thresholds are the configuration's.
        shill: config.shill_params(None, 0),
        window_ms: config.audit.shill_window_s.saturating_mul(1000),
        gate: Arc::new(Semaphore::new(1)),
    };
    let api = Arc::new(ApiState {
        engine: engine.clone(),
        directory: directory.clone(),
        lots: lots.clone(),
        alliance: board.clone(),
        accounts: accounts.clone(),
        market_data,
        bounds_min_duration_s: config.auction.min_duration_s,
        bounds_max_duration_s: config.auction.max_duration_s,
        bounds_preview_s: crate::api::routes::PreviewBounds {
            min: config.auction.min_preview_s,
            max: config.auction.max_preview_s,
            default: config.auction.default_preview_s,
        },
        audit,
        api_metrics,
        accounts_from_cluster: config.server.cluster_market,
        market: config.server.sold_cars.market().map(str::to_owned),
        metrics: Arc::new(move |out: &mut String| {
            crate::api::routes::render_metrics(&rendered_api_metrics, out);
            crate::gateway::render_metrics(&gateway_metrics, out);
            crate::engine::render_metrics(&engine_metrics, out);
        }),
    });
    let app = crate::api::routes::router()
        .merge(crate::api::alliance::router())
        .merge(crate::api::credit::router())
        .merge(crate::api::transfers::router())
        .merge(crate::api::market::router())
        .merge(crate::api::audit::router())
        .merge(crate::gateway::upgrade::router())
        .merge(crate::console::router(config.server.demo))
        .with_state(AppState { api, sessions });
    tracing::info!(%addr, journal = %describe, "gavel listening");
    let slots = Arc::new(Semaphore::new(config.gateway.max_connections));
    let accept = tokio::spawn(accept_loop(listener, app, slots.clone(), shutdown_rx));
    let (done_tx, engine_done) = watch::channel(false);
    let engine_task = tokio::spawn(async move {
        let result = engine_task
            .await
            .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("engine task failed: {e}"))));
        if let Err(e) = &result {
            tracing::error!(error = %e, "engine stopped");
        }
        let _ = done_tx.send(true);
        result
    });
    Ok(Running {
        addr,
        engine,
        hub,
        lots,
        alliance: board,
        directory,
        accounts,
        shutdown,
        accept,
        handoff,
        engine_task,
        engine_done,
        slots,
        max_connections: config.gateway.max_connections,
        deadline: Duration::from_secs(config.gateway.shutdown_deadline_s),
    })
}

impl Running {
    /// Graceful shutdown: stop accepting, close every session with 1001, let queued
    /// commands become durable, wait for the engine to flush and close the journal (files
    /// closed, lock or lease released), and wait for the sessions to have sent their close
    /// frames — all within the configured deadline.
    ///
    /// When this returns, nothing is left that a process exit could cut short, except
    /// sessions whose clients did not take their close frame before the deadline. The
    /// result is `Ok` once the journal has everything, whatever such clients do.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout_at(deadline, self.accept).await;
        // The hand-off stops at the signal; what it had not acknowledged stays pending
        // (Redis) or is found again in the book at the next start (file journal).
        if tokio::time::timeout_at(deadline, &mut self.handoff)
            .await
            .is_err()
        {
            self.handoff.abort();
        }
        self.engine.close();
        drop(self.engine);
        // The engine task ends only after its writer has closed the journal.
        let flushed = match tokio::time::timeout_at(deadline, self.engine_task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(_)) => Err(ServeError::ShutdownTimeout),
            Err(_) => Err(ServeError::ShutdownTimeout),
        };
        // The sessions have been closing since the signal, in their own tasks; every
        // slot free again means every one of them has ended.
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout_at(deadline, self.slots.acquire_many(all)).await;
        flushed
    }

    /// Whether the engine has stopped (by itself: a fatal journal error, or fenced).
    pub fn has_stopped(&self) -> bool {
        *self.engine_done.borrow()
    }

    /// Turns true when the engine has stopped.
    pub fn done(&self) -> watch::Receiver<bool> {
        self.engine_done.clone()
    }

    /// Resolves when the engine has stopped by itself, which only a fatal journal error
    /// causes (another engine took the journal over, or it is corrupt): the server must
    /// then exit rather than keep accepting bids it cannot make durable.
    pub async fn engine_stopped(&self) {
        let mut done = self.engine_done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut backoff = Duration::from_millis(5);
    loop {
        // The permit comes before accept, so the limit holds even under a connect flood.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(5);
                    stream
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, ?backoff, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new(permit));
        // HTTP is served over the socket, and a WebSocket session writes into it as well.
        let (conn, shared) = socket::accept(stream);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(slot.clone());
                req.extensions_mut().insert(shared.clone());
                app.clone().oneshot(req)
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    // HTTP requests in progress finish; upgraded sessions close themselves on shutdown.
    graceful.shutdown().await;
}
