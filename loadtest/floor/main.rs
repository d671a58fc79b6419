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
//! Two variants take one layer each off the way to gavel, to tell what costs what:
//! `serve --tasks` writes as a tokio-tungstenite server does (a writer task per
//! connection, woken through a queue and a `Notify` as gavel's hub wakes its sessions,
//! gavel's buffer sizes), and `serve --json` with `client --parse` sends JSON `update`s
//! and reads them as the load generator does (tokio-tungstenite, the harness's decoder).
//!
//!   taskset -c 0 gavel-fanout-floor serve --listen 127.0.0.1:9300 --connections 10000 &
//!   taskset -c 1 gavel-fanout-floor client --connect 127.0.0.1:9300 --connections 10000
//!
//! Both ends read CLOCK_MONOTONIC, which one machine shares between processes. Each side
//! needs `ulimit -n` above N.
//!
//! `write-cost` measures the unit all of this is made of: the writer's CPU for one small
//! frame written to a loopback connection, with the reader on the writer's core or on
//! another, and writes back to back or spaced so that the reader falls asleep between
//! them. On a VM, waking a sleeping reader on another core can cost the writer several
//! times the write itself, and every server in `compare.sh` pays that for each frame
//! that finds the generator asleep.
//!
//!   gavel-fanout-floor write-cost --writer-cpu 0 --other-cpu 1

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use gavel_loadtest::proto::ServerMsg;
use gavel_loadtest::serving::ws_config;
use gavel_loadtest::stats::{cpu_seconds, new_hist, record, thread_system_seconds, Latency};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

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
        /// Write as a tokio-tungstenite server does, not with the plain loop: one writer
        /// task per connection, woken through a queue and a `Notify` (as gavel's hub wakes
        /// its sessions), writing through a split `WebSocketStream` sink. What that
        /// library design costs per frame, with nothing of gavel in it.
        #[arg(long)]
        tasks: bool,
        /// Send each frame as a JSON `update` (text) carrying the round in `seq` and its
        /// start in `price`, padded to --frame-bytes, for `client --parse`.
        #[arg(long)]
        json: bool,
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
        /// Read as the load generator reads an `update` (tokio-tungstenite, then the
        /// harness's own decoder), not as raw bytes: what the measuring client adds to a
        /// hot lot's fan-out time. Needs `serve --json`.
        #[arg(long)]
        parse: bool,
    },
    /// The writer's system time per frame written to one loopback connection, for the
    /// reader on the same core or another, back to back or spaced.
    WriteCost {
        /// Frames written in each case.
        #[arg(long, default_value_t = 100_000)]
        writes: u64,
        /// Payload bytes of each frame.
        #[arg(long, default_value_t = 160)]
        frame_bytes: usize,
        /// The writer's core.
        #[arg(long, default_value_t = 0)]
        writer_cpu: usize,
        /// The reader's core in the cross-core cases.
        #[arg(long, default_value_t = 1)]
        other_cpu: usize,
        /// Time between writes in the spaced cases, µs. Spun, not slept: the writer's
        /// core stays busy, and only the reader has time to fall asleep.
        #[arg(long, default_value_t = 20)]
        space_us: u64,
    },
}

/// Runs the calling thread on `cpu` only.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot run on core {cpu}: no such core"),
        ));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity only read
    // and write the set we pass, and pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot run on core {cpu}: {e}"),
            ));
        }
    }
    Ok(())
}

