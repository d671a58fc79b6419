//! Shill bidding, measured from the journal alone.
//!
//! Per dealer and per dealer–seller pair, over the lots whose bidding ended inside a
//! window, the measures of the UCI Shill Bidding Dataset (Alzahrani and Sadaoui) and
//! Trevathan and Read's shill score, and the count of "discover-and-stop" probes
//! ([`super::probe`]). Every measure is a ratio in `[0, 1]` over accepted bids, where 1
//! is the shill's end of the scale, except `winning_ratio` (a shill almost never wins, so
//! low is suspicious). Ratios are `f64`: they are never prices, and no price is computed
//! from them.
//!
//! Per lot and dealer (D = the lot's bidding time, end − start):
//! - bidding ratio: the dealer's share of the lot's accepted bids;
//! - successive outbidding: 1 if the dealer placed three or more accepted bids in a row
//!   (no other dealer's accepted bid between them: pushing against a proxy), 0.5 for two,
//!   else 0;
//! - last bidding: (end − the dealer's last bid) / D: a shill stops well before the end;
//! - early bidding: 1 − (the dealer's first bid − start) / D;
//! - auction bids: the lot's accepted bids over the most any lot in the window had;
//! - response (Trevathan and Read's inter-bid time): for each of the dealer's bids that
//!   answers another dealer's, 1 − min(gap, `response_ms`) / `response_ms`;
//! - minimum raise (their inter-bid increment): the share of the dealer's bids placed at
//!   exactly the lowest acceptable amount;
//! - won: whether the lot sold to the dealer.
//!
//! Over a pair's lots: the means of the above, `bidder_tendency` (the pair's lots over all
//! the dealer's lots: a shill bids mostly on one seller's cars) and `winning_ratio` (won
//! over lots). A dealer's row is the same over all its lots, with its highest pair
//! tendency.
//!
//! The shill score is Trevathan and Read's weighted sum scaled to 0–10: α bidder
//! tendency, β bidding ratio, γ 1 − winning ratio, δ response, ε minimum raise, ζ early
//! bidding, with the weights of [`WEIGHTS`] (ours, chosen for the ACV pattern: most of a
//! dealer's bids on one seller's cars, and almost no wins).

use super::probe::is_probe;
use super::scan::{Attempt, AttemptResult, AuditSink};
use crate::auction::{self, Outcome};
use crate::vocab::{DealerId, Fen, LotId, SellerId};
use std::collections::{BTreeMap, HashMap};

/// The shill score's weights: α tendency, β bidding ratio, γ 1 − winning ratio, δ
/// response, ε minimum raise, ζ early bidding. Tendency and not winning carry the most:
/// they are what the ACV case shows (bids on 900 of one seller's cars, under 1% won);
/// quick answers, minimum raises and early bids are common among honest dealers on a
/// one-click live board, so they only add weight to the others.
pub const WEIGHTS: [f64; 6] = [3.0, 2.0, 3.0, 1.0, 1.0, 1.0];

/// The window and the thresholds (`[audit]` in the configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct ShillParams {
    /// Lots whose bidding ended at or after this time (ms) count…
    pub from: u64,
    /// …and before this one.
    pub to: u64,
    /// A pair (or dealer) needs at least this many lots in the window to be flagged on its
    /// score: one lot says nothing about a pattern.
    pub min_auctions: u32,
    /// Flag at or above this shill score (0–10).
    pub score_threshold: f64,
    /// A probe is at least this many minimum raises in a row.
    pub probe_min_steps: u32,
    /// Flag a pair (or dealer) with at least this many probes…
    pub probe_threshold: u32,
    /// …when they are also at least this share of its lots: over thousands of lots an
    /// honest dealer's limit sometimes sits at a rival's maximum, a prober's often does.
    pub probe_min_share: f64,
    /// The response measure's scale: an answer this long after a rival's bid, or later,
    /// rates 0 (ms).
    pub response_ms: u64,
}

