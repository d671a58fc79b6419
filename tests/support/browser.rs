//! A real headless Chromium (the distribution's `chromium` package) driven over W3C
//! WebDriver by the distribution's `chromedriver` (`chromium-driver`, the same version as
//! the browser), through `fantoccini`. Chrome DevTools commands the tests need (a clock
//! offset injected before any page script runs) go through chromedriver's
//! `goog/cdp/execute` endpoint.
//!
//! Each [`Driver`] is one chromedriver process; each [`Browser`] one Chromium with a
//! fresh `--user-data-dir` (so nothing is cached and two browsers share no storage: two
//! isolated contexts). Both are killed on drop. When Chromium or its driver is missing
//! the test fails, saying how to install them: a browser test is never skipped.

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The browser and its driver, as Debian installs them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver server for it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a test waits for something a page should show.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serializes the browser tests of one binary: on two shared cores, browsers running side
/// by side make the timing figures (and the "within a second" checks) meaningless.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn require(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: the console's browser tests need the distribution's Chromium \
         and its driver. Install them with `apt-get install -y chromium chromium-driver` \
         (.ci/run does this when they are missing)."
    );
}

/// A running chromedriver.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver on a free port (it prints the one it took).
    pub fn start() -> Self {
        require(CHROMIUM);
        require(CHROMEDRIVER);
        // Its own process group: the browsers it starts join it, and dropping the driver
        // ends the whole group (killing chromedriver alone leaves its Chromiums running).
        let mut child = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').to_string())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{CHROMEDRIVER} did not say which port it took"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new headless Chromium with its own profile, its window `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
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
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Chromium did not start under {CHROMEDRIVER}: {e}. Install it with \
                     `apt-get install -y chromium chromium-driver`."
                )
            });
        Browser { client, _dir: dir }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
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

/// One browser (one WebDriver session).
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
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
    /// Runs a Chrome DevTools command.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.into(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
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
