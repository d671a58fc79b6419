//! gavel: the live auction engine of a used-car dealer alliance.
//!
//! Module map:
//! - [`auction`]: the pure, deterministic core — lots, dealers, bidding rules. No I/O.
//! - [`api`]: the HTTP API's pure parts — listing validation, bearer tokens.
//! - [`config`]: one typed configuration from `config/*.toml` and `GAVEL_*` overrides.
//! - [`gateway`]: the WebSocket contract's pure parts — wire types, JSON/MessagePack
//!   codecs, rate and bad-frame limits.
//! - [`store`]: the durable journal (Redis, file, memory) and snapshots.
#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod auction;
pub mod config;
pub mod gateway;
pub mod store;
