//! A connection's socket, shared by the HTTP server, the session's reader and its writer.
//!
//! gavel writes its own WebSocket frames. A server's frames are not masked, so a frame is
//! a 2-to-10-byte header in front of the encoded message: written as one `writev` of the
//! header and the message's shared bytes, an update encoded once goes to every subscriber
//! without a copy, and the hub can write it into the socket itself at the end of the
//! engine's pass ([`super::outbound::Outbound::flush`]), with no writer task woken per
//! subscriber. tungstenite still does all the reading (masks, fragments, UTF-8, size
//! limits, control frames); the little it writes while reading (the pong to a client's
//! ping) comes to [`SessionIo`] and is queued behind what is already there, so frames
//! never interleave.

use super::codec::Frame;
use super::outbound::{Kind, Outbound, Wire};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Frames written by one system call at most. A flush holds one to a few frames; a
/// writer catching up loops. Kept small because the slices' arrays are set up on every
/// write, so their size is paid by every write, however few frames it carries.
const FRAMES_PER_WRITE: usize = 16;

/// A connection's write side, shared: after a WebSocket upgrade, frames are written into
/// it from the session's writer task and from the hub (writes take `&self`, and the
/// session's queue orders them).
#[derive(Clone, Debug)]
pub struct Socket(Arc<OwnedWriteHalf>);

/// An accepted connection as HTTP is served over it: its read side, and the shared write
/// side. After an upgrade, the session reads on through hyper's `Upgraded`.
#[derive(Debug)]
pub struct Conn {
    read: OwnedReadHalf,
    write: Socket,
}

/// Splits an accepted connection into what hyper serves and the write side a WebSocket
/// session will share.
pub fn accept(stream: TcpStream) -> (Conn, Socket) {
    let (read, write) = stream.into_split();
    let write = Socket(Arc::new(write));
    let conn = Conn {
        read,
        write: write.clone(),
    };
    (conn, write)
}

impl Socket {
    fn stream(&self) -> &TcpStream {
        (*self.0).as_ref()
    }

    /// Writes what the socket takes now of `frames` in one call, the first from byte
    /// `skip` of its wire form (header and payload), without waiting.
    pub fn try_write(
        &self,
        frames: &mut dyn Iterator<Item = &Frame>,
        mut skip: usize,
    ) -> io::Result<usize> {
        let mut heads = [Header::default(); FRAMES_PER_WRITE];
        let mut bodies: [&[u8]; FRAMES_PER_WRITE] = [&[]; FRAMES_PER_WRITE];
        let mut n = 0;
        for (f, (head, body)) in frames.zip(heads.iter_mut().zip(bodies.iter_mut())) {
            *head = Header::of(f);
            *body = f.as_bytes();
            n += 1;
        }
        let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE];
        let mut k = 0;
        for (head, body) in heads[..n].iter().zip(&bodies[..n]) {
            for part in [head.as_slice(), body] {
                if skip >= part.len() {
                    skip -= part.len();
                } else {
                    slices[k] = IoSlice::new(&part[skip..]);
                    skip = 0;
                    k += 1;
                }
            }
        }
        if k == 0 {
            return Ok(0);
        }
        self.stream().try_write_vectored(&slices[..k])
    }

    /// Writes `frames` whole, the first from byte `skip`, waiting for the socket to take
    /// them.
    pub async fn write_all(&self, frames: &[Frame], mut skip: usize) -> io::Result<()> {
        let mut i = 0;
        while i < frames.len() {
            self.stream().writable().await?;
            let n = match self.try_write(&mut frames[i..].iter(), skip) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            skip += n;
            while let Some(f) = frames.get(i).filter(|f| skip >= wire_len(f)) {
                skip -= wire_len(f);
                i += 1;
            }
        }
        Ok(())
    }

    /// Ends our side of the connection (a FIN after what was written), so a client reads
    /// the close frame before the connection ends.
    pub fn shutdown_write(&self) {
        let _ = socket2::SockRef::from(self.stream()).shutdown(std::net::Shutdown::Write);
    }
}

impl Wire<Frame> for Socket {
    fn write_now(&self, frames: &mut dyn Iterator<Item = &Frame>, skip: usize) -> usize {
        // A full socket and a failed one both write nothing now: the session's writer
        // waits for the first and ends the session on the second.
        self.try_write(frames, skip).unwrap_or(0)
    }

    fn wire_len(&self, frame: &Frame) -> usize {
        wire_len(frame)
    }
}

/// A frame's length on the wire.
pub fn wire_len(frame: &Frame) -> usize {
    Header::of(frame).len as usize + frame.len()
}

/// A server frame's header: FIN, the opcode and the payload's length (unmasked).
#[derive(Clone, Copy, Default)]
struct Header {
    bytes: [u8; 10],
    len: u8,
}

