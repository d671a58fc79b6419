//! A real headless browser driven over W3C WebDriver through `fantoccini`: the
//! distribution's Chromium (`chromium`) under its `chromedriver` (`chromium-driver`, the
//! same version as the browser) by default, or with `GAVEL_BROWSER=firefox` the
//! distribution's Firefox ESR (`firefox-esr`) under Mozilla's `geckodriver`.
//!
//! What the tests need beyond classic WebDriver has one path per browser: a script that
//! runs before any page script (Chromium: the DevTools command through chromedriver's
//! `goog/cdp/execute`; Firefox: WebDriver BiDi's `script.addPreloadScript`), and a
//! phone-sized viewport (Chromium: DevTools' mobile emulation; Firefox: BiDi's
//! `browsingContext.setViewport`, a viewport of that size without mobile emulation, which
//! is said on the terminal even when the output is captured).
//!
//! Each [`Browser`] has a fresh profile (so nothing is cached and two browsers share no
//! storage: two isolated contexts). Chromium's [`Driver`] is one chromedriver for all its
//! browsers; geckodriver serves one session at a time, so each Firefox has its own. Every
//! driver runs in its own process group, killed whole on drop (killing the driver alone
//! would leave its browsers running). When a browser or its driver is missing the test
//! fails, saying how to install them: a browser test is never skipped.

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The browser and its driver, as Debian installs them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver server for it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Firefox ESR.
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// How to get Chromium's pair, said whenever one of them is missing or will not start.
const CHROMIUM_INSTALL: &str = "Install them with `apt-get install -y chromium \
    chromium-driver` (.ci/run does this when they are missing).";

/// How to get Firefox's pair, said whenever one of them is missing.
const FIREFOX_INSTALL: &str = "Install them with `apt-get install -y firefox-esr` and \
    `cargo install geckodriver --locked` (Debian has no geckodriver package; .ci/run \
    installs both when they are missing).";

/// How long a test waits for something a page should show.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serializes the browser tests of one binary: on two shared cores, browsers running side
/// by side make the timing figures (and the "within a second" checks) meaningless.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which browser the tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The default.
    Chromium,
    /// `GAVEL_BROWSER=firefox`.
    Firefox,
}

impl Kind {
    /// From `GAVEL_BROWSER` (`chromium`, the default, or `firefox`); anything else fails
    /// rather than quietly testing another browser than the one asked for.
    pub fn from_env() -> Self {
        match std::env::var("GAVEL_BROWSER").as_deref() {
            Err(_) | Ok("") | Ok("chromium") => Self::Chromium,
            Ok("firefox") => Self::Firefox,
            Ok(other) => panic!("GAVEL_BROWSER={other}: use `chromium` (the default) or `firefox`"),
        }
    }
}

fn require(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: the console's browser tests need the distribution's Chromium \
         and its driver. {CHROMIUM_INSTALL}"
    );
}

/// geckodriver: on `PATH`, else where `cargo install` puts it.
fn geckodriver() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    on_path
        .into_iter()
        .chain(cargo_home.map(|c| c.join("bin")))
        .map(|dir| dir.join("geckodriver"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "geckodriver is missing (not on PATH nor in $CARGO_HOME/bin): \
                 GAVEL_BROWSER=firefox drives Firefox through it. {FIREFOX_INSTALL}"
            )
        })
}

/// How a driver is started: CI once saw chromedriver say no port at all, among sixteen
/// starts that did, and whether it had exited or stalled was not recorded. So each start
/// records which it was, and a failed start is retried before the test fails.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Starts before giving up.
    pub attempts: u32,
    /// How long one start may take to say its port: chromedriver says it within a
    /// second on an idle machine; twenty leave room for a busy two-core VM.
    pub port_wait: Duration,
    /// Between a failed start and the next, so a momentary squeeze can pass.
    pub pause: Duration,
}

/// What the browser tests use.
pub const PATIENCE: Patience = Patience {
    attempts: 3,
    port_wait: Duration::from_secs(20),
    pause: Duration::from_secs(1),
};

/// How many of a driver's last lines (its standard output and error, as read) a failed
/// start reports, and how much of each: enough to see why, never a browser's whole log.
const TAIL_LINES: usize = 30;
const TAIL_LINE_CHARS: usize = 400;

