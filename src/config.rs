//! Configuration: one typed `Config`, built once at startup and passed down.
//!
//! Layers, lowest first: `config/default.toml` (compiled in), an optional operator file,
//! then environment variables (`GAVEL_<SECTION>__<KEY>` and a few short forms). The result
//! is validated as a whole and every problem is reported together, so an operator fixes a
//! bad configuration in one pass rather than one restart per mistake.

use crate::alliance::{AllianceRules, RefusedRetail};
use crate::auction::{self, Increments, Tier};
use crate::market::Rules;
use crate::vocab::{FEN_PER_YUAN, RULES_VERSION};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// The defaults, compiled in so the binary needs no file to run.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Short environment names for the keys operators set most.
const SHORT_ENV: &[(&str, &str, &str)] = &[
    ("GAVEL_LISTEN", "server", "listen"),
    ("GAVEL_ADMIN_TOKEN", "server", "admin_token"),
    ("GAVEL_REDIS_URL", "store", "redis_url"),
    ("GAVEL_REDIS_CLUSTER_URLS", "store", "redis_cluster_urls"),
    ("GAVEL_DATA_DIR", "store", "data_dir"),
];

/// Everything gavel can be configured with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and operator settings.
    pub server: ServerConfig,
    /// Auction rules.
    pub auction: AuctionConfig,
    /// Dealer rules.
    pub dealers: DealersConfig,
    /// The journal.
    pub store: StoreConfig,
    /// The sequencer.
    pub engine: EngineSection,
    /// WebSocket and HTTP limits.
    pub gateway: GatewayConfig,
    /// The alliance pipeline.
    pub alliance: AllianceConfig,
    /// Market data for member dealers.
    pub market_data: MarketDataSection,
    /// Logging.
    pub log: LogConfig,
    /// The audit trail and the shill report.
    pub audit: AuditConfig,
    /// Scale-out over several nodes (`gavel node` only).
    pub cluster: ClusterConfig,
}

/// What happens to the open leading bids of a dealer who is expelled or suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadingBids {
    /// They stand: the dealer made them in good standing, and can still win those lots.
    Stand,
}

/// `[alliance]` (see config/default.toml for the reasons behind each default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllianceConfig {
    /// "Not as described" returns are accepted this long after a retail sale.
    pub return_window_s: u64,
    /// A complaint must be resolved within this long of being opened.
    pub complaint_due_s: u64,
    /// The open leading bids of a dealer who loses the right to bid.
    pub leading_bids_on_expulsion: LeadingBids,
    /// How a retail sale refused under zero tolerance counts against the dealer.
    pub refused_retail: RefusedRetail,
    /// A rated dealer is in good standing only with at least this score, in tenths.
    pub good_standing_min_score_tenths: u32,
    /// Redis journal only: the consumer group that hands sold outcomes to the alliance.
    pub consumer_group: String,
    /// Redis journal only: this engine's consumer name in the group.
    pub consumer_name: String,
    /// Redis journal only: pending entries idle this long are claimed from their consumer.
    pub claim_idle_ms: u64,
    /// Redis journal only: how long one read waits for new outcomes.
    pub read_block_ms: u64,
    /// Redis journal only: most outcomes taken per read.
    pub read_count: usize,
}

/// File journal fsync policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncSetting {
    /// fsync every batch before acknowledging it.
    Batch,
    /// fsync in the background every `fsync_interval_ms`.
    Interval,
}

/// How many old segments to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Retention {
    /// `"all"`: keep the whole log.
    All(AllMarker),
    /// Keep this many segments behind the newest snapshot.
    Behind(usize),
}

