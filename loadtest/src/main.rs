//! `gavel-loadtest`: parse the command line and a scenario's config file, run it, print the
//! human summary and write the JSON report.
//!
//! Every setting can come from the subcommand's TOML file (`--config loadtest/steady.toml`;
//! keys are the flag names with `_` for `-`) or a flag; a flag wins over the file, the file
//! over the built-in default.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use gavel_loadtest::proto::Format;
use gavel_loadtest::scenario::{self, Common, HotLot, Load, Ramp, Report, Soak};
use gavel_loadtest::setup::SetupMode;
use gavel_loadtest::{cluster, crossnode, probe, run};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "gavel-loadtest",
    version,
    about = "Load scenarios and correctness checks for servers of the gavel v1 protocol"
)]
struct Cli {
    /// Runtime worker threads (default: the CPUs this process may run on, so
    /// `taskset -c 1` gives one).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N dealers over M auctions at a fixed offered rate (open loop).
    Steady(SteadyArgs),
    /// Raise the rate in steps until p99 passes a threshold or results fall behind.
    Ramp(RampArgs),
    /// Thousands of subscribers on one auction, a bid war into soft close: fan-out latency.
    HotLot(HotLotArgs),
    /// A fixed rate for a long time, sampling the server's RSS and sockets.
    Soak(SoakArgs),
    /// Hold many idle dealer connections and read the server's RSS.
    Idle(IdleArgs),
    /// A cluster's failover prober: bid one at a time in every market, re-resolving on
    /// any disconnect or `unavailable`, logging each answer's time and node.
    Probe(ProbeArgs),
    /// A cluster's cross-node cost: resolve at a front door + connect + first bid, against
    /// connect + first bid on the owner directly.
    Crossnode(CrossArgs),
    /// Compare a run's report with `gavel replay --verify` output.
    Verify {
        /// The JSON report of a setup=api run.
        #[arg(long)]
        report: PathBuf,
        /// The replay output (digest lines).
        #[arg(long)]
        digests: PathBuf,
        /// The server was killed during the run: bids unanswered at the kill may or may
        /// not be in the journal; every acknowledged one must be.
        #[arg(long)]
        after_crash: bool,
    },
}

#[derive(Args)]
struct ProbeArgs {
    /// A front door, http://host:port; give every node's (tried in turn when one is gone).
    #[arg(long = "front", required = true)]
    fronts: Vec<String>,
    /// Admin token.
    #[arg(long, env = "GAVEL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Pause after each answer before a market's next bid, ms.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// How long to probe, s.
    #[arg(long)]
    duration_s: f64,
    /// A bid unanswered this long makes the market be resolved again, ms.
    #[arg(long, default_value_t = 1000)]
    answer_wait_ms: u64,
    /// The event log.
    #[arg(long)]
    log: PathBuf,
    /// Start price, fen.
    #[arg(long, default_value_t = 5_000_000)]
    start_price: u64,
    /// Each dealer's deposit, fen.
    #[arg(long, default_value_t = 100_000_000_000)]
    deposit: u64,
}

#[derive(Args)]
struct CrossArgs {
    /// The front door of the node the client reached, http://host:port; a market another
    /// node serves is chosen.
    #[arg(long)]
    front: String,
    /// Admin token.
    #[arg(long, env = "GAVEL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Trials of each kind.
    #[arg(long, default_value_t = 1000)]
    trials: usize,
    /// Pause between trials, ms.
    #[arg(long, default_value_t = 2)]
    pause_ms: u64,
    /// JSON report path.
    #[arg(long, default_value = "loadtest-crossnode.json")]
    out: String,
}

