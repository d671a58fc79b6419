//! A few seconds of every scenario against the real servers, so `cargo test --workspace`
//! notices when the harness, the baseline, the echo server or gavel's protocol breaks.
//!
//! No timing assertions: CI machines are shared and slow. What is asserted is that each run
//! completes, writes a report, and (against gavel) passes the correctness check, including
//! the comparison with `gavel replay --verify`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped (also when the test panics).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadtest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gavel-loadtest"))
}

/// `gavel-loadtest verify` of a run's report against the journal's replayed digests must
/// pass; `what` names the run in the failure.
fn assert_verifies(what: &str, report: &std::path::Path, digests: &std::path::Path) {
    let v = Command::new(loadtest())
        .args(["verify", "--report"])
        .arg(report)
        .arg("--digests")
        .arg(digests)
        .output()
        .expect("run verify");
    assert!(
        v.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&v.stdout)
    );
}

fn sibling(name: &str) -> PathBuf {
    loadtest().with_file_name(name)
}

/// The `gavel` binary of this workspace, built if `cargo test -p gavel-loadtest` ran alone.
fn gavel_bin() -> PathBuf {
    let p = sibling("gavel");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "gavel", "--bin", "gavel"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("run cargo build for the gavel binary");
        assert!(st.success(), "building gavel failed");
    }
    p
}

/// Starts a server that prints "listening on [http://]ADDR" on its first stdout lines.
fn start(mut cmd: Command) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let out = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else {
            break;
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest
                .trim_start_matches("http://")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (proc, addr);
        }
    }
    panic!("server did not report its address");
}

fn run_loadtest(args: &[&str], out: &Path) -> serde_json::Value {
    let o = Command::new(loadtest())
        .args(args)
        .args(["--quiet", "--out"])
        .arg(out)
        .env("GAVEL_ADMIN_TOKEN", "smoke-admin-token")
        .output()
        .expect("run gavel-loadtest");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "gavel-loadtest {args:?} failed: {}\n{stdout}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out).expect("report written")).expect("report is JSON")
}