/// The word `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    /// Keep everything.
    All,
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// File journal directory.
    pub data_dir: String,
    /// Redis URL; empty selects the file journal (unless `redis_cluster_urls` is set).
    pub redis_url: String,
    /// Seeds of a Redis Cluster; set, the journal runs on that cluster (`redis_url` unused).
    pub redis_cluster_urls: Vec<String>,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Redis lease ttl.
    pub lease_ttl_ms: u64,
    /// Redis call timeout.
    pub redis_timeout_ms: u64,
    /// Require appendfsync always.
    pub require_fsync: bool,
    /// File journal fsync policy.
    pub fsync: FsyncSetting,
    /// Interval for `fsync = "interval"`.
    pub fsync_interval_ms: u64,
    /// Segment size.
    pub segment_bytes: u64,
    /// Segment retention.
    pub retain_segments_behind_snapshot: Retention,
    /// Redis log retention, in commands behind the newest snapshot.
    pub redis_retain_commands_behind_snapshot: Retention,
    /// Replicas that must have each append before it is acknowledged (`WAIT`); 0 = off.
    pub replicas_to_wait: u32,
    /// Bound on each such `WAIT`.
    pub replica_wait_timeout_ms: u64,
}

impl StoreConfig {
    /// Whether the journal is Redis (one node or a cluster) rather than files.
    pub fn uses_redis(&self) -> bool {
        !self.redis_url.is_empty() || !self.redis_cluster_urls.is_empty()
    }
}

/// `[cluster]`: how a node takes part in a cluster (read only by `gavel node`; see
/// `crate::cluster` and config/default.toml).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id; empty: `<hostname>-<pid>`.
    pub node_id: String,
    /// Every market, by name.
    pub markets: Vec<String>,
    /// City → market.
    pub cities: std::collections::BTreeMap<String, String>,
    /// The market of a car without a city, or of a city not in `cities`.
    pub default_market: String,
    /// How long a market's lease and a node's registry entry outlive their last renewal.
    pub lease_ttl_ms: u64,
    /// How often a node heartbeats and converges on the assignment.
    pub heartbeat_ms: u64,
    /// Host the market servers bind to (each on a free port).
    pub market_listen_host: String,
    /// Host other nodes and clients reach this node's listeners at.
    pub advertise_host: String,
    /// The market whose alliance holds every market's sold cars (inventory, returns,
    /// complaints, the consumer catalogue); empty: `default_market`.
    pub alliance_market: String,
}

/// `[engine]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Bound of the command queue.
    pub queue_capacity: usize,
    /// Most commands per journal write.
    pub max_batch: usize,
    /// Longest wait before `unavailable`.
    pub max_wait_ms: u64,
    /// A slower journal write counts as failed.
    pub append_timeout_ms: u64,
    /// Snapshot every this many commands (0: never).
    pub snapshot_every_commands: u64,
    /// ... or every this many seconds.
    pub snapshot_every_s: u64,
    /// A recovery that replayed this many commands takes a snapshot with the next write.
    pub snapshot_after_replay_commands: u64,
}

/// `[gateway]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Largest client frame/message.
    pub max_message_bytes: usize,
    /// Open connections.
    pub max_connections: usize,
    /// WebSocket connections per dealer.
    pub max_connections_per_dealer: usize,
    /// Bids back to back.
    pub bid_burst: u32,
    /// Bids per second sustained.
    pub bid_rate_per_s: u32,
    /// Bids awaiting results per connection.
    pub max_inflight_bids: usize,
    /// Auctions one connection may watch.
    pub max_subscriptions: usize,
    /// Frames queued per connection before conflation.
    pub outbound_queue: usize,
    /// Full queue this long closes the connection.
    pub slow_consumer_timeout_ms: u64,
    /// After a close the server sent: how long it reads on, for the client's close.
    pub close_drain_ms: u64,
    /// Silence this long closes the connection.
    pub idle_timeout_s: u64,
    /// Server ping interval.
    pub ping_interval_s: u64,
    /// tungstenite read buffer.
    pub read_buffer_bytes: usize,
    /// tungstenite write buffer (only its pongs and close replies: gavel writes its frames).
    pub write_buffer_bytes: usize,
    /// tungstenite write buffer cap.
    pub max_write_buffer_bytes: usize,
    /// Bad frames tolerated in the window.
    pub bad_frames_limit: usize,
    /// The bad-frame window.
    pub bad_frames_window_s: u64,
    /// Graceful shutdown deadline.
    pub shutdown_deadline_s: u64,
}