/// Why one start of a driver gave no port.
#[derive(Debug)]
pub enum StartFailure {
    /// The program could not be run at all.
    CannotRun(std::io::Error),
    /// It exited before printing its port.
    Exited {
        /// `None` if it could not be read.
        status: Option<ExitStatus>,
        /// Its last lines, oldest first, each `out| ` or `err| ` and the line.
        output: Vec<String>,
    },
    /// It was still running, silent about its port, when the wait ran out; its process
    /// group was then killed (`status` is what that left: normally the kill's signal).
    NoPort {
        waited: Duration,
        status: Option<ExitStatus>,
        /// As for [`StartFailure::Exited`].
        output: Vec<String>,
    },
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let output = match self {
            Self::CannotRun(e) => return write!(f, "could not be run: {e}"),
            Self::Exited { status, output } => {
                write!(
                    f,
                    "exited ({}) before saying which port it took",
                    shown(status)
                )?;
                output
            }
            Self::NoPort {
                waited,
                status,
                output,
            } => {
                write!(
                    f,
                    "still running after {waited:?} without saying which port it took; \
                     its process group was killed ({})",
                    shown(status)
                )?;
                output
            }
        };
        if output.is_empty() {
            return write!(f, "; it wrote nothing");
        }
        write!(f, "; its last {} lines:", output.len())?;
        for line in output {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

fn shown(status: &Option<ExitStatus>) -> String {
    status.map_or_else(|| "exit status unreadable".into(), |s| s.to_string())
}

/// The last [`TAIL_LINES`] lines of a driver's output, shared by the threads that drain
/// its pipes.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, stream: &str, line: &str) {
        let line: String = line.chars().take(TAIL_LINE_CHARS).collect();
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{stream}| {line}"));
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }
}

/// What a pipe's drainer tells the start.
enum Drained {
    /// The port, from the line holding the marker.
    Port(String),
    /// The pipe reached its end: everything written to it is in the tail.
    Closed,
}

/// Reads `pipe` to its end, keeping its last lines in `tail` and sending the port from a
/// line holding `marker`. It runs for as long as the driver (or anything it started)
/// holds the pipe open, so a chatty browser never blocks on a full pipe.
fn drain(
    pipe: impl Read,
    stream: &'static str,
    marker: Option<&'static str>,
    tail: Tail,
    tx: mpsc::Sender<Drained>,
) {
    let mut pipe = BufReader::new(pipe);
    // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining.
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match pipe.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        if let Some(port) = marker.and_then(|m| line.split(m).nth(1)) {
            let _ = tx.send(Drained::Port(port.trim_end_matches('.').to_string()));
        }
        tail.push(stream, line);
    }
    let _ = tx.send(Drained::Closed);
}

/// Whether `child` has exited, without reaping it: until it is reaped its pid, which is
/// its process group's id, cannot be reused, so killing that group stays safe.
fn has_exited(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: waitid(2) writes only into `info`, a plain C struct for which all zeroes
    // is a valid value; WNOWAIT leaves the child waitable by `Child::wait`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let found = libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        found == 0 && info.si_pid() != 0
    }
}