/// Settings of every scenario.
#[derive(Args, Serialize, Default)]
struct CommonArgs {
    /// The scenario's TOML config file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Server, ws://host:port [default ws://127.0.0.1:8080].
    #[arg(long)]
    url: Option<String>,
    /// json or msgpack [default json].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// api (create dealers and listings via the HTTP API) or none (tokens t0.., auctions
    /// A1..AM, for the baseline and echo servers) [default api].
    #[arg(long, value_enum)]
    setup: Option<SetupMode>,
    /// Admin token for setup=api.
    #[arg(long, env = "GAVEL_ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip)]
    admin_token: Option<String>,
    /// JSON report path [default loadtest-<scenario>.json].
    #[arg(long)]
    out: Option<String>,
    /// The server's pid: its RSS, sockets and CPU go into the report.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's Redis's pid: its CPU goes into the report.
    #[arg(long)]
    redis_pid: Option<u32>,
    /// A name for the run in reports.
    #[arg(long)]
    label: Option<String>,
    /// No progress bars.
    #[arg(long)]
    #[serde(skip)]
    quiet: bool,
    /// Start price, fen [default 5000000].
    #[arg(long)]
    start_price: Option<u64>,
    /// Reserve, fen [default 6000000].
    #[arg(long)]
    reserve: Option<u64>,
    /// Each dealer's deposit, fen [default 100000000000].
    #[arg(long)]
    deposit: Option<u64>,
    /// Seconds to wait for trailing results after a phase [default 5].
    #[arg(long)]
    drain_s: Option<f64>,
    /// A gavel cluster's front door, http://host:port: accounts are registered there,
    /// lots listed on each market's server, each dealer bids in its home market (markets
    /// round-robin); `--url` is then unused. `--auctions` must be a multiple of the markets.
    #[arg(long)]
    front: Option<String>,
    /// Comma-separated pids whose CPU each phase sums (every node and the Redis): the
    /// report's `watched_cpu_s` and `cpu_us_per_accepted`.
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpu_pids: Vec<u32>,
}

#[derive(Args, Serialize)]
struct LoadArgs {
    /// Dealers, one connection each [default 400].
    #[arg(long)]
    dealers: Option<usize>,
    /// Auctions [default 200].
    #[arg(long)]
    auctions: Option<usize>,
    /// Auctions each dealer bids on [default 1].
    #[arg(long)]
    auctions_per_dealer: Option<usize>,
    /// Share of bids with a proxy max [default 0.3].
    #[arg(long)]
    proxy_ratio: Option<f64>,
    /// Listing length, s; must outlast the run [default 3600].
    #[arg(long)]
    listing_duration_s: Option<u64>,
}

#[derive(Args, Serialize)]
struct SteadyArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    load: LoadArgs,
    /// Offered bids/s [default 2000].
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds [default 20].
    #[arg(long)]
    duration_s: Option<f64>,
}

#[derive(Args, Serialize)]
struct SoakArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    load: LoadArgs,
    /// Offered bids/s [default 2000].
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds [default 300].
    #[arg(long)]
    duration_s: Option<f64>,
    /// Seconds between server samples [default 5].
    #[arg(long)]
    sample_s: Option<f64>,
    /// Ack latency is also reported per window of this many seconds, each marked by
    /// whether a server snapshot ran in it (from /metrics) [default 10].
    #[arg(long)]
    window_s: Option<f64>,
    /// Before the measured phase, the same dealers bid at this rate [default 0] …
    #[arg(long)]
    prefill_rate: Option<f64>,
    /// … for this many seconds, to grow the server's book first [default 0].
    #[arg(long)]
    prefill_s: Option<f64>,
}

#[derive(Args, Serialize)]
struct RampArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    load: LoadArgs,
    /// First step's rate [default 5000].
    #[arg(long)]
    start_rate: Option<f64>,
    /// Rate multiplier per step [default 1.25].
    #[arg(long)]
    factor: Option<f64>,
    /// Highest rate tried [default 400000].
    #[arg(long)]
    max_rate: Option<f64>,
    /// Step length, s [default 5].
    #[arg(long)]
    step_s: Option<f64>,
    /// A step fails when p99 ack latency exceeds this, ms [default 50].
    #[arg(long)]
    p99_ms: Option<f64>,
    /// Runs of a failed step before the ramp stops [default 1].
    #[arg(long)]
    retries: Option<u32>,
    /// Steps between the highest rate held and the lowest failed, once the climb has
    /// stopped, each halving the gap [default 3].
    #[arg(long)]
    refine: Option<u32>,
}

#[derive(Args, Serialize)]
struct HotLotArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonArgs,
    /// Subscribers [default 10000].
    #[arg(long)]
    subscribers: Option<usize>,
    /// Bidders among them [default 20].
    #[arg(long)]
    bidders: Option<usize>,
    /// War bids per second [default 10].
    #[arg(long)]
    bid_rate: Option<f64>,
    /// Listing length, s [default 60].
    #[arg(long)]
    listing_duration_s: Option<u64>,
    /// Bid this long past the original close, s [default 10].
    #[arg(long)]
    war_extra_s: Option<f64>,
    /// Most bids [default 1000].
    #[arg(long)]
    max_bids: Option<u64>,
    /// Wait this long for `closed`, s [default 60].
    #[arg(long)]
    close_wait_s: Option<f64>,
    /// Share of proxy bids [default 0.3].
    #[arg(long)]
    proxy_ratio: Option<f64>,
}

