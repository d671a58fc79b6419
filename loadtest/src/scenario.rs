//! The scenarios: steady, ramp, soak, hot-lot and idle, each from resolved parameters to a
//! [`Report`].

use crate::conn::{self, Cmd};
use crate::model::increment;
use crate::run::{self, check, Correctness, PhaseReport, Session, Target};
use crate::setup::{self, SetupMode, SetupOpts};
use crate::stats::{self, new_hist, record, CpuMeter, Latency, Usage};
use crate::windows::{self, SnapshotCounters, Windows};
use rand::Rng;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings every scenario has.
#[derive(Clone, Debug, Serialize)]
pub struct Common {
    /// `ws://host:port`.
    pub url: String,
    /// json or msgpack.
    pub format: crate::proto::Format,
    /// api or none.
    pub setup: SetupMode,
    /// Admin token for setup=api.
    #[serde(skip)]
    pub admin_token: String,
    /// Where the JSON report goes.
    pub out: String,
    /// The server's pid, for RSS, sockets and CPU.
    pub server_pid: Option<u32>,
    /// Its Redis's pid, for CPU.
    pub redis_pid: Option<u32>,
    /// A name for this run in reports (e.g. "gavel-always").
    pub label: String,
    /// No progress bars.
    pub quiet: bool,
    /// Start price, fen.
    pub start_price: u64,
    /// Reserve, fen.
    pub reserve: u64,
    /// Each dealer's deposit, fen.
    pub deposit: u64,
    /// How long to wait for the last results after a phase, s.
    pub drain_s: f64,
    /// A cluster's front door (`host:port`): the fixture is made through it and each
    /// dealer bids on its home market's server (`url` is then unused).
    pub front: Option<String>,
    /// Processes whose CPU (utime + stime) each phase sums: every gavel node and its
    /// Redis, for CPU per bid.
    pub cpu_pids: Vec<u32>,
}

/// A fan-out measurement (hot-lot).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Fanout {
    /// Subscribers.
    pub subscribers: usize,
    /// Accepted bids measured.
    pub bids: u64,
    /// From a bid's ack (its bidder receiving `bid_result`) to the last subscriber's
    /// `update` with that seq or a later one.
    pub ack_to_last_update: Latency,
    /// From the bid's send to the last subscriber's `update`.
    pub send_to_last_update: Latency,
    /// Bids acknowledged while the previous bid's update was still on its way to some
    /// subscriber: their fan-out queued behind another one, so their figure can hold two
    /// fan-outs' worth of writing. With `ack_to_last_update_alone`, tells a tail made of
    /// queued fan-outs from one made of slow single ones.
    pub overlapped: u64,
    /// `ack_to_last_update` over the bids that did not overlap: one fan-out on its own.
    pub ack_to_last_update_alone: Latency,
    /// Every measured bid in the order of its ack: when (ms since the first ack) and its
    /// ack → last update (ms), to line the slow ones up with what else happened then.
    pub timeline: Vec<FanoutPoint>,
    /// (bid, subscriber) pairs where the subscriber never saw the bid's seq or a later one.
    pub missing: u64,
    /// `closed` messages received / subscribers.
    pub closed_received: usize,
    /// Outcome the subscribers were told.
    pub outcome: Option<String>,
    /// Connections told `won: true` (must be the rules' leader, and only it).
    pub won_by: Vec<String>,
}

/// One bid's fan-out, for [`Fanout::timeline`].
#[derive(Debug, Clone, Serialize, Default)]
pub struct FanoutPoint {
    /// Its ack, ms after the first measured bid's ack.
    pub at_ms: f64,
    /// From its ack to the last subscriber's update, ms.
    pub ms: f64,
    /// Whether it was acknowledged before the previous bid's fan-out had finished.
    pub overlapped: bool,
}

/// A sample of the server process.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the phase started.
    pub t_s: f64,
    /// VmRSS, KiB.
    pub rss_kib: Option<u64>,
    /// Open sockets.
    pub sockets: Option<u64>,
}

