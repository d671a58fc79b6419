//! One dealer's WebSocket that bids one bid at a time and waits for its answer: the
//! instrument of the failover prober ([`crate::probe`]) and of the cross-node latency
//! measure ([`crate::crossnode`]), where what counts is when one bid's answer arrives, not
//! a rate.
//!
//! A reader task drains the socket (updates and outbids included, so the server never
//! finds this client slow) and passes on what a bidder needs: bid results, errors, and the
//! socket's end.

use crate::conn::ws_config;
use crate::proto::{ClientMsg, Format, Frame, Kind, ServerMsg};
use anyhow::Context;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a bid came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted at this price.
    Accepted {
        /// The auction's price after it.
        price: u64,
    },
    /// Refused for this reason (`below_minimum` carries the minimum).
    Refused {
        /// The contract's reason.
        reason: String,
        /// The minimum next bid, when told.
        min_next: Option<u64>,
    },
    /// An `error` frame with this code.
    Error(String),
    /// The socket closed or failed before an answer.
    Closed,
    /// No answer within the wait.
    Timeout,
}

impl Outcome {
    /// A short word for logs: `accepted`, `refused:<reason>`, `error:<code>`, `closed`,
    /// `timeout`.
    pub fn word(&self) -> String {
        match self {
            Self::Accepted { .. } => "accepted".into(),
            Self::Refused { reason, .. } => format!("refused:{reason}"),
            Self::Error(c) => format!("error:{c}"),
            Self::Closed => "closed".into(),
            Self::Timeout => "timeout".into(),
        }
    }
}

/// An open bidder connection.
pub struct Bidder {
    sink: SplitSink<Ws, Message>,
    answers: mpsc::Receiver<Outcome>,
    next_id: u64,
    tag: String,
}

impl Bidder {
    /// Connects to `ws_url` (`ws://host:port/v1/ws`) as the dealer of `token`, within
    /// `wait`. `tag` makes its bid ids unique across connections of one run.
    pub async fn connect(
        ws_url: &str,
        token: &str,
        tag: &str,
        wait: Duration,
    ) -> anyhow::Result<Self> {
        let url = format!("{ws_url}?token={token}&format={}", Format::Json.query());
        let (ws, _) = tokio::time::timeout(
            wait,
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true),
        )
        .await
        .context("connect timed out")?
        .with_context(|| format!("connecting to {ws_url}"))?;
        let (sink, mut stream) = ws.split();
        // Bounded: one bid is in flight at a time, so at most a few answers wait here.
        let (tx, answers) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let m = match msg {
                    Ok(Message::Text(t)) => ServerMsg::from_json(&t),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                let Ok(m) = m else { continue };
                let out = match m.kind {
                    Kind::BidResult if m.accepted == Some(true) => Outcome::Accepted {
                        price: m.price.unwrap_or(0),
                    },
                    Kind::BidResult => Outcome::Refused {
                        reason: m.reason.unwrap_or_default(),
                        min_next: m.min_next,
                    },
                    Kind::Error => Outcome::Error(m.code.unwrap_or_default()),
                    _ => continue,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Outcome::Closed).await;
        });
        Ok(Self {
            sink,
            answers,
            next_id: 0,
            tag: tag.to_owned(),
        })
    }

    /// Sends one bid on `auction` and waits up to `wait` for its answer.
    pub async fn bid(&mut self, auction: &str, amount: u64, wait: Duration) -> Outcome {
        // Answers to earlier bids that timed out are stale now.
        while let Ok(o) = self.answers.try_recv() {
            if o == Outcome::Closed {
                return Outcome::Closed;
            }
        }
        self.next_id += 1;
        let bid_id = format!("{}-{}", self.tag, self.next_id);
        let frame = ClientMsg::Bid {
            auction,
            amount,
            max: None,
            bid_id: &bid_id,
        }
        .encode(Format::Json);
        let Frame::Text(t) = frame else {
            return Outcome::Error("encoding".into());
        };
        if self.sink.send(Message::Text(t.into())).await.is_err() {
            return Outcome::Closed;
        }
        match tokio::time::timeout(wait, self.answers.recv()).await {
            Ok(Some(o)) => o,
            Ok(None) => Outcome::Closed,
            Err(_) => Outcome::Timeout,
        }
    }

    /// Closes the socket (best effort, bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(200), self.sink.close()).await;
    }
}

/// The next amount to bid after `o`, given the amount just bid (`None`: unchanged).
pub fn next_amount(o: &Outcome) -> Option<u64> {
    match o {
        Outcome::Accepted { price } => Some(price + crate::model::increment(*price)),
        Outcome::Refused {
            min_next: Some(m), ..
        } => Some(*m),
        _ => None,
    }
}
