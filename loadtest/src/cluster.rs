//! A gavel cluster seen from outside: its map (`GET /v1/cluster` on any node's front
//! door) and a scenario's fixture made the way the cluster asks clients to make it.
//!
//! Accounts are registered at a front door (`POST /v1/dealers` with a `home_market`, `POST
//! /v1/sellers`), so every market knows them under one id; a listing goes to its market's
//! server; a dealer bids over a WebSocket to its home market's server, where its deposit
//! counts. Dealer `i`'s home is market `i mod K` and lot `j` is listed in market `j mod
//! K`, so with the auctions a multiple of K, `run::assign` gives every dealer lots of its
//! own market only (see [`assign`]).
//!
//! Only the public protocol: the map's fields are those docs/protocol.md gives.

use crate::http::Http;
use crate::setup::{
    listing_body, register_dealers, Auction, Created, Dealer, Fixture, Listed, SetupOpts,
};
use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One market's entry in the map.
#[derive(Clone, Debug, Deserialize)]
pub struct MarketRoute {
    /// Its name.
    pub market: String,
    /// Cities listed in it.
    #[serde(default)]
    pub cities: Vec<String>,
    /// The node serving it (none while it changes hands).
    pub node: Option<String>,
    /// `http://host:port` of its server.
    pub url: Option<String>,
    /// `ws://host:port/v1/ws` of its server.
    pub ws: Option<String>,
}

/// One live node.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeRoute {
    /// Its id.
    pub node: String,
    /// Its front door.
    pub url: String,
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterMap {
    /// The node that answered.
    #[serde(default)]
    pub node: String,
    /// Every market.
    pub markets: Vec<MarketRoute>,
    /// Live nodes.
    #[serde(default)]
    pub nodes: Vec<NodeRoute>,
}

impl ClusterMap {
    /// Whether every market has a server.
    pub fn all_served(&self) -> bool {
        !self.markets.is_empty() && self.markets.iter().all(|m| m.url.is_some())
    }

    /// A market's entry.
    pub fn market(&self, name: &str) -> Option<&MarketRoute> {
        self.markets.iter().find(|m| m.market == name)
    }
}