/// Idle-connection memory.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Idle {
    /// Connections held open.
    pub connections: usize,
    /// Server RSS before connecting, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every connection open (at the end of the hold), KiB.
    pub rss_after_kib: Option<u64>,
    /// Highest RSS seen, KiB.
    pub rss_max_kib: Option<u64>,
    /// (after − before) / connections, bytes.
    pub bytes_per_connection: Option<f64>,
    /// Server sockets at the end of the hold.
    pub sockets: Option<u64>,
    /// Connections still open at the end.
    pub still_open: usize,
    /// Errors by kind.
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// A scenario's report (written as JSON; summarised for people by [`Report::human`]).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Run label.
    pub label: String,
    /// Common settings.
    pub common: Common,
    /// Scenario settings as resolved.
    pub params: serde_json::Value,
    /// Load average (1, 5, 15 min) before and after: how busy the machine was.
    pub loadavg_before: String,
    /// After.
    pub loadavg_after: String,
    /// Phases (ramp: one per step).
    pub phases: Vec<PhaseReport>,
    /// Ramp: the highest offered rate sustained with p99 under the threshold.
    pub max_sustained_offered: Option<f64>,
    /// Ramp: the result rate achieved at that step.
    pub max_sustained_ack_rate: Option<f64>,
    /// Ramp: the accepted-bid rate at that step.
    pub max_sustained_accepted_rate: Option<f64>,
    /// Hot-lot.
    pub fanout: Option<Fanout>,
    /// Soak / idle: server samples.
    pub samples: Vec<Sample>,
    /// Soak: ack latency window by window, marked by the server's snapshots.
    pub windows: Option<Windows>,
    /// Idle.
    pub idle: Option<Idle>,
    /// The correctness check.
    pub correctness: Correctness,
    /// The generator's CPU over the whole run, cores.
    pub generator_cpu_cores: f64,
}

impl Report {
    fn new(scenario: &str, c: &Common, params: serde_json::Value) -> Self {
        Self {
            scenario: scenario.into(),
            label: c.label.clone(),
            common: c.clone(),
            params,
            loadavg_before: stats::loadavg(),
            loadavg_after: String::new(),
            phases: Vec::new(),
            max_sustained_offered: None,
            max_sustained_ack_rate: None,
            max_sustained_accepted_rate: None,
            fanout: None,
            samples: Vec::new(),
            windows: None,
            idle: None,
            correctness: Correctness::default(),
            generator_cpu_cores: 0.0,
        }
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let mut s = format!(
            "== {} [{}] against {} ({:?}); load average before {} / after {}\n",
            self.scenario,
            self.label,
            self.common.url,
            self.common.format,
            self.loadavg_before,
            self.loadavg_after
        );
        for (i, p) in self.phases.iter().enumerate() {
            s += &format!("phase {}:\n{}", i + 1, p.lines());
        }
        if let Some(r) = self.max_sustained_offered {
            s += &format!(
                "highest rate sustained: offered {:.0}/s, results {:.0}/s, accepted {:.0}/s\n",
                r,
                self.max_sustained_ack_rate.unwrap_or(0.0),
                self.max_sustained_accepted_rate.unwrap_or(0.0)
            );
        } else if self.scenario == "ramp" {
            s += "highest rate sustained: none (the first step already failed)\n";
        }
        if let Some(f) = &self.fanout {
            s += &format!(
                "fan-out to {} subscribers over {} bids:\n  ack → last update   {}\n  send → last update  {}\n  {} bids acked while the previous bid's fan-out ran; the others alone: {}\n  missing {}; closed received {}; outcome {:?}; won by {:?}\n",
                f.subscribers,
                f.bids,
                f.ack_to_last_update.line(),
                f.send_to_last_update.line(),
                f.overlapped,
                f.ack_to_last_update_alone.line(),
                f.missing,
                f.closed_received,
                f.outcome,
                f.won_by
            );
        }
        if let Some(i) = &self.idle {
            s += &format!(
                "idle: {} connections ({} still open, errors {:?}); server RSS {} → {} MiB (max {}); {} bytes/connection; {} sockets\n",
                i.connections,
                i.still_open,
                i.errors,
                mib(i.rss_before_kib),
                mib(i.rss_after_kib),
                mib(i.rss_max_kib),
                i.bytes_per_connection.map_or("?".into(), |b| format!("{b:.0}")),
                i.sockets.map_or("?".into(), |n| n.to_string())
            );
        }
        if !self.samples.is_empty() && self.idle.is_none() {
            let rss: Vec<u64> = self.samples.iter().filter_map(|x| x.rss_kib).collect();
            if let (Some(first), Some(last), Some(max)) =
                (rss.first(), rss.last(), rss.iter().max())
            {
                s += &format!(
                    "server RSS over {} samples: first {:.1} MiB, last {:.1} MiB, max {:.1} MiB; sockets last {}\n",
                    rss.len(),
                    *first as f64 / 1024.0,
                    *last as f64 / 1024.0,
                    *max as f64 / 1024.0,
                    self.samples
                        .last()
                        .and_then(|x| x.sockets)
                        .map_or("?".into(), |n| n.to_string())
                );
            }
        }
        if let Some(w) = &self.windows {
            s += &w.lines();
        }
        s += &self.correctness.lines();
        s += &format!(
            "generator CPU over the run: {:.2} cores\n",
            self.generator_cpu_cores
        );
        s
    }
}

impl Common {
    fn observe(&self) -> run::Observe {
        run::Observe {
            server_pid: self.server_pid,
            redis_pid: self.redis_pid,
            quiet: self.quiet,
            cpu_pids: self.cpu_pids.clone(),
        }
    }
}

