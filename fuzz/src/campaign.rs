//! A campaign: inputs made from a seed, run one at a time against one target, each under
//! `catch_unwind`, timed, and with its peak of live memory measured. A panic, an input
//! over the time bound, or one over the memory bound is a failure: it is printed and saved
//! under the crashes directory, and the campaign goes on.
//!
//! Input `i` of a campaign is a function of the seed and `i` alone (its own generator), so
//! a failure is reproduced by its seed and index, and the watchdog can rebuild the input
//! that hangs without the campaign thread's help.

use crate::alloc;
use crate::mutate::{dictionary, Mutator};
use crate::rng::Rng;
use crate::targets::{Target, Verdict, MAX_FRAME};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Inputs to run (the seeds, unmodified, first).
    pub inputs: u64,
    /// The campaign's seed: the same seed makes the same inputs.
    pub seed: u64,
    /// One input's time bound, in CPU time: slower is a failure (a hang).
    pub time_limit: Duration,
    /// An input still running after this is a hang the watchdog reports before it stops
    /// the process (a decoder that never returns would otherwise stop the campaign quietly).
    pub watchdog: Duration,
    /// One input's memory bound: a higher peak of live bytes during the input is a failure.
    pub memory_limit: usize,
    /// Where failing inputs are saved (`{dir}/{target}/…`); `None`: printed only.
    pub crashes: Option<PathBuf>,
    /// A progress line on stderr this often; `None`: quiet.
    pub progress: Option<Duration>,
}

/// Live memory one input may add: four frames' worth (the input, a copy, what a decoder
/// builds from it) plus a fixed allowance for what recovery holds whatever the input (a
/// segment's 256 KiB read buffer, the empty market, serde's preallocation of at most 1 MiB
/// for a container whose header claims more elements than follow).
pub fn default_memory_limit() -> usize {
    4 * MAX_FRAME + MEMORY_OVERHEAD
}

/// The fixed part of [`default_memory_limit`].
pub const MEMORY_OVERHEAD: usize = 4 << 20;

impl Default for Options {
    fn default() -> Self {
        Self {
            inputs: 10_000,
            seed: 1,
            time_limit: Duration::from_millis(100),
            watchdog: Duration::from_secs(10),
            memory_limit: default_memory_limit(),
            crashes: None,
            progress: None,
        }
    }
}

/// What went wrong with one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The target panicked.
    Panic,
    /// The input took longer than the time bound.
    Hang,
    /// The input's peak of live memory exceeded the memory bound.
    Memory,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Hang => "hang",
            Self::Memory => "memory",
        }
    }
}

/// One failing input.
#[derive(Clone, Debug)]
pub struct Failure {
    /// What went wrong.
    pub kind: Kind,
    /// The input's index in the campaign.
    pub index: u64,
    /// The panic's message and place, the time taken, or the bytes held.
    pub detail: String,
    /// The input.
    pub input: Vec<u8>,
}

/// What a campaign found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs decoded (and recovered) all the way.
    pub accepted: u64,
    /// The target's seeds that were accepted as they are.
    pub seeds_accepted: usize,
    /// The target's seeds.
    pub seeds: usize,
    /// Wall-clock time of the campaign.
    pub wall: Duration,
    /// The slowest input, in CPU time.
    pub slowest: Duration,
    /// The highest peak of live bytes one input added.
    pub peak_bytes: usize,
    /// Failing inputs (the first few of each kind and detail; `failures_total` counts all).
    pub failures: Vec<Failure>,
    /// Every failing input.
    pub failures_total: u64,
}

impl Report {
    /// One line: the counts, the time and the rate.
    pub fn line(&self) -> String {
        let count = |k: Kind| self.failures.iter().filter(|f| f.kind == k).count();
        format!(
            "target={} inputs={} accepted={} seeds_accepted={}/{} wall={:.1}s rate={:.0}/s \
             failures={} (panic={} hang={} memory={} kept) slowest_cpu={:.2}ms peak_input_bytes={}",
            self.target,
            self.inputs,
            self.accepted,
            self.seeds_accepted,
            self.seeds,
            self.wall.as_secs_f64(),
            self.inputs as f64 / self.wall.as_secs_f64().max(1e-9),
            self.failures_total,
            count(Kind::Panic),
            count(Kind::Hang),
            count(Kind::Memory),
            self.slowest.as_secs_f64() * 1e3,
            self.peak_bytes,
        )
    }
}