/// `host:port` of an `http://host:port[/...]` or `ws://host:port[/...]` URL.
pub fn authority(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The map from the front door at `front` (`host:port`), on a connection of its own.
pub async fn fetch_map(front: &str) -> anyhow::Result<ClusterMap> {
    let mut h = Http::connect(front).await?;
    fetch_map_on(&mut h).await
}

/// The map over an open connection to a front door.
pub async fn fetch_map_on(h: &mut Http) -> anyhow::Result<ClusterMap> {
    h.call::<()>(hyper::Method::GET, "/v1/cluster", None, None)
        .await?
        .json(200)
        .context("GET /v1/cluster")
}

/// The map once every market is served and the map has stayed the same for a second (a
/// node that just joined takes its share within a heartbeat or two: a fixture made before
/// that would point at servers that are about to hand their markets over), asking every
/// 100 ms for up to `wait`.
pub async fn wait_served(front: &str, wait: Duration) -> anyhow::Result<ClusterMap> {
    let deadline = Instant::now() + wait;
    let mut stable: Option<(Vec<Option<String>>, Instant)> = None;
    loop {
        let last = fetch_map(front).await;
        match &last {
            Ok(m) if m.all_served() => {
                let urls: Vec<Option<String>> = m.markets.iter().map(|r| r.url.clone()).collect();
                match &stable {
                    Some((u, since)) if *u == urls => {
                        if since.elapsed() >= Duration::from_secs(1) {
                            return last;
                        }
                    }
                    _ => stable = Some((urls, Instant::now())),
                }
            }
            _ => stable = None,
        }
        if Instant::now() >= deadline {
            bail!("the cluster at {front} did not serve every market steadily within {wait:?}: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request that may be refused for a moment while an account the control stream has
/// just carried reaches a market: retried on 401/403 for up to 10 s.
pub async fn post_retrying(
    h: &mut Http,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> anyhow::Result<crate::http::Reply> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.post(path, token, body).await?;
        if !matches!(r.status, 401 | 403) || Instant::now() >= deadline {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers one account at the front door: `201 {id, token}` (a `202` means its home
/// market is changing hands, which a fixture cannot wait out: an error).
pub async fn register(
    front: &mut Http,
    admin: &str,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Created> {
    front
        .post(path, admin, body)
        .await?
        .json(201)
        .with_context(|| format!("POST {path} at the front door"))
}

/// Makes a scenario's fixture on the cluster whose front door is `o.authority`: one
/// seller, `o.dealers` dealers with homes round-robin over the markets, `o.auctions` lots
/// listed round-robin on the markets' servers.
pub async fn make(o: &SetupOpts) -> anyhow::Result<Fixture> {
    if o.admin_token.is_empty() {
        bail!("a cluster fixture needs an admin token (--admin-token or GAVEL_ADMIN_TOKEN)");
    }
    let map = wait_served(&o.authority, Duration::from_secs(30)).await?;
    let k = map.markets.len();
    if !o.auctions.is_multiple_of(k) {
        bail!(
            "--auctions ({}) must be a multiple of the cluster's {k} markets, so each market \
             gets as many lots and each dealer bids in its home market",
            o.auctions
        );
    }
    let markets = Arc::new(map.markets);
    let admin = o.admin_token.clone();
    let mut front = Http::connect(&o.authority).await?;
    let seller = register(
        &mut front,
        &admin,
        "/v1/sellers",
        &json!({"name": "loadtest seller"}),
    )
    .await?;

    let (deposit, homes, routes) = (o.deposit, markets.clone(), markets.clone());
    let dealers = register_dealers(
        &o.authority,
        &admin,
        o.dealers,
        move |i| {
            json!({"name": format!("loadtest dealer {i}"), "deposit": deposit,
                   "home_market": homes[i % homes.len()].market})
        },
        move |i, d| Dealer {
            id: Some(d.id),
            token: d.token,
            ws_base: routes[i % routes.len()]
                .ws
                .as_deref()
                .map(|w| format!("ws://{}", authority(w))),
            scope: (i % routes.len()) as u16,
        },
    )
    .await?;

    let mut servers = Vec::with_capacity(k);
    for m in markets.iter() {
        let url = m.url.as_deref().unwrap_or_default();
        servers.push(Http::connect(&authority(url)).await?);
    }
    let mut auctions = Vec::with_capacity(o.auctions);
    for i in 0..o.auctions {
        let scope = i % k;
        let m = &markets[scope];
        let city = m.cities.first().map_or("Hangzhou", String::as_str);
        let l: Listed = post_retrying(
            &mut servers[scope],
            "/v1/listings",
            &seller.token,
            &listing_body(o, i, city),
        )
        .await?
        .json(201)
        .with_context(|| format!("listing a car in market {}", m.market))?;
        auctions.push(Auction {
            id: l.auction,
            start: o.start_price,
            reserve: o.reserve,
            ends_at: l.ends_at,
            authority: Some(authority(m.url.as_deref().unwrap_or_default())),
            scope: scope as u16,
            market: Some(m.market.clone()),
        });
    }
    Ok(Fixture {
        dealers,
        auctions,
        reader_token: admin,
    })
}

/// Each dealer's lots in a cluster of `markets` markets: `per_dealer` lots of its home
/// market (dealer `i`'s home is `i mod markets`, lot `j` is in market `j mod markets`),
/// starting at lot `i mod auctions` and stepping by `markets`.
pub fn assign(
    dealers: usize,
    auctions: usize,
    per_dealer: usize,
    markets: usize,
) -> Vec<Arc<Vec<u32>>> {
    let (a, k) = (auctions.max(1), markets.max(1));
    let per_market = (a / k).max(1);
    (0..dealers)
        .map(|i| {
            Arc::new(
                (0..per_dealer.clamp(1, per_market))
                    .map(|j| ((i + j * k) % a) as u32)
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dealer_bids_in_its_home_market_only() {
        for (dealers, auctions, per, k) in [(400, 200, 1, 4), (480, 240, 3, 12), (10, 4, 9, 4)] {
            let a = assign(dealers, auctions, per, k);
            for (i, lots) in a.iter().enumerate() {
                assert!(!lots.is_empty());
                for &l in lots.iter() {
                    assert_eq!(l as usize % k, i % k, "dealer {i} got lot {l}");
                }
                let mut uniq = lots.to_vec();
                uniq.sort_unstable();
                uniq.dedup();
                assert_eq!(uniq.len(), lots.len(), "dealer {i}: a lot twice");
            }
        }
    }

    #[test]
    fn one_market_assigns_as_a_single_server_does() {
        assert_eq!(assign(7, 5, 2, 1), crate::run::assign(7, 5, 2));
    }

    #[test]
    fn authorities_of_urls() {
        assert_eq!(authority("http://127.0.0.1:5/"), "127.0.0.1:5");
        assert_eq!(authority("ws://h:9/v1/ws"), "h:9");
        assert_eq!(authority("h:9"), "h:9");
    }
}