fn assert_correct(r: &serde_json::Value) {
    assert_eq!(r["correctness"]["checked"], true, "{r}");
    assert_eq!(r["correctness"]["ok"], true, "{}", r["correctness"]);
    assert!(r["correctness"]["acked_accepted"].as_u64().unwrap_or(0) > 0);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn every_scenario_against_gavel_then_the_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut cmd = Command::new(gavel_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("GAVEL_ADMIN_TOKEN", "smoke-admin-token")
        .env("GAVEL_GATEWAY__BID_RATE_PER_S", "100000")
        .env("GAVEL_GATEWAY__BID_BURST", "100000")
        .env("GAVEL_AUCTION__MIN_DURATION_S", "1")
        .env("GAVEL_AUCTION__EXTEND_WINDOW_S", "1")
        .env("GAVEL_AUCTION__EXTEND_BY_S", "1")
        .env("GAVEL_LOG__FILTER", "warn");
    let (mut server, addr) = start(cmd);
    let url = format!("ws://{addr}");
    let pid = server.0.id().to_string();
    let out = |n: &str| dir.path().join(format!("{n}.json"));

    let steady = run_loadtest(
        &[
            "steady",
            "--url",
            &url,
            "--dealers",
            "20",
            "--auctions",
            "10",
            "--rate",
            "200",
            "--duration-s",
            "1.5",
            "--server-pid",
            &pid,
        ],
        &out("steady"),
    );
    assert_correct(&steady);
    assert!(steady["phases"][0]["acks"].as_u64().unwrap_or(0) > 0);

    let ramp = run_loadtest(
        &[
            "ramp",
            "--url",
            &url,
            "--dealers",
            "10",
            "--auctions",
            "5",
            "--start-rate",
            "50",
            "--factor",
            "2",
            "--max-rate",
            "100",
            "--step-s",
            "1",
            "--p99-ms",
            "10000",
            "--format",
            "msgpack",
        ],
        &out("ramp"),
    );
    assert_correct(&ramp);
    assert!(!ramp["phases"].as_array().expect("phases").is_empty());

    let soak = run_loadtest(
        &[
            "soak",
            "--url",
            &url,
            "--dealers",
            "10",
            "--auctions",
            "5",
            "--rate",
            "100",
            "--duration-s",
            "1.5",
            "--sample-s",
            "0.5",
            "--server-pid",
            &pid,
        ],
        &out("soak"),
    );
    assert_correct(&soak);
    assert!(!soak["samples"].as_array().expect("samples").is_empty());

    let hot = run_loadtest(
        &[
            "hot-lot",
            "--url",
            &url,
            "--subscribers",
            "60",
            "--bidders",
            "4",
            "--bid-rate",
            "20",
            "--listing-duration-s",
            "2",
            "--war-extra-s",
            "0.5",
            "--close-wait-s",
            "10",
        ],
        &out("hot"),
    );
    assert_correct(&hot);
    assert_eq!(hot["fanout"]["closed_received"], 60, "{}", hot["fanout"]);
    // One timeline point per measured bid; the bids alone and the overlapped ones add up.
    let fo = &hot["fanout"];
    let points = fo["timeline"].as_array().expect("timeline").len() as u64;
    assert_eq!(
        Some(points),
        fo["ack_to_last_update"]["count"].as_u64(),
        "{fo}"
    );
    assert_eq!(
        fo["ack_to_last_update_alone"]["count"]
            .as_u64()
            .map(|n| n + fo["overlapped"].as_u64().unwrap_or(0)),
        Some(points),
        "{fo}"
    );

    let idle = run_loadtest(
        &[
            "idle",
            "--url",
            &url,
            "--connections",
            "50",
            "--hold-s",
            "1",
            "--server-pid",
            &pid,
        ],
        &out("idle"),
    );
    assert_eq!(idle["idle"]["still_open"], 50, "{}", idle["idle"]);

    // Stop the server gracefully, then check the acknowledged bids against the journal.
    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let _ = server.0.wait();
    let replay = Command::new(gavel_bin())
        .args(["replay", "--verify", "--data"])
        .arg(&data)
        .output()
        .expect("gavel replay");
    assert!(replay.status.success(), "replay --verify failed");
    let digests = dir.path().join("digests.txt");
    std::fs::write(&digests, &replay.stdout).expect("write digests");
    for name in ["steady", "hot"] {
        assert_verifies(name, &out(name), &digests);
    }
}

/// One second of `steady` (20 dealers over 10 auctions, no setup) against a server that
/// needs no fixture: echo, the durable echo, the baseline.
fn steady_one_second(addr: &str, rate: &str, extra: &[&str], out: &Path) -> serde_json::Value {
    let url = format!("ws://{addr}");
    let mut args = vec![
        "steady",
        "--url",
        &url,
        "--setup",
        "none",
        "--dealers",
        "20",
        "--auctions",
        "10",
        "--rate",
        rate,
        "--duration-s",
        "1",
    ];
    args.extend_from_slice(extra);
    run_loadtest(&args, out)
}

#[test]
fn steady_against_the_echo_server() {
    let mut cmd = Command::new(sibling("gavel-echo"));
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (_echo, addr) = start(cmd);
    let dir = tempfile::tempdir().expect("temp dir");
    let r = steady_one_second(&addr, "500", &[], &dir.path().join("echo.json"));
    assert_eq!(r["phases"][0]["unanswered"], 0);
    assert_eq!(r["phases"][0]["acks"], r["phases"][0]["sent"]);
    // Without --fanout it sends nothing but answers.
    assert_eq!(r["phases"][0]["other_msgs"], 0);
}

#[test]
fn the_durable_echo_with_fanout_updates_every_watcher() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_redis, port) = redis_server(dir.path());
    let mut cmd = Command::new(sibling("gavel-echo"));
    cmd.args(["--listen", "127.0.0.1:0", "--fanout", "--redis"])
        .arg(format!("redis://127.0.0.1:{port}/"));
    let (_echo, addr) = start(cmd);
    let r = steady_one_second(&addr, "500", &[], &dir.path().join("fanout-echo.json"));
    let phase = &r["phases"][0];
    assert_eq!(phase["unanswered"], 0);
    assert_eq!(phase["acks"], phase["sent"]);
    // Each bid updates its bidder and, once it has bid too, the auction's other dealer
    // (20 dealers over 10 auctions): more updates than bids proves the others got theirs.
    let sent = phase["sent"].as_u64().unwrap_or(0);
    let updates = phase["other_msgs"].as_u64().unwrap_or(0);
    assert!(
        sent > 0 && updates > sent && updates <= 2 * sent,
        "{updates} updates for {sent} bids"
    );
    assert!(redis_int(port, &["XLEN", "gavel-echo:log"]) >= 1);
}

