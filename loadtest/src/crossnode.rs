//! What a client pays for reaching a node that does not serve its market: a cluster
//! redirects rather than forwards, so such a client first asks the front door where the
//! market is (`GET /v1/cluster` on a fresh connection), then opens its WebSocket on the
//! owner. Compared with a client that already knows the owner and connects there directly;
//! both are timed to the first bid's answer. The two kinds of trial alternate, so the
//! machine's drift falls on both alike.
//!
//! Once connected, a bid never crosses nodes: the steady-state cost is the single-node
//! server's (measured separately with `steady --front`).

use crate::bidder::{next_amount, Bidder};
use crate::cluster::{self, ClusterMap};
use crate::http::Http;
use crate::setup::{listing_body, SetupMode, SetupOpts};
use crate::stats::{new_hist, record, Latency};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Settings.
#[derive(Clone, Debug)]
pub struct CrossOpts {
    /// The front door of the node the client reached, `host:port`.
    pub front: String,
    /// Admin token.
    pub admin_token: String,
    /// Trials of each kind.
    pub trials: usize,
    /// Pause between trials.
    pub pause: Duration,
    /// Start price, fen.
    pub start_price: u64,
}

/// The measure.
#[derive(Debug, Serialize)]
pub struct CrossReport {
    /// The node whose front door was asked.
    pub front_node: String,
    /// The market bid in, and the node serving it.
    pub market: String,
    /// Its owner.
    pub owner: String,
    /// Trials of each kind.
    pub trials: usize,
    /// Resolve at the front door + connect to the owner + first bid's answer.
    pub via_front: Latency,
    /// Of which the `GET /v1/cluster` (connection included).
    pub resolve_only: Latency,
    /// Connect to the owner + first bid's answer.
    pub direct: Latency,
    /// Trials whose bid was accepted, of each kind (the others were answered with a
    /// refusal, which is as much an answer).
    pub accepted_via_front: usize,
    /// Same, direct.
    pub accepted_direct: usize,
    /// Load average before and after.
    pub loadavg: (String, String),
}

impl CrossReport {
    /// The human summary.
    pub fn human(&self) -> String {
        format!(
            "cross-node: front door of {} → market {} on {}, {} trials each (load {} → {})\n  \
             via front door: {}\n    of which resolve: {}\n  direct:         {}\n  \
             added at p50: {:.3} ms, at p99: {:.3} ms\n",
            self.front_node,
            self.market,
            self.owner,
            self.trials,
            self.loadavg.0,
            self.loadavg.1,
            self.via_front.line(),
            self.resolve_only.line(),
            self.direct.line(),
            self.via_front.p50_ms - self.direct.p50_ms,
            self.via_front.p99_ms - self.direct.p99_ms,
        )
    }
}

/// Runs the trials.
pub async fn crossnode(o: &CrossOpts) -> anyhow::Result<CrossReport> {
    let map: ClusterMap = cluster::wait_served(&o.front, Duration::from_secs(30)).await?;
    let Some(route) = map
        .markets
        .iter()
        .find(|m| m.node.as_deref() != Some(map.node.as_str()))
        .cloned()
    else {
        bail!(
            "every market is served by {} itself: start more than one node",
            map.node
        );
    };
    let (Some(ws), Some(url), Some(owner)) = (route.ws.clone(), route.url.clone(), route.node)
    else {
        bail!("market {} has no server", route.market);
    };
    // Accounts and a lot in that market. Eight dealers take turns, so the bidder never
    // leads and each connection's close has long finished before its dealer connects again.
    let mut front = Http::connect(&o.front).await?;
    let seller = cluster::register(
        &mut front,
        &o.admin_token,
        "/v1/sellers",
        &json!({"name": "crossnode seller"}),
    )
    .await?;
    let mut tokens = Vec::new();
    for d in 0..8 {
        let c = cluster::register(
            &mut front,
            &o.admin_token,
            "/v1/dealers",
            &json!({"name": format!("crossnode {d}"), "deposit": 100_000_000_000u64,
                    "home_market": route.market}),
        )
        .await?;
        tokens.push(c.token);
    }
    let setup = SetupOpts {
        mode: SetupMode::Api,
        authority: o.front.clone(),
        admin_token: o.admin_token.clone(),
        dealers: 0,
        auctions: 1,
        start_price: o.start_price,
        reserve: o.start_price,
        duration_s: 3600,
        deposit: 0,
    };
    let mut server = Http::connect(&cluster::authority(&url)).await?;
    let city = route.cities.first().map_or("Hangzhou", String::as_str);
    let listed: crate::setup::Listed = cluster::post_retrying(
        &mut server,
        "/v1/listings",
        &seller.token,
        &listing_body(&setup, 0, city),
    )
    .await?
    .json(201)
    .context("listing the lot")?;
    let loadavg_before = crate::stats::loadavg();
    let (mut via, mut resolve_h, mut direct) = (new_hist(), new_hist(), new_hist());
    let (mut acc_via, mut acc_direct) = (0, 0);
    let mut amount = o.start_price;
    let wait = Duration::from_secs(5);
    for t in 0..o.trials * 2 {
        let token = &tokens[t % tokens.len()];
        let through_front = t % 2 == 0;
        let t0 = Instant::now();
        let target = if through_front {
            let mut h = Http::connect(&o.front).await?;
            let m = cluster::fetch_map_on(&mut h).await?;
            record(&mut resolve_h, t0.elapsed().as_micros() as u64);
            m.market(&route.market)
                .and_then(|r| r.ws.clone())
                .context("the market lost its server during the run")?
        } else {
            ws.clone()
        };
        let mut b = Bidder::connect(&target, token, &format!("x{t}"), wait).await?;
        let outcome = b.bid(&listed.auction, amount, wait).await;
        let us = t0.elapsed().as_micros() as u64;
        b.close().await;
        let accepted = matches!(outcome, crate::bidder::Outcome::Accepted { .. });
        match next_amount(&outcome) {
            Some(n) => amount = n,
            None => bail!("trial {t}: {}", outcome.word()),
        }
        if through_front {
            record(&mut via, us);
            acc_via += usize::from(accepted);
        } else {
            record(&mut direct, us);
            acc_direct += usize::from(accepted);
        }
        tokio::time::sleep(o.pause).await;
    }
    Ok(CrossReport {
        front_node: map.node,
        market: route.market,
        owner,
        trials: o.trials,
        via_front: Latency::of(&via),
        resolve_only: Latency::of(&resolve_h),
        direct: Latency::of(&direct),
        accepted_via_front: acc_via,
        accepted_direct: acc_direct,
        loadavg: (loadavg_before, crate::stats::loadavg()),
    })
}
