//! A real `gavel serve` (or `gavel node`, see `support::cluster_nodes`) child process for
//! tests (crash and restart tests need a process to kill), and a WebSocket client that
//! tracks every bid to its `bid_result`. HTTP goes through `support::http`.
//!
//! The child listens on `127.0.0.1:0` and the harness reads the address it prints, so no
//! port is guessed. Its stdout and stderr are collected, so a failure can show them. The
//! child is killed (SIGKILL) when the `Gavel` is dropped, including when a test panics.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// The admin token every test server runs with.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// A VIN with a valid check digit.
pub const VIN: &str = "1M8GDM9AXKP042788";

/// Which journal a server runs on.
#[derive(Clone, Debug)]
pub enum JournalArg {
    /// `--data DIR`.
    File(PathBuf),
    /// `--config FILE`: a TOML file names the journal (a cluster's nodes, `replay
    /// --all-markets`).
    Config(PathBuf),
    /// `--redis URL`, keys under `prefix`.
    Redis {
        /// The URL.
        url: String,
        /// `store.redis_prefix`.
        prefix: String,
    },
}

impl JournalArg {
    /// The command-line arguments that select this journal.
    pub fn args(&self) -> Vec<String> {
        match self {
            Self::File(dir) => vec!["--data".into(), dir.display().to_string()],
            Self::Config(file) => vec!["--config".into(), file.display().to_string()],
            Self::Redis { url, .. } => vec!["--redis".into(), url.clone()],
        }
    }

    /// The environment this journal needs besides the arguments.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::File(_) | Self::Config(_) => Vec::new(),
            Self::Redis { prefix, .. } => {
                vec![("GAVEL_STORE__REDIS_PREFIX".into(), prefix.clone())]
            }
        }
    }

    /// Short name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Config(_) => "config",
            Self::Redis { .. } => "redis",
        }
    }
}

/// How to start a server: its journal and extra `GAVEL_*` settings.
#[derive(Clone, Debug)]
pub struct GavelOpts {
    /// The journal.
    pub journal: JournalArg,
    /// Extra environment (applied after the defaults below, so they override them).
    pub env: Vec<(String, String)>,
    /// Extra arguments to `serve` (`--demo`).
    pub args: Vec<String>,
}