#[derive(Args, Serialize)]
struct IdleArgs {
    #[command(flatten)]
    #[serde(flatten)]
    common: CommonArgs,
    /// Connections, one dealer each [default 10000].
    #[arg(long)]
    connections: Option<usize>,
    /// Seconds to hold them [default 10].
    #[arg(long)]
    hold_s: Option<f64>,
    /// Subscribe each to one auction [default true].
    #[arg(long)]
    subscribe: Option<bool>,
}

/// A config file overlaid by the flags that were given.
struct Settings(Map<String, Value>);

impl Settings {
    fn load<T: Serialize>(config: Option<&PathBuf>, flags: &T) -> anyhow::Result<Self> {
        let flags = match serde_json::to_value(flags)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut base = Map::new();
        if let Some(p) = config {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let t: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
            let known: Vec<&String> = flags.keys().collect();
            let unknown: Vec<&String> = t
                .keys()
                .filter(|k| !known.contains(k) && k.as_str() != "quiet")
                .collect();
            if !unknown.is_empty() {
                bail!("{}: unknown keys {unknown:?}", p.display());
            }
            if let Value::Object(m) = serde_json::to_value(t)? {
                base = m;
            }
        }
        for (k, v) in flags {
            if !v.is_null() {
                base.insert(k, v);
            }
        }
        Ok(Self(base))
    }

    fn f64(&self, k: &str, d: f64) -> f64 {
        self.0.get(k).and_then(Value::as_f64).unwrap_or(d)
    }
    fn u64(&self, k: &str, d: u64) -> u64 {
        self.0.get(k).and_then(Value::as_u64).unwrap_or(d)
    }
    fn usize(&self, k: &str, d: usize) -> usize {
        self.u64(k, d as u64) as usize
    }
    fn bool(&self, k: &str, d: bool) -> bool {
        self.0.get(k).and_then(Value::as_bool).unwrap_or(d)
    }
    fn str(&self, k: &str, d: &str) -> String {
        self.0
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(d)
            .to_owned()
    }
    fn parse<T: serde::de::DeserializeOwned>(&self, k: &str, d: T) -> T {
        self.0
            .get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or(d)
    }

    fn common(&self, scenario: &str, c: &CommonArgs) -> Common {
        Common {
            url: self.str("url", "ws://127.0.0.1:8080"),
            format: self.parse("format", Format::Json),
            setup: self.parse("setup", SetupMode::Api),
            admin_token: c.admin_token.clone().unwrap_or_default(),
            out: self.str("out", &format!("loadtest-{scenario}.json")),
            server_pid: self
                .0
                .get("server_pid")
                .and_then(Value::as_u64)
                .map(|p| p as u32),
            redis_pid: self
                .0
                .get("redis_pid")
                .and_then(Value::as_u64)
                .map(|p| p as u32),
            label: self.str("label", scenario),
            quiet: self.bool("quiet", false) || c.quiet,
            start_price: self.u64("start_price", 5_000_000),
            reserve: self.u64("reserve", 6_000_000),
            deposit: self.u64("deposit", 100_000_000_000),
            drain_s: self.f64("drain_s", 5.0),
            front: self
                .0
                .get("front")
                .and_then(Value::as_str)
                .map(gavel_loadtest::cluster::authority),
            cpu_pids: self.parse("cpu_pids", Vec::new()),
        }
    }

