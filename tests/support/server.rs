//! A real gavel server on 127.0.0.1:0 for the integration tests, plus the HTTP calls
//! every scenario needs (accounts, listings).

use super::http;
use gavel::config::Config;
use gavel::server::{self, Running, ServeError};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::Journal;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The admin token every test server is configured with.
pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

/// A VIN with a valid check digit (position 9 is `X`).
pub const VIN: &str = "1M8GDM9AXKP042788";

/// Short auctions for tests: 1 s minimum, a 1 s soft-close window that extends to 2 s
/// after the bid. Individual tests add their own settings on top.
fn base() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[auction]
min_duration_s = 1
extend_window_s = 1
extend_by_s = 2
"#
    )
}

/// The configuration for a test: the base plus `settings` as `("section.key", "value")`
/// pairs (values in TOML syntax, like the `GAVEL_*` environment variables take them).
pub fn config(settings: &[(&str, &str)]) -> Config {
    let env = settings.iter().map(|(k, v)| {
        let (section, key) = k.split_once('.').expect("setting is section.key");
        (
            format!(
                "GAVEL_{}__{}",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            ),
            (*v).to_string(),
        )
    });
    Config::from_layers(Some(&base()), env).expect("test configuration is valid")
}

/// A running server and the directory of its file journal (kept until drop, so a test
/// can reopen the journal after shutdown).
pub struct TestServer {
    running: Option<Running>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The file journal's directory (unused with another journal).
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// A server on a fresh file journal (fsync per batch, the default).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        super::init_tracing();
        let dir = tempfile::Builder::new()
            .prefix("gavel-gw-")
            .tempdir()
            .expect("temp dir");
        let journal = FileJournal::open(dir.path(), FileJournalConfig::default())
            .await
            .expect("open the file journal");
        Self::start_on(settings, journal, dir).await
    }

    /// A server on the given journal.
    pub async fn start_on<J: Journal>(
        settings: &[(&str, &str)],
        journal: J,
        dir: tempfile::TempDir,
    ) -> Self {
        super::init_tracing();
        let running = server::start(&config(settings), journal)
            .await
            .expect("server starts");
        Self {
            addr: running.addr,
            running: Some(running),
            dir,
        }
    }

    /// The running server (engine, hub).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    /// Graceful shutdown.
    pub async fn shutdown(&mut self) -> Result<(), ServeError> {
        self.running
            .take()
            .expect("server is running")
            .shutdown()
            .await
    }
}

/// An account made by the admin: its id and its token.
#[derive(Clone, Debug)]
pub struct Account {
    /// `S1`, `D3`, …
    pub id: String,
    /// The bearer token (shown once by the server).
    pub token: String,
}

fn account(r: http::Response, what: &str) -> Account {
    assert_eq!(r.status, 201, "create {what}: {:?}", r.body);
    Account {
        id: r.body["id"].as_str().expect("id").to_string(),
        token: r.body["token"].as_str().expect("token").to_string(),
    }
}

/// `POST /v1/sellers` as admin.
pub async fn create_seller(addr: SocketAddr, name: &str) -> Account {
    let r = http::post(addr, "/v1/sellers", Some(ADMIN), &json!({"name": name})).await;
    account(r, "seller")
}

/// `POST /v1/dealers` as admin; `deposit` in fen.
pub async fn create_dealer(addr: SocketAddr, name: &str, deposit: u64) -> Account {
    let r = http::post(
        addr,
        "/v1/dealers",
        Some(ADMIN),
        &json!({"name": name, "deposit": deposit}),
    )
    .await;
    account(r, "dealer")
}

/// A valid listing body.
pub fn listing(start_price: u64, reserve: u64, buy_now: Option<u64>, duration_s: u64) -> Value {
    let mut l = json!({
        "vehicle": {"vin": VIN, "make": "Kenworth", "model": "T800", "year": 2019,
                    "mileage_km": 48500, "city": "Changchun"},
        "inspection": {"structural_damage": false, "fire": false, "flood": false,
                       "odometer_tampered": false, "title_transferable": true, "grade": 4,
                       "notes": "Front bumper resprayed; tyres 60%."},
        "start_price": start_price,
        "reserve": reserve,
        "duration_s": duration_s,
    });
    if let Some(b) = buy_now {
        l["buy_now"] = json!(b);
    }
    l
}

/// `POST /v1/listings` as the seller; returns the reply body (`auction`, `status`,
/// `starts_at`, `ends_at`).
pub async fn list_car(addr: SocketAddr, seller: &Account, body: &Value) -> Value {
    let r = http::post(addr, "/v1/listings", Some(&seller.token), body).await;
    assert_eq!(r.status, 201, "listing: {:?}", r.body);
    r.body
}

/// Milliseconds since the Unix epoch, the engine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}