/// A redis-server of our own on a free port, AOF everysec, in `dir`, accepting connections.
fn redis_server(dir: &Path) -> (Proc, u16) {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("redis-server not found: install it (apt-get install -y redis-server)");
    }
    let port = free_port();
    let redis = Proc(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (redis, port)
}

/// One command to Redis over RESP whose reply is an integer.
fn redis_int(port: u16, args: &[&str]) -> i64 {
    use std::io::{Read, Write};
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    s.write_all(req.as_bytes()).expect("send to redis");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read from redis");
    let reply = String::from_utf8_lossy(&buf[..n]);
    reply
        .strip_prefix(':')
        .and_then(|r| r.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

#[test]
fn steady_against_the_durable_echo_appends_before_answering() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_redis, port) = redis_server(dir.path());
    let mut cmd = Command::new(sibling("gavel-echo"));
    cmd.args(["--listen", "127.0.0.1:0", "--redis"])
        .arg(format!("redis://127.0.0.1:{port}/"));
    let (_echo, addr) = start(cmd);
    let r = steady_one_second(&addr, "500", &[], &dir.path().join("durable-echo.json"));
    assert_eq!(r["phases"][0]["unanswered"], 0);
    assert_eq!(r["phases"][0]["acks"], r["phases"][0]["sent"]);
    // Group commits: at least one entry, never more entries than bids.
    let entries = redis_int(port, &["XLEN", "gavel-echo:log"]);
    let sent = r["phases"][0]["sent"].as_i64().unwrap_or(0);
    assert!(
        entries >= 1 && entries <= sent,
        "{entries} stream entries for {sent} bids"
    );
}

