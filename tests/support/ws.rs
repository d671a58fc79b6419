//! A WebSocket test client speaking the v1 protocol in either encoding.
//!
//! Every message it receives is decoded twice: into a generic JSON value, to check the
//! contract's field names and shapes (present-but-null, absent), and into gavel's own
//! `ServerMessage`, to read it conveniently. Everything received is kept in `log`, so a
//! test can check afterwards that no message ever carried what it must not.

use futures_util::{SinkExt, StreamExt};
use gavel::gateway::{BidRequest, BidResult, ClientMessage, Format, Req, Request, ServerMessage};
use gavel::views::AuctionRef;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Default wait for a message a test expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// One message from the server.
#[derive(Clone, Debug)]
pub struct Received {
    /// As a generic value (MessagePack maps become JSON objects).
    pub value: Value,
    /// As gavel's own type.
    pub msg: ServerMessage,
    /// When it was read.
    pub at: Instant,
    /// Whether it came in a text frame.
    pub text: bool,
}

/// A connected client.
pub struct Ws {
    /// The connection's encoding.
    pub format: Format,
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Read but not yet taken by an `expect`.
    backlog: VecDeque<Received>,
    /// Every message received, in order.
    pub log: Vec<Received>,
    /// The server's close frame, once it came (`Some(None)`: closed without a frame).
    pub closed: Option<Option<CloseFrame>>,
    next_req: u64,
}

/// The upgrade URL.
pub fn url(addr: SocketAddr, token: Option<&str>, format: Format) -> String {
    let mut u = format!("ws://{addr}/v1/ws?format={}", format.as_str());
    if let Some(t) = token {
        u.push_str("&token=");
        u.push_str(t);
    }
    u
}

impl Ws {
    /// Connects with `?token=`; panics if the upgrade fails.
    pub async fn connect(addr: SocketAddr, token: &str, format: Format) -> Self {
        Self::try_connect(&url(addr, Some(token), format), format)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade failed: {e}"))
    }

    /// Connects to `url` (or returns the handshake error: a refused upgrade is
    /// `tungstenite::Error::Http` with the response).
    pub async fn try_connect(url: &str, format: Format) -> Result<Self, tungstenite::Error> {
        let (stream, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self::from_stream(stream, format))
    }

    /// Wraps an upgraded stream (for clients that set up their own socket).
    pub fn from_stream(stream: WebSocketStream<MaybeTlsStream<TcpStream>>, format: Format) -> Self {
        Self {
            format,
            stream,
            backlog: VecDeque::new(),
            log: Vec::new(),
            closed: None,
            next_req: 1,
        }
    }

    /// A fresh integer `req`.
    pub fn req(&mut self) -> Req {
        self.next_req += 1;
        Req::UInt(self.next_req)
    }

    /// Encodes and sends a client message.
    pub async fn send(&mut self, msg: &ClientMessage) {
        let frame = match self.format {
            Format::Json => Message::text(serde_json::to_string(msg).expect("encode JSON")),
            Format::MsgPack => {
                Message::binary(rmp_serde::to_vec_named(msg).expect("encode MessagePack"))
            }
        };
        self.send_raw(frame).await;
    }

    /// Sends a frame as is; panics if the socket refuses it.
    pub async fn send_raw(&mut self, frame: Message) {
        self.stream.send(frame).await.expect("send a frame");
    }

    /// Sends a frame, reporting failure (for tests where the server may have closed).
    pub async fn try_send_raw(&mut self, frame: Message) -> Result<(), tungstenite::Error> {
        self.stream.send(frame).await
    }

    /// Sends a value encoded in this connection's format (any shape: for bad-input tests).
    pub async fn send_value(&mut self, v: &Value) {
        let frame = match self.format {
            Format::Json => Message::text(v.to_string()),
            Format::MsgPack => Message::binary(rmp_serde::to_vec_named(v).expect("encode")),
        };
        self.send_raw(frame).await;
    }

    /// `subscribe`; returns the direct reply (`snapshot` or `error`).
    pub async fn subscribe(&mut self, auction: &str) -> Received {
        let req = self.req();
        self.send(&ClientMessage {
            req: Some(req.clone()),
            request: Request::Subscribe {
                auction: AuctionRef::new(auction),
            },
        })
        .await;
        self.expect("the reply to subscribe", WAIT, |m| match m {
            ServerMessage::Snapshot(s) => s.req.as_ref() == Some(&req),
            ServerMessage::Error(e) => e.req.as_ref() == Some(&req),
            _ => false,
        })
        .await
    }