/// Kills the driver's whole process group (the browsers it started are in it: killing
/// the driver alone would leave them running) and reaps the driver.
fn kill_group(child: &mut Child) -> Option<ExitStatus> {
    // The group's id is the driver's pid (`process_group(0)`).
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is
        // touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

/// A WebDriver server in its own process group; the group is killed on drop.
pub struct DriverProcess {
    child: Child,
    url: String,
}

impl DriverProcess {
    /// Starts `program` on a free port (see [`DriverProcess::launch`], with
    /// [`PATIENCE`]). A start that needed more than one attempt is said on the terminal,
    /// so a flaky driver is seen even when the tests pass; when every attempt fails the
    /// test fails with what each one did, and `install`.
    fn spawn(program: &Path, args: &[&str], marker: &'static str, install: &str) -> Self {
        match Self::launch(program, args, marker, PATIENCE) {
            Ok((driver, failed)) => {
                if !failed.is_empty() {
                    loud(&format!(
                        "{} started on attempt {}:{}",
                        program.display(),
                        failed.len() + 1,
                        attempts(&failed)
                    ));
                }
                driver
            }
            Err(failed) => panic!(
                "{} did not say which port it took in {} attempts:{}\n{install}",
                program.display(),
                failed.len(),
                attempts(&failed)
            ),
        }
    }

    /// Starts `program` and reads its port from the line of its standard output that
    /// holds `marker` (the port follows it), up to `patience.attempts` times; a failed
    /// attempt's process group is killed before the next. The driver and the failures of
    /// the attempts before it, or every attempt's failure.
    pub fn launch(
        program: &Path,
        args: &[&str],
        marker: &'static str,
        patience: Patience,
    ) -> Result<(Self, Vec<StartFailure>), Vec<StartFailure>> {
        let mut failed = Vec::new();
        for attempt in 1..=patience.attempts {
            if attempt > 1 {
                std::thread::sleep(patience.pause);
            }
            match Self::start(program, args, marker, patience.port_wait) {
                Ok(driver) => return Ok((driver, failed)),
                Err(why) => failed.push(why),
            }
        }
        Err(failed)
    }

    /// One start, waiting up to `wait` for the port.
    fn start(
        program: &Path,
        args: &[&str],
        marker: &'static str,
        wait: Duration,
    ) -> Result<Self, StartFailure> {
        // Its own process group: the browsers it starts join it.
        let mut child = Command::new(program)
            .process_group(0)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(StartFailure::CannotRun)?;
        let tail = Tail::default();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let (tail, tx) = (tail.clone(), tx.clone());
            std::thread::spawn(move || drain(out, "out", Some(marker), tail, tx));
        }
        if let Some(err) = child.stderr.take() {
            let tail = tail.clone();
            std::thread::spawn(move || drain(err, "err", None, tail, tx));
        } else {
            drop(tx);
        }
        let deadline = Instant::now() + wait;
        // Often enough that an early exit is reported at once.
        let tick = Duration::from_millis(50);
        loop {
            match rx.recv_timeout(tick) {
                Ok(Drained::Port(port)) => {
                    return Ok(Self {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                    })
                }
                Ok(Drained::Closed) | Err(RecvTimeoutError::Timeout) => {}
                // Both pipes closed: nothing more will come, only its exit or the deadline.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(tick),
            }
            if has_exited(&child) {
                // What it wrote last is still being read: wait for both pipes to close,
                // a bounded wait since something it started may hold them open.
                let drained_by = Instant::now() + Duration::from_secs(2);
                let mut open = 2;
                while open > 0 {
                    let left = drained_by.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(Drained::Closed) => open -= 1,
                        Ok(Drained::Port(_)) => {}
                        Err(_) => break,
                    }
                }
                return Err(StartFailure::Exited {
                    status: kill_group(&mut child),
                    output: tail.lines(),
                });
            }
            if Instant::now() >= deadline {
                let status = kill_group(&mut child);
                return Err(StartFailure::NoPort {
                    waited: wait,
                    status,
                    output: tail.lines(),
                });
            }
        }
    }

    /// Where its WebDriver server listens.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The failures of a driver's attempts, one numbered line each.
