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
//!
//! With `--fanout` it also keeps what gavel and the baseline owe every bid beyond its
//! answer: a dealer who bids or subscribes watches that auction, and each bid sends an
//! `update` to every watcher (the bidder's goes out with its `bid_result`, in one write;
//! the others' through their own queue, dropped when full like the baseline's). Still no
//! auction logic: the floor of a server with the protocol's obligations.

use bytes::Bytes;
use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use gavel_loadtest::serving::{decode, encode, ws_config, In, Update};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Also send each bid's `update` to every connection watching its auction.
    #[arg(long)]
    fanout: bool,
}

/// The stream the durable mode appends to.
const LOG: &str = "gavel-echo:log";
/// Bids waiting for the appender, at most (a full queue holds the connections back).
const QUEUE: usize = 65_536;
/// Bids per `XADD`, at most.
const BATCH: usize = 1_024;

/// Frames queued for one watcher by other connections' bids, at most.
const WATCHER_QUEUE: usize = 1_024;
/// Auctions watched at once, at most: clients name them, so an unknown name past this
/// many is answered but not watched.
const MAX_AUCTIONS: usize = 100_000;

/// A bid on its way into the stream: its bytes, and who to tell once it is there.
type Durable = (Bytes, oneshot::Sender<bool>);

/// One watcher: whether it speaks MessagePack, and its queue.
type Watcher = (bool, mpsc::Sender<Message>);

/// Who watches which auction (`--fanout`): auction → connection id → watcher.
#[derive(Default)]
struct Watchers(Mutex<HashMap<Box<str>, HashMap<u64, Watcher>>>);

impl Watchers {
    fn watch(&self, auction: &str, conn: u64, watcher: &Watcher) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = w.len() < MAX_AUCTIONS;
        match w.get_mut(auction) {
            Some(m) => {
                m.entry(conn).or_insert_with(|| watcher.clone());
            }
            None if room => {
                w.insert(auction.into(), HashMap::from([(conn, watcher.clone())]));
            }
            None => {}
        }
    }

    /// Forgets a connection, and every auction nobody watches any more.
    fn leave(&self, conn: u64) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.retain(|_, m| {
            m.remove(&conn);
            !m.is_empty()
        });
    }

    /// Queues `update` for every watcher of `auction` but `except`, encoded once per
    /// format; a full queue drops it (a later update supersedes it), as the baseline does.
    fn publish<T: Serialize>(&self, auction: &str, except: u64, update: &T) {
        let mut frames: [Option<Message>; 2] = [None, None];
        let w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (conn, (msgpack, tx)) in w.get(auction).into_iter().flatten() {
            if *conn != except {
                let frame =
                    frames[usize::from(*msgpack)].get_or_insert_with(|| encode(update, *msgpack));
                let _ = tx.try_send(frame.clone());
            }
        }
    }
}

/// What every connection shares.
struct Shared {
    seq: AtomicU64,
    journal: Option<mpsc::Sender<Durable>>,
    /// `Some` with `--fanout`.
    watchers: Option<Watchers>,
    next_conn: AtomicU64,
}

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
    Update(Update<&'a str>),
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
        if cli.fanout {
            println!("fan-out: each bid's update goes to every watcher of its auction");
        }
        let shared = Arc::new(Shared {
            seq: AtomicU64::new(0),
            journal,
            watchers: cli.fanout.then(Watchers::default),
            next_conn: AtomicU64::new(1),
        });
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(serve(sock, shared.clone()));
        }
    })
}

async fn serve(sock: TcpStream, shared: Arc<Shared>) {
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
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    // Other connections' updates for this one (`--fanout` only).
    let (tx, mut rx) = mpsc::channel::<Message>(WATCHER_QUEUE);
    serve_frames(&mut ws, &shared, conn, &tx, &mut rx, msgpack).await;
    if let Some(w) = &shared.watchers {
        w.leave(conn);
    }
}

/// The connection's loop: answers what it reads and, with `--fanout`, writes what other
/// connections' bids queued for it. Returns when the client leaves or a write fails.
async fn serve_frames(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    shared: &Shared,
    conn: u64,
    tx: &mpsc::Sender<Message>,
    rx: &mut mpsc::Receiver<Message>,
    msgpack: bool,
) {
    let me: Watcher = (msgpack, tx.clone());
    loop {
        let first = tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m)) => m,
                _ => return,
            },
            Some(pushed) = rx.recv(), if shared.watchers.is_some() => {
                let mut pushed = Some(pushed);
                while let Some(m) = pushed {
                    if ws.feed(m).await.is_err() {
                        return;
                    }
                    pushed = rx.try_recv().ok();
                }
                if ws.flush().await.is_err() {
                    return;
                }
                continue;
            }
        };
        let mut batch = vec![first];
        // Answer everything already read, then flush once.
        while let Some(Some(Ok(m))) = ws.next().now_or_never() {
            batch.push(m);
        }
        // Durable mode: the batch's bids go into the stream before any of it is answered.
        let decoded: Vec<_> = batch.iter().map(decode).collect();
        if let Some(journal) = &shared.journal {
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
            let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
            if let (Some(w), Some(Ok(i))) = (&shared.watchers, &d) {
                if let (Some(auction), "bid" | "subscribe") = (&i.auction, &*i.kind) {
                    w.watch(auction, conn, &me);
                }
                if let (Some(auction), "bid") = (&i.auction, &*i.kind) {
                    let update = |leading| {
                        Out::Update(Update {
                            auction,
                            seq,
                            status: "live",
                            price: i.amount.unwrap_or(0),
                            min_next: i.amount.unwrap_or(0),
                            bids: seq,
                            reserve_met: false,
                            leading,
                            ends_at: 0,
                        })
                    };
                    w.publish(auction, conn, &update(false));
                    if ws.feed(encode(&update(true), msgpack)).await.is_err() {
                        return;
                    }
                }
            }
            if let Some(reply) = answer(d, msgpack, seq) {
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

fn answer(decoded: Option<Result<In<'_>, ()>>, msgpack: bool, seq: u64) -> Option<Message> {
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
                    seq,
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
