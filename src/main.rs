//! The `gavel` binary: parse arguments, load configuration, wire the parts, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use gavel::config::{Config, LogFormat};
use std::path::PathBuf;

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

#[derive(Subcommand)]
enum Cmd {
    /// Run the engine.
    Serve {
        /// A TOML file layered over the built-in defaults (config/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (overrides server.listen and GAVEL_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { config, listen } => {
            let mut config = Config::load(config.as_deref()).map_err(anyhow::Error::msg)?;
            if let Some(l) = listen {
                config.server.listen = l;
            }
            init_tracing(&config);
            let rules = config.rules();
            println!(
                "gavel {} (auction core only: the gateway is not built yet)",
                env!("CARGO_PKG_VERSION")
            );
            println!("would listen on {}", config.server.listen);
            println!("auction rules: {rules:#?}");
            println!("waiting; Ctrl-C to stop");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(tokio::signal::ctrl_c())
                .context("waiting for Ctrl-C")?;
            Ok(())
        }
    }
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