/// One accepted bid on a lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LotBid {
    /// The bidder.
    pub dealer: DealerId,
    /// When (ms).
    pub at: u64,
    /// The amount placed.
    pub amount: Fen,
    /// The lowest acceptable amount when it arrived.
    pub min_next_before: Fen,
    /// The price right after it.
    pub price_after: Fen,
    /// The rules' increment at `amount`.
    pub increment: Fen,
    /// Whether the bidder led right after it.
    pub leading: bool,
}

/// A lot whose bidding has ended, with its accepted bids in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotRecord {
    /// The lot.
    pub lot: LotId,
    /// Its seller.
    pub seller: SellerId,
    /// When bidding opened (ms).
    pub starts_at: u64,
    /// When bidding ended (ms, after every extension).
    pub ends_at: u64,
    /// Who bought it, if it sold.
    pub winner: Option<DealerId>,
    /// Accepted bids in order.
    pub bids: Vec<LotBid>,
}

/// One dealer's measures on one lot.
#[derive(Clone, Debug, PartialEq)]
pub struct LotMeasures {
    /// The dealer.
    pub dealer: DealerId,
    /// Its accepted bids on the lot.
    pub bids: u32,
    /// Its share of the lot's bids.
    pub bidding_ratio: f64,
    /// 1, 0.5 or 0 (see the module's text).
    pub successive_outbidding: f64,
    /// (end − last bid) / D.
    pub last_bidding: f64,
    /// 1 − (first bid − start) / D.
    pub early_bidding: f64,
    /// Sum of the response ratings of its answers to a rival's bid…
    pub response_sum: f64,
    /// …and how many answers there were.
    pub responses: u32,
    /// Its bids at exactly the minimum.
    pub min_raises: u32,
    /// Whether it bought the lot.
    pub won: bool,
    /// Whether its last run of bids was a probe.
    pub probe: bool,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        (num as f64 / den as f64).clamp(0.0, 1.0)
    }
}

/// The measures of every dealer who bid on `lot`, in dealer order.
pub fn lot_measures(lot: &LotRecord, params: &ShillParams) -> Vec<LotMeasures> {
    let total = lot.bids.len() as u64;
    let span = lot.ends_at.saturating_sub(lot.starts_at).max(1);
    let mut by_dealer: BTreeMap<DealerId, LotMeasures> = BTreeMap::new();
    let mut run = (None, 0u32);
    let mut previous: Option<&LotBid> = None;
    for b in &lot.bids {
        let m = by_dealer.entry(b.dealer).or_insert_with(|| LotMeasures {
            dealer: b.dealer,
            bids: 0,
            bidding_ratio: 0.0,
            successive_outbidding: 0.0,
            last_bidding: 0.0,
            early_bidding: 1.0 - ratio(b.at.saturating_sub(lot.starts_at), span),
            response_sum: 0.0,
            responses: 0,
            min_raises: 0,
            won: lot.winner == Some(b.dealer),
            probe: false,
        });
        m.bids += 1;
        m.last_bidding = ratio(lot.ends_at.saturating_sub(b.at), span);
        if b.amount == b.min_next_before {
            m.min_raises += 1;
        }
        if let Some(p) = previous.filter(|p| p.dealer != b.dealer) {
            let gap = b.at.saturating_sub(p.at);
            m.response_sum += 1.0 - ratio(gap.min(params.response_ms), params.response_ms);
            m.responses += 1;
        }
        run = match run {
            (Some(d), n) if d == b.dealer => (Some(d), n + 1),
            _ => (Some(b.dealer), 1),
        };
        let successive = match run.1 {
            0 | 1 => 0.0,
            2 => 0.5,
            _ => 1.0,
        };
        m.successive_outbidding = m.successive_outbidding.max(successive);
        previous = Some(b);
    }
    for m in by_dealer.values_mut() {
        m.bidding_ratio = ratio(u64::from(m.bids), total);
        m.probe = is_probe(&lot.bids, m.dealer, params.probe_min_steps);
    }
    by_dealer.into_values().collect()
}

