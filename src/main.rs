//! The `gavel` binary: parse arguments, load configuration, wire the parts, run.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use gavel::config::{Config, FsyncSetting, LogFormat, Retention};
use gavel::store::file::{FileJournal, FileJournalConfig, FileLog, FsyncPolicy};
use gavel::store::redis::{RedisJournal, RedisLog};
use gavel::store::{Journal, JournalRead};
use gavel::views::market_data::MarketStats;
use gavel::views::MarketDataConfig;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `gavel audit`: the binary's glue for the queries of `gavel::audit`.
#[path = "main/audit.rs"]
mod audit_cli;

/// See Cargo.toml: cheaper than glibc's malloc for the many small, cross-task allocations
/// of the bid path.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gavel",
    version,
    about = "Live auction engine for a used-car dealer alliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
pub(crate) struct JournalArgs {
    /// A TOML file layered over the built-in defaults (config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Journal to Redis at this URL instead of files (also GAVEL_REDIS_URL).
    #[arg(long)]
    redis: Option<String>,
    /// Journal to this Redis Cluster instead (seed URLs, comma-separated; also
    /// GAVEL_REDIS_CLUSTER_URLS). The prefix must then hold a hash tag, e.g. "{gavel}".
    #[arg(long, value_delimiter = ',')]
    redis_cluster_urls: Vec<String>,
    /// Directory of the file journal (also GAVEL_DATA_DIR; default ./data).
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine: HTTP API and WebSocket on one listener.
    Serve {
        #[command(flatten)]
        journal: JournalArgs,
        /// Listen address (overrides server.listen and GAVEL_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// Seed demo sellers, dealers and live auctions, and print their tokens.
        #[arg(long)]
        demo: bool,
    },
    /// Run as one node of a cluster: serve a fair share of `[cluster] markets`, each on its
    /// own listener, and a front door on server.listen that says where each market is.
    Node {
        #[command(flatten)]
        journal: JournalArgs,
        /// Front door address (overrides server.listen and GAVEL_LISTEN).
        #[arg(long)]
        listen: Option<String>,
        /// This node's id (overrides cluster.node_id).
        #[arg(long)]
        node_id: Option<String>,
    },
    /// Rebuild every auction from the journal alone and compare with published outcomes.
    Replay {
        #[command(flatten)]
        journal: JournalArgs,
        /// Compare recomputed outcomes with the published ones; exit 1 on any difference.
        #[arg(long)]
        verify: bool,
        /// In a cluster: verify this market's journal (keys `{<redis_prefix>:<market>}`).
        #[arg(long, conflicts_with = "all_markets")]
        market: Option<String>,
        /// In a cluster: verify every market of `[cluster] markets`, one after another.
        #[arg(long)]
        all_markets: bool,
        /// Also print the market data the log rebuilds: a `market-data` line per group
        /// (as `GET /v1/market/prices` shows it) and a `market-history` line per model.
        #[arg(long)]
        market_data: bool,
    },
    /// Answer disputes and look for shill bidding from the journal (read-only: no lock or
    /// lease, so it runs beside an engine).
    Audit {
        #[command(subcommand)]
        query: audit_cli::Query,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gavel: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gavel: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Serve {
            journal,
            listen,
            demo,
        } => {
            let mut config = load(&journal)?;
            if let Some(l) = listen {
                config.server.listen = l;
            }
            init_tracing(&config);
            config.server.demo = demo;
            if demo && config.server.admin_token.is_empty() {
                let (token, _) = gavel::directory::token::new_token();
                println!("demo admin token (set GAVEL_ADMIN_TOKEN to choose your own): {token}");
                config.server.admin_token = token;
                // Only a token the demo made itself goes into a printed sign-in link.
                config.server.demo_admin_link = true;
            }
            if !config.store.uses_redis() {
                let j = open_file(&config).await?;
                serve(config, j, demo).await
            } else {
                let j = open_redis(&config).await?;
                serve(config, j, demo).await
            }
        }
        Cmd::Node {
            journal,
            listen,
            node_id,
        } => {
            let mut config = load(&journal)?;
            if let Some(l) = listen {
                config.server.listen = l;
            }
            if let Some(id) = node_id {
                config.cluster.node_id = id;
            }
            init_tracing(&config);
            let node = gavel::cluster::Node::start(config).await?;
            println!(
                "gavel node listening on http://{} (cluster map: GET /v1/cluster)",
                node.addr
            );
            let stopped_by = wait_for_signal().await;
            println!("{stopped_by}: handing markets over");
            node.shutdown().await;
            println!("left the cluster; bye");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit { query } => {
            let config = load(query.journal())?;
            audit_cli::run(query, &config, config.audit_source()).await
        }
        Cmd::Replay {
            journal,
            verify,
            market,
            all_markets,
            market_data,
        } => {
            let mut config = load(&journal)?;
            if !verify {
                bail!("replay needs --verify (the only mode so far)");
            }
            if all_markets || market.is_some() {
                let settings = gavel::cluster::ClusterSettings::from_config(&config);
                let markets = match market {
                    Some(m) if settings.markets.contains(&m) => vec![m],
                    Some(m) => bail!("{m:?} is not one of cluster.markets {:?}", settings.markets),
                    // The alliance market first: every market read after it holds every
                    // sale its inventory has taken in (`verify::check_sold_cars`).
                    None => {
                        let mut all = settings.markets.clone();
                        all.sort_by_key(|m| *m != settings.alliance_market);
                        all
                    }
                };
                let mut all_ok = true;
                let mut rebuilt = Vec::new();
                for m in markets {
                    config.store.redis_prefix = settings.market_prefix(&m);
                    println!("market {m}:");
                    let log = RedisLog::open(&config.redis_journal())
                        .await
                        .with_context(|| format!("reading market {m}'s journal"))?;
                    let (code, market) = replay_market(
                        log,
                        all_markets,
                        market_data.then(|| gavel::server::market_data_config(&config)),
                    )
                    .await?;
                    all_ok &= code == ExitCode::SUCCESS;
                    rebuilt.extend(market.map(|market| (m, market)));
                }
                if all_markets {
                    // Across markets: one id is one account everywhere, and every deposit
                    // that arrived somewhere left somewhere else, once.
                    let books: Vec<(String, &gavel::auction::Book)> = rebuilt
                        .iter()
                        .map(|(m, market)| (m.clone(), market.book()))
                        .collect();
                    let mut c = gavel::cluster::verify::check(&books);
                    let markets: Vec<(String, &gavel::market::Market)> = rebuilt
                        .iter()
                        .map(|(m, market)| (m.clone(), market))
                        .collect();
                    gavel::cluster::verify::check_sold_cars(
                        &markets,
                        &settings.alliance_market,
                        &mut c,
                    );
                    for p in &c.problems {
                        println!("CLUSTER MISMATCH {p}");
                    }
                    for t in &c.in_flight {
                        println!("in flight: {t}");
                    }
                    println!(
                        "cluster: {} markets, {} transfers and {} sold cars checked, {} in \
                         flight; {}",
                        books.len(),
                        c.transfers,
                        c.cars,
                        c.in_flight.len(),
                        if c.problems.is_empty() {
                            "accounts, transfers and the inventory agree"
                        } else {
                            "DIFFERENCES FOUND"
                        }
                    );
                    all_ok &= c.problems.is_empty();
                }
                return Ok(if all_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            // Read-only: replay takes no lock or lease, repairs nothing and creates nothing,
            // so it may run beside an engine, and a mistyped path is an error, not an
            // empty journal that "agrees".
            if !config.store.uses_redis() {
                let dir = &config.store.data_dir;
                let log = FileLog::open(dir)
                    .with_context(|| format!("reading the file journal in {dir}"))?;
                replay(
                    log,
                    market_data.then(|| gavel::server::market_data_config(&config)),
                )
                .await
            } else {
                let log = RedisLog::open(&config.redis_journal())
                    .await
                    .context("reading the Redis journal")?;
                replay(
                    log,
                    market_data.then(|| gavel::server::market_data_config(&config)),
                )
                .await
            }
        }
    }
}

fn load(args: &JournalArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref()).map_err(anyhow::Error::msg)?;
    if let Some(url) = &args.redis {
        config.store.redis_url = url.clone();
    }
    if !args.redis_cluster_urls.is_empty() {
        config.store.redis_cluster_urls = args.redis_cluster_urls.clone();
    }
    if let Some(dir) = &args.data {
        config.store.data_dir = dir.display().to_string();
    }
    Ok(config)
}

async fn open_file(config: &Config) -> anyhow::Result<FileJournal> {
    let s = &config.store;
    let fc = FileJournalConfig {
        fsync: match s.fsync {
            FsyncSetting::Batch => FsyncPolicy::Batch,
            FsyncSetting::Interval => {
                FsyncPolicy::Interval(Duration::from_millis(s.fsync_interval_ms))
            }
        },
        segment_bytes: s.segment_bytes,
        retain_segments_behind_snapshot: match s.retain_segments_behind_snapshot {
            Retention::All(_) => None,
            Retention::Behind(n) => Some(n),
        },
    };
    FileJournal::open(&s.data_dir, fc)
        .await
        .with_context(|| format!("opening the file journal in {}", s.data_dir))
}

async fn open_redis(config: &Config) -> anyhow::Result<RedisJournal> {
    RedisJournal::open(&config.redis_journal())
        .await
        .context("opening the Redis journal")
}

async fn serve<J: Journal>(config: Config, journal: J, demo: bool) -> anyhow::Result<ExitCode> {
    let describe = journal.describe();
    let running = gavel::server::start(&config, journal).await?;
    println!(
        "gavel {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    println!(
        "  WebSocket: ws://{}/v1/ws?token=TOKEN[&format=msgpack]",
        running.addr
    );
    println!("  journal: {describe}");
    if config.server.admin_token.is_empty() {
        println!("  admin API disabled: set GAVEL_ADMIN_TOKEN to enable it");
    }
    let mut bidders = None;
    if demo {
        let admin = config
            .server
            .demo_admin_link
            .then_some(config.server.admin_token.as_str());
        let seeded = gavel::demo::seed(&running.engine, running.addr, admin).await?;
        bidders = Some(tokio::spawn(gavel::demo::bid_slowly(
            running.engine.clone(),
            running.lots.clone(),
            seeded,
        )));
    }
    let _stop_bidders = scopeguard(bidders);
    tokio::select! {
        stopped_by = wait_for_signal() => {
            println!("{stopped_by}: shutting down");
            running.shutdown().await?;
            println!("journal flushed; bye");
            Ok(ExitCode::SUCCESS)
        }
        () = running.engine_stopped() => {
            // The reason was logged; whatever it is, the journal is no longer ours.
            let err = running.shutdown().await.err();
            bail!("the engine stopped: {}", err.map_or_else(|| "see the log".to_string(), |e| e.to_string()))
        }
    }
}

/// Aborts the demo bidders when `serve` returns, whichever way.
struct StopOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

fn scopeguard(h: Option<tokio::task::JoinHandle<()>>) -> StopOnDrop {
    StopOnDrop(h)
}

/// The market data a server on this journal would serve, one JSON line per group and per
/// model: derived from the rebuilt book as a server's views are after a recovery.
fn print_market_data(market: &gavel::market::Market, config: MarketDataConfig) {
    let stats = MarketStats::from_lots(config, market.book().lots());
    for row in stats.all_prices() {
        println!(
            "market-data {}",
            gavel::api::market::row_json(&row, &config)
        );
    }
    for ((make, model), sales) in stats.all_histories() {
        let history = gavel::api::market::history_json(&make, &model, &sales);
        println!("market-history {history}");
    }
}

async fn replay<J: JournalRead>(
    journal: J,
    market_data: Option<MarketDataConfig>,
) -> anyhow::Result<ExitCode> {
    Ok(replay_market(journal, false, market_data).await?.0)
}

/// `replay`, where `may_be_empty` (one of all a cluster's markets) reports a journal that
/// holds nothing — a market no node has served yet — instead of failing.
async fn replay_market<J: JournalRead>(
    mut journal: J,
    may_be_empty: bool,
    market_data: Option<MarketDataConfig>,
) -> anyhow::Result<(ExitCode, Option<gavel::market::Market>)> {
    let started = std::time::Instant::now();
    let v = gavel::engine::verify(&mut journal).await?;
    if v.commands == 0 && may_be_empty {
        println!("  {} holds no command: never served", journal.describe());
        return Ok((ExitCode::SUCCESS, None));
    }
    if v.commands == 0 {
        bail!(
            "{} holds no command: there is nothing to verify",
            journal.describe()
        );
    }
    for line in &v.digests {
        println!("{line}");
    }
    if let Some(config) = market_data {
        print_market_data(&v.market, config);
    }
    for m in &v.mismatches {
        println!("MISMATCH {m}");
    }
    println!(
        "replayed {} commands in {:.2?}; {} outcomes recomputed, {} published; {}",
        v.commands,
        started.elapsed(),
        v.recomputed,
        v.published,
        if v.ok() {
            "all agree"
        } else {
            "DIFFERENCES FOUND"
        }
    );
    let code = if v.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    Ok((code, Some(v.market)))
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