#[test]
fn steady_against_the_redis_baseline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_redis, port) = redis_server(dir.path());
    let mut cmd = Command::new(sibling("gavel-baseline"));
    cmd.args(["--listen", "127.0.0.1:0", "--auctions", "10", "--redis"])
        .arg(format!("redis://127.0.0.1:{port}/"));
    let (_baseline, addr) = start(cmd);
    let r = steady_one_second(
        &addr,
        "300",
        &["--format", "msgpack"],
        &dir.path().join("baseline.json"),
    );
    assert_eq!(r["phases"][0]["unanswered"], 0);
    assert!(r["phases"][0]["accepted"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn the_fanout_floor_times_every_round() {
    // (server flags, client flags): the plain loop, tokio-tungstenite tasks, and those
    // sending JSON updates to a client that decodes them.
    let modes: [(&[&str], &[&str]); 3] = [
        (&[], &[]),
        (&["--tasks"], &[]),
        (&["--tasks", "--json"], &["--parse"]),
    ];
    for (serve, client) in modes {
        let mut cmd = Command::new(sibling("gavel-fanout-floor"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--connections",
            "50",
            "--rounds",
            "5",
            "--interval-ms",
            "20",
        ])
        .args(serve);
        let (_server, addr) = start(cmd);
        let o = Command::new(sibling("gavel-fanout-floor"))
            .args([
                "client",
                "--connect",
                &addr,
                "--connections",
                "50",
                "--rounds",
                "5",
            ])
            .args(client)
            .output()
            .expect("run the floor's client");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{serve:?} {client:?}: client failed: {stdout}"
        );
        assert!(
            stdout.contains("(n=5); 0 rounds incomplete"),
            "{serve:?} {client:?}: every round reached every connection: {stdout}"
        );
    }
}

#[test]
fn the_write_cost_reports_each_case() {
    // Both ends on core 0, which every machine has; the binary fails if the reader did not
    // get every byte written.
    let o = Command::new(sibling("gavel-fanout-floor"))
        .args([
            "write-cost",
            "--writes",
            "200",
            "--writer-cpu",
            "0",
            "--other-cpu",
            "0",
            "--space-us",
            "5",
        ])
        .output()
        .expect("run the floor's write-cost");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "write-cost failed: {stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cases = stdout.lines().filter(|l| l.ends_with(" µs")).count();
    assert_eq!(cases, 4, "one line per case: {stdout}");
}

#[test]
fn the_write_cost_refuses_a_core_the_machine_lacks_instead_of_waiting() {
    // Core 1023 is under the affinity mask's size and on no machine this runs on. The
    // reader used to pin itself before connecting, so a refused core left the writer's
    // `accept` waiting for ever.
    let mut child = Command::new(sibling("gavel-fanout-floor"))
        .args(["write-cost", "--writes", "10", "--other-cpu", "1023"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the floor's write-cost");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for write-cost") {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("write-cost still waiting after 30 s for a core that does not exist");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "a missing core is an error: {stderr}");
    assert!(stderr.contains("cannot run on core 1023"), "{stderr}");
}

/// Cluster mode: two `gavel node`s over two markets on one Redis; accounts made at a front
/// door, each dealer bidding on its home market's server. The run passes the rules check
/// with lots in both markets, and its acknowledged bids agree with `gavel replay --verify
/// --all-markets`, market by market.
#[test]
fn steady_across_a_clusters_markets_then_every_markets_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_redis, port) = redis_server(dir.path());
    let redis_url = format!("redis://127.0.0.1:{port}/");
    // config/default.toml's cities of the other two markets go to north.
    let config = dir.path().join("cluster.toml");
    let mut text = String::from(
        "[cluster]\nmarkets = [\"north\", \"east\"]\ndefault_market = \"north\"\n\n[cluster.cities]\n",
    );
    for city in [
        "Guangzhou",
        "Shenzhen",
        "Xiamen",
        "Chengdu",
        "Chongqing",
        "Xi'an",
        "Kunming",
    ] {
        text += &format!("\"{city}\" = \"north\"\n");
    }
    std::fs::write(&config, text).expect("write the config");
    let node = |id: &str| {
        let mut cmd = Command::new(gavel_bin());
        cmd.args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            id,
            "--config",
        ])
        .arg(&config)
        .args(["--redis", &redis_url])
        .env("GAVEL_ADMIN_TOKEN", "smoke-admin-token")
        .env("GAVEL_GATEWAY__BID_RATE_PER_S", "100000")
        .env("GAVEL_GATEWAY__BID_BURST", "100000")
        .env("GAVEL_AUCTION__MIN_DURATION_S", "1");
        start(cmd)
    };
    let (_a, front) = node("a");
    let (_b, _) = node("b");
    // Both nodes in the map, one market each, before the fixture is made.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let map = http_get(&front, "/v1/cluster");
        let m: serde_json::Value = serde_json::from_str(&map).unwrap_or_default();
        let owners: Vec<&str> = m["markets"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["node"].as_str()).collect())
            .unwrap_or_default();
        if owners.len() == 2 && owners[0] != owners[1] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not balance: {map}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = dir.path().join("cluster.json");
    let front_url = format!("http://{front}");
    let r = run_loadtest(
        &[
            "steady",
            "--front",
            &front_url,
            "--dealers",
            "20",
            "--auctions",
            "10",
            "--rate",
            "200",
            "--duration-s",
            "1",
        ],
        &out,
    );
    assert_correct(&r);
    let lots = r["correctness"]["lots"].as_array().expect("lots");
    for market in ["north", "east"] {
        assert_eq!(
            lots.iter().filter(|l| l["market"] == market).count(),
            5,
            "lots of {market}: {lots:?}"
        );
    }
    let replay = Command::new(gavel_bin())
        .args(["replay", "--verify", "--all-markets", "--config"])
        .arg(&config)
        .args(["--redis", &redis_url])
        .output()
        .expect("run gavel replay");
    assert!(
        replay.status.success(),
        "replay --verify --all-markets: {}",
        String::from_utf8_lossy(&replay.stdout)
    );
    let digests = dir.path().join("cluster.digests");
    std::fs::write(&digests, &replay.stdout).expect("write digests");
    assert_verifies("verify", &out, &digests);
}

/// The body of `GET path` from `addr` (HTTP/1.0, so the server closes when done).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes());
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()
}