/// Sums over a dealer's (or a pair's) lots.
#[derive(Clone, Debug, Default, PartialEq)]
struct Sums {
    auctions: u32,
    bids: u64,
    bidding_ratio: f64,
    successive_outbidding: f64,
    last_bidding: f64,
    early_bidding: f64,
    lot_bids: u64,
    response_sum: f64,
    responses: u64,
    min_raises: u64,
    wins: u32,
    probes: u32,
}

impl Sums {
    fn add(&mut self, m: &LotMeasures, lot_bids: u64) {
        self.auctions += 1;
        self.bids += u64::from(m.bids);
        self.bidding_ratio += m.bidding_ratio;
        self.successive_outbidding += m.successive_outbidding;
        self.last_bidding += m.last_bidding;
        self.early_bidding += m.early_bidding;
        self.lot_bids += lot_bids;
        self.response_sum += m.response_sum;
        self.responses += u64::from(m.responses);
        self.min_raises += u64::from(m.min_raises);
        self.wins += u32::from(m.won);
        self.probes += u32::from(m.probe);
    }

    fn measures(&self, tendency: f64, max_lot_bids: u64) -> Measures {
        let n = f64::from(self.auctions.max(1));
        let mean = |sum: f64| (sum / n).clamp(0.0, 1.0);
        let mut m = Measures {
            auctions: self.auctions,
            bids: self.bids,
            bidder_tendency: tendency,
            bidding_ratio: mean(self.bidding_ratio),
            successive_outbidding: mean(self.successive_outbidding),
            last_bidding: mean(self.last_bidding),
            auction_bids: ratio(
                self.lot_bids / u64::from(self.auctions.max(1)),
                max_lot_bids,
            ),
            early_bidding: mean(self.early_bidding),
            winning_ratio: ratio(u64::from(self.wins), u64::from(self.auctions)),
            response: if self.responses == 0 {
                0.0
            } else {
                (self.response_sum / self.responses as f64).clamp(0.0, 1.0)
            },
            min_raise: ratio(self.min_raises, self.bids),
            probes: self.probes,
            probe_share: ratio(u64::from(self.probes), u64::from(self.auctions)),
            shill_score: 0.0,
        };
        m.shill_score = shill_score(&m);
        m
    }
}

/// The measures of a pair or a dealer over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct Measures {
    /// Lots in the window it bid on.
    pub auctions: u32,
    /// Its accepted bids on them.
    pub bids: u64,
    /// UCI bidder tendency (α).
    pub bidder_tendency: f64,
    /// UCI bidding ratio (β).
    pub bidding_ratio: f64,
    /// UCI successive outbidding.
    pub successive_outbidding: f64,
    /// UCI last bidding.
    pub last_bidding: f64,
    /// UCI auction bids.
    pub auction_bids: f64,
    /// UCI early bidding (ζ).
    pub early_bidding: f64,
    /// UCI winning ratio (γ is 1 − this).
    pub winning_ratio: f64,
    /// Trevathan and Read's inter-bid time (δ).
    pub response: f64,
    /// Trevathan and Read's inter-bid increment (ε).
    pub min_raise: f64,
    /// Discover-and-stop probes.
    pub probes: u32,
    /// Probes over lots.
    pub probe_share: f64,
    /// Trevathan and Read's shill score, 0–10.
    pub shill_score: f64,
}

/// The weighted score of `m`'s ratings, 0–10.
pub fn shill_score(m: &Measures) -> f64 {
    let ratings = [
        m.bidder_tendency,
        m.bidding_ratio,
        1.0 - m.winning_ratio,
        m.response,
        m.min_raise,
        m.early_bidding,
    ];
    let sum: f64 = WEIGHTS.iter().zip(ratings).map(|(w, r)| w * r).sum();
    10.0 * sum / WEIGHTS.iter().sum::<f64>()
}

