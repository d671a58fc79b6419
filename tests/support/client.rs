//! A small HTTP/1.1 client and a WebSocket dealer client for tests against a real server.
//! Speaks only the public protocol (docs/protocol.md).

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// One request, `Connection: close`; returns the status and the JSON body (`Null` if
/// the body is empty or not JSON).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a full response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let rest = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Decodes a chunked body (on bytes: a chunk may end inside a UTF-8 character).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let data = &s[eol + 2..];
        if n == 0 || n > data.len() {
            break;
        }
        out.extend_from_slice(&data[..n]);
        s = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

/// A dealer's WebSocket connection (JSON).
pub struct Dealer {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
}

impl Dealer {
    /// Connects with `token`.
    pub async fn connect(addr: SocketAddr, token: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws?token={token}"))
            .await
            .expect("websocket connects");
        Self { ws }
    }

    /// Places a bid and returns its `bid_result`.
    pub async fn bid(&mut self, auction: &str, amount: u64, bid_id: &str) -> Value {
        let msg = serde_json::json!({
            "type": "bid", "auction": auction, "amount": amount, "bid_id": bid_id
        });
        self.request(msg, bid_id).await
    }

    /// Places a proxy bid (`amount` 0 for a leader's raise) and returns its `bid_result`.
    pub async fn bid_max(&mut self, auction: &str, amount: u64, max: u64, bid_id: &str) -> Value {
        let msg = serde_json::json!({
            "type": "bid", "auction": auction, "amount": amount, "max": max, "bid_id": bid_id
        });
        self.request(msg, bid_id).await
    }

    async fn request(&mut self, msg: Value, bid_id: &str) -> Value {
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a reply in time")
                .expect("connection open")
                .expect("frame");
            if let Message::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == "bid_result" && v["bid_id"] == bid_id {
                    return v;
                }
            }
        }
    }
}
