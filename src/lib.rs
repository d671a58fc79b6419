//! gavel: the live auction engine of a used-car dealer alliance.
//!
//! Module map:
//! - [`auction`]: the pure, deterministic core — lots, dealers, bidding rules. No I/O.
//! - [`config`]: one typed configuration from `config/*.toml` and `GAVEL_*` overrides.
//! - [`engine`]: the single-writer sequencer: clock, timers, group commit, ack after durable.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`store`]: the durable journal (Redis, file, memory) and snapshots.
#![warn(missing_docs, unreachable_pub)]

pub mod auction;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod metrics;
pub mod store;