/// Why a row is flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Shill score at or over the threshold, over enough lots.
    ShillScore,
    /// Probes at or over the threshold, and at or over the share of lots.
    Probe,
}

impl Flag {
    /// The report's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShillScore => "shill_score",
            Self::Probe => "probe",
        }
    }
}

/// A row of the report: a dealer–seller pair, or a dealer over every seller.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The dealer.
    pub dealer: DealerId,
    /// The seller (`None` in a dealer's row).
    pub seller: Option<SellerId>,
    /// Its measures.
    pub measures: Measures,
    /// Why it is flagged (empty: not flagged).
    pub flags: Vec<Flag>,
}

/// The ranked report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShillReport {
    /// The window (ms), `[from, to)` on a lot's end.
    pub from: u64,
    /// See `from`.
    pub to: u64,
    /// Lots whose bidding ended in the window.
    pub lots: u32,
    /// Pairs, highest score first among those with `min_auctions` lots or more, then
    /// the rest the same way.
    pub pairs: Vec<Row>,
    /// Dealers, ranked as the pairs.
    pub dealers: Vec<Row>,
}

/// Folds lots into sums; [`Tally::report`] ranks them. Pure: the lots and the parameters
/// decide the report.
#[derive(Debug)]
pub struct Tally {
    params: ShillParams,
    lots: u32,
    max_lot_bids: u64,
    pairs: HashMap<(DealerId, SellerId), Sums>,
    dealers: HashMap<DealerId, Sums>,
}

impl Tally {
    /// An empty tally under `params`.
    pub fn new(params: ShillParams) -> Self {
        Self {
            params,
            lots: 0,
            max_lot_bids: 0,
            pairs: HashMap::new(),
            dealers: HashMap::new(),
        }
    }

    /// Adds a lot whose bidding has ended (ignored outside the window).
    pub fn add(&mut self, lot: &LotRecord) {
        if !(self.params.from..self.params.to).contains(&lot.ends_at) {
            return;
        }
        self.lots += 1;
        let n = lot.bids.len() as u64;
        self.max_lot_bids = self.max_lot_bids.max(n);
        for m in lot_measures(lot, &self.params) {
            self.pairs
                .entry((m.dealer, lot.seller))
                .or_default()
                .add(&m, n);
            self.dealers.entry(m.dealer).or_default().add(&m, n);
        }
    }

    fn flags(&self, m: &Measures) -> Vec<Flag> {
        let p = &self.params;
        let mut flags = Vec::new();
        if m.auctions >= p.min_auctions && m.shill_score >= p.score_threshold {
            flags.push(Flag::ShillScore);
        }
        if m.probes >= p.probe_threshold.max(1) && m.probe_share >= p.probe_min_share {
            flags.push(Flag::Probe);
        }
        flags
    }

    /// The ranked report.
    pub fn report(&self) -> ShillReport {
        let mut top_tendency: HashMap<DealerId, f64> = HashMap::new();
        let mut pairs: Vec<Row> = self
            .pairs
            .iter()
            .map(|(&(dealer, seller), sums)| {
                let all = self.dealers.get(&dealer).map_or(1, |d| d.auctions);
                let tendency = ratio(u64::from(sums.auctions), u64::from(all));
                let top = top_tendency.entry(dealer).or_insert(0.0);
                *top = top.max(tendency);
                let measures = sums.measures(tendency, self.max_lot_bids);
                Row {
                    dealer,
                    seller: Some(seller),
                    flags: self.flags(&measures),
                    measures,
                }
            })
            .collect();
        let mut dealers: Vec<Row> = self
            .dealers
            .iter()
            .map(|(&dealer, sums)| {
                let tendency = top_tendency.get(&dealer).copied().unwrap_or(0.0);
                let measures = sums.measures(tendency, self.max_lot_bids);
                Row {
                    dealer,
                    seller: None,
                    flags: self.flags(&measures),
                    measures,
                }
            })
            .collect();
        // Rows with enough lots to show a pattern come first: a pair seen on one lot can
        // score anything, and must not push a real pattern down the list.
        let min = self.params.min_auctions;
        for rows in [&mut pairs, &mut dealers] {
            rows.sort_by(|a, b| {
                (b.measures.auctions >= min)
                    .cmp(&(a.measures.auctions >= min))
                    .then(b.measures.shill_score.total_cmp(&a.measures.shill_score))
                    .then(b.measures.auctions.cmp(&a.measures.auctions))
                    .then(a.dealer.cmp(&b.dealer))
                    .then(a.seller.cmp(&b.seller))
            });
        }
        ShillReport {
            from: self.params.from,
            to: self.params.to,
            lots: self.lots,
            pairs,
            dealers,
        }
    }
}