fn attempts(failed: &[StartFailure]) -> String {
    failed
        .iter()
        .enumerate()
        .map(|(i, why)| format!("\n  attempt {}: {why}", i + 1))
        .collect()
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// The browsers of one test: chromedriver for Chromium (one for all its browsers), or
/// where Firefox's come from (each has its own geckodriver).
pub struct Driver {
    kind: Kind,
    chromedriver: Option<DriverProcess>,
    geckodriver: PathBuf,
}

impl Driver {
    /// Checks the browser chosen by `GAVEL_BROWSER` is installed; for Chromium, starts
    /// chromedriver on a free port (it prints the one it took).
    pub fn start() -> Self {
        match Kind::from_env() {
            Kind::Chromium => {
                require(CHROMIUM);
                require(CHROMEDRIVER);
                let chromedriver = DriverProcess::spawn(
                    Path::new(CHROMEDRIVER),
                    &["--port=0"],
                    "started successfully on port ",
                    CHROMIUM_INSTALL,
                );
                Self {
                    kind: Kind::Chromium,
                    chromedriver: Some(chromedriver),
                    geckodriver: PathBuf::new(),
                }
            }
            Kind::Firefox => {
                assert!(
                    Path::new(FIREFOX).exists(),
                    "{FIREFOX} is missing: GAVEL_BROWSER=firefox runs the console's browser \
                     tests in Debian's Firefox ESR. {FIREFOX_INSTALL}"
                );
                Self {
                    kind: Kind::Firefox,
                    chromedriver: None,
                    geckodriver: geckodriver(),
                }
            }
        }
    }

    /// Which browser this driver starts.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A new headless browser with its own profile, its window `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        match &self.chromedriver {
            Some(chromedriver) => self.chromium(chromedriver, width, height).await,
            None => self.firefox(width, height).await,
        }
    }

    async fn chromium(&self, chromedriver: &DriverProcess, width: u32, height: u32) -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("gavel-chromium-")
            .tempdir()
            .expect("temp dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--lang=en-US",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([
            format!("--user-data-dir={}", dir.path().display()),
            format!("--window-size={width},{height}"),
        ])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let client = connect(chromedriver.url(), caps).await.unwrap_or_else(|e| {
            panic!("Chromium did not start under {CHROMEDRIVER}: {e}. {CHROMIUM_INSTALL}")
        });
        Browser {
            client,
            kind: Kind::Chromium,
            bidi: tokio::sync::Mutex::new(None),
            _geckodriver: None,
            _dir: dir,
        }
    }

    async fn firefox(&self, width: u32, height: u32) -> Browser {
        // geckodriver makes the profile inside this directory, removed with the browser.
        let dir = tempfile::Builder::new()
            .prefix("gavel-firefox-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().display().to_string();
        // Port 0 for both: the WebDriver port is read from geckodriver's log, the BiDi
        // one is in the session's `webSocketUrl` (9222, the default, would collide
        // between two browsers of one test).
        let gecko = DriverProcess::spawn(
            &self.geckodriver,
            &[
                "--port",
                "0",
                "--websocket-port",
                "0",
                "--profile-root",
                &root,
            ],
            "Listening on 127.0.0.1:",
            FIREFOX_INSTALL,
        );
        let caps = json!({
            "browserName": "firefox",
            // WebDriver BiDi, for the scripts that must run before the page's own.
            "webSocketUrl": true,
            "moz:firefoxOptions": {
                "binary": FIREFOX,
                "args": ["-headless", format!("--width={width}"), format!("--height={height}")],
                // The same language as Chromium's `--lang=en-US`.
                "prefs": {"intl.accept_languages": "en-US", "intl.locale.requested": "en-US"},
            },
        });
        let client = connect(gecko.url(), caps).await.unwrap_or_else(|e| {
            panic!(
                "Firefox did not start under {}: {e}. {FIREFOX_INSTALL}",
                self.geckodriver.display()
            )
        });
        Browser {
            client,
            kind: Kind::Firefox,
            bidi: tokio::sync::Mutex::new(None),
            _geckodriver: Some(gecko),
            _dir: dir,
        }
    }
}