impl GavelOpts {
    /// Defaults for tests: admin token, short minimum duration, no bid rate limit (the
    /// tests drive many bids per dealer), logs at `warn` unless `RUST_LOG` says otherwise.
    pub fn new(journal: JournalArg) -> Self {
        Self {
            journal,
            env: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds one argument to `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Adds one `GAVEL_*` variable.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_owned(), value.to_string()));
        self
    }
}

/// Why a server did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit status, if it exited.
    pub status: Option<ExitStatus>,
    /// Everything it printed.
    pub output: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gavel did not come up (exit: {:?}); its output:\n{}",
            self.status, self.output
        )
    }
}

/// A running `gavel serve`.
pub struct Gavel {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// The binary under test.
pub fn gavel_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gavel")
}

fn base_command(args: &[String], opts: &GavelOpts) -> Command {
    let mut cmd = Command::new(gavel_bin());
    cmd.args(args);
    // Nothing from the developer's environment may pick another journal or listener.
    for name in [
        "GAVEL_LISTEN",
        "GAVEL_REDIS_URL",
        "GAVEL_REDIS_CLUSTER_URLS",
        "GAVEL_DATA_DIR",
        "GAVEL_ADMIN_TOKEN",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("GAVEL_ADMIN_TOKEN", ADMIN)
        .env("GAVEL_AUCTION__MIN_DURATION_S", "1")
        .env("GAVEL_GATEWAY__BID_BURST", "100000")
        .env("GAVEL_GATEWAY__BID_RATE_PER_S", "100000")
        .env("GAVEL_LOG__FILTER", "warn");
    for (k, v) in opts.journal.env() {
        cmd.env(k, v);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `gavel replay --verify` on a journal; returns its exit status and output.
pub fn replay_verify(journal: &JournalArg) -> (ExitStatus, String) {
    replay_verify_with(journal, &[])
}

/// Runs `gavel replay --verify` with `extra` arguments on a journal; returns its exit
/// status and output.
pub fn replay_verify_with(journal: &JournalArg, extra: &[&str]) -> (ExitStatus, String) {
    let mut args = vec!["replay".to_owned(), "--verify".to_owned()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(journal.args());
    let mut cmd = base_command(&args, &GavelOpts::new(journal.clone()));
    let out = cmd.output().expect("run gavel replay");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

/// Runs `gavel audit ARGS… <journal args>`; returns its exit status, stdout and stderr.
pub fn audit(journal: &JournalArg, args: &[&str]) -> (ExitStatus, String, String) {
    let mut all: Vec<String> = std::iter::once("audit".to_owned())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .collect();
    all.extend(journal.args());
    let mut cmd = base_command(&all, &GavelOpts::new(journal.clone()));
    let out = cmd.output().expect("run gavel audit");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Gavel {
    /// Starts `gavel serve` and waits (up to 30 s) until it prints its address. Fails with
    /// the child's output if it exits first or takes too long.
    pub async fn start(opts: &GavelOpts) -> Result<Self, StartFailure> {
        Self::start_listening(opts, "127.0.0.1:0").await
    }

    /// As [`Gavel::start`], on a given address (a restart on the port a browser page
    /// reconnects to).
    pub async fn start_listening(opts: &GavelOpts, listen: &str) -> Result<Self, StartFailure> {
        let mut args = vec!["serve".to_owned(), "--listen".to_owned(), listen.to_owned()];
        args.extend(opts.journal.args());
        args.extend(opts.args.iter().cloned());
        Self::start_command(&args, opts).await
    }

    /// Runs `gavel ARGS…` (with the test environment and `opts.journal`'s environment)
    /// and waits (up to 30 s) until it prints `listening on http://ADDR`: a server or a
    /// cluster node (`gavel node …`).
    pub async fn start_command(args: &[String], opts: &GavelOpts) -> Result<Self, StartFailure> {
        let mut cmd = base_command(args, opts);
        let mut child = cmd.spawn().expect("spawn gavel");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for (stream, tx) in [
            (
                Box::new(stdout) as Box<dyn std::io::Read + Send>,
                Some(addr_tx),
            ),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(tx), Some(rest)) = (&tx, line.split("listening on http://").nth(1))
                    {
                        // A node's line goes on after the address ("(cluster map: …)").
                        let first = rest.split_whitespace().next().unwrap_or_default();
                        if let Ok(addr) = first.parse::<SocketAddr>() {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let failure = loop {
            if let Ok(addr) = addr_rx.try_recv() {
                return Ok(Self {
                    child: Some(child),
                    addr,
                    output,
                    readers,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        for r in readers {
            let _ = r.join();
        }
        let output = output.lock().unwrap().clone();
        Err(StartFailure {
            status: failure,
            output,
        })
    }

    /// Spawns `gavel serve` without waiting for it and without keeping its output, so a
    /// test can kill it at an arbitrary point of its start (recovery included).
    pub fn spawn_unwatched(opts: &GavelOpts) -> Child {
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        args.extend(opts.journal.args());
        let mut cmd = base_command(&args, opts);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd.spawn().expect("spawn gavel serve")
    }

    /// Starts a server, retrying while the journal is still owned by a predecessor that
    /// was killed (a Redis lease runs out after its TTL). Panics with the output on any
    /// other failure or after `within`. Returns the server and how many attempts failed.
    pub async fn start_taking_over(opts: &GavelOpts, within: Duration) -> (Self, u32) {
        let deadline = Instant::now() + within;
        let mut refused = 0;
        loop {
            match Self::start(opts).await {
                Ok(g) => return (g, refused),
                Err(f)
                    if f.output.contains("owned by another engine")
                        && Instant::now() < deadline =>
                {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(f) => panic!("{f}"),
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) with `kill`; panics if that fails (the child
    /// must still run: a test that signals a reaped child has lost track of it).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Whether the child has exited (it is reaped if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGKILL: a crash, no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// SIGTERM and wait (up to 20 s) for the exit; returns the status. Panics with the
    /// output if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                panic!(
                    "gavel did not exit within 20 s of SIGTERM; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    /// One HTTP call to this server (`support::http`; panics on I/O failure).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let r = super::http::request(self.addr, method, path, token, body).await;
        (r.status, r.body)
    }

    /// `POST /v1/sellers` as admin: (id, token).
    pub async fn seller(&self, name: &str) -> (String, String) {
        self.created("/v1/sellers", &json!({ "name": name })).await
    }

    /// `POST /v1/dealers` as admin: (id, token).
    pub async fn dealer(&self, name: &str, deposit: u64) -> (String, String) {
        self.created("/v1/dealers", &json!({ "name": name, "deposit": deposit }))
            .await
    }

    /// `POST /v1/service-tokens` as admin (the consumer site): (id, token).
    pub async fn service(&self, name: &str) -> (String, String) {
        self.created("/v1/service-tokens", &json!({ "name": name }))
            .await
    }

    async fn created(&self, path: &str, body: &Value) -> (String, String) {
        let (status, reply) = self.http("POST", path, Some(ADMIN), Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {reply}");
        (
            reply["id"].as_str().expect("id").to_owned(),
            reply["token"].as_str().expect("token").to_owned(),
        )
    }

    /// `POST /v1/listings` as the seller: the new auction's id and its reply.
    pub async fn list(
        &self,
        seller_token: &str,
        duration_s: u64,
        start_price: u64,
    ) -> (String, Value) {
        let body = listing(duration_s, start_price);
        let (status, reply) = self
            .http("POST", "/v1/listings", Some(seller_token), Some(&body))
            .await;
        assert_eq!(status, 201, "POST /v1/listings: {reply}");
        (
            reply["auction"].as_str().expect("auction").to_owned(),
            reply,
        )
    }

    /// `GET /v1/auctions/{id}` as admin.
    pub async fn auction(&self, id: &str) -> Value {
        let (status, reply) = self
            .http("GET", &format!("/v1/auctions/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(status, 200, "GET /v1/auctions/{id}: {reply}");
        reply
    }
}

impl Drop for Gavel {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A listing body the API accepts: reserve at twice the start price, no buy-now.
pub fn listing(duration_s: u64, start_price: u64) -> Value {
    json!({
        "vehicle": {"vin": VIN, "make": "Ford", "model": "Focus", "year": 2019,
                    "mileage_km": 61000, "city": "Hangzhou"},
        "inspection": {"structural_damage": false, "fire": false, "flood": false,
                       "odometer_tampered": false, "title_transferable": true, "grade": 4,
                       "notes": "test car"},
        "start_price": start_price,
        "reserve": start_price * 2,
        "duration_s": duration_s,
    })
}

/// What became of a bid the client sent.
#[derive(Clone, Debug)]
pub enum BidReply {
    /// The server's `bid_result`.
    Answered(Value),
    /// The connection ended (or timed out) before an answer.
    Unanswered,
}

/// Bids waiting for their `bid_result`, by bid id.
type Waiting = HashMap<String, oneshot::Sender<Value>>;

/// A WebSocket client speaking JSON: bids are matched to their `bid_result` by `bid_id`;
/// the latest `min_next` of each auction is kept from snapshots and updates.
pub struct WsClient {
    tx: mpsc::UnboundedSender<Message>,
    /// Bids waiting for their result; `None` once the connection has ended.
    pending: Arc<Mutex<Option<Waiting>>>,
    /// Latest `min_next` per auction seen on this connection.
    pub min_next: Arc<Mutex<HashMap<String, u64>>>,
    /// Whether this dealer leads, per auction, by the latest message that said.
    pub leading: Arc<Mutex<HashMap<String, bool>>>,
    subscribed: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl WsClient {
    /// Connects with `token`.
    pub async fn connect(addr: SocketAddr, token: &str) -> Result<Self, String> {
        let url = format!("ws://{addr}/v1/ws?token={token}");
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .map_err(|_| "websocket connect timed out".to_owned())?
        .map_err(|e| format!("websocket connect: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Arc<Mutex<Option<Waiting>>> = Arc::new(Mutex::new(Some(HashMap::new())));
        let subscribed: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Default::default();
        let min_next: Arc<Mutex<HashMap<String, u64>>> = Default::default();
        let leading: Arc<Mutex<HashMap<String, bool>>> = Default::default();
        let reader = {
            let (pending, subscribed, min_next, leading) = (
                pending.clone(),
                subscribed.clone(),
                min_next.clone(),
                leading.clone(),
            );
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    let auction = v["auction"].as_str().unwrap_or_default().to_owned();
                    if let Some(l) = v["leading"].as_bool() {
                        leading.lock().unwrap().insert(auction.clone(), l);
                    }
                    match v["type"].as_str() {
                        Some("bid_result") => {
                            let id = v["bid_id"].as_str().unwrap_or_default().to_owned();
                            if let Some(n) = v["min_next"].as_u64() {
                                min_next.lock().unwrap().insert(auction, n);
                            }
                            let waiting =
                                pending.lock().unwrap().as_mut().and_then(|p| p.remove(&id));
                            if let Some(tx) = waiting {
                                let _ = tx.send(v);
                            }
                        }
                        Some("update") | Some("outbid") => {
                            if let Some(n) = v["min_next"].as_u64() {
                                min_next.lock().unwrap().insert(auction.clone(), n);
                            }
                            if v["type"] == "outbid" {
                                leading.lock().unwrap().insert(auction, false);
                            }
                        }
                        Some("snapshot") => {
                            let a = &v["auction"];
                            if let (Some(id), Some(n)) = (a["id"].as_str(), a["min_next"].as_u64())
                            {
                                min_next.lock().unwrap().insert(id.to_owned(), n);
                                let l = a["leading"].as_bool().unwrap_or(false);
                                leading.lock().unwrap().insert(id.to_owned(), l);
                                if let Some(tx) = subscribed.lock().unwrap().remove(id) {
                                    let _ = tx.send(v.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                // The connection is gone: every waiting bid stays unanswered.
                *pending.lock().unwrap() = None;
                subscribed.lock().unwrap().clear();
            })
        };
        Ok(Self {
            tx,
            pending,
            min_next,
            leading,
            subscribed,
            reader,
        })
    }

    /// Subscribes and waits for the snapshot.
    pub async fn subscribe(&self, auction: &str) -> Option<Value> {
        let (tx, rx) = oneshot::channel();
        self.subscribed
            .lock()
            .unwrap()
            .insert(auction.to_owned(), tx);
        let msg = json!({"type": "subscribe", "auction": auction});
        self.tx.send(Message::text(msg.to_string())).ok()?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .ok()?
            .ok()
    }

    /// Sends a bid and returns a future for its result (the sending happens now).
    pub fn bid(
        &self,
        auction: &str,
        amount: u64,
        max: Option<u64>,
        bid_id: &str,
    ) -> impl std::future::Future<Output = BidReply> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let open = match self.pending.lock().unwrap().as_mut() {
            Some(p) => {
                p.insert(bid_id.to_owned(), tx);
                true
            }
            None => false,
        };
        let mut msg =
            json!({"type": "bid", "auction": auction, "amount": amount, "bid_id": bid_id});
        if let Some(m) = max {
            msg["max"] = json!(m);
        }
        let sent = open && self.tx.send(Message::text(msg.to_string())).is_ok();
        async move {
            if !sent {
                return BidReply::Unanswered;
            }
            match tokio::time::timeout(Duration::from_secs(20), rx).await {
                Ok(Ok(v)) => BidReply::Answered(v),
                _ => BidReply::Unanswered,
            }
        }
    }

    /// Whether the connection has ended.
    pub fn closed(&self) -> bool {
        self.reader.is_finished()
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A fresh temporary directory for a file journal.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gavel-data-")
        .tempdir()
        .expect("create a temp data dir")
}
