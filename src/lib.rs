//! gavel: the live auction engine of a used-car dealer alliance.
//!
//! Module map:
//! - [`auction`]: the pure, deterministic core — lots, dealers, bidding rules. No I/O.
//! - [`alliance`]: the alliance's rules — certification, inventory, returns, complaints,
//!   ratings, warnings, expulsion. Pure; applied by the book.
//! - [`engine`]: the single-writer sequencer: clock, timers, group commit, ack after durable.
//! - [`store`]: the durable journal (Redis, file, memory) and snapshots.
//! - [`gateway`]: WebSocket sessions, the hub's fan-out, wire types, codecs and limits.
//! - [`api`]: HTTP routes, listing validation, bearer tokens.
//! - [`server`]: one listener for both, connection limit, graceful shutdown.
//! - [`config`]: one typed configuration from `config/*.toml` and `GAVEL_*` overrides.
//! - [`pipeline`]: the alliance's hand-off of sold outcomes (Redis consumer group, or the
//!   engine's publication with the file journal) and its durable read view.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`demo`]: `serve --demo` seeding.
#![warn(missing_docs, unreachable_pub)]

pub mod alliance;
pub mod api;
pub mod auction;
pub mod config;
pub mod demo;
pub mod directory;
pub mod engine;
pub mod gateway;
pub mod market;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod store;
pub mod views;
pub mod vocab;
