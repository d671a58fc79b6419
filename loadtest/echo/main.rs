//! `gavel-echo`: a bare tokio-tungstenite server that answers every `bid` with an accepted
//! `bid_result` and does no other work. It measures the ceiling of the WebSocket layer on
//! this machine for the same client and protocol: no auth, no state, no durability.
//!
//! Same protocol subset as the baseline: `subscribe` (a minimal `snapshot`), `bid`
//! (`bid_result`), `ping` (`pong`). JSON or MessagePack per `?format=`, like gavel.
//!
//! With `--redis URL` it is the floor of a *durable* acknowledgement instead: each bid is
//! answered only after its bytes are in a Redis stream, appended in group commits (one
//! `XADD` per batch of whatever bids are waiting, one round trip in flight), still with
//! no other work. What a durable ack costs this machine before any auction logic.

use bytes::Bytes;
use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use gavel_loadtest::serving::{decode, encode, ws_config, In};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
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
    /// Answer each bid only once it is appended to a stream in this Redis.
    #[arg(long)]
    redis: Option<String>,
}

/// The stream the durable mode appends to.
const LOG: &str = "gavel-echo:log";
/// Bids waiting for the appender, at most (a full queue holds the connections back).
const QUEUE: usize = 65_536;
/// Bids per `XADD`, at most.
const BATCH: usize = 1_024;

/// A bid on its way into the stream: its bytes, and who to tell once it is there.
type Durable = (Bytes, oneshot::Sender<bool>);

/// Appends waiting bids to the stream, one `XADD` per batch, and answers each sender
/// with whether its batch went in.
async fn appender(mut redis: MultiplexedConnection, mut rx: mpsc::Receiver<Durable>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(LOG).arg("*");
        for (i, (bytes, _)) in batch.iter().enumerate() {
            cmd.arg(i).arg(bytes.as_ref());
        }
        let ok = cmd.query_async::<String>(&mut redis).await.is_ok();
        for (_, done) in batch.drain(..) {
            let _ = done.send(ok);
        }
    }
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
        let journal = match &cli.redis {
            Some(url) => {
                let mut redis = redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?;
                let _: () = redis::cmd("DEL").arg(LOG).query_async(&mut redis).await?;
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(appender(redis, rx));
                println!("durable: each bid answered after its XADD to {LOG}");
                Some(tx)
            }
            None => None,
        };
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(serve(sock, seq.clone(), journal.clone()));
        }
    })
}

async fn serve(sock: TcpStream, seq: Arc<AtomicU64>, journal: Option<mpsc::Sender<Durable>>) {
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
        // Durable mode: the batch's bids go into the stream before any of it is answered.
        let decoded: Vec<_> = batch.iter().map(decode).collect();
        if let Some(journal) = &journal {
            let mut pending = Vec::new();
            let bids = batch
                .iter()
                .zip(&decoded)
                .filter(|(_, d)| matches!(d, Some(Ok(i)) if &*i.kind == "bid"));
            for (m, _) in bids {
                let (done, wait) = oneshot::channel();
                if journal.send((m.clone().into_data(), done)).await.is_err() {
                    return;
                }
                pending.push(wait);
            }
            for wait in pending {
                if !matches!(wait.await, Ok(true)) {
                    return;
                }
            }
        }
        for d in decoded {
            if let Some(reply) = answer(d, msgpack, &seq) {
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

fn answer(decoded: Option<Result<In<'_>, ()>>, msgpack: bool, seq: &AtomicU64) -> Option<Message> {
    match decoded? {
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
