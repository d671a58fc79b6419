//! A tiny HTTP/1.1 client for the integration tests: one request per connection
//! (`Connection: close`), JSON in and out.
//!
//! Written here instead of adding an HTTP client crate: the tests need a handful of
//! JSON calls to 127.0.0.1, and hyper's client side is not among the features the
//! server builds with, so any client crate would mean compiling a second HTTP stack.

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status and body (JSON when it parses, else the text as a JSON string,
/// `null` when empty).
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// The `Location` header, if any (a redirect's target).
    pub location: Option<String>,
}

/// Sends one request and reads the whole response. Panics on I/O failure or a response
/// that is not HTTP (a test that gets one has found a bug).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    try_request(addr, method, path, token, body, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// As [`request`], but a connection refused, a reset or no whole response `within` is an
/// `Err` instead of a panic: for a test that talks to processes it kills or stops, where
/// a dead peer is an expected answer.
pub async fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    within: Duration,
) -> Result<Response, String> {
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write head: {e}"))?;
        stream
            .write_all(payload.as_bytes())
            .await
            .map_err(|e| format!("write body: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read response: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| format!("no response within {within:?}"))??;
    parse(&raw).map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut chunked = false;
    let mut location = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("location") {
                location = Some(value.trim().to_owned());
            }
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok(Response {
        status,
        body,
        location,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    request(addr, "GET", path, token, None).await
}

/// `POST path` with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Response {
    request(addr, "POST", path, token, Some(body)).await
}
