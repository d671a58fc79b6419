//! `gavel-fuzz`: runs a campaign against one target, several, or all of them.
//!
//!     cargo run --profile fuzz -p gavel-fuzz -- --target all --inputs 10000000 --seed 1
//!
//! Exits 0 when no input failed, 1 when one did (each is printed and saved under
//! `--crashes`, default `fuzz/crashes/`), 2 on a usage error, 3 when the watchdog stopped
//! an input that never returned.

use gavel_fuzz::alloc::Counting;
use gavel_fuzz::campaign::{self, Options};
use gavel_fuzz::seeds::{golden_dir, Golden};
use gavel_fuzz::targets::{Target, NAMES};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static ALLOC: Counting = Counting;

const USAGE: &str = "usage: gavel-fuzz --target NAME[,NAME…]|all [--inputs N] [--seed N] \
[--time-limit-ms N] [--memory-limit BYTES] [--crashes DIR] [--golden DIR] [--progress-s N] \
[--replay INDEX] [--input FILE]";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok(args) => run(args),
        Err(e) => {
            eprintln!("{e}\n{USAGE}\ntargets: {}", NAMES.join(", "));
            ExitCode::from(2)
        }
    }
}

struct Args {
    targets: Vec<String>,
    opts: Options,
    golden: PathBuf,
    replay: Option<u64>,
    input: Option<PathBuf>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut out = Args {
        targets: Vec::new(),
        opts: Options {
            crashes: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")),
            progress: Some(Duration::from_secs(60)),
            ..Options::default()
        },
        golden: golden_dir(),
        replay: None,
        input: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--target" => {
                let v = value()?;
                out.targets = if v == "all" {
                    NAMES.iter().map(|s| s.to_string()).collect()
                } else {
                    v.split(',').map(str::to_owned).collect()
                };
            }
            "--inputs" => out.opts.inputs = number(value()?)?,
            "--seed" => out.opts.seed = number(value()?)?,
            "--time-limit-ms" => out.opts.time_limit = Duration::from_millis(number(value()?)?),
            "--memory-limit" => out.opts.memory_limit = number(value()?)? as usize,
            "--crashes" => out.opts.crashes = Some(PathBuf::from(value()?)),
            "--golden" => out.golden = PathBuf::from(value()?),
            "--progress-s" => out.opts.progress = Some(Duration::from_secs(number(value()?)?)),
            "--replay" => out.replay = Some(number(value()?)?),
            "--input" => out.input = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if out.targets.is_empty() {
        return Err("--target is required".into());
    }
    if let Some(bad) = out.targets.iter().find(|t| !NAMES.contains(&t.as_str())) {
        return Err(format!("no target {bad}"));
    }
    Ok(out)
}

fn run(args: Args) -> ExitCode {
    let golden = Golden::new(&args.golden);
    let mut failed = false;
    for name in &args.targets {
        let Some(mut target) = Target::named(name, &golden) else {
            continue;
        };
        // One input again: a saved one, or one by its index under the campaign's seed. A
        // panic here is not caught: its message and backtrace are the point.
        let one = match (&args.input, args.replay) {
            (Some(path), _) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
            (None, Some(index)) => Some(campaign::Inputs::new(&target, args.opts.seed).make(index)),
            (None, None) => None,
        };
        if let Some(input) = one {
            println!("{name}: {} bytes", input.len());
            println!("verdict: {:?}", target.run(&input));
            continue;
        }
        eprintln!(
            "[{name}] {} inputs, seed {}, {} seeds, time bound {:?}, memory bound {} bytes",
            args.opts.inputs,
            args.opts.seed,
            target.seeds.len(),
            args.opts.time_limit,
            args.opts.memory_limit
        );
        let report = campaign::run(&mut target, &args.opts);
        println!("{}", report.line());
        failed |= report.failures_total > 0;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
