//! `gavel-echo`: a bare tokio-tungstenite server that answers every `bid` with an accepted
//! `bid_result` and does no other work. It measures the ceiling of the WebSocket layer on
//! this machine for the same client and protocol: no auth, no state, no durability.
//!
//! Same protocol subset as the baseline: `subscribe` (a minimal `snapshot`), `bid`
//! (`bid_result`), `ping` (`pong`). JSON or MessagePack per `?format=`, like gavel.

use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use gavel_loadtest::serving::{decode, encode, ws_config};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(
    name = "gavel-echo",
    about = "Answers every bid at once; the WebSocket ceiling"
)]
struct Cli {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    BidResult {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<&'a serde_json::Value>,
        bid_id: &'a str,
        auction: &'a str,
        accepted: bool,
        price: u64,
        leading: bool,
        ends_at: u64,
        seq: u64,
    },
    Snapshot {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<&'a serde_json::Value>,
        auction: Snap<'a>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<&'a serde_json::Value>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<&'a serde_json::Value>,
        code: &'a str,
        message: &'a str,
    },
}

#[derive(Serialize)]
struct Snap<'a> {
    id: &'a str,
    status: &'a str,
    price: Option<u64>,
    min_next: u64,
    bids: u64,
    ends_at: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&cli.listen).await?;
        println!("gavel-echo listening on {}", listener.local_addr()?);
        let seq = Arc::new(AtomicU64::new(0));
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(serve(sock, seq.clone()));
        }
    })
}

async fn serve(sock: TcpStream, seq: Arc<AtomicU64>) {
    let _ = sock.set_nodelay(true);
    let mut msgpack = false;
    // tungstenite's callback signature fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let cb = |req: &Request, resp: Response| {
        msgpack = req
            .uri()
            .query()
            .is_some_and(|q| q.contains("format=msgpack"));
        Ok(resp)
    };
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(sock, cb, Some(ws_config())).await
    else {
        return;
    };
    loop {
        let Some(Ok(first)) = ws.next().await else {
            return;
        };
        let mut batch = vec![first];
        // Answer everything already read, then flush once.
        while let Some(Some(Ok(m))) = ws.next().now_or_never() {
            batch.push(m);
        }
        for m in batch {
            if let Some(reply) = answer(&m, msgpack, &seq) {
                if ws.feed(reply).await.is_err() {
                    return;
                }
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

fn answer(m: &Message, msgpack: bool, seq: &AtomicU64) -> Option<Message> {
    let parsed = decode(m)?;
    match parsed {
        Ok(i) => {
            let req = i.req;
            let auction = i.auction.unwrap_or_default();
            let bid_id = i.bid_id.unwrap_or_default();
            let out = match &*i.kind {
                "bid" => Out::BidResult {
                    req: req.as_ref(),
                    bid_id: &bid_id,
                    auction: &auction,
                    accepted: true,
                    price: i.amount.unwrap_or(0),
                    leading: true,
                    ends_at: 0,
                    seq: seq.fetch_add(1, Ordering::Relaxed) + 1,
                },
                "subscribe" => Out::Snapshot {
                    req: req.as_ref(),
                    auction: Snap {
                        id: &auction,
                        status: "live",
                        price: None,
                        min_next: 0,
                        bids: 0,
                        ends_at: 0,
                    },
                },
                "ping" => Out::Pong { req: req.as_ref() },
                _ => Out::Error {
                    req: req.as_ref(),
                    code: "unknown_type",
                    message: "unknown message type",
                },
            };
            Some(encode(&out, msgpack))
        }
        Err(()) => Some(encode(
            &Out::Error {
                req: None,
                code: "bad_message",
                message: "does not decode",
            },
            msgpack,
        )),
    }
}
