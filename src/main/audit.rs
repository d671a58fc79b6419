//! `gavel audit`: parse a query, scan the journal read-only, print a table or JSON lines.

use crate::JournalArgs;
use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use gavel::audit::render::{
    attempt_json, attempts_table, leader_json, leader_text, row_json, shill_table,
};
use gavel::audit::shill::ShillSink;
use gavel::audit::time::{parse_duration, parse_time};
use gavel::audit::trail::{BidFate, ByAuction, ByDealer, LeaderAt, Page};
use gavel::audit::{AuditSink, AuditSource, Scanned};
use gavel::config::Config;
use gavel::vocab::{DealerId, LotId};
use std::process::ExitCode;

/// The most attempts one page holds: a page is kept in memory whole.
const MAX_LIMIT: usize = 100_000;

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line, for tools.
    Jsonl,
}

/// What every query takes.
#[derive(Args)]
pub(crate) struct Common {
    #[command(flatten)]
    journal: JournalArgs,
    /// `table` for people, `jsonl` for tools.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The most rows to print (1 to 100000).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

#[derive(Subcommand)]
pub(crate) enum Query {
    /// Every attempt on an auction, in order; with --at, who led it at that moment.
    Auction {
        /// The auction (A17).
        id: String,
        /// A moment (ms since the epoch or 2026-12-07T12:00:00Z): the leader and price then.
        #[arg(long)]
        at: Option<String>,
        /// Start after this seq (the `more: --after` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Every attempt by a dealer in a time range [from, to).
    Dealer {
        /// The dealer (D3).
        id: String,
        /// Start of the range (default: the beginning).
        #[arg(long)]
        from: Option<String>,
        /// End of the range, excluded (default: no end).
        #[arg(long)]
        to: Option<String>,
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        common: Common,
    },
    /// A bid_id's fate: the attempt that decided it and every repeat.
    Bid {
        /// The dealer (D3).
        dealer: String,
        /// The client's bid_id.
        bid_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// The shill report: dealer–seller pairs and dealers ranked by shill score, flagged
    /// above the thresholds of [audit].
    Shill {
        /// The window's length (30d, 12h; default audit.shill_window_s).
        #[arg(long)]
        window: Option<String>,
        /// The window's start (overrides --window).
        #[arg(long)]
        from: Option<String>,
        /// The window's end, excluded (default: now).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

impl Query {
    fn common(&self) -> &Common {
        match self {
            Self::Auction { common, .. }
            | Self::Dealer { common, .. }
            | Self::Bid { common, .. }
            | Self::Shill { common, .. } => common,
        }
    }

    /// Where the journal is.
    pub(crate) fn journal(&self) -> &JournalArgs {
        &self.common().journal
    }
}

fn time(arg: &Option<String>, name: &str) -> anyhow::Result<Option<u64>> {
    arg.as_deref()
        .map(|t| parse_time(t).map_err(|e| anyhow::anyhow!("--{name}: {e}")))
        .transpose()
}

async fn scan<S: AuditSink>(source: &AuditSource, sink: S) -> anyhow::Result<(S, Scanned)> {
    source
        .scan(sink)
        .await
        .context("reading the journal (read-only)")
}

fn print_page(page: &Page, format: Format) {
    match format {
        Format::Table => print!("{}", attempts_table(&page.attempts, page.next)),
        Format::Jsonl => {
            for a in &page.attempts {
                println!("{}", attempt_json(a));
            }
            if let Some(next) = page.next {
                eprintln!("more: --after {next}");
            }
        }
    }
}

/// Runs one query against `source`.
pub(crate) async fn run(
    query: Query,
    config: &Config,
    source: AuditSource,
) -> anyhow::Result<ExitCode> {
    let common = query.common();
    let (format, limit) = (common.format, common.limit);
    if !(1..=MAX_LIMIT).contains(&limit) {
        bail!("--limit must be from 1 to {MAX_LIMIT}");
    }
    let started = std::time::Instant::now();
    let scanned = match &query {
        Query::Auction { id, at, after, .. } => {
            let lot: LotId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is no auction id"))?;
            if let Some(at) = time(at, "at")? {
                let (found, scanned) = scan(&source, LeaderAt::new(lot, at)).await?;
                let Some(state) = found.state else {
                    bail!("auction {lot} did not exist at {at}");
                };
                match format {
                    Format::Table => print!("{}", leader_text(&state)),
                    Format::Jsonl => println!("{}", leader_json(&state)),
                }
                scanned
            } else {
                let (found, scanned) = scan(&source, ByAuction::new(lot, *after, limit)).await?;
                if !found.listed {
                    bail!("auction {lot} is not in the journal");
                }
                print_page(&found.page(), format);
                scanned
            }
        }
        Query::Dealer {
            id,
            from,
            to,
            after,
            ..
        } => {
            let dealer: DealerId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is no dealer id"))?;
            let from = time(from, "from")?.unwrap_or(0);
            let to = time(to, "to")?.unwrap_or(u64::MAX);
            let (found, scanned) =
                scan(&source, ByDealer::new(dealer, from, to, *after, limit)).await?;
            print_page(&found.page(), format);
            scanned
        }
        Query::Bid { dealer, bid_id, .. } => {
            let d: DealerId = dealer
                .parse()
                .map_err(|_| anyhow::anyhow!("{dealer:?} is no dealer id"))?;
            let (found, scanned) = scan(&source, BidFate::new(d, bid_id, limit)).await?;
            let page = found.page();
            if page.attempts.is_empty() {
                bail!("the engine never received bid_id {bid_id:?} from {d}");
            }
            print_page(&page, format);
            scanned
        }
        Query::Shill {
            window, from, to, ..
        } => {
            let to = match time(to, "to")? {
                Some(t) => t,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            };
            let mut from = time(from, "from")?;
            if from.is_none() {
                if let Some(w) = window {
                    let w = parse_duration(w).map_err(|e| anyhow::anyhow!("--window: {e}"))?;
                    from = Some(to.saturating_sub(w));
                }
            }
            let params = config.shill_params(from, to);
            let (sink, scanned) = scan(&source, ShillSink::new(params)).await?;
            let report = sink.report();
            match format {
                Format::Table => print!("{}", shill_table(&report, limit)),
                Format::Jsonl => {
                    for (kind, rows) in [("pair", &report.pairs), ("dealer", &report.dealers)] {
                        for row in rows.iter().take(limit) {
                            let mut v = row_json(row);
                            v["kind"] = kind.into();
                            println!("{v}");
                        }
                    }
                }
            }
            scanned
        }
    };
    eprintln!(
        "scanned {} commands (to seq {}) in {:.2?}",
        scanned.commands,
        scanned.last_seq,
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}
