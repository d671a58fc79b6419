//! A minimal HTTP/1.1 JSON client for the setup calls (sellers, dealers, listings) and the
//! post-run reads (`GET /v1/auctions/{id}`). One keep-alive connection per [`Http`]; the
//! setup code opens a few of them to create thousands of dealers in parallel.
//!
//! hyper's connection API rather than a full client crate: these calls are off the
//! measured path, and hyper is already built for the server.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One keep-alive HTTP/1.1 connection to the server.
pub struct Http {
    authority: String,
    sender: SendRequest<Full<Bytes>>,
}

/// A reply: status and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// Parses the body as JSON when the status is the expected one.
    pub fn json<T: DeserializeOwned>(&self, expect: u16) -> anyhow::Result<T> {
        if self.status != expect {
            bail!(
                "HTTP {} (expected {expect}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        serde_json::from_slice(&self.body).context("decoding the reply body")
    }
}

impl Http {
    /// Connects to `host:port`.
    pub async fn connect(authority: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            authority: authority.to_owned(),
            sender,
        })
    }

    /// Sends one request with an optional JSON body and bearer token.
    pub async fn call<B: Serialize>(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> anyhow::Result<Reply> {
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(bytes))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("reading the body: {e}"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// `GET path` with a token.
    pub async fn get(&mut self, path: &str, token: &str) -> anyhow::Result<Reply> {
        self.call::<()>(Method::GET, path, Some(token), None).await
    }

    /// `POST path` with a JSON body and a token.
    pub async fn post<B: Serialize>(
        &mut self,
        path: &str,
        token: &str,
        body: &B,
    ) -> anyhow::Result<Reply> {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
}