    /// Sends a `bid` without waiting for its result.
    pub async fn send_bid(&mut self, auction: &str, amount: u64, max: Option<u64>, bid_id: &str) {
        let req = self.req();
        self.send(&ClientMessage {
            req: Some(req),
            request: Request::Bid(BidRequest {
                auction: AuctionRef::new(auction),
                amount,
                max,
                bid_id: bid_id.into(),
            }),
        })
        .await;
    }

    /// `bid`; waits for its `bid_result` and checks that `req`, `bid_id` and `auction`
    /// are echoed.
    pub async fn bid(
        &mut self,
        auction: &str,
        amount: u64,
        max: Option<u64>,
        bid_id: &str,
    ) -> BidResult {
        let req = self.req();
        self.send(&ClientMessage {
            req: Some(req.clone()),
            request: Request::Bid(BidRequest {
                auction: AuctionRef::new(auction),
                amount,
                max,
                bid_id: bid_id.into(),
            }),
        })
        .await;
        let r = self
            .expect(
                &format!("bid_result for {bid_id}"),
                WAIT,
                |m| matches!(m, ServerMessage::BidResult(r) if r.req.as_ref() == Some(&req)),
            )
            .await;
        let ServerMessage::BidResult(result) = r.msg else {
            unreachable!()
        };
        assert_eq!(&*result.bid_id, bid_id, "bid_result echoes bid_id");
        assert_eq!(
            result.auction.as_str(),
            auction,
            "bid_result echoes auction"
        );
        check_bid_result_shape(&r.value);
        result
    }

    /// `ping` with a fresh `req`; waits for its `pong`. Proves the connection still works.
    pub async fn ping(&mut self) {
        let req = self.req();
        self.send(&ClientMessage {
            req: Some(req.clone()),
            request: Request::Ping,
        })
        .await;
        self.expect(
            "pong",
            WAIT,
            |m| matches!(m, ServerMessage::Pong(p) if p.req.as_ref() == Some(&req)),
        )
        .await;
    }

    /// The next message (backlog first), or `None` on timeout or close.
    pub async fn recv(&mut self, within: Duration) -> Option<Received> {
        if let Some(r) = self.backlog.pop_front() {
            return Some(r);
        }
        self.read(within).await
    }

    /// Reads one data message from the socket into the log (not the backlog).
    async fn read(&mut self, within: Duration) -> Option<Received> {
        if self.closed.is_some() {
            return None;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            let (bytes, text) = match next {
                None => {
                    self.closed = Some(None);
                    return None;
                }
                Some(Err(_)) => {
                    self.closed.get_or_insert(None);
                    return None;
                }
                Some(Ok(Message::Text(t))) => (t.into(), true),
                Some(Ok(Message::Binary(b))) => (b, false),
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame);
                    return None;
                }
                Some(Ok(_)) => continue, // ping / pong / raw frame
            };
            let r = self.decode(&bytes, text);
            self.log.push(r.clone());
            return Some(r);
        }
    }

    fn decode(&self, bytes: &[u8], text: bool) -> Received {
        let expect_text = self.format == Format::Json;
        assert_eq!(
            text,
            expect_text,
            "a {} connection got a {} frame",
            self.format.as_str(),
            if text { "text" } else { "binary" }
        );
        let (value, msg) = match self.format {
            Format::Json => (
                serde_json::from_slice::<Value>(bytes).expect("server JSON is a value"),
                serde_json::from_slice::<ServerMessage>(bytes)
                    .unwrap_or_else(|e| panic!("not a server message ({e}): {bytes:?}")),
            ),
            Format::MsgPack => (
                rmp_serde::from_slice::<Value>(bytes).expect("server MessagePack is a value"),
                rmp_serde::from_slice::<ServerMessage>(bytes)
                    .unwrap_or_else(|e| panic!("not a server message ({e}): {bytes:?}")),
            ),
        };
        Received {
            value,
            msg,
            at: Instant::now(),
            text,
        }
    }

    /// Takes the first message (backlog first, then the socket) that `pred` accepts;
    /// others stay in the backlog in order. Panics, showing what did come, if none does
    /// within `within`.
    pub async fn expect(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> Received {
        match self.try_expect(within, pred).await {
            Some(r) => r,
            None => panic!(
                "expected {what} within {within:?}; closed: {:?}; unclaimed messages: {:#?}",
                self.closed,
                self.backlog.iter().map(|r| &r.value).collect::<Vec<_>>()
            ),
        }
    }

    /// Like [`Ws::expect`], but `None` instead of a panic.
    pub async fn try_expect(
        &mut self,
        within: Duration,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> Option<Received> {
        if let Some(i) = self.backlog.iter().position(|r| pred(&r.msg)) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.read(left).await?;
            if pred(&r.msg) {
                return Some(r);
            }
            self.backlog.push_back(r);
        }
    }

    /// Reads everything that arrives within `within` into the backlog; returns how many.
    pub async fn gather(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Some(r) => {
                    self.backlog.push_back(r);
                    n += 1;
                }
                None => return n,
            }
        }
    }

    /// Messages read but not yet taken.
    pub fn backlog(&self) -> impl Iterator<Item = &Received> {
        self.backlog.iter()
    }

    /// Drops the unclaimed messages (they stay in the log).
    pub fn clear_backlog(&mut self) {
        self.backlog.clear();
    }

    /// Reads until the server's close frame; returns its code (`None`: the socket ended
    /// without one). Data messages that come first go to the backlog.
    pub async fn expect_close(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no close frame within {within:?}; unclaimed: {:#?}",
                self.backlog.iter().map(|r| &r.value).collect::<Vec<_>>()
            );
            if let Some(r) = self.read(left).await {
                self.backlog.push_back(r);
            }
        }
        self.closed
            .as_ref()
            .and_then(|f| f.as_ref())
            .map(|f| u16::from(f.code))
    }

    /// Closes the connection from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// `bid_result` carries exactly the fields its outcome calls for.
