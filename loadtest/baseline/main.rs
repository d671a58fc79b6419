//! `gavel-baseline`: the design most teams ship for live bidding, as a yardstick.
//!
//! A plain WebSocket service (same protocol subset as gavel: `subscribe`, `bid`,
//! `bid_result`, `update`) where every bid is one `EVALSHA` of a Lua compare-and-set
//! against Redis: HMGET the auction, check status, end time and minimum, HSET price and
//! leader, HINCRBY the count, XADD to a bid log. The server's clock is passed in ARGV (Lua
//! must not read the time for the script to replicate deterministically). Durability is
//! whatever the Redis it is pointed at does (the comparison script runs it with the same
//! AOF setting as gavel's journal): Redis answers a write only after its AOF policy is
//! satisfied, so an accepted `bid_result` is as durable as that policy.
//!
//! Deliberately plain: no proxy bids, reserve or soft close (a `max` is ignored), one
//! multiplexed Redis connection shared by all sockets, a task per bid, an update to every
//! subscriber of the auction on each accepted bid. No auth: any `token` is a dealer.

use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use gavel_loadtest::serving::{decode, encode, ws_config, Update};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(
    name = "gavel-baseline",
    about = "One EVALSHA per bid: the usual design"
)]
struct Cli {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
    /// Redis URL (run it with the AOF setting under comparison).
    #[arg(long, default_value = "redis://127.0.0.1:6390/")]
    redis: String,
    /// Auctions to seed, ids A1..AN.
    #[arg(long, default_value_t = 200)]
    auctions: usize,
    /// Start price of each, fen.
    #[arg(long, default_value_t = 5_000_000)]
    start_price: u64,
    /// How long each runs, s.
    #[arg(long, default_value_t = 3600)]
    duration_s: u64,
}

/// The compare-and-set. KEYS[1] the auction hash, KEYS[2] the bid log stream.
/// ARGV: now_ms, dealer, amount, bid_id. Increments: the contract's default tiers, in fen.
const SCRIPT: &str = r#"
local a = redis.call('HMGET', KEYS[1], 'status', 'ends_at', 'price', 'start', 'count')
if not a[1] then return {0, 'unknown_auction'} end
local now = tonumber(ARGV[1])
if a[1] ~= 'live' or now > tonumber(a[2]) then return {0, 'not_live'} end
local price = tonumber(a[3])
local amount = tonumber(ARGV[3])
local min_next
if price == 0 then
  min_next = tonumber(a[4])
else
  local inc
  if price < 1000000 then inc = 10000
  elseif price < 5000000 then inc = 20000
  elseif price < 10000000 then inc = 50000
  elseif price < 30000000 then inc = 100000
  elseif price < 100000000 then inc = 200000
  else inc = 500000 end
  min_next = price + inc
