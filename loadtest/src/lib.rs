//! gavel-loadtest: a load generator, baselines and correctness checks for the v1 protocol.
//!
//! - [`proto`]: the protocol's messages as this crate's own serde types.
//! - [`conn`]: one dealer connection, open-loop writer and matching reader.
//! - [`run`]: connecting a fixture, running phases, checking correctness.
//! - [`scenario`]: steady, ramp, soak, hot-lot and idle.
//! - [`model`]: the contract's bidding rules, implemented independently of the server.
//! - [`setup`], [`http`]: the fixture through the HTTP API.
//! - [`cluster`]: a cluster's map, and a fixture made through its front door.
//! - [`bidder`]: one bid at a time on one socket; [`probe`] (failover) and [`crossnode`]
//!   (the cost of reaching the wrong node) are built on it.
//! - [`stats`]: histograms, CPU and /proc readings.
//! - [`windows`]: a soak's ack latency by window, marked by the server's snapshots.
//!
//! The comparison servers are binaries of this crate: `baseline/` (one EVALSHA per bid) and
//! `echo/` (answers every bid, does no work); [`serving`] is what they share.
//!
//! It talks to servers only through the public protocol, so it can point at any server that
//! implements v1 (the `gavel` crate is not a dependency).

/// Every binary of this crate (the generator, echo and the baseline) uses the allocator
/// gavel uses, so the comparison differs in design, not in build settings.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod bidder;
pub mod cluster;
pub mod conn;
pub mod crossnode;
pub mod http;
pub mod model;
pub mod probe;
pub mod proto;
pub mod run;
pub mod scenario;
pub mod serving;
pub mod setup;
pub mod stats;
pub mod windows;