/// Makes input `index` of a campaign: a seed as it is (the first indices), or a mutated
/// seed, or a generated message; then, mostly, the target's fix-up.
pub struct Inputs {
    seeds: Vec<Vec<u8>>,
    mutator: Mutator,
    generate: Option<fn(&mut Rng) -> Vec<u8>>,
    fix_up: Option<fn(&mut Vec<u8>)>,
    seed: u64,
}

impl Inputs {
    /// The inputs of `target` under `seed`.
    pub fn new(target: &Target, seed: u64) -> Self {
        Self {
            seeds: target.seeds.clone(),
            mutator: Mutator::new(dictionary(&target.seeds), MAX_FRAME),
            generate: target.generate,
            fix_up: target.fix_up,
            seed,
        }
    }

    /// Input number `index`.
    pub fn make(&self, index: u64) -> Vec<u8> {
        if let Some(seed) = usize::try_from(index).ok().and_then(|i| self.seeds.get(i)) {
            return seed.clone();
        }
        let mut rng = Rng::new(self.seed ^ index.wrapping_mul(0xd605_bbb5_8c8a_bbfd));
        let mut data = match self.generate {
            Some(generate) if rng.one_in(4) => generate(&mut rng),
            _ => {
                let mut data = rng.pick(&self.seeds).clone();
                self.mutator.mutate(&mut rng, &mut data, &self.seeds);
                data
            }
        };
        if let Some(fix_up) = self.fix_up {
            if !rng.one_in(4) {
                fix_up(&mut data);
            }
        }
        data.truncate(MAX_FRAME);
        data
    }
}

thread_local! {
    /// Set while a target runs on this thread: its panics are captured, not printed.
    static CAPTURE: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records the message and place of a target's panic
/// instead of printing it, and leaves every other panic to the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        let message = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".into());
                        let place = info
                            .location()
                            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                            .unwrap_or_default();
                        *slot = Some(format!("{message} at {place}"));
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// What the watchdog sees of the campaign thread.
struct Watch {
    /// The index of the input running, plus one; 0 between inputs.
    running: AtomicU64,
    /// When it started, in µs since `epoch`.
    since_us: AtomicU64,
    epoch: Instant,
    done: AtomicBool,
}

/// Runs `opts.inputs` inputs against `target`.
pub fn run(target: &mut Target, opts: &Options) -> Report {
    install_hook();
    assert!(
        alloc::installed(),
        "the counting allocator (gavel_fuzz::alloc::Counting) must be the global allocator"
    );
    let inputs = Arc::new(Inputs::new(target, opts.seed));
    let watch = Arc::new(Watch {
        running: AtomicU64::new(0),
        since_us: AtomicU64::new(0),
        epoch: Instant::now(),
        done: AtomicBool::new(false),
    });
    let watchdog = spawn_watchdog(target.name, &inputs, &watch, opts);
    let mut report = Report {
        target: target.name,
        inputs: 0,
        accepted: 0,
        seeds_accepted: 0,
        seeds: target.seeds.len(),
        wall: Duration::ZERO,
        slowest: Duration::ZERO,
        peak_bytes: 0,
        failures: Vec::new(),
        failures_total: 0,
    };
    let started = Instant::now();
    let mut last_progress = started;
    for index in 0..opts.inputs {
        let input = inputs.make(index);
        CAPTURE.with(|c| *c.borrow_mut() = Some(None));
        let base = alloc::reset_peak();
        watch
            .since_us
            .store(watch.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        watch.running.store(index + 1, Ordering::Release);
        let t0 = thread_cpu_time();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        let took = thread_cpu_time().saturating_sub(t0);
        watch.running.store(0, Ordering::Release);
        let held = alloc::peak().saturating_sub(base);
        let panicked = CAPTURE.with(|c| c.borrow_mut().take()).flatten();
        report.inputs += 1;
        report.slowest = report.slowest.max(took);
        report.peak_bytes = report.peak_bytes.max(held);
        let mut failed: Vec<(Kind, String)> = Vec::new();
        match outcome {
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                if (index as usize) < target.seeds.len() {
                    report.seeds_accepted += 1;
                }
            }
            Ok(Verdict::Refused) => {}
            Err(_) => failed.push((
                Kind::Panic,
                panicked.unwrap_or_else(|| "a panic (no message captured)".into()),
            )),
        }
        if took > opts.time_limit {
            failed.push((
                Kind::Hang,
                format!(
                    "took {:.1} ms of CPU (bound {:?})",
                    took.as_secs_f64() * 1e3,
                    opts.time_limit
                ),
            ));
        }
        if held > opts.memory_limit {
            failed.push((
                Kind::Memory,
                format!(
                    "held {held} bytes at its peak (bound {})",
                    opts.memory_limit
                ),
            ));
        }
        for (kind, detail) in failed {
            report.failures_total += 1;
            // The first few of each kind and place are kept (and saved); the rest counted.
            let seen = report
                .failures
                .iter()
                .filter(|f| f.kind == kind && same_place(&f.detail, &detail))
                .count();
            if seen < 3 {
                let f = Failure {
                    kind,
                    index,
                    detail,
                    input: input.clone(),
                };
                announce(target.name, opts, &f);
                report.failures.push(f);
            }
        }
        if let Some(every) = opts.progress {
            if last_progress.elapsed() >= every {
                last_progress = Instant::now();
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "[{}] {} inputs, {:.0}/s, {} failures, {:.0}s",
                    target.name,
                    index + 1,
                    (index + 1) as f64 / secs,
                    report.failures_total,
                    secs
                );
            }
        }
    }
    report.wall = started.elapsed();
    watch.done.store(true, Ordering::Release);
    let _ = watchdog.join();
    report
}

