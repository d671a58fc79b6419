//! The controller: connects a fixture's dealers, runs open-loop phases over them, and
//! checks the run's correctness afterwards. Scenarios (`scenario.rs`) are built from these.

use crate::conn::{self, AuctionState, Cmd, Conn, Phase, PhaseStats, World};
use crate::http::Http;
use crate::model::{check_lot, AckedBid, LotVerdict};
use crate::proto::Format;
use crate::setup::{Fixture, SetupMode};
use crate::stats::{Latency, Usage, UsageFigures};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the server is.
#[derive(Clone, Debug)]
pub struct Target {
    /// `ws://host:port`.
    pub ws_base: String,
    /// `host:port`.
    pub authority: String,
    /// Encoding.
    pub format: Format,
}

impl Target {
    /// From `ws://host:port`, `http://host:port` or `host:port`.
    pub fn parse(url: &str, format: Format) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or(url)
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            bail!("--url must be ws://host:port (got {url})");
        }
        Ok(Self {
            ws_base: format!("ws://{rest}"),
            authority: rest.to_owned(),
            format,
        })
    }
}

/// A fixture with its connections open.
pub struct Session {
    /// Shared state.
    pub world: Arc<World>,
    /// Open connections, one per connected dealer.
    pub conns: Vec<Arc<Conn>>,
    /// Dealers and auctions.
    pub fixture: Fixture,
    /// Server.
    pub target: Target,
    /// How the fixture was made (the model check needs the API's reserve).
    pub setup: SetupMode,
}

/// A progress bar on stderr (hidden when stderr is not a terminal or `quiet`).
pub fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_owned());
    pb
}