fn mib(k: Option<u64>) -> String {
    k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn setup_opts(c: &Common, dealers: usize, auctions: usize, duration_s: u64) -> SetupOpts {
    let target = Target::parse(&c.url, c.format).map(|t| t.authority);
    SetupOpts {
        mode: c.setup,
        authority: target.unwrap_or_default(),
        admin_token: c.admin_token.clone(),
        dealers,
        auctions,
        start_price: c.start_price,
        reserve: c.reserve,
        duration_s,
        deposit: c.deposit,
    }
}

/// steady / soak / ramp share this shape.
#[derive(Clone, Debug, Serialize)]
pub struct Load {
    /// Dealers (one connection each).
    pub dealers: usize,
    /// Auctions.
    pub auctions: usize,
    /// Auctions each dealer bids on.
    pub auctions_per_dealer: usize,
    /// Share of bids with a proxy max.
    pub proxy_ratio: f64,
    /// Listing length, s (must outlast the run).
    pub listing_duration_s: u64,
}

async fn open_load(c: &Common, l: &Load) -> anyhow::Result<(Session, Vec<Arc<Vec<u32>>>)> {
    if let Some(front) = &c.front {
        if c.setup != SetupMode::Api {
            anyhow::bail!("--front needs setup=api: accounts are made at the front door");
        }
        let mut opts = setup_opts(c, l.dealers, l.auctions, l.listing_duration_s);
        opts.authority = front.clone();
        let fx = crate::cluster::make(&opts).await?;
        let markets = fx
            .auctions
            .iter()
            .map(|a| usize::from(a.scope) + 1)
            .max()
            .unwrap_or(1);
        let target = Target::parse(front, c.format)?;
        let all: Vec<usize> = (0..fx.dealers.len()).collect();
        let s = Session::open(target, fx, c.setup, &all, l.proxy_ratio, false, c.quiet).await?;
        let a = crate::cluster::assign(l.dealers, l.auctions, l.auctions_per_dealer, markets);
        return Ok((s, a));
    }
    let fx = setup::make(&setup_opts(c, l.dealers, l.auctions, l.listing_duration_s)).await?;
    let target = Target::parse(&c.url, c.format)?;
    let all: Vec<usize> = (0..fx.dealers.len()).collect();
    let s = Session::open(target, fx, c.setup, &all, l.proxy_ratio, false, c.quiet).await?;
    let a = run::assign(l.dealers, l.auctions, l.auctions_per_dealer);
    Ok((s, a))
}

/// `steady`: one phase at a fixed offered rate.
pub async fn steady(c: &Common, l: &Load, rate: f64, duration_s: f64) -> anyhow::Result<Report> {
    let mut r = Report::new(
        "steady",
        c,
        serde_json::json!({"load": l, "rate": rate, "duration_s": duration_s}),
    );
    let (s, a) = open_load(c, l).await?;
    let cpu = CpuMeter::start();
    let p = run::run_phase(
        &s,
        &a,
        rate,
        Duration::from_secs_f64(duration_s),
        Duration::from_secs_f64(c.drain_s),
        c.observe(),
    )
    .await;
    r.phases.push(p);
    r.generator_cpu_cores = cpu.cores();
    r.correctness = check(&s, Duration::from_millis(500)).await;
    s.close();
    r.loadavg_after = stats::loadavg();
    Ok(r)
}

/// `soak` settings.
#[derive(Clone, Debug, Serialize)]
pub struct Soak {
    /// Offered bids/s.
    pub rate: f64,
    /// Length, s.
    pub duration_s: f64,
    /// Seconds between samples of the server's RSS and sockets.
    pub sample_s: f64,
    /// Ack latency is reported per window of this many seconds as well.
    pub window_s: f64,
    /// Before the measured phase, the same dealers bid at this rate …
    pub prefill_rate: f64,
    /// … for this long (0: no prefill), so the server's book is large when it begins.
    pub prefill_s: f64,
}

/// `soak`: one long phase (after an optional prefill by the same dealers), sampling the
/// server's RSS and sockets, with its ack latency window by window.
pub async fn soak(c: &Common, l: &Load, k: &Soak) -> anyhow::Result<Report> {
    let mut r = Report::new("soak", c, serde_json::json!({"load": l, "soak": k}));
    let (s, a) = open_load(c, l).await?;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = c.server_pid.map(|pid| {
        let (samples, stop) = (samples.clone(), stop.clone());
        let every = Duration::from_secs_f64(k.sample_s.max(0.1));
        tokio::spawn(async move {
            let t0 = Instant::now();
            let sample = || Sample {
                t_s: t0.elapsed().as_secs_f64(),
                rss_kib: stats::rss_kib(pid),
                sockets: stats::sockets(pid),
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sample());
                tokio::time::sleep(every).await;
            }
            // The last one as the run ends, after every result came in.
            samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sample());
        })
    });
    let cpu = CpuMeter::start();
    let phase = |rate: f64, secs: f64| {
        run::run_phase(
            &s,
            &a,
            rate,
            Duration::from_secs_f64(secs),
            Duration::from_secs_f64(c.drain_s),
            c.observe(),
        )
    };
    if k.prefill_s > 0.0 && k.prefill_rate > 0.0 {
        r.phases.push(phase(k.prefill_rate, k.prefill_s).await);
    }
    let measured_from = s.world.now_ns();
    let snapshots = watch_snapshots(s.world.clone(), s.target.authority.clone());
    let p = phase(k.rate, k.duration_s).await;
    let counters = snapshots.finish().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(h) = sampler {
        let _ = h.await;
    }
    r.samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let mut bids = due_and_answered(&s);
    bids.retain(|b| b.0 >= measured_from);
    r.windows = Some(windows::windows(
        &bids,
        (k.window_s.max(0.001) * 1e9) as u64,
        &counters,
    ));
    r.phases.push(p);
    r.generator_cpu_cores = cpu.cores();
    r.correctness = check(&s, Duration::from_millis(500)).await;
    s.close();
    r.loadavg_after = stats::loadavg();
    Ok(r)
}