async fn connect(url: &str, caps: Value) -> Result<Client, fantoccini::error::NewSessionError> {
    let Value::Object(caps) = caps else {
        unreachable!("capabilities are an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(url)
        .await
}

type BidiSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One browser (one WebDriver session).
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    /// Which browser this is.
    pub kind: Kind,
    /// Firefox: the WebDriver BiDi connection, once a command needed it; kept open for
    /// the session's life (what it set up lives as long as the session).
    bidi: tokio::sync::Mutex<Option<BidiSocket>>,
    /// Firefox: this browser's own geckodriver, killed with the browser before its
    /// profile directory (next field) is removed.
    _geckodriver: Option<DriverProcess>,
    _dir: tempfile::TempDir,
}

/// A Chrome DevTools command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

impl Browser {
    /// Runs a Chrome DevTools command (Chromium only: a test that needs one gives
    /// Firefox its own path).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        assert_eq!(self.kind, Kind::Chromium, "CDP {cmd} in {:?}", self.kind);
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.into(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// Runs `source` (statements) in every document this browser loads from now on,
    /// before any of the page's own scripts.
    pub async fn add_init_script(&self, source: &str) {
        match self.kind {
            Kind::Chromium => {
                self.cdp("Page.enable", json!({})).await;
                self.cdp(
                    "Page.addScriptToEvaluateOnNewDocument",
                    json!({ "source": source }),
                )
                .await;
            }
            Kind::Firefox => {
                self.bidi(
                    "script.addPreloadScript",
                    json!({ "functionDeclaration": format!("() => {{ {source} }}") }),
                )
                .await;
            }
        }
    }

    /// A phone's viewport, `width`×`height` CSS pixels at one device pixel each.
    /// Chromium emulates the device (DevTools' mobile emulation; a page without a meta
    /// viewport, like the blank one before the first load, lays out at 980 px there).
    /// Firefox's window cannot be narrower than 500 px, so WebDriver BiDi's
    /// `browsingContext.setViewport` sizes the page's viewport instead, checked at once;
    /// Firefox has no mobile emulation outside its developer tools (no touch events, no
    /// meta-viewport rules), which is said on the terminal.
    pub async fn emulate_phone(&self, width: u32, height: u32) {
        match self.kind {
            Kind::Chromium => {
                self.cdp(
                    "Emulation.setDeviceMetricsOverride",
                    json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": true}),
                )
                .await;
            }
            Kind::Firefox => {
                loud(&format!(
                    "FIREFOX: the phone is a {width}x{height} viewport (BiDi setViewport), \
                     not an emulated mobile device: no touch events, no meta-viewport rules"
                ));
                let tree = self.bidi("browsingContext.getTree", json!({})).await;
                let context = tree["contexts"][0]["context"].clone();
                assert!(context.is_string(), "no top-level browsing context: {tree}");
                self.bidi(
                    "browsingContext.setViewport",
                    json!({"context": context, "viewport": {"width": width, "height": height}, "devicePixelRatio": 1}),
                )
                .await;
                let inner = self.js("return window.innerWidth;", vec![]).await;
                assert_eq!(
                    inner,
                    json!(width),
                    "the page lays out at the phone's width"
                );
            }
        }
    }

    /// A WebDriver BiDi command (Firefox), over the session's WebSocket; returns its
    /// result. Events that arrive meanwhile are not subscribed to, so none is dropped.
    async fn bidi(&self, method: &str, params: Value) -> Value {
        let mut slot = self.bidi.lock().await;
        if slot.is_none() {
            let url = self
                .client
                .capabilities()
                .and_then(|c| c.get("webSocketUrl"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("the session has no webSocketUrl for BiDi {method}"))
                .to_owned();
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .unwrap_or_else(|e| panic!("BiDi connection to {url}: {e}"));
            *slot = Some(ws);
        }
        let Some(ws) = slot.as_mut() else {
            unreachable!("connected above")
        };
        // One command at a time on this socket (the lock), so one id is enough to match.
        let id = 1;
        ws.send(Message::text(
            json!({"id": id, "method": method, "params": params}).to_string(),
        ))
        .await
        .unwrap_or_else(|e| panic!("BiDi {method}: {e}"));
        let reply = tokio::time::timeout(WAIT, async {
            while let Some(m) = ws.next().await {
                let m = m.unwrap_or_else(|e| panic!("BiDi {method}: {e}"));
                let Message::Text(text) = m else { continue };
                let v: Value = serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("BiDi {method}: {e}: {text}"));
                if v["id"] == json!(id) {
                    return v;
                }
            }
            panic!("BiDi {method}: the connection closed before the reply")
        })
        .await
        .unwrap_or_else(|_| panic!("BiDi {method}: no reply within {WAIT:?}"));
        assert_eq!(reply["type"], "success", "BiDi {method}: {reply}");
        reply["result"].clone()
    }

    /// Loads a URL.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Evaluates JavaScript (a `return`ed promise is awaited).
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The text of the first element matching `css`, or `None` while there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Waits (up to [`WAIT`]) until `check` holds for what `script` returns; returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_in(WAIT, what, script, args, check).await
    }

    /// As [`Browser::wait_for`], up to `wait`.
    pub async fn wait_for_in(
        &self,
        wait: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let v = self.js(script, args.clone()).await;
            if check(&v) {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.client.screenshot().await.unwrap_or_default();
                let path = std::env::temp_dir()
                    .join(format!("gavel-browser-failure-{}.png", std::process::id()));
                let _ = std::fs::write(&path, shot);
                panic!(
                    "waited {wait:?} for {what}; last value {v}; screenshot at {}",
                    path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the text of `css` satisfies `check`; returns it.
    pub async fn wait_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let v = self
            .wait_for(
                &format!("the text of {css}"),
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
                |v| v.as_str().is_some_and(&check),
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits for an element to exist.
    pub async fn wait_exists(&self, css: &str) {
        self.wait_for(
            &format!("{css} to exist"),
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
            |v| v == &json!(true),
        )
        .await;
    }

    /// The first element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_exists(css).await;
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// Clicks an element as a person would (WebDriver's element click).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        e.click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces a field's value by typing.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

/// A line on the terminal that the test harness does not capture: written to the
/// process's standard error directly, so a passing test cannot hide it.
fn loud(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n*** {line} ***");
}
