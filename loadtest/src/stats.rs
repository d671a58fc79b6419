//! Measurements: latency histograms and their summaries, the generator's own CPU, and the
//! server process's RSS and open sockets read from /proc.

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; the fallback is never taken.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// Records `us`, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, 600_000_000));
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// One line for the human summary.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

/// This process's user + system CPU time so far, in seconds.
pub fn cpu_seconds() -> f64 {
    let (user, system) = usage(libc::RUSAGE_SELF);
    user + system
}

/// The calling thread's system CPU time so far, in seconds.
pub fn thread_system_seconds() -> f64 {
    usage(libc::RUSAGE_THREAD).1
}

/// `getrusage(who)`'s user and system time, in seconds; zeros if it fails.
fn usage(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// CPU use over an interval: CPU seconds per wall second (1.0 = one core busy).
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    cpu: f64,
    wall: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self {
            cpu: cpu_seconds(),
            wall: std::time::Instant::now(),
        }
    }

    /// Wall seconds since the start.
    pub fn wall_secs(&self) -> f64 {
        self.wall.elapsed().as_secs_f64()
    }

    /// Cores used since the start.
    pub fn cores(&self) -> f64 {
        let wall = self.wall.elapsed().as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (cpu_seconds() - self.cpu) / wall
    }
}

/// CPU and run-queue wait of the generator, the server and its Redis over an interval:
/// what tells a saturated server from a saturated client or a starved one.
#[derive(Debug, Clone)]
pub struct Usage {
    cpu: CpuMeter,
    /// Processes whose CPU is summed (every node of a cluster and its Redis).
    watched: Vec<u32>,
    watched_cpu: f64,
    server_pid: Option<u32>,
    redis_pid: Option<u32>,
    server_cpu: Option<f64>,
    server_wait: Option<f64>,
    redis_cpu: Option<f64>,
    generator_wait: Option<f64>,
}

/// What [`Usage::finish`] measured, per wall second (1.0 = one core busy); a phase's
/// report carries these fields under these names.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct UsageFigures {
    /// The generator's CPU, in cores (1.0 = one core busy all the phase).
    pub generator_cpu_cores: f64,
    /// The server's CPU, in cores, when its pid was given.
    pub server_cpu_cores: Option<f64>,
    /// CPU of the server's Redis (or other helper process), cores, when its pid was given.
    pub redis_cpu_cores: Option<f64>,
    /// Seconds per second the server's threads waited for a CPU (other processes held it
    /// back), when its pid was given.
    pub server_runqueue_wait: Option<f64>,
    /// The same for the generator.
    pub generator_runqueue_wait: Option<f64>,
    /// CPU seconds (utime + stime, not per second) of the watched processes over the
    /// interval, when any were given; a process that ended counts until its last reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watched_cpu_s: Option<f64>,
}

impl Usage {
    /// Starts measuring now.
    pub fn start(server_pid: Option<u32>, redis_pid: Option<u32>) -> Self {
        Self::watching(server_pid, redis_pid, &[])
    }

    /// Starts measuring now, also summing the CPU of `watched`.
    pub fn watching(server_pid: Option<u32>, redis_pid: Option<u32>, watched: &[u32]) -> Self {
        Self {
            cpu: CpuMeter::start(),
            watched: watched.to_vec(),
            watched_cpu: sum_cpu_seconds(watched),
            server_pid,
            redis_pid,
            server_cpu: server_pid.and_then(proc_cpu_seconds),
            server_wait: server_pid.and_then(runqueue_wait_seconds),
            redis_cpu: redis_pid.and_then(proc_cpu_seconds),
            generator_wait: runqueue_wait_seconds(std::process::id()),
        }
    }

    /// The figures from the start until now.
    pub fn finish(&self) -> UsageFigures {
        let wall = self.cpu.wall_secs();
        let per_s = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall),
            _ => None,
        };
        UsageFigures {
            generator_cpu_cores: self.cpu.cores(),
            server_cpu_cores: per_s(self.server_cpu, self.server_pid.and_then(proc_cpu_seconds)),
            redis_cpu_cores: per_s(self.redis_cpu, self.redis_pid.and_then(proc_cpu_seconds)),
            server_runqueue_wait: per_s(
                self.server_wait,
                self.server_pid.and_then(runqueue_wait_seconds),
            ),
            generator_runqueue_wait: per_s(
                self.generator_wait,
                runqueue_wait_seconds(std::process::id()),
            ),
            watched_cpu_s: (!self.watched.is_empty())
                .then(|| sum_cpu_seconds(&self.watched) - self.watched_cpu),
        }
    }
}

/// utime + stime of every process in `pids` that still exists, seconds.
pub fn sum_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| proc_cpu_seconds(p)).sum()
}

/// The server's resident memory in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server's open sockets (entries of /proc/PID/fd that are sockets).
pub fn sockets(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut n = 0;
    for e in dir.flatten() {
        if let Ok(t) = std::fs::read_link(e.path()) {
            if t.to_string_lossy().starts_with("socket:") {
                n += 1;
            }
        }
    }
    Some(n)
}

/// The server's CPU time so far (utime + stime of /proc/PID/stat), seconds.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / if hz > 0.0 { hz } else { 100.0 })
}

/// The 1-minute load average, for the report's record of how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Time the process's threads spent runnable but waiting for a CPU, seconds (the second
/// field of /proc/PID/task/*/schedstat, summed). Divided by wall time it says how much
/// other processes on the machine held the process back: on a shared machine, the figure
/// that tells a slow server from a starved one.
pub fn runqueue_wait_seconds(pid: u32) -> Option<f64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for t in dir.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(ns as f64 / 1e9)
}