impl Header {
    fn of(frame: &Frame) -> Self {
        match frame {
            Frame::Text(t) => Self::new(0x1, t.len()),
            Frame::Binary(b) => Self::new(0x2, b.len()),
            Frame::Raw(_) => Self::default(),
        }
    }

    /// RFC 6455 §5.2: a 7-bit length, or 126 and 16 bits, or 127 and 64 bits.
    fn new(opcode: u8, len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let len = if len < 126 {
            bytes[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        Self { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// A control frame, header included: servers send ping and close.
fn control(opcode: u8, payload: &[u8]) -> Frame {
    // Control payloads are at most 125 bytes (RFC 6455 §5.5); a longer close reason is cut.
    let payload = &payload[..payload.len().min(125)];
    let head = Header::new(opcode, payload.len());
    let mut bytes = Vec::with_capacity(head.len as usize + payload.len());
    bytes.extend_from_slice(head.as_slice());
    bytes.extend_from_slice(payload);
    Frame::Raw(bytes.into())
}

/// A ping with no payload.
pub fn ping() -> Frame {
    control(0x9, &[])
}

/// A close frame with its status code and reason.
pub fn close(code: u16, reason: &str) -> Frame {
    let mut payload = code.to_be_bytes().to_vec();
    // Cut at a character boundary: the reason must stay UTF-8.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control(0x8, &payload)
}

/// HTTP is served over the connection; after an upgrade, hyper hands its `Upgraded`
/// (which reads through here) to the session.
impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = self.write.stream();
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.shutdown_write();
        Poll::Ready(Ok(()))
    }
}

/// What tungstenite reads from and writes to in a session: it reads the connection, and
/// what it writes (whole frames: a pong, a close reply) is queued as a reply in the
/// session's outbound queue, behind the frames already there.
pub struct SessionIo<R> {
    /// The upgraded connection (it first returns any bytes read past the HTTP request).
    pub read: R,
    /// The session's queue.
    pub out: Arc<Outbound<Frame>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for SessionIo<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for SessionIo<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tungstenite writes its buffer of whole frames in one call, so taking all of it
        // keeps frames whole. It writes only in answer to a client's frame (at most one
        // pong per ping), and the session stops reading while its queue is full.
        let frame = Frame::Raw(bytes::Bytes::copy_from_slice(buf));
        self.out.push(Kind::Reply, frame, Instant::now());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The session's writer ends the connection, after its close frame.
        Poll::Ready(Ok(()))
    }
}

/// Checks a WebSocket upgrade request (RFC 6455 §4.2.1) and returns the
/// `Sec-WebSocket-Accept` value for its 101 answer, or the refusal.
pub fn handshake(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<String, (StatusCode, &'static str)> {
    if method != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade is a GET\n",
        ));
    }
    if version != Version::HTTP_11 {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket upgrade needs HTTP/1.1\n",
        ));
    }
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return Err((
            StatusCode::BAD_REQUEST,
            "Connection header did not include 'upgrade'\n",
        ));
    }
    if !value(header::UPGRADE).is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket")) {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Upgrade` header did not include 'websocket'\n",
        ));
    }
    if value(header::SEC_WEBSOCKET_VERSION).map(str::trim) != Some("13") {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'\n",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Key` header missing\n",
        ));
    };
    Ok(derive_accept_key(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    /// A connected pair: our write side of the server end, and a tungstenite client.
    async fn pair() -> (Conn, Socket, WebSocketStream<TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (conn, socket) = accept(server.expect("accept").0);
        let client = WebSocketStream::from_raw_socket(
            client.expect("connect"),
            Role::Client,
            Some(
                tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .max_message_size(None)
                    .max_frame_size(None),
            ),
        )
        .await;
        (conn, socket, client)
    }

    fn text(len: usize) -> Frame {
        let s: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        Frame::Text(s.into())
    }

    #[tokio::test]
    async fn a_client_reads_our_frames_at_every_length_boundary() {
        let (_conn, socket, mut client) = pair().await;
        // Each side of the 7-bit, 16-bit and 64-bit length forms.
        let lens = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
        let mut frames: Vec<Frame> = lens.iter().map(|&n| text(n)).collect();
        frames.push(Frame::Binary(vec![7u8; 300].into()));
        frames.push(ping());
        frames.push(close(1008, "too many bad frames"));
        let writer = socket.clone();
        let sent = frames.clone();
        let write = tokio::spawn(async move { writer.write_all(&sent, 0).await });
        for f in &frames[..lens.len()] {
            let Some(Ok(Message::Text(got))) = client.next().await else {
                panic!("no text frame for {} bytes", f.len());
            };
            assert_eq!(got.as_bytes(), f.as_bytes());
        }
        match client.next().await {
            Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[7u8; 300][..]),
            other => panic!("expected the binary frame, got {other:?}"),
        }
        assert!(matches!(client.next().await, Some(Ok(Message::Ping(p))) if p.is_empty()));
        match client.next().await {
            Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                assert_eq!(u16::from(code), 1008);
                assert_eq!(reason.as_str(), "too many bad frames");
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
        write.await.expect("join").expect("written");
    }

    #[tokio::test]
    async fn a_write_resumed_mid_frame_sends_only_the_rest() {
        let (_conn, socket, mut client) = pair().await;
        let frames = [text(200), text(3)];
        // As after a flush the socket took 150 bytes of: the header (4) and 146 bytes
        // of the first frame went before, by hand here.
        let head = Header::of(&frames[0]);
        let mut before = head.as_slice().to_vec();
        before.extend_from_slice(&frames[0].as_bytes()[..146]);
        let done = socket
            .try_write(&mut std::iter::once(&Frame::Raw(before.into())), 0)
            .expect("write");
        assert_eq!(done, 150);
        socket.write_all(&frames, 150).await.expect("rest");
        for f in &frames {
            let Some(Ok(Message::Text(got))) = client.next().await else {
                panic!("frame of {} bytes not read whole", f.len());
            };
            assert_eq!(got.as_bytes(), f.as_bytes());
        }
    }

    #[test]
    fn wire_lengths_count_the_header() {
        for (frame, len) in [
            (text(0), 2),
            (text(125), 127),
            (text(126), 130),
            (text(65_535), 65_539),
            (text(65_536), 65_546),
            (ping(), 2),
        ] {
            assert_eq!(wire_len(&frame), len, "{} payload bytes", frame.len());
        }
    }

    #[test]
    fn a_close_reason_is_cut_to_a_control_frame_at_a_character_boundary() {
        // 2 bytes of code + 123 of reason is the most a control frame holds; "é" is two
        // bytes, so 62 of them (124 bytes) must be cut to 61.
        let reason = "é".repeat(62);
        let Frame::Raw(bytes) = close(1000, &reason) else {
            panic!("a close is a raw frame");
        };
        assert_eq!(bytes[..2], [0x88, 124]);
        assert_eq!(&bytes[2..4], &1000u16.to_be_bytes());
        assert!(std::str::from_utf8(&bytes[4..]).is_ok());
        assert_eq!(bytes.len() - 4, 122);
    }

    #[test]
    fn the_handshake_checks_each_header_and_derives_the_accept_key() {
        let good: &[(&str, &str)] = &[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let headers = |without: &str, replace: Option<(&str, &str)>| {
            let mut h = HeaderMap::new();
            for &(k, v) in good {
                let v = match replace {
                    Some((rk, rv)) if rk == k => rv,
                    _ => v,
                };
                if k != without {
                    h.insert(
                        header::HeaderName::from_static(k),
                        HeaderValue::from_str(v).expect("value"),
                    );
                }
            }
            h
        };
        // RFC 6455 §1.3's example.
        assert_eq!(
            handshake(&Method::GET, Version::HTTP_11, &headers("", None)),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string())
        );
        let refused = |method: Method, version, h: HeaderMap| {
            handshake(&method, version, &h)
                .err()
                .map(|(status, _)| status)
        };
        use StatusCode as S;
        let cases = [
            (
                Method::POST,
                Version::HTTP_11,
                headers("", None),
                S::METHOD_NOT_ALLOWED,
            ),
            (
                Method::GET,
                Version::HTTP_10,
                headers("", None),
                S::UPGRADE_REQUIRED,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("connection", None),
                S::BAD_REQUEST,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("", Some(("connection", "keep-alive"))),
                S::BAD_REQUEST,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("upgrade", None),
                S::BAD_REQUEST,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("", Some(("upgrade", "h2c"))),
                S::BAD_REQUEST,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("", Some(("sec-websocket-version", "8"))),
                S::BAD_REQUEST,
            ),
            (
                Method::GET,
                Version::HTTP_11,
                headers("sec-websocket-key", None),
                S::BAD_REQUEST,
            ),
        ];
        for (i, (method, version, h, status)) in cases.into_iter().enumerate() {
            assert_eq!(refused(method, version, h), Some(status), "case {i}");
        }
    }

    #[tokio::test]
    async fn what_tungstenite_writes_is_queued_behind_the_queue() {
        use tokio::io::AsyncWriteExt;
        let out = Outbound::new(8, std::time::Duration::from_secs(5));
        out.push(
            Kind::Update(crate::vocab::LotId(1)),
            text(10),
            Instant::now(),
        );
        let mut io = SessionIo {
            read: tokio::io::empty(),
            out: out.clone(),
        };
        let pong = [0x8a, 0x01, b'x'];
        io.write_all(&pong).await.expect("accepted whole");
        let mut got = Vec::new();
        out.take(&mut got).await;
        assert_eq!(got, vec![text(10), Frame::Raw(pong[..].to_vec().into())]);
    }
}