end
if amount < min_next then return {0, 'below_minimum', min_next} end
redis.call('HSET', KEYS[1], 'price', ARGV[3], 'leader', ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('XADD', KEYS[2], '*', 'auction', KEYS[1], 'dealer', ARGV[2], 'amount', ARGV[3], 'bid_id', ARGV[4], 'at', ARGV[1])
return {1, amount, n, tonumber(a[2])}
"#;

const LOG: &str = "baseline:bids";

fn key(auction: &str) -> String {
    format!("baseline:auction:{auction}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn increment(p: u64) -> u64 {
    match p {
        p if p < 1_000_000 => 10_000,
        p if p < 5_000_000 => 20_000,
        p if p < 10_000_000 => 50_000,
        p if p < 30_000_000 => 100_000,
        p if p < 100_000_000 => 200_000,
        _ => 500_000,
    }
}

/// Messages the server sends, encoded per connection.
#[derive(Serialize, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out {
    BidResult {
        bid_id: String,
        auction: Arc<str>,
        accepted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        price: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        leading: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ends_at: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_next: Option<u64>,
    },
    Update(Update<Arc<str>>),
    Snapshot {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<serde_json::Value>,
        auction: Snap,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<serde_json::Value>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        req: Option<serde_json::Value>,
        code: &'static str,
        message: &'static str,
    },
}

#[derive(Serialize, Clone)]
struct Snap {
    id: Arc<str>,
    status: String,
    price: Option<u64>,
    min_next: u64,
    bids: u64,
    ends_at: u64,
}

/// One auction's watchers: connection id → its outbound queue.
type Watchers = HashMap<u64, mpsc::Sender<Out>>;

/// Who watches which auction.
#[derive(Default)]
struct Hub {
    subs: Mutex<HashMap<Arc<str>, Watchers>>,
}

impl Hub {
    fn subscribe(&self, auction: &Arc<str>, conn: u64, tx: &mpsc::Sender<Out>) {
        let mut s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(auction.clone())
            .or_default()
            .insert(conn, tx.clone());
    }

    fn unsubscribe_all(&self, conn: u64) {
        let mut s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        for m in s.values_mut() {
            m.remove(&conn);
        }
    }

    fn publish(&self, auction: &Arc<str>, leader: u64, u: Out) {
        let targets: Vec<(u64, mpsc::Sender<Out>)> = {
            let s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
            match s.get(auction) {
                Some(m) => m.iter().map(|(k, v)| (*k, v.clone())).collect(),
                None => return,
            }
        };
        for (id, tx) in targets {
            let mut m = u.clone();
            if let Out::Update(u) = &mut m {
                u.leading = id == leader;
            }
            // A full queue drops the update: the next one supersedes it.
            let _ = tx.try_send(m);
        }
    }
}

struct Ctx {
    redis: MultiplexedConnection,
    script: redis::Script,
    hub: Hub,
    next_conn: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = redis::Client::open(cli.redis.as_str())?;
        let mut redis = client.get_multiplexed_async_connection().await?;
        let script = redis::Script::new(SCRIPT);
        let ends = now_ms() + cli.duration_s * 1000;
        let _: () = redis::cmd("DEL").arg(LOG).query_async(&mut redis).await?;
        for i in 1..=cli.auctions {
            let _: () = redis::cmd("HSET")
                .arg(key(&format!("A{i}")))
                .arg("status")
                .arg("live")
                .arg("ends_at")
                .arg(ends)
                .arg("price")
                .arg(0)
                .arg("start")
                .arg(cli.start_price)
                .arg("count")
                .arg(0)
                .arg("leader")
                .arg("")
                .query_async(&mut redis)
                .await?;
        }
        let _: String = script.prepare_invoke().load_async(&mut redis).await?;
        let ctx = Arc::new(Ctx {
            redis,
            script,
            hub: Hub::default(),
            next_conn: AtomicU64::new(1),
        });
        let listener = TcpListener::bind(&cli.listen).await?;
        println!(
            "gavel-baseline listening on {} ({} auctions seeded in {})",
            listener.local_addr()?,
            cli.auctions,
            cli.redis
        );
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(serve(sock, ctx.clone()));
        }
    })
}