impl Session {
    /// Connects `dealers` (indexes into the fixture), `parallel` handshakes at a time.
    pub async fn open(
        target: Target,
        fixture: Fixture,
        setup: SetupMode,
        dealers: &[usize],
        proxy_ratio: f64,
        track_updates: bool,
        quiet: bool,
    ) -> anyhow::Result<Self> {
        let auctions = fixture
            .auctions
            .iter()
            .map(|a| AuctionState {
                id: a.id.clone(),
                floor: AtomicU64::new(a.start),
                offered: AtomicU64::new(0),
            })
            .collect();
        let scopes = fixture
            .auctions
            .iter()
            .map(|a| usize::from(a.scope) + 1)
            .max()
            .unwrap_or(1);
        let mut index = vec![HashMap::new(); scopes];
        for (i, a) in fixture.auctions.iter().enumerate() {
            index[usize::from(a.scope)].insert(a.id.clone(), i as u32);
        }
        let world = Arc::new(World {
            epoch: Instant::now(),
            auctions,
            index,
            track_updates,
            proxy_ratio,
            format: target.format,
        });
        let pb = bar(dealers.len() as u64, "connect", quiet);
        let sem = Arc::new(tokio::sync::Semaphore::new(128));
        let mut set = tokio::task::JoinSet::new();
        for &d in dealers {
            let dealer = &fixture.dealers[d];
            let (world, base, token, scope, sem) = (
                world.clone(),
                dealer
                    .ws_base
                    .clone()
                    .unwrap_or_else(|| target.ws_base.clone()),
                dealer.token.clone(),
                dealer.scope,
                sem.clone(),
            );
            set.spawn(async move {
                let _permit = sem.acquire_owned().await?;
                let mut last = None;
                for attempt in 0..3 {
                    match conn::connect(world.clone(), &base, &token, d as u32, scope).await {
                        Ok(c) => return Ok((d, c)),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
            });
        }
        let mut conns = Vec::with_capacity(dealers.len());
        while let Some(r) = set.join_next().await {
            conns.push(r??);
            pb.inc(1);
        }
        pb.finish_and_clear();
        conns.sort_by_key(|(d, _)| *d);
        Ok(Self {
            world,
            conns: conns.into_iter().map(|(_, c)| c).collect(),
            fixture,
            target,
            setup,
        })
    }

    /// Closes every connection.
    pub fn close(&self) {
        for c in &self.conns {
            let _ = c.cmd.send(Cmd::Close);
        }
    }
}

/// One phase's results.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PhaseReport {
    /// Offered bids/s.
    pub offered_rate: f64,
    /// Scheduled length, s.
    pub duration_s: f64,
    /// Bids sent.
    pub sent: u64,
    /// Bid results received.
    pub acks: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Results per second over the phase (scheduled length, or longer if replies trailed).
    pub ack_rate: f64,
    /// Accepted bids per second, same window.
    pub accepted_rate: f64,
    /// Latency from each bid's due time to its result.
    pub ack_latency: Latency,
    /// Latency from the actual send to the result (leaves out the generator's lateness;
    /// for reading alongside `ack_latency`, never instead of it).
    pub ack_from_send: Latency,
    /// How late the generator itself sent (due time → handed to the socket).
    pub send_lag: Latency,
    /// Refusals by reason.
    pub rejections: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Bids with no result by the end of the drain.
    pub unanswered: u64,
    /// Other server messages (updates, outbids …) received.
    pub other_msgs: u64,
    /// CPU and run-queue wait over the phase.
    #[serde(flatten)]
    pub usage: UsageFigures,
    /// Every bid answered, no errors, and results kept up with the offered rate (≥ 95%).
    pub sustained: bool,
    /// `watched_cpu_s` over the accepted bids, µs: what one accepted bid cost the
    /// watched processes (every node and the Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_accepted: Option<f64>,
}

impl PhaseReport {
    /// The human summary's lines.
    pub fn lines(&self) -> String {
        let mut s = format!(
            "  offered {:.0}/s for {:.0} s: sent {}, results {} ({:.0}/s), accepted {} ({:.0}/s), unanswered {}{}\n",
            self.offered_rate,
            self.duration_s,
            self.sent,
            self.acks,
            self.ack_rate,
            self.accepted,
            self.accepted_rate,
            self.unanswered,
            if self.sustained { "" } else { "  [NOT sustained]" }
        );
        s += &format!("  ack latency   {}\n", self.ack_latency.line());
        s += &format!("  from send     {}\n", self.ack_from_send.line());
        s += &format!("  send lag      {}\n", self.send_lag.line());
        s += &format!(
            "  rejections {:?}  errors {:?}  other msgs {}\n",
            self.rejections, self.errors, self.other_msgs
        );
        let u = &self.usage;
        if let (Some(c), Some(per)) = (u.watched_cpu_s, self.cpu_us_per_accepted) {
            s += &format!("  watched processes: {c:.2} CPU s, {per:.1} µs per accepted bid\n");
        }
        s += &format!(
            "  CPU: generator {:.2} cores{}; waiting for a CPU (s/s): generator {}, server {}\n",
            u.generator_cpu_cores,
            u.server_cpu_cores
                .map(|c| format!(", server {c:.2} cores"))
                .unwrap_or_default()
                + &u.redis_cpu_cores
                    .map(|c| format!(", redis {c:.2} cores"))
                    .unwrap_or_default(),
            u.generator_runqueue_wait
                .map_or("?".into(), |w| format!("{w:.2}")),
            u.server_runqueue_wait
                .map_or("?".into(), |w| format!("{w:.2}"))
        );
        s
    }
}

/// What a phase watches besides its own connections.
#[derive(Clone, Debug, Default)]
pub struct Observe {
    /// The server's pid: its CPU and run-queue wait.
    pub server_pid: Option<u32>,
    /// Its Redis's pid: its CPU.
    pub redis_pid: Option<u32>,
    /// No progress bar.
    pub quiet: bool,
    /// Processes whose CPU is summed over the phase (`watched_cpu_s`).
    pub cpu_pids: Vec<u32>,
}

/// Runs one open-loop phase: `rate` bids/s for `duration`, each connection bidding on its
/// `assignment` auctions, then waits up to `drain` for the last results.
pub async fn run_phase(
    s: &Session,
    assignment: &[Arc<Vec<u32>>],
    rate: f64,
    duration: Duration,
    drain: Duration,
    o: Observe,
) -> PhaseReport {
    let Observe {
        server_pid,
        redis_pid,
        quiet,
        cpu_pids,
    } = o;
    let _ = conn::take_stats(&s.conns);
    let outstanding_before = conn::outstanding(&s.conns);
    let n = s.conns.len().max(1) as f64;
    let per_conn_rate = rate / n;
    let interval_ns = (1e9 / per_conn_rate).max(1.0) as u64;
    let duration_ns = duration.as_nanos() as u64;
    let start_ns = s.world.now_ns() + 100_000_000;
    let mut rng = rand::thread_rng();
    let usage = Usage::watching(server_pid, redis_pid, &cpu_pids);
    // Each connection starts at a random phase within its spacing and sends every bid due
    // before the end, so the whole schedule lies inside the phase and the offered rate
    // holds on average even when a connection's spacing is longer than the phase.
    let mut sent_expected = 0;
    for (i, c) in s.conns.iter().enumerate() {
        let offset = rng.gen_range(0..interval_ns);
        let count = if offset < duration_ns {
            (duration_ns - offset).div_ceil(interval_ns)
        } else {
            0
        };
        sent_expected += count;
        let _ = c.cmd.send(Cmd::Run(Phase {
            start_ns: start_ns + offset,
            interval_ns,
            count,
            auctions: assignment[i % assignment.len()].clone(),
        }));
    }
    let pb = bar(duration.as_millis() as u64, &format!("{rate:.0}/s"), quiet);
    let end_ns = start_ns + duration_ns;
    loop {
        let now = s.world.now_ns();
        if now >= end_ns {
            break;
        }
        pb.set_position(
            (now.saturating_sub(start_ns) / 1_000_000).min(duration.as_millis() as u64),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    pb.set_message("draining");
    let drain_until = Instant::now() + drain;
    while conn::outstanding(&s.conns) > outstanding_before && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pb.finish_and_clear();
    let used = usage.finish();
    let unanswered = conn::outstanding(&s.conns).saturating_sub(outstanding_before);
    let st: PhaseStats = conn::take_stats(&s.conns);
    let window = duration
        .as_secs_f64()
        .max(st.last_ack_ns.saturating_sub(start_ns) as f64 / 1e9);
    let ack_rate = st.acks as f64 / window;
    let sustained = unanswered == 0
        && st.errors.is_empty()
        && st.sent >= sent_expected
        // Against what was scheduled: with spacings longer than the phase, the number of
        // bids due varies around rate × duration.
        && ack_rate >= 0.95 * (sent_expected as f64 / duration.as_secs_f64());
    PhaseReport {
        offered_rate: rate,
        duration_s: duration.as_secs_f64(),
        sent: st.sent,
        acks: st.acks,
        accepted: st.accepted,
        ack_rate,
        accepted_rate: st.accepted as f64 / window,
        ack_latency: Latency::of(&st.ack),
        ack_from_send: Latency::of(&st.wire),
        send_lag: Latency::of(&st.send_lag),
        rejections: st.reasons,
        errors: st.errors,
        unanswered,
        other_msgs: st.other_msgs,
        cpu_us_per_accepted: used
            .watched_cpu_s
            .filter(|_| st.accepted > 0)
            .map(|c| c * 1e6 / st.accepted as f64),
        usage: used,
        sustained,
    }
}

/// Each dealer's auctions: dealer `i` bids on `per_dealer` consecutive auctions starting at
/// `i mod M`, so M auctions share N dealers evenly (N/M bidders per auction when
/// `per_dealer` is 1) and each accepted bid fans out to a known, small set of dealers.
pub fn assign(dealers: usize, auctions: usize, per_dealer: usize) -> Vec<Arc<Vec<u32>>> {
    (0..dealers)
        .map(|i| {
            Arc::new(
                (0..per_dealer.clamp(1, auctions.max(1)))
                    .map(|j| ((i + j) % auctions.max(1)) as u32)
                    .collect(),
            )
        })
        .collect()
}

/// One auction's check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LotCheck {
    /// Auction id.
    pub auction: String,
    /// The cluster market it is in (ids repeat across markets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<String>,
    /// Accepted bids in the ledger.
    pub acked: u64,
    /// Price under the rules.
    pub price: Option<u64>,
    /// Leader under the rules: the server's dealer id when known, else `#index`.
    pub leader: Option<String>,
    /// The server's `GET /v1/auctions/{id}`: status, price, bids.
    pub server_status: Option<String>,
    /// Server price.
    pub server_price: Option<u64>,
    /// Server bid count.
    pub server_bids: Option<u64>,
    /// Dealers whose newest update said `leading` (should be exactly the leader).
    pub leaders_seen: Vec<String>,
    /// Bids on it that never got a result (a crashed server may or may not have kept them).
    #[serde(default)]
    pub unanswered: u64,
    /// Differences found.
    pub problems: Vec<String>,
}

/// The correctness check's outcome.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Correctness {
    /// False when the check could not apply (setup none: servers that do not implement the
    /// rules).
    pub checked: bool,
    /// Accepted bids in the ledger.
    pub acked_accepted: u64,
    /// Bids that never got a result (cannot be placed in the ledger either way).
    pub unanswered: u64,
    /// Acknowledgements whose price or `leading` differ from the rules, and other problems.
    pub problems: u64,
    /// True when nothing differs.
    pub ok: bool,
    /// Per auction.
    pub lots: Vec<LotCheck>,
    /// What was compared.
    pub method: String,
}

impl Correctness {
    /// The human summary's lines.
    pub fn lines(&self) -> String {
        if !self.checked {
            return format!("  correctness: not checked ({})\n", self.method);
        }
        let mut s = format!(
            "  correctness: {} — {} accepted bids over {} auctions, {} unanswered, {} problems ({})\n",
            if self.ok { "OK" } else { "FAILED" },
            self.acked_accepted,
            self.lots.len(),
            self.unanswered,
            self.problems,
            self.method
        );
        for l in self.lots.iter().filter(|l| !l.problems.is_empty()).take(5) {
            for p in l.problems.iter().take(3) {
                s += &format!("    {}: {p}\n", l.auction);
            }
        }
        s
    }
}

/// Waits for trailing updates, then checks every acknowledged bid against the rules, each
/// auction's final state against the server's API, and who the dealers were told leads.
pub async fn check(s: &Session, settle: Duration) -> Correctness {
    tokio::time::sleep(settle).await;
    if s.setup != SetupMode::Api {
        return Correctness {
            checked: false,
            method: "setup=none: the server's rules are not the contract's".into(),
            ..Default::default()
        };
    }
    let mut per_lot: HashMap<u32, Vec<AckedBid>> = HashMap::new();
    let mut unanswered_lots: HashMap<u32, u64> = HashMap::new();
    let mut unanswered = 0;
    // auction → (dealer → (seq, leading)) from each dealer's newest update.
    let mut seen: HashMap<u32, Vec<(u32, u64, bool)>> = HashMap::new();
    for c in &s.conns {
        let b = c.book();
        for (sent, ans) in b.sent.iter().zip(&b.answers) {
            match ans {
                Some(a) if a.accepted => per_lot.entry(sent.auction).or_default().push(AckedBid {
                    seq: a.seq,
                    dealer: c.dealer,
                    amount: sent.amount,
                    max: sent.max,
                    price: a.price,
                    leading: a.leading,
                    ends_at: a.ends_at,
                }),
                Some(_) => {}
                None => {
                    unanswered += 1;
                    *unanswered_lots.entry(sent.auction).or_default() += 1;
                }
            }
        }
        for (&a, &(seq, leading)) in &b.lead {
            seen.entry(a).or_default().push((c.dealer, seq, leading));
        }
    }
    let name = |d: u32| -> String {
        s.fixture
            .dealers
            .get(d as usize)
            .and_then(|x| x.id.clone())
            .unwrap_or_else(|| format!("#{d}"))
    };
    // One connection per server: in a cluster each auction is read from its market's.
    let mut servers: HashMap<String, Option<Http>> = HashMap::new();
    let mut out = Correctness {
        checked: true,
        unanswered,
        method: "every acknowledgement replayed under the contract's rules; final price and \
                 bid count compared with GET /v1/auctions/{id}; leader compared with each \
                 dealer's newest update"
            .into(),
        ..Default::default()
    };
    for (i, a) in s.fixture.auctions.iter().enumerate() {
        let i = i as u32;
        let mut bids = per_lot.remove(&i).unwrap_or_default();
        let v: LotVerdict = check_lot(&a.id, a.start, a.reserve, &mut bids);
        out.acked_accepted += v.acked;
        let mut problems = v.mismatches.clone();
        let mut count = v.mismatch_count;
        let lost = unanswered_lots.get(&i).copied().unwrap_or(0);
        let (mut st, mut sp, mut sb) = (None, None, None);
        let authority = a.authority.as_ref().unwrap_or(&s.target.authority);
        if !servers.contains_key(authority) {
            servers.insert(authority.clone(), Http::connect(authority).await.ok());
        }
        if let Some(h) = servers.get_mut(authority).and_then(Option::as_mut) {
            match h
                .get(&format!("/v1/auctions/{}", a.id), &s.fixture.reader_token)
                .await
            {
                Ok(r) if r.status == 200 => {
                    let o: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    st = o["status"].as_str().map(str::to_owned);
                    sp = o["price"].as_u64();
                    sb = o["bids"].as_u64();
                }
                Ok(r) => {
                    count += 1;
                    problems.push(format!("GET /v1/auctions/{}: HTTP {}", a.id, r.status));
                }
                Err(e) => {
                    count += 1;
                    problems.push(format!("GET /v1/auctions/{}: {e:#}", a.id));
                }
            }
        }
        if lost == 0 {
            if sb.is_some() && sb != Some(v.acked) {
                count += 1;
                problems.push(format!(
                    "server counts {:?} accepted bids, the ledger holds {}",
                    sb, v.acked
                ));
            }
            if st.is_some() && sp != v.price {
                count += 1;
                problems.push(format!(
                    "server price {:?}, the rules give {:?}",
                    sp, v.price
                ));
            }
        } else {
            problems.push(format!(
                "{lost} bids unanswered: server totals not compared (note, not a failure)"
            ));
        }
        let mut leaders_seen = Vec::new();
        if let Some(list) = seen.get(&i) {
            let newest = list.iter().map(|x| x.1).max().unwrap_or(0);
            for &(d, seq, leading) in list {
                if leading && seq == newest {
                    leaders_seen.push(name(d));
                }
            }
            leaders_seen.sort();
            let expect: Vec<String> = v.leader.map(name).into_iter().collect();
            if lost == 0 && v.leader.is_some() && leaders_seen != expect {
                count += 1;
                problems.push(format!(
                    "dealers told they lead: {leaders_seen:?}; the rules give {expect:?}"
                ));
            }
        }
        out.problems += count;
        out.lots.push(LotCheck {
            auction: a.id.clone(),
            market: a.market.clone(),
            acked: v.acked,
            price: v.price,
            leader: v.leader.map(name),
            server_status: st,
            server_price: sp,
            server_bids: sb,
            leaders_seen,
            unanswered: lost,
            problems,
        });
    }
    out.ok = out.problems == 0;
    out
}

/// Compares a run's ledger (its JSON report) with `gavel replay --verify` digest lines
/// (`A<n> <status> price=<p> bids=<n> winner=<D..|-> sha256=..`): every auction of the run
/// must be in the journal with the price and bid count the acknowledged bids imply, and a
/// sold auction's winner must be the rules' leader. A cluster's digests (`gavel replay
/// --verify --all-markets`) come in sections headed `market <name>:`, and each auction is
/// looked up in its own market's.
///
/// `after_crash`: the run's server was killed under load, so bids in flight at the kill
/// (sent, never answered) may be in the journal or not. Every acknowledged bid must still
/// be there: an auction's journal holds at least its acknowledged accepted bids and at
/// most those plus its unanswered ones, and where it holds more, a price no lower.
pub fn verify_digests(
    report: &serde_json::Value,
    digests: &str,
    after_crash: bool,
) -> anyhow::Result<Vec<String>> {
    let lots: Vec<LotCheck> = serde_json::from_value(report["correctness"]["lots"].clone())
        .context("the report has no correctness.lots (was it a setup=api run?)")?;
    let mut by_id = HashMap::new();
    let mut market = String::new();
    for line in digests.lines() {
        if let Some(m) = line
            .strip_prefix("market ")
            .and_then(|r| r.trim_end().strip_suffix(':'))
        {
            market = m.to_owned();
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(id), Some(status)) = (it.next(), it.next()) else {
            continue;
        };
        let mut f = HashMap::new();
        for kv in it {
            if let Some((k, v)) = kv.split_once('=') {
                f.insert(k.to_owned(), v.to_owned());
            }
        }
        if f.contains_key("bids") {
            by_id.insert((market.clone(), id.to_owned()), (status.to_owned(), f));
        }
    }
    let mut problems = Vec::new();
    for l in &lots {
        let key = (l.market.clone().unwrap_or_default(), l.auction.clone());
        let Some((status, f)) = by_id.get(&key) else {
            problems.push(format!("{}: not in the journal's digests", l.auction));
            continue;
        };
        let price = f.get("price").and_then(|p| p.parse::<u64>().ok());
        let bids = f.get("bids").and_then(|p| p.parse::<u64>().ok());
        let in_flight = |n: u64| n > l.acked && n - l.acked <= l.unanswered;
        if after_crash && bids.is_some_and(in_flight) {
            if price < l.price {
                problems.push(format!(
                    "{}: journal price {:?} under the acknowledged bids' {:?}",
                    l.auction, price, l.price
                ));
            }
            continue;
        }
        if bids != Some(l.acked) {
            problems.push(format!(
                "{}: journal has {:?} accepted bids, the ledger {}",
                l.auction, bids, l.acked
            ));
        }
        if price != l.price {
            problems.push(format!(
                "{}: journal price {:?}, the rules give {:?}",
                l.auction, price, l.price
            ));
        }
        if status == "sold" {
            let w = f.get("winner").cloned();
            if w != l.leader {
                problems.push(format!(
                    "{}: journal winner {:?}, the rules give {:?}",
                    l.auction, w, l.leader
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report whose one auction A1 had 3 acknowledged accepted bids (price 5,200,000)
    /// and 2 bids unanswered when the server was killed.
    fn report() -> serde_json::Value {
        serde_json::json!({"correctness": {"lots": [{
            "auction": "A1", "acked": 3, "price": 5_200_000, "leader": "D2",
            "server_status": null, "server_price": null, "server_bids": null,
            "leaders_seen": [], "unanswered": 2, "problems": []
        }]}})
    }

    fn journal(bids: u64, price: u64) -> String {
        format!("A1 live price={price} bids={bids} winner=- sha256=00\n")
    }

    #[test]
    fn after_a_crash_the_journal_may_hold_bids_in_flight_but_every_acknowledged_one() {
        let r = report();
        let ok = |bids, price, crash| {
            verify_digests(&r, &journal(bids, price), crash)
                .expect("parses")
                .is_empty()
        };
        // Exactly the acknowledged bids: agrees either way.
        assert!(ok(3, 5_200_000, false) && ok(3, 5_200_000, true));
        // One or two of the unanswered bids landed: only a crashed run allows it.
        assert!(ok(4, 5_300_000, true) && ok(5, 5_400_000, true));
        assert!(!ok(4, 5_300_000, false));
        // An acknowledged bid missing, more than were in flight, or a lower price: never.
        assert!(!ok(2, 5_100_000, true));
        assert!(!ok(6, 5_500_000, true));
        assert!(!ok(4, 5_100_000, true));
        assert!(!ok(3, 5_300_000, true));
    }

    #[test]
    fn a_clusters_digests_are_read_market_by_market() {
        // A1 of two markets: the report's A1 is east's, whose journal agrees; north's A1
        // (another auction) must not be taken for it.
        let mut r = report();
        r["correctness"]["lots"][0]["market"] = "east".into();
        r["correctness"]["lots"][0]["unanswered"] = 0.into();
        let digests = format!(
            "market north:\n{}replayed 1 commands\nmarket east:\n{}",
            journal(9, 9_000_000),
            journal(3, 5_200_000)
        );
        assert!(verify_digests(&r, &digests, false)
            .expect("parses")
            .is_empty());
        let swapped = format!(
            "market north:\n{}market east:\n{}",
            journal(3, 5_200_000),
            journal(9, 9_000_000)
        );
        assert!(!verify_digests(&r, &swapped, false)
            .expect("parses")
            .is_empty());
        // Without its market the lot is looked for outside any section, and not found.
        assert!(!verify_digests(&report(), &digests, false)
            .expect("parses")
            .is_empty());
    }

    #[test]
    fn a_report_without_unanswered_counts_reads_as_none_in_flight() {
        let mut r = report();
        r["correctness"]["lots"][0]
            .as_object_mut()
            .expect("object")
            .remove("unanswered");
        let problems = verify_digests(&r, &journal(4, 5_300_000), true).expect("parses");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("journal has Some(4) accepted bids, the ledger 3")),
            "{problems:?}"
        );
    }
}