/// `[server]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address for HTTP and WebSocket.
    pub listen: String,
    /// Admin bearer token; empty means none.
    pub admin_token: String,
    /// Set by `serve --demo` (not a setting to put in a file): the web console then says
    /// that demo dealers are bidding.
    #[serde(default)]
    pub demo: bool,
    /// Set by `serve --demo` when it made the admin token itself: only then is the
    /// operator's sign-in link printed (a configured token is never printed).
    #[serde(default, skip)]
    pub demo_admin_link: bool,
    /// Set by a cluster node for its market servers (not a setting to put in a file):
    /// accounts then come from the cluster's control stream only.
    #[serde(default, skip)]
    pub cluster_market: bool,
    /// Set by a cluster node for its market servers (not a setting to put in a file):
    /// where this market's sold cars go.
    #[serde(default, skip)]
    pub sold_cars: SoldCars,
}

/// Where a market's sold cars reach the alliance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SoldCars {
    /// To this server's own alliance (`gavel serve`).
    #[default]
    Here,
    /// To the alliance market's inbox stream (a market of a cluster that is not the
    /// alliance's).
    ToInbox {
        /// This market's name.
        market: String,
        /// The inbox stream's key.
        inbox: String,
    },
    /// To this server's own alliance, which also takes every car on the inbox (the
    /// alliance market of a cluster).
    HereAndFromInbox {
        /// This market's name.
        market: String,
        /// The inbox stream's key.
        inbox: String,
    },
}

impl SoldCars {
    /// The cluster market this server serves, if it serves one.
    pub fn market(&self) -> Option<&str> {
        match self {
            Self::Here => None,
            Self::ToInbox { market, .. } | Self::HereAndFromInbox { market, .. } => Some(market),
        }
    }
}

/// `[auction]` (durations in seconds, money in yuan).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionConfig {
    /// Default auction length.
    pub default_duration_s: u64,
    /// Shortest allowed auction.
    pub min_duration_s: u64,
    /// Longest allowed auction.
    pub max_duration_s: u64,
    /// Preview of a listing that names neither `starts_at` nor `preview_s` (0: none).
    pub default_preview_s: u64,
    /// Shortest preview a seller may choose.
    pub min_preview_s: u64,
    /// Longest preview a seller may choose.
    pub max_preview_s: u64,
    /// Soft-close window.
    pub extend_window_s: u64,
    /// Soft-close extension.
    pub extend_by_s: u64,
    /// Soft-close extension cap.
    pub max_extensions: u32,
    /// Seller's decision window.
    pub decision_window_s: u64,
    /// Extra time for lots whose close passed during an outage.
    pub outage_grace_s: u64,
    /// How long a bid_id is remembered after its lot stops taking bids.
    pub bid_id_retention_s: u64,
    /// `[below, step]` increment bands in yuan.
    pub increments: Vec<[u64; 2]>,
    /// Increment above the last band, in yuan.
    pub increment_above: u64,
}

/// The longest loan term an operator may configure: ten years, far beyond any floor-plan
/// loan, so a typo of extra digits is caught at startup.
const MAX_CREDIT_DUE_S: u64 = 10 * 365 * 86_400;

/// `[dealers]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealersConfig {
    /// Buying power = deposit × leverage + available credit.
    pub leverage: u64,
    /// Seconds a loan drawn on a dealer's credit line runs before it is due.
    pub credit_due_s: u64,
}

/// `[market_data]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDataSection {
    /// Model years per band.
    pub year_band_years: u16,
    /// Most recent closes per group that the medians are taken over.
    pub window: usize,
    /// Most recent sales kept per model for its price history.
    pub history: usize,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// tracing-subscriber filter directive.
    pub filter: String,
}