/// A lot still taking bids (or waiting for its seller), as the scan sees it.
#[derive(Debug)]
struct Open {
    starts_at: u64,
    ends_at: u64,
    /// Set when bidding ended under the reserve and the seller has yet to decide.
    ended: Option<SellerId>,
    bids: Vec<LotBid>,
}

/// A scan's sink that folds each lot into a [`Tally`] once its outcome is final. A lot
/// is held (its accepted bids) only while it is open, so memory follows the open lots and
/// the pairs, not the journal's length.
#[derive(Debug)]
pub struct ShillSink {
    open: HashMap<LotId, Open>,
    tally: Tally,
}

impl ShillSink {
    /// An empty sink under `params`.
    pub fn new(params: ShillParams) -> Self {
        Self {
            open: HashMap::new(),
            tally: Tally::new(params),
        }
    }

    /// The report, counting lots still waiting for their seller as not won.
    pub fn report(mut self) -> ShillReport {
        let mut waiting: Vec<(LotId, Open)> = self.open.drain().collect();
        waiting.sort_by_key(|(lot, _)| *lot);
        for (lot, open) in waiting {
            if let Some(seller) = open.ended {
                self.tally.add(&record(lot, seller, None, open));
            }
        }
        self.tally.report()
    }
}

fn record(lot: LotId, seller: SellerId, winner: Option<DealerId>, open: Open) -> LotRecord {
    LotRecord {
        lot,
        seller,
        starts_at: open.starts_at,
        ends_at: open.ends_at,
        winner,
        bids: open.bids,
    }
}

impl AuditSink for ShillSink {
    fn attempt(&mut self, a: Attempt) {
        let AttemptResult::Accepted { leading } = a.result else {
            return;
        };
        let Some(open) = self.open.get_mut(&a.lot) else {
            return;
        };
        open.bids.push(LotBid {
            dealer: a.dealer,
            at: a.at,
            amount: a.amount,
            min_next_before: a.min_next_before.unwrap_or(a.amount),
            price_after: a.price_after.unwrap_or(a.amount),
            increment: a.increment,
            leading,
        });
    }

    fn lot_event(&mut self, _seq: u64, _at: u64, event: &auction::Event) {
        match *event {
            auction::Event::Listed {
                lot,
                starts_at,
                ends_at,
                ..
            } => {
                self.open.insert(
                    lot,
                    Open {
                        starts_at,
                        ends_at,
                        ended: None,
                        bids: Vec::new(),
                    },
                );
            }
            auction::Event::Extended { lot, ends_at, .. } => {
                if let Some(open) = self.open.get_mut(&lot) {
                    open.ends_at = ends_at;
                }
            }
            auction::Event::Closed {
                lot,
                outcome,
                leader,
                seller,
                ..
            } => match outcome {
                Outcome::PendingSeller => {
                    if let Some(open) = self.open.get_mut(&lot) {
                        open.ended = Some(seller);
                    }
                }
                Outcome::Sold | Outcome::NoSale => {
                    if let Some(open) = self.open.remove(&lot) {
                        let winner = leader.filter(|_| outcome == Outcome::Sold);
                        self.tally.add(&record(lot, seller, winner, open));
                    }
                }
            },
            auction::Event::Cancelled { lot } => {
                self.open.remove(&lot);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