    fn load_shape(&self) -> Load {
        Load {
            dealers: self.usize("dealers", 400),
            auctions: self.usize("auctions", 200),
            auctions_per_dealer: self.usize("auctions_per_dealer", 1),
            proxy_ratio: self.f64("proxy_ratio", 0.3),
            listing_duration_s: self.u64("listing_duration_s", 3600),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(w) = cli.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = match rt.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gavel-loadtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gavel-loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    let report: Report = match cmd {
        Cmd::Verify {
            report,
            digests,
            after_crash,
        } => {
            let r: Value = serde_json::from_str(
                &std::fs::read_to_string(&report)
                    .with_context(|| format!("reading {}", report.display()))?,
            )?;
            let d = std::fs::read_to_string(&digests)
                .with_context(|| format!("reading {}", digests.display()))?;
            let problems = run::verify_digests(&r, &d, after_crash)?;
            let lots = r["correctness"]["lots"].as_array().map_or(0, Vec::len);
            for p in &problems {
                println!("MISMATCH {p}");
            }
            println!(
                "journal check: {lots} auctions of the run compared with the replay digests: {}",
                if problems.is_empty() {
                    "all agree with the acknowledged bids"
                } else {
                    "DIFFERENCES FOUND"
                }
            );
            return Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Cmd::Probe(a) => {
            let o = probe::ProbeOpts {
                fronts: a.fronts.iter().map(|f| cluster::authority(f)).collect(),
                admin_token: a.admin_token,
                interval: Duration::from_millis(a.interval_ms),
                duration: Duration::from_secs_f64(a.duration_s),
                answer_wait: Duration::from_millis(a.answer_wait_ms),
                log: a.log,
                start_price: a.start_price,
                deposit: a.deposit,
            };
            let counts = probe::probe(&o).await?;
            for (m, c) in &counts {
                println!(
                    "market {m}: {} accepted, resolved {} times, other {:?}",
                    c.accepted, c.resolves, c.other
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Crossnode(a) => {
            let o = crossnode::CrossOpts {
                front: cluster::authority(&a.front),
                admin_token: a.admin_token,
                trials: a.trials,
                pause: Duration::from_millis(a.pause_ms),
                start_price: 5_000_000,
            };
            let r = crossnode::crossnode(&o).await?;
            print!("{}", r.human());
            std::fs::write(&a.out, serde_json::to_vec_pretty(&r)?)
                .with_context(|| format!("writing {}", a.out))?;
            println!("report: {}", a.out);
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Steady(a) => {
            let s = Settings::load(a.common.config.as_ref(), &a)?;
            let c = s.common("steady", &a.common);
            scenario::steady(
                &c,
                &s.load_shape(),
                s.f64("rate", 2000.0),
                s.f64("duration_s", 20.0),
            )
            .await?
        }
        Cmd::Soak(a) => {
            let s = Settings::load(a.common.config.as_ref(), &a)?;
            let c = s.common("soak", &a.common);
            let k = Soak {
                rate: s.f64("rate", 2000.0),
                duration_s: s.f64("duration_s", 300.0),
                sample_s: s.f64("sample_s", 5.0),
                window_s: s.f64("window_s", 10.0),
                prefill_rate: s.f64("prefill_rate", 0.0),
                prefill_s: s.f64("prefill_s", 0.0),
            };
            scenario::soak(&c, &s.load_shape(), &k).await?
        }
        Cmd::Ramp(a) => {
            let s = Settings::load(a.common.config.as_ref(), &a)?;
            let c = s.common("ramp", &a.common);
            let rp = Ramp {
                start_rate: s.f64("start_rate", 5000.0),
                factor: s.f64("factor", 1.25),
                max_rate: s.f64("max_rate", 400_000.0),
                step_s: s.f64("step_s", 5.0),
                p99_ms: s.f64("p99_ms", 50.0),
                retries: s.u64("retries", 1) as u32,
                refine: s.u64("refine", 3) as u32,
            };
            scenario::ramp(&c, &s.load_shape(), &rp).await?
        }
        Cmd::HotLot(a) => {
            let s = Settings::load(a.common.config.as_ref(), &a)?;
            let c = s.common("hot-lot", &a.common);
            let h = HotLot {
                subscribers: s.usize("subscribers", 10_000),
                bidders: s.usize("bidders", 20),
                bid_rate: s.f64("bid_rate", 10.0),
                listing_duration_s: s.u64("listing_duration_s", 60),
                war_extra_s: s.f64("war_extra_s", 10.0),
                max_bids: s.u64("max_bids", 1000),
                close_wait_s: s.f64("close_wait_s", 60.0),
                proxy_ratio: s.f64("proxy_ratio", 0.3),
            };
            scenario::hot_lot(&c, &h).await?
        }
        Cmd::Idle(a) => {
            let s = Settings::load(a.common.config.as_ref(), &a)?;
            let c = s.common("idle", &a.common);
            scenario::idle(
                &c,
                s.usize("connections", 10_000),
                s.f64("hold_s", 10.0),
                s.bool("subscribe", true),
            )
            .await?
        }
    };
    print!("{}", report.human());
    let path = report.common.out.clone();
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {path}"))?;
    println!("report: {path}");
    // A failed correctness check fails the command, so scripts and CI notice.
    Ok(if report.correctness.checked && !report.correctness.ok {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
