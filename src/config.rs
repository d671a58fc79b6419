//! Configuration: one typed `Config`, built once at startup and passed down.
//!
//! Layers, lowest first: `config/default.toml` (compiled in), an optional operator file,
//! then environment variables (`GAVEL_<SECTION>__<KEY>` and a few short forms). The result
//! is validated as a whole and every problem is reported together, so an operator fixes a
//! bad configuration in one pass rather than one restart per mistake.

use crate::auction::{Increments, Rules, Tier, FEN_PER_YUAN};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// The defaults, compiled in so the binary needs no file to run.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Short environment names for the keys operators set most.
const SHORT_ENV: &[(&str, &str, &str)] = &[
    ("GAVEL_LISTEN", "server", "listen"),
    ("GAVEL_ADMIN_TOKEN", "server", "admin_token"),
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
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address for HTTP and WebSocket.
    pub listen: String,
    /// Admin bearer token; empty means none.
    pub admin_token: String,
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
    /// `[below, step]` increment bands in yuan.
    pub increments: Vec<[u64; 2]>,
    /// Increment above the last band, in yuan.
    pub increment_above: u64,
}

/// `[dealers]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealersConfig {
    /// Buying power = deposit × leverage.
    pub leverage: u64,
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
            table.insert(key, env_value(&value));
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
        if let Err(e) = self.increments() {
            p.push(format!("auction.increments: {e}"));
        }
        if self.dealers.leverage == 0 {
            p.push("dealers.leverage must be at least 1".into());
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
            ("extend_window_s", a.extend_window_s),
            ("extend_by_s", a.extend_by_s),
            ("decision_window_s", a.decision_window_s),
            ("outage_grace_s", a.outage_grace_s),
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

    /// The auction rules this configuration describes.
    pub fn rules(&self) -> Rules {
        let a = &self.auction;
        let ms = |s: u64| s.saturating_mul(1000);
        Rules {
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
        }
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
        assert_eq!(c.rules().leverage, 4);
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
    fn unknown_keys_are_errors() {
        let err = Config::from_layers(None, env(&[("GAVEL_AUCTION__TYPO_S", "1")]))
            .expect_err("unknown key");
        assert!(err.to_string().contains("typo_s"), "{err}");
    }
}
