//! A TCP proxy in front of a real `redis-server` that can lose one reply: the request is
//! forwarded and Redis applies it, but instead of Redis's answer the client gets its
//! connection closed, and for a while after that every new connection is refused. That
//! is what a Redis that dies right after applying a write (and is restarted a moment
//! later) looks like from the client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; dropped, it stops accepting (connections already open stay up).
pub struct ReplyDropper {
    addr: SocketAddr,
    /// The bytes a request must contain for its reply to be dropped (when armed).
    needle: Vec<u8>,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    /// Until when new connections are refused (after a drop).
    down_until: Arc<parking_lot::Mutex<Option<tokio::time::Instant>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for ReplyDropper {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl ReplyDropper {
    /// Listens on a free port and forwards every connection to `upstream`. While armed,
    /// the first request containing `needle` reaches Redis but its reply does not reach
    /// the client, whose connection is closed instead; that disarms the proxy, and new
    /// connections are refused for `down_for` after it.
    pub async fn start(upstream: SocketAddr, needle: &[u8], down_for: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let down_until = Arc::new(parking_lot::Mutex::new(None));
        let needle = needle.to_vec();
        let accept = {
            let (armed, dropped, needle) = (armed.clone(), dropped.clone(), needle.clone());
            let down_until = down_until.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let down = *down_until.lock();
                    if down.is_some_and(|t| tokio::time::Instant::now() < t) {
                        drop(client); // Redis is "down": the connection is refused.
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let cut = Cut {
                        armed: armed.clone(),
                        dropped: dropped.clone(),
                        down_until: down_until.clone(),
                        down_for,
                    };
                    tokio::spawn(relay(client, server, needle.clone(), cut));
                }
            })
        };
        Self {
            addr,
            needle,
            armed,
            dropped,
            down_until,
            accept,
        }
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Drops the reply to the next request that contains the needle.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Replies dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// The bytes it watches for.
    pub fn needle(&self) -> &[u8] {
        &self.needle
    }
}

/// What a relay shares with the proxy to cut a reply.
struct Cut {
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
    down_until: Arc<parking_lot::Mutex<Option<tokio::time::Instant>>>,
    down_for: Duration,
}

/// Relays one connection. Requests and replies alternate on a Redis connection as the
/// client uses them, so after forwarding a request that holds the needle it waits for
/// Redis's reply (the request has then been applied) and closes both sides instead of
/// passing the reply on.
async fn relay(client: TcpStream, server: TcpStream, needle: Vec<u8>, cut: Cut) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let hit = cut.armed.load(Ordering::SeqCst)
                && buf[..n]
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
                && cut.armed.swap(false, Ordering::SeqCst);
            if hit {
                // Before the request goes on, so its reply cannot slip through first.
                let _ = cut_tx.send(true);
                *cut.down_until.lock() = Some(tokio::time::Instant::now() + cut.down_for);
                cut.dropped.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buf[..n]).await.is_err() || hit {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *cut_rx.borrow() {
                // The reply to the request that held the needle: Redis has applied it.
                // The client gets no answer, only a closed connection.
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(upstream, downstream);
}
