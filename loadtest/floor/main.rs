//! `gavel-fanout-floor`: what a hot lot's fan-out costs this machine with no server in it.
//!
//! `serve` accepts N TCP connections, then, every `--interval-ms`, writes one WebSocket
//! text frame of `--frame-bytes` (the size of gavel's `update`) to each of them in turn
//! with a plain blocking `write`: no runtime, no task per connection, no queues, no
//! encoding, the same frame bytes for everyone. `client` opens the N connections, reads
//! them on one thread (tokio, one task each, raw bytes, no WebSocket or JSON parsing) and
//! reports, per round, the time from the server's first write to the last connection's
//! receipt: the floor under `hot-lot`'s "ack → last update" for the same N on these cores.
//!
//!   taskset -c 0 gavel-fanout-floor serve --listen 127.0.0.1:9300 --connections 10000 &
//!   taskset -c 1 gavel-fanout-floor client --connect 127.0.0.1:9300 --connections 10000
//!
//! Both ends read CLOCK_MONOTONIC, which one machine shares between processes. Each side
//! needs `ulimit -n` above N.

use clap::{Parser, Subcommand};
use gavel_loadtest::stats::{cpu_seconds, new_hist, record, Latency};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Parser)]
#[command(
    name = "gavel-fanout-floor",
    about = "The bare cost of writing one frame to each of N loopback connections"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accept the connections, then write the rounds.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9300")]
        listen: String,
        /// Connections to wait for before the first round.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Rounds (one frame to every connection each).
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// Time between the starts of two rounds, ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Payload bytes of each frame (gavel's JSON `update` is ~160).
        #[arg(long, default_value_t = 160)]
        frame_bytes: usize,
    },
    /// Open the connections and time each round's last receipt.
    Client {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:9300")]
        connect: String,
        /// Connections to open (the server's --connections).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The server's --rounds.
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// The server's --frame-bytes.
        #[arg(long, default_value_t = 160)]
        frame_bytes: usize,
    },
}

/// Nanoseconds of CLOCK_MONOTONIC: comparable between processes on one machine.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The header of an unmasked server-to-client text frame with `len` payload bytes.
fn frame_header(len: usize) -> Vec<u8> {
    match len {
        0..=125 => vec![0x81, len as u8],
        126..=65535 => vec![0x81, 126, (len >> 8) as u8, len as u8],
        _ => {
            let mut h = vec![0x81, 127];
            h.extend_from_slice(&(len as u64).to_be_bytes());
            h
        }
    }
}

/// One round's frame: the round and its start time in the first 16 payload bytes, then
/// padding to `payload` bytes.
fn frame(round: u64, start_ns: u64, payload: usize) -> Vec<u8> {
    let payload = payload.max(16);
    let mut f = frame_header(payload);
    f.extend_from_slice(&round.to_le_bytes());
    f.extend_from_slice(&start_ns.to_le_bytes());
    f.resize(f.len() + payload - 16, b' ');
    f
}

fn serve(
    listen: &str,
    connections: usize,
    rounds: u64,
    interval_ms: u64,
    payload: usize,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)?;
    println!("listening on {}", listener.local_addr()?);
    let mut socks: Vec<TcpStream> = Vec::with_capacity(connections);
    while socks.len() < connections {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        socks.push(s);
    }
    let interval = Duration::from_millis(interval_ms.max(1));
    let cpu0 = cpu_seconds();
    let mut next = std::time::Instant::now();
    for round in 0..rounds {
        let start = mono_ns();
        let f = frame(round, start, payload);
        for s in &mut socks {
            s.write_all(&f)?;
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let frames = rounds * connections as u64;
    println!(
        "serve: {rounds} rounds × {connections} frames of {payload} bytes; CPU {cpu:.2} s, \
         {:.2} µs per frame",
        cpu * 1e6 / frames.max(1) as f64
    );
    Ok(())
}

/// Per round: the latest receipt and how many connections have it.
struct Rounds {
    start: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
    got: Vec<AtomicU64>,
}

async fn client(
    connect: &str,
    connections: usize,
    rounds: u64,
    payload: usize,
) -> anyhow::Result<()> {
    let rounds_n = rounds as usize;
    let r = Arc::new(Rounds {
        start: (0..rounds_n).map(|_| AtomicU64::new(0)).collect(),
        last: (0..rounds_n).map(|_| AtomicU64::new(0)).collect(),
        got: (0..rounds_n).map(|_| AtomicU64::new(0)).collect(),
    });
    let payload = payload.max(16);
    let head = frame_header(payload).len();
    let len = head + payload;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = tokio::net::TcpStream::connect(connect).await?;
        s.set_nodelay(true)?;
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = s;
            let mut buf = vec![0u8; len];
            while s.read_exact(&mut buf).await.is_ok() {
                let now = mono_ns();
                let word = |at: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[at..at + 8]);
                    u64::from_le_bytes(b)
                };
                let (round, start) = (word(head) as usize, word(head + 8));
                if round < r.last.len() {
                    r.start[round].store(start, Ordering::Relaxed);
                    r.last[round].fetch_max(now, Ordering::Relaxed);
                    r.got[round].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    println!("client: {connections} connections open");
    let cpu0 = cpu_seconds();
    for t in tasks {
        let _ = t.await;
    }
    let mut sweep = new_hist();
    let mut incomplete = 0;
    for i in 0..rounds_n {
        if r.got[i].load(Ordering::Relaxed) as usize == connections {
            let d = r.last[i]
                .load(Ordering::Relaxed)
                .saturating_sub(r.start[i].load(Ordering::Relaxed));
            record(&mut sweep, d / 1000);
        } else {
            incomplete += 1;
        }
    }
    let l = Latency::of(&sweep);
    println!(
        "first write → last receipt, per round: {}; {incomplete} rounds incomplete",
        l.line()
    );
    let cpu = cpu_seconds() - cpu0;
    println!(
        "client: CPU {cpu:.2} s after connecting, {:.2} µs per frame",
        cpu * 1e6 / (rounds * connections as u64).max(1) as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Serve {
            listen,
            connections,
            rounds,
            interval_ms,
            frame_bytes,
        } => serve(&listen, connections, rounds, interval_ms, frame_bytes),
        Cmd::Client {
            connect,
            connections,
            rounds,
            frame_bytes,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(client(&connect, connections, rounds, frame_bytes)),
    }
}
