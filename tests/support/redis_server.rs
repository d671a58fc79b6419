//! Real `redis-server` processes for tests and benches: each on its own free port on
//! 127.0.0.1, in its own temp dir, with the AOF settings the test asks for.
//!
//! Never touches the Redis a developer may run on 6379. The process is killed when the
//! `RedisServer` is dropped, including when a test panics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the test needs from Redis's persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aof {
    /// `appendonly no`: nothing survives a restart.
    Off,
    /// `appendonly yes`, `appendfsync always`: every acknowledged write is on disk.
    Always,
    /// `appendonly yes`, `appendfsync everysec`.
    Everysec,
}

/// Options for [`RedisServer::start`].
#[derive(Clone, Debug)]
pub struct RedisOpts {
    /// Persistence.
    pub aof: Aof,
    /// Extra `--name value` arguments, appended last.
    pub extra: Vec<(String, String)>,
}

impl RedisOpts {
    /// AOF with `appendfsync always`.
    pub fn always() -> Self {
        Self::with(Aof::Always)
    }

    /// AOF with `appendfsync everysec`.
    pub fn everysec() -> Self {
        Self::with(Aof::Everysec)
    }

    /// No persistence at all.
    pub fn no_aof() -> Self {
        Self::with(Aof::Off)
    }

    fn with(aof: Aof) -> Self {
        Self {
            aof,
            extra: Vec::new(),
        }
    }
}

/// A running `redis-server` owned by the test.
pub struct RedisServer {
    opts: RedisOpts,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const MISSING: &str = "redis-server not found: install it (Debian/Ubuntu: apt-get install -y \
                       redis-server) — tests need a real Redis";

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING. Panics if
    /// `redis-server` is missing or does not come up.
    pub fn start(opts: RedisOpts) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gavel-redis-")
            .tempdir()
            .expect("create a temp dir for redis");
        let mut last_error = String::new();
        // Picking a port by binding :0 and releasing it races with other processes doing
        // the same; a clash shows up as the server exiting at once, so try a few ports.
        for _ in 0..5 {
            let port = free_port();
            match launch(&opts, port, dir.path()) {
                Ok(child) => {
                    return Self {
                        opts,
                        port,
                        dir,
                        child: Some(child),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// Starts a server on `port` in a new temp dir, or says why it did not come up (the
    /// port was taken, ...). For callers that choose ports themselves (a cluster node
    /// also needs `port + 10000` free for its bus). Panics if `redis-server` is missing.
    pub fn start_on_port(opts: RedisOpts, port: u16) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("gavel-redis-")
            .tempdir()
            .expect("create a temp dir for redis");
        let child = launch(&opts, port, dir.path())?;
        Ok(Self {
            opts,
            port,
            dir,
            child: Some(child),
        })
    }

    /// The URL to connect to (database 0).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory (AOF and log live here; kept across restarts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (a crash: no shutdown, no final fsync) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory, so it reloads its AOF.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again on a running server");
        let mut last_error = String::new();
        // The port was just freed; another process could grab it in between, or the
        // kernel could be slow to release it. Retry briefly, on the same port only.
        for _ in 0..20 {
            match launch(&self.opts, self.port, self.dir.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) => {
                    last_error = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!(
            "redis-server did not restart on port {}: {last_error}",
            self.port
        );
    }

    /// SIGKILL, then start again with the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing is answered, the
    /// way a stalled Redis or a network black hole looks to a client.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_log(self.dir())
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("server is not running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `redis-server` and waits until it answers PING; kills it on failure.
fn launch(opts: &RedisOpts, port: u16, dir: &Path) -> Result<Child, String> {
    let dir_arg = dir.to_str().expect("temp dir path is UTF-8");
    let (appendonly, appendfsync) = match opts.aof {
        Aof::Off => ("no", "everysec"),
        Aof::Always => ("yes", "always"),
        Aof::Everysec => ("yes", "everysec"),
    };
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--dir", dir_arg])
        .args(["--logfile", "redis.log"])
        .args(["--appendonly", appendonly])
        .args(["--appendfsync", appendfsync])
        .args(["--save", ""])
        .args(["--daemonize", "no"]);
    for (name, value) in &opts.extra {
        cmd.arg(format!("--{name}")).arg(value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{MISSING}"),
        Err(e) => panic!("cannot run redis-server: {e}"),
    };
    match wait_ready(&mut child, port, dir, Duration::from_secs(20)) {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Polls PING until `+PONG` (not `-LOADING`), the process exits, or time runs out.
fn wait_ready(child: &mut Child, port: u16, dir: &Path, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited with {status}; log:\n{}",
                read_log(dir)
            ));
        }
        if ping(port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "redis-server did not answer PING within {within:?}; log:\n{}",
                read_log(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(stream.read_exact(&mut reply), Ok(()) if &reply == b"+PONG\r\n")
}
