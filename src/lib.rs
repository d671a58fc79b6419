//! gavel: the live auction engine of a used-car dealer alliance.
//!
//! Module map, from the bottom up; each module imports only modules above it in this list
//! (`tests/layers.rs` checks it):
//! - [`vocab`]: the domain's shared vocabulary: ids, money, the car and its inspection
//!   report, a dealer's status, the VIN check.
//! - [`auction`]: the auction book — lots, dealers, bidding rules. Pure, no I/O.
//! - [`alliance`]: the alliance's rules — certification, inventory, returns, complaints,
//!   ratings, warnings, expulsion. Pure, no I/O.
//! - [`market`]: the domain's root: the book and the alliance, one journaled `Command`
//!   applied as one deterministic step, and their durable form.
//! - [`metrics`]: counters and histograms in Prometheus text.
//! - [`store`]: the durable journal (Redis, file, memory) and snapshots.
//! - [`engine`]: the single-writer sequencer: clock, timers, group commit, ack after
//!   durable; its decisions in a sans-IO policy.
//! - [`audit`]: the audit trail and shill detection, read-only replays of the journal.
//! - [`config`]: one typed configuration from `config/*.toml` and `GAVEL_*` overrides.
//! - [`directory`]: who a token is.
//! - [`views`]: read models kept from durable events: the lots' public state, the
//!   alliance's board, the market data of closed auctions.
//! - [`pipeline`]: sold outcomes into the alliance (Redis consumer group, or the engine's
//!   publication with the file journal).
//! - [`gateway`]: WebSocket sessions, fan-out, wire types, codecs and limits.
//! - [`api`]: HTTP routes and request validation.
//! - [`console`]: the web console's embedded pages and the route serving them at `/`.
//! - [`demo`]: `serve --demo` seeding, and its slowly bidding demo dealers.
//! - [`server`]: the application state, one listener for HTTP and WebSocket, the
//!   engine's publishers, graceful shutdown.
//! - [`cluster`]: scale-out: markets partitioned over nodes sharing a Redis (Cluster), each
//!   market one `server`; the node's front door, the registry, the control stream.
#![warn(missing_docs, unreachable_pub)]

pub mod alliance;
pub mod api;
pub mod auction;
pub mod audit;
pub mod cluster;
pub mod config;
pub mod console;
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