/// `[audit]` (see config/default.toml for the reasons behind each default).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The shill report covers lots whose bidding ended this long before its end.
    pub shill_window_s: u64,
    /// Lots a pair or dealer needs in the window before its score can flag it.
    pub shill_min_auctions: u32,
    /// Flag at or above this shill score (0 to 10).
    pub shill_score_threshold: f64,
    /// Minimum raises in a row that make a probe.
    pub probe_min_steps: u32,
    /// Probes that flag a pair or dealer…
    pub probe_threshold: u32,
    /// …when they are also at least this share of its lots.
    pub probe_min_share: f64,
    /// The response measure's scale: an answer this long after a rival's bid rates 0.
    pub response_s: u64,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problems):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads the defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let overlay = match file {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", p.display())]))?,
            ),
        };
        Self::from_layers(overlay.as_deref(), std::env::vars())
    }

    /// Builds a configuration from an optional TOML overlay and environment pairs. Pure, so
    /// tests need not touch the process environment.
    pub fn from_layers(
        overlay: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut base: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e| ConfigError(vec![format!("built-in defaults: {e}")]))?;
        if let Some(text) = overlay {
            match text.parse::<toml::Table>() {
                Ok(t) => merge(&mut base, t),
                Err(e) => problems.push(format!("config file: {e}")),
            }
        }
        for (name, value) in env {
            let Some((section, key)) = env_key(&name) else {
                continue;
            };
            let Some(table) = base
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
            else {
                problems.push(format!("{name}: [{section}] is not a section"));
                continue;
            };
            let value = if key == "redis_cluster_urls" {
                env_list(&value)
            } else {
                env_value(&value)
            };
            table.insert(key, value);
        }
        let config = match Config::deserialize(toml::Value::Table(base)) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                return Err(ConfigError(problems));
            }
        };
        problems.extend(config.validate());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let a = &self.auction;
        if a.min_duration_s == 0 {
            p.push("auction.min_duration_s must be at least 1".into());
        }
        if a.min_duration_s > a.max_duration_s {
            p.push("auction.min_duration_s must not exceed auction.max_duration_s".into());
        }
        if !(a.min_duration_s..=a.max_duration_s).contains(&a.default_duration_s) {
            p.push("auction.default_duration_s must lie within min and max duration".into());
        }
        if a.min_preview_s == 0 || a.min_preview_s > a.max_preview_s {
            p.push("auction.min_preview_s must be at least 1 and at most max_preview_s".into());
        }
        if a.default_preview_s != 0
            && !(a.min_preview_s..=a.max_preview_s).contains(&a.default_preview_s)
        {
            p.push("auction.default_preview_s must be 0 or lie within min and max preview".into());
        }
        if let Err(e) = self.increments() {
            p.push(format!("auction.increments: {e}"));
        }
        if self.store.fsync == FsyncSetting::Interval && self.store.fsync_interval_ms == 0 {
            p.push("store.fsync_interval_ms must be at least 1".into());
        }
        if self.store.segment_bytes == 0 {
            p.push("store.segment_bytes must be at least 1".into());
        }
        if self.store.redis_prefix.is_empty() {
            p.push("store.redis_prefix must not be empty".into());
        } else if !self.store.redis_cluster_urls.is_empty() || self.store.replicas_to_wait > 0 {
            // The cluster's and the replicas' settings are checked here, with the rest, so
            // a missing hash tag is reported before anything connects. (A single Redis's
            // URL is checked when the journal opens, as it always was.)
            for problem in self.redis_journal().validate() {
                p.push(format!("store: {problem}"));
            }
        }
        let g = &self.gateway;
        for (name, v) in [
            ("gateway.max_message_bytes", g.max_message_bytes),
            ("gateway.max_connections", g.max_connections),
            (
                "gateway.max_connections_per_dealer",
                g.max_connections_per_dealer,
            ),
            ("gateway.max_inflight_bids", g.max_inflight_bids),
            ("gateway.max_subscriptions", g.max_subscriptions),
            ("gateway.outbound_queue", g.outbound_queue),
            ("gateway.read_buffer_bytes", g.read_buffer_bytes),
            ("gateway.write_buffer_bytes", g.write_buffer_bytes),
            ("engine.queue_capacity", self.engine.queue_capacity),
            ("engine.max_batch", self.engine.max_batch),
        ] {
            if v == 0 {
                p.push(format!("{name} must be at least 1"));
            }
        }
        if g.bid_rate_per_s == 0 || g.bid_burst == 0 {
            p.push("gateway.bid_rate_per_s and gateway.bid_burst must be at least 1".into());
        }
        if g.idle_timeout_s <= g.ping_interval_s {
            p.push("gateway.idle_timeout_s must exceed gateway.ping_interval_s".into());
        }
        if g.max_write_buffer_bytes <= g.write_buffer_bytes {
            p.push("gateway.max_write_buffer_bytes must exceed gateway.write_buffer_bytes".into());
        }
        let al = &self.alliance;
        if !(10..=50).contains(&al.good_standing_min_score_tenths) {
            p.push(
                "alliance.good_standing_min_score_tenths must be 10 to 50 (1.0 to 5.0 points)"
                    .into(),
            );
        }
        for (name, v) in [
            ("alliance.return_window_s", al.return_window_s),
            ("alliance.complaint_due_s", al.complaint_due_s),
            ("alliance.claim_idle_ms", al.claim_idle_ms),
            ("alliance.read_block_ms", al.read_block_ms),
        ] {
            if v == 0 {
                p.push(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("alliance.return_window_s", al.return_window_s),
            ("alliance.complaint_due_s", al.complaint_due_s),
        ] {
            if v > 10 * 365 * 86_400 {
                p.push(format!("{name} is over ten years"));
            }
        }
        if al.read_count == 0 {
            p.push("alliance.read_count must be at least 1".into());
        }
        for (name, v) in [
            ("alliance.consumer_group", &al.consumer_group),
            ("alliance.consumer_name", &al.consumer_name),
        ] {
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                p.push(format!("{name} must be non-empty without whitespace"));
            }
        }
        let m = &self.market_data;
        if !(1..=10).contains(&m.year_band_years) {
            p.push("market_data.year_band_years must be 1 to 10".into());
        }
        for (name, v) in [
            ("market_data.window", m.window),
            ("market_data.history", m.history),
        ] {
            if !(1..=10_000).contains(&v) {
                p.push(format!("{name} must be 1 to 10000"));
            }
        }
        let au = &self.audit;
        if au.shill_window_s == 0 || au.shill_window_s > 10 * 365 * 86_400 {
            p.push("audit.shill_window_s must be from 1 s to ten years".into());
        }
        if !(0.0..=1.0).contains(&au.probe_min_share) {
            p.push("audit.probe_min_share must be from 0 to 1".into());
        }
        if !(0.0..=10.0).contains(&au.shill_score_threshold) {
            p.push("audit.shill_score_threshold must be from 0 to 10".into());
        }
        for (name, v) in [
            ("audit.shill_min_auctions", u64::from(au.shill_min_auctions)),
            ("audit.probe_min_steps", u64::from(au.probe_min_steps)),
            ("audit.probe_threshold", u64::from(au.probe_threshold)),
            ("audit.response_s", au.response_s),
        ] {
            if v == 0 {
                p.push(format!("{name} must be at least 1"));
            }
        }
        if au.response_s > 86_400 {
            p.push("audit.response_s is over a day".into());
        }
        if self.dealers.leverage == 0 {
            p.push("dealers.leverage must be at least 1".into());
        }
        if !(1..=MAX_CREDIT_DUE_S).contains(&self.dealers.credit_due_s) {
            p.push(format!(
                "dealers.credit_due_s must be 1 to {MAX_CREDIT_DUE_S} (ten years)"
            ));
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "server.listen: {:?} is not an address like 127.0.0.1:8080",
                self.server.listen
            ));
        }
        // Seconds to milliseconds must fit: an absurd duration is a typo, not a wish.
        for (name, v) in [
            ("default_duration_s", a.default_duration_s),
            ("max_duration_s", a.max_duration_s),
            ("max_preview_s", a.max_preview_s),
            ("extend_window_s", a.extend_window_s),
            ("extend_by_s", a.extend_by_s),
            ("decision_window_s", a.decision_window_s),
            ("outage_grace_s", a.outage_grace_s),
            ("bid_id_retention_s", a.bid_id_retention_s),
        ] {
            if v > 10 * 365 * 86_400 {
                p.push(format!("auction.{name} is over ten years"));
            }
        }
        p
    }

    fn increments(&self) -> Result<Increments, String> {
        let yuan = |v: u64| {
            v.checked_mul(FEN_PER_YUAN)
                .ok_or_else(|| format!("{v} yuan is too large"))
        };
        let tiers = self
            .auction
            .increments
            .iter()
            .map(|[below, step]| {
                Ok(Tier {
                    below: yuan(*below)?,
                    step: yuan(*step)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Increments::new(tiers, yuan(self.auction.increment_above)?).map_err(|e| e.to_string())
    }

    /// The engine settings this configuration describes.
    pub fn engine(&self) -> crate::engine::EngineConfig {
        let e = &self.engine;
        crate::engine::EngineConfig {
            queue_capacity: e.queue_capacity,
            max_batch: e.max_batch,
            max_wait: std::time::Duration::from_millis(e.max_wait_ms),
            append_timeout: std::time::Duration::from_millis(e.append_timeout_ms),
            snapshot_every_commands: e.snapshot_every_commands,
            snapshot_every: std::time::Duration::from_secs(e.snapshot_every_s),
            snapshot_after_replay_commands: e.snapshot_after_replay_commands,
            ..crate::engine::EngineConfig::default()
        }
    }

    /// The Redis journal's settings (`[store]`).
    pub fn redis_journal(&self) -> crate::store::RedisJournalConfig {
        let s = &self.store;
        crate::store::RedisJournalConfig {
            url: s.redis_url.clone(),
            cluster_urls: s.redis_cluster_urls.clone(),
            prefix: s.redis_prefix.clone(),
            lease_ttl_ms: s.lease_ttl_ms,
            op_timeout_ms: s.redis_timeout_ms,
            require_fsync: s.require_fsync,
            retain_commands_behind_snapshot: match s.redis_retain_commands_behind_snapshot {
                Retention::All(_) => None,
                Retention::Behind(n) => Some(n as u64),
            },
            replicas_to_wait: s.replicas_to_wait,
            replica_wait_timeout_ms: s.replica_wait_timeout_ms,
        }
    }

    /// The journal an audit reads: Redis when `store.redis_url` or
    /// `store.redis_cluster_urls` is set, else the file journal in `store.data_dir`.
    pub fn audit_source(&self) -> crate::audit::AuditSource {
        if !self.store.uses_redis() {
            crate::audit::AuditSource::File(self.store.data_dir.clone().into())
        } else {
            crate::audit::AuditSource::Redis(self.redis_journal())
        }
    }

    /// The shill report's parameters for a window ending at `to` (ms): `[audit]`, with
    /// the window's start moved to `from` when one is given.
    pub fn shill_params(&self, from: Option<u64>, to: u64) -> crate::audit::ShillParams {
        let a = &self.audit;
        crate::audit::ShillParams {
            from: from.unwrap_or_else(|| to.saturating_sub(a.shill_window_s.saturating_mul(1000))),
            to,
            min_auctions: a.shill_min_auctions,
            score_threshold: a.shill_score_threshold,
            probe_min_steps: a.probe_min_steps,
            probe_threshold: a.probe_threshold,
            probe_min_share: a.probe_min_share,
            response_ms: a.response_s.saturating_mul(1000),
        }
    }

    /// The auction rules this configuration describes.
    pub fn rules(&self) -> Rules {
        let a = &self.auction;
        let ms = |s: u64| s.saturating_mul(1000);
        let auction = auction::Rules {
            default_duration_ms: ms(a.default_duration_s),
            min_duration_ms: ms(a.min_duration_s),
            max_duration_ms: ms(a.max_duration_s),
            extend_window_ms: ms(a.extend_window_s),
            extend_by_ms: ms(a.extend_by_s),
            max_extensions: a.max_extensions,
            decision_window_ms: ms(a.decision_window_s),
            leverage: self.dealers.leverage,
            // Validated at load; a Config only exists once validation passed.
            increments: self.increments().unwrap_or_default(),
            outage_grace_ms: ms(a.outage_grace_s),
            bid_id_retention_ms: ms(a.bid_id_retention_s),
            // Always this build's rules: the version is not the operator's to choose.
            version: RULES_VERSION,
            credit_due_ms: ms(self.dealers.credit_due_s),
        };
        let alliance = AllianceRules {
            return_window_ms: ms(self.alliance.return_window_s),
            complaint_due_ms: ms(self.alliance.complaint_due_s),
            refused_retail: self.alliance.refused_retail,
            good_standing_min_score_tenths: self.alliance.good_standing_min_score_tenths,
            version: RULES_VERSION,
        };
        Rules { auction, alliance }
    }
}

/// `GAVEL_AUCTION__MIN_DURATION_S` → (`auction`, `min_duration_s`); short forms mapped.
fn env_key(name: &str) -> Option<(String, String)> {
    if let Some((_, s, k)) = SHORT_ENV.iter().find(|(n, _, _)| *n == name) {
        return Some((s.to_string(), k.to_string()));
    }
    let rest = name.strip_prefix("GAVEL_")?;
    let (section, key) = rest.split_once("__")?;
    if section.is_empty() || key.is_empty() {
        return None;
    }
    Some((section.to_ascii_lowercase(), key.to_ascii_lowercase()))
}

/// Reads an environment value as TOML (numbers, booleans, arrays) when it parses as one,
/// else as a plain string, so `GAVEL_SERVER__LISTEN=0.0.0.0:80` needs no quotes.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// A list from the environment: a TOML array as is, else comma-separated strings
/// (`GAVEL_REDIS_CLUSTER_URLS=redis://a:7000,redis://b:7000`), blanks dropped.
fn env_list(raw: &str) -> toml::Value {
    match env_value(raw) {
        list @ toml::Value::Array(_) => list,
        _ => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    }
}

/// Overlays `top` onto `base`, table by table.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let c = Config::from_layers(None, env(&[])).expect("defaults load");
        assert_eq!(c.rules(), Rules::default());
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let c = Config::from_layers(
            Some("[auction]\nmin_duration_s = 5\nmax_extensions = 3\n"),
            env(&[
                ("GAVEL_AUCTION__MIN_DURATION_S", "1"),
                ("GAVEL_LISTEN", "0.0.0.0:9000"),
                ("GAVEL_DEALERS__LEVERAGE", "4"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.auction.min_duration_s, 1);
        assert_eq!(c.auction.max_extensions, 3);
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.rules().auction.leverage, 4);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::from_layers(
            Some("[auction]\nmin_duration_s = 0\nincrements = [[10, 0]]\n[dealers]\nleverage = 0\n[server]\nlisten = \"nowhere\"\n"),
            env(&[]),
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn market_data_bounds_are_checked() {
        let ok = Config::from_layers(None, env(&[("GAVEL_MARKET_DATA__WINDOW", "10000")]))
            .expect("loads");
        assert_eq!(ok.market_data.window, 10_000);
        assert_eq!(ok.market_data.year_band_years, 3);
        let err = Config::from_layers(
            Some("[market_data]\nyear_band_years = 0\nwindow = 10001\nhistory = 0\n"),
            env(&[]),
        )
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
    }

    #[test]
    fn redis_cluster_settings() {
        let c = Config::from_layers(
            None,
            env(&[
                (
                    "GAVEL_REDIS_CLUSTER_URLS",
                    "redis://127.0.0.1:7000, redis://127.0.0.1:7001",
                ),
                ("GAVEL_STORE__REDIS_PREFIX", "{m:north}"),
                ("GAVEL_STORE__REPLICAS_TO_WAIT", "1"),
            ]),
        )
        .expect("loads");
        assert!(c.store.uses_redis());
        let r = c.redis_journal();
        assert_eq!(
            r.cluster_urls,
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!((r.replicas_to_wait, r.replica_wait_timeout_ms), (1, 500));
        assert!(matches!(
            c.audit_source(),
            crate::audit::AuditSource::Redis(_)
        ));
        let toml = Config::from_layers(
            Some("[store]\nredis_cluster_urls = [\"redis://h:1\"]\nredis_prefix = \"{a}\"\n"),
            env(&[]),
        )
        .expect("loads");
        assert_eq!(toml.redis_journal().cluster_urls, ["redis://h:1"]);
        // On a cluster the prefix needs a hash tag; reported at load.
        let err = Config::from_layers(
            None,
            env(&[("GAVEL_REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000")]),
        )
        .expect_err("untagged prefix");
        assert!(err.to_string().contains("hash tag"), "{err}");
        let defaults = Config::from_layers(None, env(&[])).expect("defaults load");
        assert!(!defaults.store.uses_redis());
        assert_eq!(defaults.redis_journal().replicas_to_wait, 0);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_layers(None, env(&[("GAVEL_AUCTION__TYPO_S", "1")]))
            .expect_err("unknown key");
        assert!(err.to_string().contains("typo_s"), "{err}");
    }
}
