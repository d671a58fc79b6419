//! `GET /v1/ws`: the upgrade to a WebSocket session.
//!
//! Checks what must hold before a session starts — a real upgrade request, a known token,
//! a known encoding, the dealer's connection cap — answers `101`, and runs the session on
//! the upgraded connection in its own task. Must not: read a frame (the session does).

use super::codec::Format;
use super::session::{self, SessionCtx};
use super::socket::{self, Socket};
use crate::directory::{self, Principal};
use axum::extract::{FromRef, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// A connection's slot under the server's connection limit, put into each request's
/// extensions by the accept loop: the session holds it until it ends, so an upgraded
/// connection keeps counting.
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<OwnedSemaphorePermit>);

/// The WebSocket route, for any application state the session context comes from.
pub fn router<S>() -> Router<S>
where
    Arc<SessionCtx>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/v1/ws", get(ws_upgrade))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    format: Option<String>,
}

async fn ws_upgrade(
    State(ctx): State<Arc<SessionCtx>>,
    Extension(slot): Extension<ConnectionSlot>,
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
    let offered = Subprotocols::of(req.headers());
    let token = q
        .token
        .as_deref()
        .or_else(|| directory::bearer(req.headers()))
        .or(offered.bearer);
    let Some(principal) = token.and_then(|t| ctx.directory.authenticate(t)) else {
        // Refused before the engine: counted and logged (never the token), not journaled.
        ctx.metrics.unauthorized.inc();
        tracing::debug!("websocket upgrade refused: no or unknown token");
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
        // A disabled span still costs an enter and exit per poll on every session:
        // instrument only when it records.
        if span.is_disabled() {
            session.await;
        } else {
            session.instrument(span).await;
        }
    });
    let mut response = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade".to_string()),
            (header::UPGRADE, "websocket".to_string()),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response();
    if offered.gavel_v1 {
        // A browser fails a connection whose offered subprotocols get no answer.
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header::HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    response
}

/// The subprotocol gavel answers with when a client offers it.
pub const SUBPROTOCOL: &str = "gavel.v1";

/// The prefix of the subprotocol that carries a browser's token.
pub const BEARER_PREFIX: &str = "bearer.";

/// What a client offered in `Sec-WebSocket-Protocol`.
///
/// A browser cannot set `Authorization` on a WebSocket, and a token must never be in a
/// URL (it would reach logs and history), so the console offers `bearer.<token>` beside
/// `gavel.v1`, and the server answers `gavel.v1` alone: the token is never echoed. The
/// header's value is never logged.
#[derive(Debug, Default)]
struct Subprotocols<'a> {
    gavel_v1: bool,
    bearer: Option<&'a str>,
}

impl<'a> Subprotocols<'a> {
    fn of(headers: &'a axum::http::HeaderMap) -> Self {
        let mut out = Self::default();
        for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
            let Ok(value) = value.to_str() else { continue };
            for p in value.split(',').map(str::trim) {
                if p == SUBPROTOCOL {
                    out.gavel_v1 = true;
                } else if let Some(t) = p.strip_prefix(BEARER_PREFIX) {
                    out.bearer.get_or_insert(t);
                }
            }
        }
        out
    }
}