/// Every bid of the session: when it was due and when its result came, if it did.
fn due_and_answered(s: &Session) -> Vec<(u64, Option<u64>)> {
    let mut out = Vec::new();
    for c in &s.conns {
        let b = c.book();
        out.extend(
            b.sent
                .iter()
                .zip(&b.answers)
                .map(|(x, a)| (x.sched_ns, a.as_ref().map(|a| a.at_ns))),
        );
    }
    out
}

/// How often the snapshot counters are read: the margin around each marked window.
const SNAPSHOT_SAMPLE: Duration = Duration::from_secs(1);

/// Reads the server's snapshot counters every [`SNAPSHOT_SAMPLE`] until finished.
struct SnapshotWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<SnapshotCounters>>,
}

fn watch_snapshots(world: Arc<conn::World>, authority: String) -> SnapshotWatch {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut http = None;
        loop {
            // The last reading comes after `stop`, so it closes the run.
            let last = stopping.load(std::sync::atomic::Ordering::Relaxed);
            if http.is_none() {
                http = crate::http::Http::connect(&authority).await.ok();
            }
            if let Some(h) = http.as_mut() {
                match h
                    .call::<()>(hyper::Method::GET, "/metrics", None, None)
                    .await
                {
                    Ok(reply) if reply.status == 200 => {
                        let text = String::from_utf8_lossy(&reply.body);
                        out.extend(windows::parse_counters(&text, world.now_ns()));
                    }
                    _ => http = None,
                }
            }
            if last {
                return out;
            }
            tokio::time::sleep(SNAPSHOT_SAMPLE).await;
        }
    });
    SnapshotWatch { stop, task }
}

impl SnapshotWatch {
    /// Takes a last reading and returns them all.
    async fn finish(self) -> Vec<SnapshotCounters> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// `ramp` settings.
#[derive(Clone, Debug, Serialize)]
pub struct Ramp {
    /// First step's rate.
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    pub factor: f64,
    /// Stop after this rate.
    pub max_rate: f64,
    /// Step length, s.
    pub step_s: f64,
    /// A step whose p99 ack latency exceeds this fails.
    pub p99_ms: f64,
    /// A failed step is run again this many times before the ramp stops: on a shared
    /// machine one step can fail for reasons that have nothing to do with the server
    /// (another process took the core for 50 ms).
    pub retries: u32,
    /// Once the climb has stopped, this many steps between the highest rate held and the
    /// lowest failed, each at their geometric mean: each halves the gap (in ratio), so
    /// the reported maximum is within `factor^(1/2^refine)` of the rate that would just
    /// hold, instead of within one whole `factor`.
    pub refine: u32,
}

/// The rates a ramp tries. It climbs by `factor` while steps pass; once a step has failed
/// `retries + 1` times in a row it tries `refine` rates between the highest rate passed
/// and the lowest failed. The highest rate sustained is the last that passed: every rate
/// tried after a pass is above it.
#[derive(Debug)]
struct RampPlan {
    factor: f64,
    max_rate: f64,
    retries: u32,
    refine: u32,
    /// The rate being tried; `None` once the ramp is over.
    rate: Option<f64>,
    passed: Option<f64>,
    /// The lowest rate that failed all its runs; set once the climb is over.
    failed: Option<f64>,
    /// Failed runs of the current rate.
    failures: u32,
    /// Refinement steps decided so far.
    refined: u32,
}

impl RampPlan {
    fn new(rp: &Ramp) -> Self {
        Self {
            factor: rp.factor.max(1.01),
            max_rate: rp.max_rate,
            retries: rp.retries,
            refine: rp.refine,
            rate: (rp.start_rate <= rp.max_rate).then_some(rp.start_rate),
            passed: None,
            failed: None,
            failures: 0,
            refined: 0,
        }
    }

