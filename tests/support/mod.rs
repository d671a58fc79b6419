//! Helpers shared by the integration tests: `mod support;` in a test file brings them in.
//! Not every test binary uses every helper.
#![allow(dead_code, unreachable_pub)]

pub mod api;
pub mod browser;
pub mod client;
pub mod cluster_load;
pub mod cluster_nodes;
pub mod gavel;
pub mod http;
pub mod population;
pub mod proxy;
pub mod redis_cluster;
pub mod redis_server;
pub mod server;
pub mod ws;

/// Sends the library's `tracing` output to the test's captured output, filtered by
/// `RUST_LOG` (nothing by default). Safe to call from every test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