/// CPU time this thread has used. The time bound is on CPU time: on a shared machine the
/// wall clock also counts the time other processes had the core, which would make noise
/// look like a slow input. An input that loops uses CPU, so it still shows (and one that
/// blocks is the watchdog's, which watches the wall clock).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Whether two failure details come from the same place (a panic's `file:line:col`, or
/// the kind alone for hangs and memory).
fn same_place(a: &str, b: &str) -> bool {
    let place = |s: &str| s.rsplit(" at ").next().map(str::to_owned);
    if a.contains(" at ") || b.contains(" at ") {
        place(a) == place(b)
    } else {
        true
    }
}

/// Prints a failure and saves its input.
fn announce(target: &str, opts: &Options, f: &Failure) {
    let mut hex = String::new();
    for b in f.input.iter().take(512) {
        let _ = write!(hex, "{b:02x}");
    }
    let more = if f.input.len() > 512 { "…" } else { "" };
    eprintln!(
        "FAILURE target={target} kind={} seed={} index={} len={}: {}\n  input (hex): {hex}{more}",
        f.kind.as_str(),
        opts.seed,
        f.index,
        f.input.len(),
        f.detail
    );
    if let Some(dir) = &opts.crashes {
        let dir = dir.join(target);
        let path = dir.join(format!(
            "{}-seed{}-{}.bin",
            f.kind.as_str(),
            opts.seed,
            f.index
        ));
        let saved = fs::create_dir_all(&dir).and_then(|()| fs::write(&path, &f.input));
        match saved {
            Ok(()) => eprintln!("  saved as {}", path.display()),
            Err(e) => eprintln!("  could not save it in {}: {e}", dir.display()),
        }
    }
}

/// A thread that checks every 100 ms that no input has run past `opts.watchdog`; one
/// that has is rebuilt from its index, reported, saved, and the process exits with 3.
fn spawn_watchdog(
    target: &'static str,
    inputs: &Arc<Inputs>,
    watch: &Arc<Watch>,
    opts: &Options,
) -> thread::JoinHandle<()> {
    let (inputs, watch, opts) = (inputs.clone(), watch.clone(), opts.clone());
    thread::Builder::new()
        .name("fuzz-watchdog".into())
        .spawn(move || {
            while !watch.done.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(100));
                let running = watch.running.load(Ordering::Acquire);
                if running == 0 {
                    continue;
                }
                let since = watch.since_us.load(Ordering::Relaxed);
                let now = watch.epoch.elapsed().as_micros() as u64;
                if now.saturating_sub(since) > opts.watchdog.as_micros() as u64
                    && watch.running.load(Ordering::Acquire) == running
                {
                    let index = running - 1;
                    let f = Failure {
                        kind: Kind::Hang,
                        index,
                        detail: format!("still running after {:?}: stopping", opts.watchdog),
                        input: inputs.make(index),
                    };
                    announce(target, &opts, &f);
                    std::process::exit(3);
                }
            }
        })
        .expect("the watchdog thread starts")
}