/// The writer's system µs per frame: `writes` frames of `payload` bytes from a thread on
/// `writer_cpu` to a reader on `reader_cpu`, `space` apart.
fn write_cost(
    writes: u64,
    payload: usize,
    writer_cpu: usize,
    reader_cpu: usize,
    space: Duration,
) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        // Connected first, so that `accept` below returns even if the core is refused.
        let mut conn = TcpStream::connect(addr)?;
        pin_to(reader_cpu)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match std::io::Read::read(&mut conn, &mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let (conn, _) = listener.accept()?;
    conn.set_nodelay(true)?;
    let mut frame = frame_header(payload);
    frame.resize(frame.len() + payload, b'x');
    let frame_len = frame.len() as u64;
    // Its own thread, so that the pinning ends with the case.
    let writer = std::thread::spawn(move || -> std::io::Result<f64> {
        pin_to(writer_cpu)?;
        let mut conn = conn;
        let before = thread_system_seconds();
        for _ in 0..writes {
            conn.write_all(&frame)?;
            let t = std::time::Instant::now();
            while t.elapsed() < space {
                std::hint::spin_loop();
            }
        }
        let system = thread_system_seconds() - before;
        conn.shutdown(std::net::Shutdown::Write)?;
        Ok(system)
    });
    let written = writer.join();
    // The reader's error first: when its core is refused, the writer's is a broken pipe.
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    let system = written.map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    anyhow::ensure!(
        read == writes * frame_len,
        "the reader got {read} bytes of {}",
        writes * frame_len
    );
    Ok(system * 1e6 / writes.max(1) as f64)
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
/// padding to `payload` bytes; or, `json`, an `update` with the round in `seq` and the
/// start in `price`, padded with spaces to `payload` bytes where it is shorter.
fn frame(round: u64, start_ns: u64, payload: usize, json: bool) -> Vec<u8> {
    let body = body(round, start_ns, payload, json);
    let mut f = frame_header(body.len());
    f.extend_from_slice(&body);
    f
}

/// The payload of [`frame`].
fn body(round: u64, start_ns: u64, payload: usize, json: bool) -> Vec<u8> {
    if json {
        let mut b = format!(
            r#"{{"type":"update","auction":"A1","seq":{round},"status":"open","price":{start_ns},"min_next":{start_ns},"bids":{round},"reserve_met":true,"leading":false,"ends_at":1795816785000}}"#
        )
        .into_bytes();
        b.resize(b.len().max(payload), b' ');
        b
    } else {
        let mut b = Vec::with_capacity(payload.max(16));
        b.extend_from_slice(&round.to_le_bytes());
        b.extend_from_slice(&start_ns.to_le_bytes());
        b.resize(payload.max(16), b' ');
        b
    }
}

/// What `serve` sends: `rounds` frames of `payload` bytes (JSON `update`s if `json`) to
/// each of `connections`, a round every `interval_ms`.
struct Plan {
    connections: usize,
    rounds: u64,
    interval_ms: u64,
    payload: usize,
    json: bool,
}

impl Plan {
    /// Prints the server's CPU per frame over the rounds.
    fn report(&self, what: &str, cpu: f64) {
        let (rounds, connections, payload) = (self.rounds, self.connections, self.payload);
        let frames = rounds * connections as u64;
        println!(
            "{what}: {rounds} rounds × {connections} frames of {payload} bytes; CPU {cpu:.2} s, \
             {:.2} µs per frame",
            cpu * 1e6 / frames.max(1) as f64
        );
    }
}

fn serve(listen: &str, plan: &Plan) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)?;
    println!("listening on {}", listener.local_addr()?);
    let mut socks: Vec<TcpStream> = Vec::with_capacity(plan.connections);
    while socks.len() < plan.connections {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        socks.push(s);
    }
    let interval = Duration::from_millis(plan.interval_ms.max(1));
    let cpu0 = cpu_seconds();
    let mut next = std::time::Instant::now();
    for round in 0..plan.rounds {
        let start = mono_ns();
        let f = frame(round, start, plan.payload, plan.json);
        for s in &mut socks {
            s.write_all(&f)?;
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    plan.report("serve", cpu_seconds() - cpu0);
    Ok(())
}

/// One connection's queue in `serve --tasks`: frames waiting, and its writer's wake-up.
#[derive(Default)]
struct Queue {
    frames: parking_lot::Mutex<Vec<Message>>,
    notify: tokio::sync::Notify,
}

/// `serve --tasks`: the rounds of `serve`, written by one tokio-tungstenite writer task
/// per connection. Without `json` the frames are binary (that payload is not UTF-8); the
/// raw client does not look at the opcode, and the header has the same length.
async fn serve_tasks(listen: &str, plan: &Plan) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut queues = Vec::with_capacity(plan.connections);
    while queues.len() < plan.connections {
        let (s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        // gavel's per-connection buffers (as the echo server and the baseline use them).
        let ws = WebSocketStream::from_raw_socket(s, Role::Server, Some(ws_config())).await;
        let (mut sink, _stream) = ws.split();
        let q = Arc::new(Queue::default());
        queues.push(q.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                let notified = q.notify.notified();
                std::mem::swap(&mut batch, &mut *q.frames.lock());
                if batch.is_empty() {
                    notified.await;
                    continue;
                }
                for f in batch.drain(..) {
                    if sink.feed(f).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
    }
    let interval = Duration::from_millis(plan.interval_ms.max(1));
    let cpu0 = cpu_seconds();
    let mut next = tokio::time::Instant::now();
    for round in 0..plan.rounds {
        let start = mono_ns();
        let body = Bytes::from(body(round, start, plan.payload, plan.json));
        let f = match Utf8Bytes::try_from(body.clone()) {
            Ok(text) if plan.json => Message::Text(text),
            _ => Message::Binary(body),
        };
        for q in &queues {
            q.frames.lock().push(f.clone());
            q.notify.notify_one();
        }
        next += interval;
        tokio::time::sleep_until(next).await;
    }
    // Let the last round go out before the CPU is read.
    tokio::time::sleep(interval).await;
    plan.report("serve --tasks", cpu_seconds() - cpu0);
    Ok(())
}

impl Rounds {
    /// One connection received `round`'s frame, first written at `start`, now.
    fn got(&self, round: u64, start: u64, now: u64) {
        let Ok(i) = usize::try_from(round) else {
            return;
        };
        if i < self.last.len() {
            self.start[i].store(start, Ordering::Relaxed);
            self.last[i].fetch_max(now, Ordering::Relaxed);
            self.got[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads raw frames of `len` bytes, the round and start at `head`.
async fn read_raw(mut s: tokio::net::TcpStream, r: Arc<Rounds>, head: usize, len: usize) {
    let mut buf = vec![0u8; len];
    while s.read_exact(&mut buf).await.is_ok() {
        let now = mono_ns();
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[at..at + 8]);
            u64::from_le_bytes(b)
        };
        r.got(word(head), word(head + 8), now);
    }
}

/// Reads `update`s as the load generator does: a WebSocket stream, each text frame
/// decoded by the harness's decoder.
async fn read_parsed(s: tokio::net::TcpStream, r: Arc<Rounds>) {
    let cfg = gavel_loadtest::conn::ws_config();
    let mut ws = WebSocketStream::from_raw_socket(s, Role::Client, Some(cfg)).await;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let now = mono_ns();
        if let Ok(m) = ServerMsg::from_json(&t) {
            if let (Some(round), Some(start)) = (m.seq, m.price) {
                r.got(round, start, now);
            }
        }
    }
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
    parse: bool,
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
        tasks.push(if parse {
            tokio::spawn(read_parsed(s, r))
        } else {
            tokio::spawn(read_raw(s, r, head, len))
        });
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
            tasks,
            json,
        } => {
            let plan = Plan {
                connections,
                rounds,
                interval_ms,
                payload: frame_bytes,
                json,
            };
            if tasks {
                // gavel's runtime: under `taskset -c 0`, one worker thread.
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(serve_tasks(&listen, &plan))
            } else {
                serve(&listen, &plan)
            }
        }
        Cmd::Client {
            connect,
            connections,
            rounds,
            frame_bytes,
            parse,
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(client(&connect, connections, rounds, frame_bytes, parse)),
        Cmd::WriteCost {
            writes,
            frame_bytes,
            writer_cpu,
            other_cpu,
            space_us,
        } => {
            println!(
                "{writes} frames of {frame_bytes} payload bytes per case, writer on core {writer_cpu}; \
                 the writer's system time per frame:"
            );
            for (reader_cpu, whose) in [(writer_cpu, "the same core"), (other_cpu, "another core")]
            {
                for space in [Duration::ZERO, Duration::from_micros(space_us)] {
                    let us = write_cost(writes, frame_bytes, writer_cpu, reader_cpu, space)?;
                    let how = if space.is_zero() {
                        "back to back".to_string()
                    } else {
                        format!("{space_us} µs apart")
                    };
                    println!("  reader on {whose} (core {reader_cpu}), {how}: {us:.2} µs");
                }
            }
            Ok(())
        }
    }
}