pub fn check_bid_result_shape(v: &Value) {
    let accepted = v["accepted"].as_bool().expect("accepted is a bool");
    for f in ["bid_id", "auction"] {
        assert!(v[f].is_string(), "bid_result.{f}: {v}");
    }
    if accepted {
        for f in ["price", "ends_at", "seq"] {
            assert!(v[f].is_u64(), "accepted bid_result.{f} is an integer: {v}");
        }
        assert!(v["leading"].is_boolean(), "bid_result.leading: {v}");
        assert!(
            v.get("reason").is_none(),
            "accepted bid_result has no reason: {v}"
        );
    } else {
        assert!(v["reason"].is_string(), "refused bid_result.reason: {v}");
        for f in ["price", "leading", "ends_at", "seq"] {
            assert!(v.get(f).is_none(), "refused bid_result has no {f}: {v}");
        }
        let below = v["reason"] == "below_minimum";
        assert_eq!(
            v.get("min_next").is_some(),
            below,
            "min_next comes with below_minimum only: {v}"
        );
    }
}

/// Every string anywhere in `v`, keys included.
pub fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// Whether `text` contains `id` as a whole token (`D1` is not in `D12` or `AD1`).
pub fn contains_id(text: &str, id: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(id).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + id.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// The first message in `log` that names a dealer id from `others`, and the id.
pub fn find_dealer_id<'a>(
    log: &'a [Received],
    others: &[String],
) -> Option<(&'a Received, String)> {
    log.iter().find_map(|r| {
        let mut all = Vec::new();
        strings(&r.value, &mut all);
        all.iter()
            .find_map(|s| others.iter().find(|id| contains_id(s, id)))
            .map(|id| (r, id.clone()))
    })
}

/// Panics if any message in `log` names a dealer id from `others`.
pub fn assert_no_dealer_ids(log: &[Received], others: &[String], whose: &str) {
    if let Some((r, id)) = find_dealer_id(log, others) {
        panic!("{whose} received another dealer's id {id}: {}", r.value);
    }
}

/// Upgrades a bare TCP connection by hand and returns it: a client that never answers
/// pings, which no WebSocket library can be (they answer while they read). Panics unless
/// the server switches protocols.
pub async fn raw_upgrade(addr: SocketAddr, token: &str) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /v1/ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .await
        .expect("upgrade request");
    // Read the response head byte by byte, so no frame after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.expect("upgrade response");
        assert_eq!(n, 1, "connection ended inside the upgrade response");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    s
}

/// Reads server frames from a hand-made connection until the socket ends; returns the
/// code of the close frame among them (`None`: it ended without one).
pub async fn raw_close_code(s: &mut TcpStream, within: Duration) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut data)).await;
    close_frame(&data).map(|(code, _)| code)
}

/// The code and reason of the first close frame among the server's (unmasked) frames in
/// `data`, if there is a whole one.
pub fn close_frame(data: &[u8]) -> Option<(u16, String)> {
    let mut at = 0;
    while at + 2 <= data.len() {
        let opcode = data[at] & 0x0f;
        let (len, header) = match data[at + 1] & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?])),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(
                    data.get(at + 2..at + 10)?.try_into().expect("8 bytes"),
                ))
                .expect("length"),
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = data.get(at + header..at + header + len)?;
        if opcode == 0x8 {
            let code = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
        at += header + len;
    }
    None
}
