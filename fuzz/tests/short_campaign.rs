//! The short campaign CI runs (`cargo test --workspace`): every target for a few thousand
//! inputs with a fixed seed. A panic, a hang or an input over the memory bound in any of
//! them fails the test, naming the input (printed in hex and its index under the seed).
//! The long campaign is `cargo run --profile fuzz -p gavel-fuzz -- --target all …`.

use gavel_fuzz::alloc::Counting;
use gavel_fuzz::campaign::{self, Kind, Options};
use gavel_fuzz::seeds::{golden_dir, Golden};
use gavel_fuzz::targets::{Target, Verdict, NAMES};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocator's counts are process-wide: two campaigns at once (the test harness runs
/// tests on threads) would see each other's memory. Every campaign here holds this.
fn alone() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Inputs per target: a few seconds for all of them in a debug build.
const INPUTS: u64 = 2_000;

fn options() -> Options {
    Options {
        inputs: INPUTS,
        seed: 21,
        // A debug build on a shared CI machine: generous, but a decoder that loops or
        // backtracks on some input still shows as seconds.
        time_limit: Duration::from_secs(2),
        watchdog: Duration::from_secs(60),
        ..Options::default()
    }
}

#[test]
fn every_target_survives_a_short_campaign() {
    let _alone = alone();
    let golden = Golden::new(golden_dir());
    let mut failures = Vec::new();
    for name in NAMES {
        let mut target = Target::named(name, &golden).expect("a target");
        let report = campaign::run(&mut target, &options());
        println!("{}", report.line());
        // The seeds reach the end of their decoder: a target that refused every golden
        // message would be fuzzing only its first check.
        assert!(
            report.seeds_accepted > 0,
            "{name}: no seed decodes: {}",
            report.line()
        );
        assert!(report.accepted > 0, "{name}: nothing decoded");
        failures.extend(report.failures.iter().map(|f| {
            format!(
                "{name} {:?} at index {} (seed {}): {}",
                f.kind, f.index, 21, f.detail
            )
        }));
    }
    assert!(
        failures.is_empty(),
        "failing inputs:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_saved_regression_input_is_refused_without_a_panic() {
    // `fuzz/regressions/{target}/*.bin`: inputs that once made a target panic, kept after
    // the fix (each also has a test of its own beside the code it fixed).
    let _alone = alone();
    let golden = Golden::new(golden_dir());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut ran = 0;
    for name in NAMES {
        let Ok(files) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        let mut target = Target::named(name, &golden).expect("a target");
        for file in files {
            let path = file.expect("an entry").path();
            let input = std::fs::read(&path).expect("the input reads");
            let verdict =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input)));
            assert_eq!(verdict.ok(), Some(Verdict::Refused), "{}", path.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", dir.display());
}

#[test]
fn a_panicking_decoder_is_a_failure_with_its_input() {
    let _alone = alone();
    // The harness's own check: a target that panics on some inputs is caught, the input is
    // kept, and the campaign carries on to the end.
    let mut target = Target::custom(
        "panics-on-x",
        vec![b"abc".to_vec()],
        Box::new(|b: &[u8]| {
            if b.contains(&b'x') {
                panic!("found an x");
            }
            Verdict::Accepted
        }),
    );
    let opts = Options {
        inputs: 500,
        ..options()
    };
    let report = campaign::run(&mut target, &opts);
    assert_eq!(report.inputs, 500);
    assert!(report.failures_total > 0, "{}", report.line());
    let f = &report.failures[0];
    assert_eq!(f.kind, Kind::Panic);
    assert!(f.input.contains(&b'x'));
    assert!(f.detail.contains("found an x"), "{}", f.detail);
    assert!(f.detail.contains("short_campaign.rs"), "{}", f.detail);
}

#[test]
fn slow_and_greedy_inputs_are_failures() {
    let _alone = alone();
    let mut target = Target::custom(
        "slow-and-greedy",
        vec![vec![0], vec![1], vec![2]],
        Box::new(|b: &[u8]| {
            match b {
                [1] => {
                    // CPU time, not sleep: the bound is on the CPU an input takes.
                    let t = campaign::thread_cpu_time();
                    while campaign::thread_cpu_time() - t < Duration::from_millis(300) {
                        std::hint::black_box(0u64);
                    }
                }
                [2] => drop(std::hint::black_box(vec![0u8; 8 << 20])),
                _ => {}
            }
            Verdict::Refused
        }),
    );
    // The bound sits far between the two inputs' CPU times (300 ms against the few ms of
    // zeroing 8 MiB, which page faults on a busy VM can stretch), so only the slow one
    // is a hang.
    let opts = Options {
        inputs: 3,
        time_limit: Duration::from_millis(100),
        memory_limit: 1 << 20,
        ..options()
    };
    let report = campaign::run(&mut target, &opts);
    let kinds: Vec<(u64, Kind)> = report.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(
        kinds,
        [(1, Kind::Hang), (2, Kind::Memory)],
        "{}",
        report.line()
    );
}
