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
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The browser and its driver, as Debian installs them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver server for it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Firefox ESR.
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

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
         and its driver. Install them with `apt-get install -y chromium chromium-driver` \
         (.ci/run does this when they are missing)."
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

/// A WebDriver server in its own process group; the group is killed on drop.
struct DriverProcess {
    child: Child,
    url: String,
}

impl DriverProcess {
    /// Starts `program` on a free port and reads the port from the line of its standard
    /// output that holds `marker` (the port follows it). Its output is drained for as
    /// long as it runs, so a chatty browser never blocks on a full pipe.
    fn spawn(program: &Path, args: &[&str], marker: &'static str) -> Self {
        // Its own process group: the browsers it starts join it.
        let mut child = Command::new(program)
            .process_group(0)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split(marker)
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').to_string())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{} did not say which port it took", program.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // The group's id is the driver's pid (`process_group(0)`).
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory
            // is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let client = connect(&chromedriver.url, caps).await.unwrap_or_else(|e| {
            panic!(
                "Chromium did not start under {CHROMEDRIVER}: {e}. Install it with \
                     `apt-get install -y chromium chromium-driver`."
            )
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
        let client = connect(&gecko.url, caps).await.unwrap_or_else(|e| {
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
