//! The server: one listener for the HTTP API and the WebSocket endpoint, wired to the
//! engine and the hub, with a connection limit and graceful shutdown.

use crate::api::routes::{self, ApiState};
use crate::api::token::hash_token;
use crate::config::Config;
use crate::engine::{self, EngineHandle};
use crate::gateway::codec::Format;
use crate::gateway::hub::{Hub, HubPublisher, Principal};
use crate::gateway::session::{self, SessionCtx, SessionMetrics};
use crate::gateway::socket::{self, Socket};
use crate::pipeline::{AlliancePublisher, Board, LocalFeed, RedisHandoff, RedisHandoffConfig};
use crate::store::{Journal, StoreError};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
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
    /// Subscriptions and durable views.
    pub hub: Arc<Hub>,
    /// The alliance's durable read view.
    pub alliance: Arc<Board>,
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

/// A connection slot, held by the HTTP connection and, after an upgrade, by its session.
#[derive(Clone)]
struct Slot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Recovers the engine from `journal` and starts serving on `config.server.listen`.
pub async fn start<J: Journal>(config: &Config, journal: J) -> Result<Running, ServeError> {
    let admin =
        (!config.server.admin_token.is_empty()).then(|| hash_token(&config.server.admin_token));
    let hub = Hub::new(admin);
    let describe = journal.describe();
    // Sold outcomes reach the alliance from the journal's outcomes stream when it has one
    // (Redis), else from the engine's durable publication (see `crate::pipeline`).
    let stream = journal.outcome_stream();
    let feed = stream.is_none().then(LocalFeed::new);
    let board = Board::new();
    let publisher = (
        HubPublisher(hub.clone()),
        AlliancePublisher::new(board.clone(), hub.clone(), feed.clone()),
    );
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
    let ctx = Arc::new(SessionCtx {
        hub: hub.clone(),
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
            let consumer = RedisHandoffConfig {
                url: stream.url,
                stream: stream.key,
                group: a.consumer_group.clone(),
                consumer: a.consumer_name.clone(),
                claim_idle: Duration::from_millis(a.claim_idle_ms),
                block: Duration::from_millis(a.read_block_ms),
                count: a.read_count,
                op_timeout: Duration::from_millis(config.store.redis_timeout_ms),
            };
            tokio::spawn(RedisHandoff::run(
                consumer,
                engine.clone(),
                hub.clone(),
                shutdown_rx.clone(),
            ))
        }
        (None, Some(feed)) => tokio::spawn(feed.run(engine.clone(), shutdown_rx.clone())),
        (None, None) => tokio::spawn(async {}),
    };
    let engine_metrics = engine.metrics().clone();
    let state = Arc::new(ApiState {
        ctx: ctx.clone(),
        bounds_min_duration_s: config.auction.min_duration_s,
        bounds_max_duration_s: config.auction.max_duration_s,
        alliance: board.clone(),
        extra_metrics: Arc::new(move |out: &mut String| {
            crate::engine::render_metrics(&engine_metrics, out);
        }),
    });
    let app = routes::router(state.clone())
        .merge(crate::api::alliance::router(state.clone()))
        .merge(
            axum::Router::new()
                .route("/v1/ws", get(ws_upgrade))
                .with_state(state),
        );
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
        alliance: board,
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
        let slot = Slot(Arc::new(permit));
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

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    format: Option<String>,
}

async fn ws_upgrade(
    State(state): State<Arc<ApiState>>,
    Extension(slot): Extension<Slot>,
    Extension(socket): Extension<Socket>,
    Query(q): Query<WsQuery>,
    mut req: axum::extract::Request,
) -> Response {
    // The upgrade itself first, as an upgrade extractor would: a request that is not one
    // is refused before its token is looked at.
    let accept = match socket::handshake(req.method(), req.version(), req.headers()) {
        Ok(accept) => accept,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded\n",
        )
            .into_response();
    };
    let headers = req.headers();
    let ctx = state.ctx.clone();
    let token = q.token.as_deref().or_else(|| routes::bearer(headers));
    let Some(principal) = token.and_then(|t| ctx.hub.authenticate(&hash_token(t.trim()))) else {
        return (StatusCode::UNAUTHORIZED, "a valid token is required\n").into_response();
    };
    let Some(format) = Format::from_query(q.format.as_deref()) else {
        return (StatusCode::BAD_REQUEST, "format must be json or msgpack\n").into_response();
    };
    if let Principal::Dealer(d) = principal {
        if ctx.hub.dealer_connections(d) >= ctx.config.max_connections_per_dealer {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections for this dealer\n",
            )
                .into_response();
        }
    }
    tokio::spawn(async move {
        use tracing::Instrument;
        let _slot = slot; // the connection counts until the session ends
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let span = tracing::info_span!("session", principal = %principal, format = format.as_str());
        let session = session::run(TokioIo::new(upgraded), socket, ctx, principal, format);
        // A disabled span still costs an enter and exit per poll (1.8% of gavel's
        // samples under a steady load, filter `warn`): instrument only when it records.
        if span.is_disabled() {
            session.await;
        } else {
            session.instrument(span).await;
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade".to_string()),
            (header::UPGRADE, "websocket".to_string()),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}