    /// Records the current rate's outcome and moves to the next rate (if any).
    fn record(&mut self, pass: bool) {
        let Some(rate) = self.rate else { return };
        if !pass {
            self.failures += 1;
            if self.failures <= self.retries {
                return; // the same rate once more
            }
        }
        self.failures = 0;
        let refining = self.failed.is_some();
        if pass {
            self.passed = Some(rate);
        } else {
            self.failed = Some(rate);
        }
        if refining {
            self.refined += 1;
        }
        self.rate = match (self.passed, self.failed) {
            (_, None) => Some(rate * self.factor).filter(|r| *r <= self.max_rate),
            (Some(lo), Some(hi)) if self.refined < self.refine => {
                // Whole bids per second, as the step lines print them.
                Some((lo * hi).sqrt().round()).filter(|r| *r > lo && *r < hi)
            }
            // Nothing passed, or the refinement is done.
            _ => None,
        };
    }
}

/// `ramp`: raise the rate until p99 passes the threshold or results stop keeping up.
pub async fn ramp(c: &Common, l: &Load, rp: &Ramp) -> anyhow::Result<Report> {
    let mut r = Report::new("ramp", c, serde_json::json!({"load": l, "ramp": rp}));
    let (s, a) = open_load(c, l).await?;
    let cpu = CpuMeter::start();
    let mut plan = RampPlan::new(rp);
    while let Some(rate) = plan.rate {
        let p = run::run_phase(
            &s,
            &a,
            rate,
            Duration::from_secs_f64(rp.step_s),
            Duration::from_secs_f64(c.drain_s),
            c.observe(),
        )
        .await;
        let pass = p.sustained && p.ack_latency.p99_ms <= rp.p99_ms;
        if !c.quiet {
            eprintln!(
                "  step {:.0}/s: results {:.0}/s, p99 {:.2} ms, {}",
                rate,
                p.ack_rate,
                p.ack_latency.p99_ms,
                if pass { "ok" } else { "FAILED" }
            );
        }
        if pass {
            r.max_sustained_offered = Some(rate);
            r.max_sustained_ack_rate = Some(p.ack_rate);
            r.max_sustained_accepted_rate = Some(p.accepted_rate);
        }
        r.phases.push(p);
        plan.record(pass);
    }
    r.generator_cpu_cores = cpu.cores();
    r.correctness = check(&s, Duration::from_millis(500)).await;
    s.close();
    r.loadavg_after = stats::loadavg();
    Ok(r)
}

/// `hot-lot` settings.
#[derive(Clone, Debug, Serialize)]
pub struct HotLot {
    /// Dealers subscribed to the one auction.
    pub subscribers: usize,
    /// How many of them bid.
    pub bidders: usize,
    /// Bids per second in the war.
    pub bid_rate: f64,
    /// The listing's length, s (the server's auction.min_duration_s must allow it).
    pub listing_duration_s: u64,
    /// Keep bidding this long past the listing's original close (into soft close), s.
    pub war_extra_s: f64,
    /// At most this many bids.
    pub max_bids: u64,
    /// After the war, wait this long for `closed`, s.
    pub close_wait_s: f64,
    /// Share of war bids with a proxy max.
    pub proxy_ratio: f64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `hot-lot`: every subscriber watches one auction while a few of them fight over it into
/// soft close; measures how long the last subscriber waits for each bid's update.
pub async fn hot_lot(c: &Common, h: &HotLot) -> anyhow::Result<Report> {
    let mut r = Report::new("hot-lot", c, serde_json::json!({"hot_lot": h}));
    let mut opts = setup_opts(c, h.subscribers, 1, h.listing_duration_s);
    // The reserve at the start price, so the lot sells and the winner can be checked.
    opts.reserve = opts.start_price;
    let fx = setup::make(&opts).await?;
    let ends_at = fx.auctions[0].ends_at;
    let target = Target::parse(&c.url, c.format)?;
    let all: Vec<usize> = (0..fx.dealers.len()).collect();
    let s = Session::open(target, fx, c.setup, &all, h.proxy_ratio, true, c.quiet).await?;
    let cpu = CpuMeter::start();
    for conn in &s.conns {
        let _ = conn.cmd.send(Cmd::Subscribe(0));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: u64 = s.conns.iter().map(|c| c.book().snapshots).sum();
        if n >= s.conns.len() as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = conn::take_stats(&s.conns);

    // The war: one bid every 1/bid_rate s from a bidder who does not lead, until the
    // listing's original close plus war_extra_s (so the last stretch extends the close).
    let war_end_ms = if ends_at > 0 {
        ends_at + (h.war_extra_s * 1000.0) as u64
    } else {
        unix_ms() + ((h.listing_duration_s as f64 + h.war_extra_s) * 1000.0) as u64
    };
    let bidders = h.bidders.clamp(1, s.conns.len());
    let mut rng = rand::thread_rng();
    let tick = Duration::from_secs_f64(1.0 / h.bid_rate.max(0.1));
    let war_len = war_end_ms.saturating_sub(unix_ms());
    let pb = run::bar(war_len / 1000, "war", c.quiet);
    let t0 = Instant::now();
    // Over the war alone: the whole run's averages hide a saturated end behind the idle
    // setup and the wait for `closed`.
    let usage = Usage::start(c.server_pid, c.redis_pid);
    let mut sent = 0;
    let mut next = tokio::time::Instant::now();
    while unix_ms() < war_end_ms && sent < h.max_bids {
        let i = rng.gen_range(0..bidders);
        let conn = &s.conns[i];
        let leads = conn.book().lead.get(&0).is_some_and(|l| l.1);
        if !leads {
            let amount = s.world.next_amount(0);
            let max = rng
                .gen_bool(h.proxy_ratio.clamp(0.0, 1.0))
                .then(|| amount + rng.gen_range(1..=3u64) * increment(amount));
            let _ = conn.cmd.send(Cmd::Bid {
                auction: 0,
                amount,
                max,
            });
            sent += 1;
        }
        pb.set_position(t0.elapsed().as_secs());
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    pb.finish_and_clear();
    let war = usage.finish();
    // Wait for every subscriber's `closed`.
    let deadline = Instant::now() + Duration::from_secs_f64(h.close_wait_s);
    loop {
        let n = s
            .conns
            .iter()
            .filter(|c| !c.book().closed.is_empty())
            .count();
        if n >= s.conns.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let phase_stats = conn::take_stats(&s.conns);
    let war_s = t0.elapsed().as_secs_f64();
    r.phases.push(PhaseReport {
        offered_rate: h.bid_rate,
        duration_s: war_s,
        sent: phase_stats.sent,
        acks: phase_stats.acks,
        accepted: phase_stats.accepted,
        ack_rate: phase_stats.acks as f64 / war_s,
        accepted_rate: phase_stats.accepted as f64 / war_s,
        ack_latency: Latency::of(&phase_stats.ack),
        ack_from_send: Latency::of(&phase_stats.wire),
        send_lag: Latency::of(&phase_stats.send_lag),
        rejections: phase_stats.reasons.clone(),
        errors: phase_stats.errors.clone(),
        unanswered: conn::outstanding(&s.conns),
        other_msgs: phase_stats.other_msgs,
        usage: war,
        sustained: phase_stats.errors.is_empty(),
        cpu_us_per_accepted: None,
    });

    // Fan-out: for every accepted bid, the last subscriber's first update at or past its seq.
    let mut acked: Vec<(u64, u64, u64)> = Vec::new(); // (seq, ack ns, sent ns)
    for conn in s.conns.iter().take(bidders) {
        let b = conn.book();
        for (sent, ans) in b.sent.iter().zip(&b.answers) {
            if let Some(a) = ans.as_ref().filter(|a| a.accepted) {
                acked.push((a.seq, a.at_ns, sent.sent_ns));
            }
        }
    }
    let mut f = Fanout {
        subscribers: s.conns.len(),
        bids: acked.len() as u64,
        ..Default::default()
    };
    // In ack order, so each bid can be compared with the one before it.
    acked.sort_by_key(|&(_, ack, _)| ack);
    let mut from_ack = new_hist();
    let mut from_ack_alone = new_hist();
    let mut from_send = new_hist();
    let mut last = vec![0u64; acked.len()];
    for conn in &s.conns {
        let b = conn.book();
        for (j, &(seq, _, _)) in acked.iter().enumerate() {
            // `updates` arrive in order; seqs only grow.
            let at = b.updates.iter().find(|(s2, _)| *s2 >= seq).map(|(_, t)| *t);
            match at {
                Some(t) => last[j] = last[j].max(t),
                None => f.missing += 1,
            }
        }
        if let Some(cl) = b.closed.first() {
            f.closed_received += 1;
            f.outcome = Some(cl.outcome.clone());
            if cl.won {
                f.won_by.push(
                    s.fixture.dealers[conn.dealer as usize]
                        .id
                        .clone()
                        .unwrap_or_else(|| format!("#{}", conn.dealer)),
                );
            }
        }
    }
    let acks: Vec<u64> = acked.iter().map(|a| a.1).collect();
    f.timeline = timeline(&acks, &last);
    // The timeline has one point per bid that some subscriber saw, in the same order.
    let seen = acked.iter().zip(&last).filter(|(_, &l)| l > 0);
    for ((&(_, ack, sent), &last), point) in seen.zip(&f.timeline) {
        let us = last.saturating_sub(ack) / 1000;
        record(&mut from_ack, us);
        record(&mut from_send, last.saturating_sub(sent) / 1000);
        if !point.overlapped {
            record(&mut from_ack_alone, us);
        }
    }
    f.overlapped = f.timeline.iter().filter(|p| p.overlapped).count() as u64;
    f.ack_to_last_update = Latency::of(&from_ack);
    f.ack_to_last_update_alone = Latency::of(&from_ack_alone);
    f.send_to_last_update = Latency::of(&from_send);
    r.generator_cpu_cores = cpu.cores();
    r.correctness = check(&s, Duration::from_millis(200)).await;
    if r.correctness.checked {
        if let Some(lot) = r.correctness.lots.first() {
            let expect: Vec<String> = if f.outcome.as_deref() == Some("sold") {
                lot.leader.clone().into_iter().collect()
            } else {
                Vec::new()
            };
            if f.won_by != expect {
                r.correctness.problems += 1;
                r.correctness.ok = false;
                if let Some(l) = r.correctness.lots.first_mut() {
                    l.problems.push(format!(
                        "closed.won went to {:?}; the rules give {expect:?}",
                        f.won_by
                    ));
                }
            }
        }
    }
    r.fanout = Some(f);
    s.close();
    r.loadavg_after = stats::loadavg();
    Ok(r)
}

/// The fan-out of each bid, given its ack and its last subscriber's update (ns, in ack
/// order; a last of 0 means no subscriber saw it, and the bid is left out). A bid overlaps
/// when its ack came before every earlier bid's update had reached its last subscriber.
fn timeline(acks: &[u64], last: &[u64]) -> Vec<FanoutPoint> {
    let first = acks.first().copied().unwrap_or(0);
    let mut previous_last = 0;
    let mut points = Vec::with_capacity(acks.len());
    for (&ack, &last) in acks.iter().zip(last).filter(|(_, &l)| l > 0) {
        points.push(FanoutPoint {
            at_ms: ack.saturating_sub(first) as f64 / 1e6,
            // Whole µs, as the histograms record it.
            ms: (last.saturating_sub(ack) / 1000) as f64 / 1e3,
            overlapped: ack < previous_last,
        });
        previous_last = previous_last.max(last);
    }
    points
}

/// `idle`: hold many connections open doing nothing and read the server's memory.
pub async fn idle(
    c: &Common,
    connections: usize,
    hold_s: f64,
    subscribe: bool,
) -> anyhow::Result<Report> {
    let mut r = Report::new(
        "idle",
        c,
        serde_json::json!({"connections": connections, "hold_s": hold_s, "subscribe": subscribe}),
    );
    let fx = setup::make(&setup_opts(c, connections, 1, 3600)).await?;
    let pid = c.server_pid;
    let rss = move || pid.and_then(stats::rss_kib);
    let mut idle = Idle {
        connections,
        rss_before_kib: rss(),
        ..Default::default()
    };
    let target = Target::parse(&c.url, c.format)?;
    let all: Vec<usize> = (0..fx.dealers.len()).collect();
    let cpu = CpuMeter::start();
    let s = Session::open(target, fx, c.setup, &all, 0.0, false, c.quiet).await?;
    if subscribe {
        for conn in &s.conns {
            let _ = conn.cmd.send(Cmd::Subscribe(0));
        }
    }
    let t0 = Instant::now();
    let mut max = idle.rss_before_kib;
    while t0.elapsed().as_secs_f64() < hold_s {
        let x = Sample {
            t_s: t0.elapsed().as_secs_f64(),
            rss_kib: rss(),
            sockets: pid.and_then(stats::sockets),
        };
        max = max.max(x.rss_kib);
        r.samples.push(x);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    idle.rss_after_kib = rss();
    idle.rss_max_kib = max.max(idle.rss_after_kib);
    idle.sockets = pid.and_then(stats::sockets);
    if let (Some(a), Some(b)) = (idle.rss_before_kib, idle.rss_after_kib) {
        idle.bytes_per_connection = Some((b as f64 - a as f64) * 1024.0 / connections as f64);
    }
    let st = conn::take_stats(&s.conns);
    idle.errors = st.errors;
    idle.still_open = conn::open_count(&s.conns);
    r.idle = Some(idle);
    r.correctness = Correctness {
        checked: false,
        method: "idle: no bids".into(),
        ..Default::default()
    };
    r.generator_cpu_cores = cpu.cores();
    s.close();
    r.loadavg_after = stats::loadavg();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::{timeline, Ramp, RampPlan};

    /// The rates a ramp tries when its steps turn out as `outcomes` (pass or fail, in
    /// order); the ramp must be over exactly when they run out.
    fn rates_tried(rp: &Ramp, outcomes: &[bool]) -> Vec<f64> {
        let mut plan = RampPlan::new(rp);
        let mut tried = Vec::new();
        for &pass in outcomes {
            let rate = plan
                .rate
                .expect("the ramp ended before its outcomes ran out");
            tried.push(rate);
            plan.record(pass);
        }
        assert_eq!(plan.rate, None, "the ramp goes on after {tried:?}");
        tried
    }

    fn ramp(start: f64, factor: f64, max: f64, retries: u32, refine: u32) -> Ramp {
        Ramp {
            start_rate: start,
            factor,
            max_rate: max,
            step_s: 1.0,
            p99_ms: 100.0,
            retries,
            refine,
        }
    }

    #[test]
    fn a_ramp_climbs_retries_then_halves_the_gap_between_held_and_failed() {
        const P: bool = true;
        const F: bool = false;
        // (name, ramp, each step's outcome, the rates tried)
        type Case = (&'static str, Ramp, &'static [bool], &'static [f64]);
        let cases: &[Case] = &[
            (
                "no refinement: the plain climb",
                ramp(1000.0, 2.0, 1e6, 1, 0),
                &[P, P, P, F, F],
                &[1000.0, 2000.0, 4000.0, 8000.0, 8000.0],
            ),
            (
                "three steps between 4000 held and 8000 failed, each at the geometric mean",
                ramp(1000.0, 2.0, 1e6, 1, 3),
                &[P, P, P, F, F, F, F, P, F, F],
                &[
                    1000.0, 2000.0, 4000.0, 8000.0, 8000.0, 5657.0, 5657.0, 4757.0, 5188.0, 5188.0,
                ],
            ),
            (
                "a step that fails once and then holds counts as held, in the climb and after",
                ramp(1000.0, 2.0, 1e6, 1, 2),
                &[P, F, P, F, F, F, P, P],
                &[
                    1000.0, 2000.0, 2000.0, 4000.0, 4000.0, 2828.0, 2828.0, 3363.0,
                ],
            ),
            (
                "the first step fails: nothing to refine",
                ramp(1000.0, 2.0, 1e6, 1, 3),
                &[F, F],
                &[1000.0, 1000.0],
            ),
            (
                "no retries",
                ramp(1000.0, 2.0, 1e6, 0, 1),
                &[P, P, F, F],
                &[1000.0, 2000.0, 4000.0, 2828.0],
            ),
            (
                "the climb passes max_rate without failing: nothing to refine",
                ramp(1000.0, 2.0, 4000.0, 1, 3),
                &[P, P, P],
                &[1000.0, 2000.0, 4000.0],
            ),
            (
                "the gap closes (in whole bids/s) before the refinement steps run out",
                ramp(100.0, 1.02, 1e6, 0, 5),
                &[P, F, P],
                &[100.0, 102.0, 101.0],
            ),
            (
                "a start above max_rate tries nothing",
                ramp(5000.0, 2.0, 4000.0, 1, 3),
                &[],
                &[],
            ),
        ];
        for (name, rp, outcomes, want) in cases {
            assert_eq!(rates_tried(rp, outcomes), *want, "{name}");
        }
    }

    const MS: u64 = 1_000_000;

    /// A case: its name, the bids as (ack ms, last update ms), and the points expected.
    type Case = (
        &'static str,
        &'static [(u64, u64)],
        &'static [(f64, f64, bool)],
    );

    /// (ack ms, last update ms) in, (at ms, fan-out ms, overlapped) out.
    fn run(bids: &[(u64, u64)]) -> Vec<(f64, f64, bool)> {
        let acks: Vec<u64> = bids.iter().map(|b| b.0 * MS).collect();
        let last: Vec<u64> = bids.iter().map(|b| b.1 * MS).collect();
        timeline(&acks, &last)
            .into_iter()
            .map(|p| (p.at_ms, p.ms, p.overlapped))
            .collect()
    }

    #[test]
    fn a_bid_overlaps_only_while_an_earlier_fan_out_is_unfinished() {
        let cases: &[Case] = &[
            ("none", &[], &[]),
            ("one", &[(1000, 1060)], &[(0.0, 60.0, false)]),
            (
                "apart",
                &[(1000, 1060), (1100, 1170)],
                &[(0.0, 60.0, false), (100.0, 70.0, false)],
            ),
            (
                "ack during the previous fan-out",
                &[(1000, 1120), (1100, 1190)],
                &[(0.0, 120.0, false), (100.0, 90.0, true)],
            ),
            (
                "an ack at the previous last update is not inside it",
                &[(1000, 1100), (1100, 1150)],
                &[(0.0, 100.0, false), (100.0, 50.0, false)],
            ),
            (
                "a long fan-out covers two later acks",
                &[(1000, 1250), (1100, 1150), (1200, 1260)],
                &[
                    (0.0, 250.0, false),
                    (100.0, 50.0, true),
                    (200.0, 60.0, true),
                ],
            ),
            (
                "a bid nobody saw is left out and does not count as running",
                &[(1000, 0), (1100, 1150)],
                &[(100.0, 50.0, false)],
            ),
        ];
        for (name, bids, want) in cases {
            assert_eq!(run(bids), *want, "{name}");
        }
    }
}