async fn serve(sock: TcpStream, ctx: Arc<Ctx>) {
    let _ = sock.set_nodelay(true);
    let mut msgpack = false;
    let mut token = String::new();
    // tungstenite's callback signature fixes the (large) error type.
    #[allow(clippy::result_large_err)]
    let cb = |req: &Request, resp: Response| {
        let q = req.uri().query().unwrap_or("");
        msgpack = q.contains("format=msgpack");
        token = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("anonymous")
            .to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(sock, cb, Some(ws_config())).await
    else {
        return;
    };
    let dealer: Arc<str> = token.into();
    let conn = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Out>(1024);
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(encode(&first, msgpack)).await.is_err() {
                return;
            }
            while let Some(Some(m)) = rx.recv().now_or_never() {
                if sink.feed(encode(&m, msgpack)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(m)) = stream.next().await {
        let Some(parsed) = decode(&m) else {
            if matches!(m, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Ok(i) = parsed else {
            let _ = tx
                .send(Out::Error {
                    req: None,
                    code: "bad_message",
                    message: "does not decode",
                })
                .await;
            continue;
        };
        let auction: Arc<str> = i.auction.as_deref().unwrap_or("").into();
        match &*i.kind {
            "bid" => {
                ctx.hub.subscribe(&auction, conn, &tx);
                let (ctx, tx, dealer) = (ctx.clone(), tx.clone(), dealer.clone());
                let bid_id = i.bid_id.as_deref().unwrap_or("").to_owned();
                let amount = i.amount.unwrap_or(0);
                tokio::spawn(async move {
                    let r = place(&ctx, &auction, &dealer, amount, &bid_id, conn).await;
                    let _ = tx.send(r).await;
                });
            }
            "subscribe" => {
                ctx.hub.subscribe(&auction, conn, &tx);
                let snap = snapshot(&ctx, &auction).await;
                let _ = tx
                    .send(Out::Snapshot {
                        req: i.req,
                        auction: snap,
                    })
                    .await;
            }
            "ping" => {
                let _ = tx.send(Out::Pong { req: i.req }).await;
            }
            _ => {
                let _ = tx
                    .send(Out::Error {
                        req: i.req,
                        code: "unknown_type",
                        message: "unknown message type",
                    })
                    .await;
            }
        }
    }
    ctx.hub.unsubscribe_all(conn);
    drop(tx);
    let _ = writer.await;
}

async fn snapshot(ctx: &Ctx, auction: &Arc<str>) -> Snap {
    let mut r = ctx.redis.clone();
    let v: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(key(auction))
        .arg(&["status", "price", "start", "count", "ends_at"])
        .query_async(&mut r)
        .await
        .unwrap_or_default();
    let num = |i: usize| {
        v.get(i)
            .and_then(|x| x.as_deref())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let price = num(1);
    Snap {
        id: auction.clone(),
        status: v
            .first()
            .cloned()
            .flatten()
            .unwrap_or_else(|| "unknown".into()),
        price: (price > 0).then_some(price),
        min_next: if price == 0 {
            num(2)
        } else {
            price + increment(price)
        },
        bids: num(3),
        ends_at: num(4),
    }
}

async fn place(
    ctx: &Ctx,
    auction: &Arc<str>,
    dealer: &str,
    amount: u64,
    bid_id: &str,
    conn: u64,
) -> Out {
    let mut r = ctx.redis.clone();
    let res: redis::RedisResult<redis::Value> = ctx
        .script
        .key(key(auction))
        .key(LOG)
        .arg(now_ms())
        .arg(dealer)
        .arg(amount)
        .arg(bid_id)
        .invoke_async(&mut r)
        .await;
    let refuse = |reason: &str, min_next: Option<u64>| Out::BidResult {
        bid_id: bid_id.to_owned(),
        auction: auction.clone(),
        accepted: false,
        price: None,
        leading: None,
        ends_at: None,
        seq: None,
        reason: Some(reason.to_owned()),
        min_next,
    };
    let items = match res {
        Ok(redis::Value::Array(items)) => items,
        _ => return refuse("unavailable", None),
    };
    let int = |i: usize| match items.get(i) {
        Some(redis::Value::Int(n)) => Some(*n as u64),
        _ => None,
    };
    if int(0) == Some(1) {
        let (price, n, ends) = (
            int(1).unwrap_or(0),
            int(2).unwrap_or(0),
            int(3).unwrap_or(0),
        );
        ctx.hub.publish(
            auction,
            conn,
            Out::Update(Update {
                auction: auction.clone(),
                seq: n,
                status: "live",
                price,
                min_next: price + increment(price),
                bids: n,
                reserve_met: false,
                leading: false,
                ends_at: ends,
            }),
        );
        Out::BidResult {
            bid_id: bid_id.to_owned(),
            auction: auction.clone(),
            accepted: true,
            price: Some(price),
            leading: Some(true),
            ends_at: Some(ends),
            seq: Some(n),
            reason: None,
            min_next: None,
        }
    } else {
        let reason = match items.get(1) {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => "invalid".into(),
        };
        refuse(&reason, int(2))
    }
}
