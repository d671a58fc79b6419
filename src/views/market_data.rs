//! Market data for member dealers: what closed auctions sold for, by make, model, model
//! year band and city; how many sold; the median price, bids and extensions; and a price
//! history per model.
//!
//! A read model of the lots' final outcomes. Each lot is taken in once, when it becomes
//! final (`sold` or `no_sale`; a cancelled lot is no market outcome), from its durable
//! state: the listing's car and reserve, the price, the bid and extension counts and the
//! close (`ends_at`). All of these are in the book, so a rebuild from the book after a
//! recovery (or from `gavel replay`'s market) reaches exactly the state the live path
//! reached one close at a time: every statistic is a function of the set of final lots,
//! not of the order they were taken in.
//!
//! Bounds: per key, the counts over every close, and the most recent `window` closes
//! (by close time, then lot id) for the medians, kept sorted, so a read sorts at most
//! `window` values and never walks the history; per model, the most recent `history`
//! sales. Keys themselves grow with the distinct cars listed, as the book's lots do.
//!
//! Money is fen in a `u64`; a median is the lower middle value (a price that was paid,
//! never an average of two). Make, model and city are compared as given, trimmed and
//! lower-cased, so "BYD" and "byd " are one make.
//!
//! Must not: read a clock, or let insertion order reach a statistic.

#[cfg(test)]
mod tests;

use super::lots::LotView;
use crate::auction::{Lot, LotStatus};
use crate::vocab::{Fen, LotId, Vehicle};
use std::collections::{BTreeMap, BTreeSet};

/// How market data groups and bounds what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketDataConfig {
    /// Model years per band; bands start at multiples of it (3: 2016–2018, 2019–2021).
    pub year_band_years: u16,
    /// Most recent closes per key that the medians are taken over.
    pub window: usize,
    /// Most recent sales kept per model for its price history.
    pub history: usize,
}

impl Default for MarketDataConfig {
    fn default() -> Self {
        Self {
            year_band_years: 3,
            window: 200,
            history: 100,
        }
    }
}

impl MarketDataConfig {
    /// The first model year of the band `year` falls in.
    pub fn band_of(&self, year: u16) -> u16 {
        let n = self.year_band_years.max(1);
        year - year % n
    }

    /// The last model year of the band starting at `from`.
    pub fn band_end(&self, from: u16) -> u16 {
        from.saturating_add(self.year_band_years.max(1) - 1)
    }
}

/// How a final lot ended, as market data counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseKind {
    /// Sold at or above the reserve (at the close, or by buy-now).
    Sold,
    /// Closed under the reserve and sold because the seller accepted.
    SoldBelowReserve,
    /// Closed under the reserve with bids, and the seller declined or let the window lapse.
    Declined,
    /// Closed without a bid.
    NoBids,
}

impl CloseKind {
    /// Whether the car was sold.
    pub fn sold(self) -> bool {
        matches!(self, Self::Sold | Self::SoldBelowReserve)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sold => "sold",
            Self::SoldBelowReserve => "sold_below_reserve",
            Self::Declined => "declined",
            Self::NoBids => "no_bids",
        }
    }
}

/// One final lot, as market data takes it in.
#[derive(Clone, Copy, Debug)]
pub struct Close<'a> {
    /// The lot.
    pub lot: LotId,
    /// Its car.
    pub vehicle: &'a Vehicle,
    /// Its hidden reserve (only which side of it the price fell on is used).
    pub reserve: Fen,
    /// `sold` or `no_sale`; any other status is not a close.
    pub status: LotStatus,
    /// The final price, if any bid was accepted.
    pub price: Option<Fen>,
    /// Accepted bids.
    pub bids: u32,
    /// Soft-close extensions.
    pub extensions: u32,
    /// When bidding closed: the lot's `ends_at`, after its last extension. A buy-now sale
    /// keeps the close it was scheduled for (the book keeps no other moment of a sale).
    pub ended_at: u64,
}

impl<'a> Close<'a> {
    /// A lot of the book.
    pub fn of_lot(lot: &'a Lot) -> Self {
        Self {
            lot: lot.id,
            vehicle: &lot.listing.vehicle,
            reserve: lot.listing.reserve,
            status: lot.status,
            price: lot.price,
            bids: lot.bids,
            extensions: lot.extensions,
            ended_at: lot.ends_at,
        }
    }

    /// A lot's durable view.
    pub fn of_view(view: &'a LotView) -> Self {
        Self {
            lot: view.id,
            vehicle: &view.listing.vehicle,
            reserve: view.listing.reserve,
            status: view.status,
            price: view.price,
            bids: view.bids,
            extensions: view.extensions,
            ended_at: view.ends_at,
        }
    }

    /// How it ended; `None` for a lot that is not final, or cancelled.
    pub fn kind(&self) -> Option<CloseKind> {
        let below = self.price.is_none_or(|p| p < self.reserve);
        match (self.status, self.price) {
            (LotStatus::Sold, Some(_)) if below => Some(CloseKind::SoldBelowReserve),
            (LotStatus::Sold, Some(_)) => Some(CloseKind::Sold),
            (LotStatus::NoSale, _) if self.bids == 0 => Some(CloseKind::NoBids),
            (LotStatus::NoSale, _) => Some(CloseKind::Declined),
            _ => None,
        }
    }
}

/// Make, model, model year band and city: what prices are grouped by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Make, trimmed and lower-cased.
    pub make: String,
    /// Model, trimmed and lower-cased.
    pub model: String,
    /// First model year of the band.
    pub band: u16,
    /// City, trimmed and lower-cased; `None` when the listing named none.
    pub city: Option<String>,
}

/// How make, model and city are compared: trimmed and lower-cased.
pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

/// One close kept in a key's window. Ordered by close time, then lot id, which is unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    ended_at: u64,
    lot: LotId,
    kind: CloseKind,
    price: Option<Fen>,
    bids: u32,
    extensions: u32,
}

/// Everything kept for one key.
#[derive(Clone, Debug, Default)]
struct KeyStats {
    counts: Counts,
    /// The most recent closes, oldest first, at most `window`.
    recent: BTreeSet<Point>,
}

/// Closes of a key by how they ended, over its whole history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sold at or above the reserve.
    pub sold: u64,
    /// Sold below the reserve, the seller accepting.
    pub sold_below_reserve: u64,
    /// Not sold: under the reserve with bids, the seller declining.
    pub declined: u64,
    /// Not sold: no bid.
    pub no_bids: u64,
}

impl Counts {
    /// Every close.
    pub fn closed(&self) -> u64 {
        self.sold + self.sold_below_reserve + self.declined + self.no_bids
    }

    /// Cars sold (either way).
    pub fn sold_total(&self) -> u64 {
        self.sold + self.sold_below_reserve
    }

    /// Sold per thousand closes, rounded down; `None` before the first close.
    pub fn sell_through_permille(&self) -> Option<u64> {
        let closed = self.closed();
        (closed > 0).then(|| self.sold_total().saturating_mul(1000) / closed)
    }

    fn add(&mut self, kind: CloseKind) {
        let n = match kind {
            CloseKind::Sold => &mut self.sold,
            CloseKind::SoldBelowReserve => &mut self.sold_below_reserve,
            CloseKind::Declined => &mut self.declined,
            CloseKind::NoBids => &mut self.no_bids,
        };
        *n += 1;
    }
}

/// One key's statistics as a reader gets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    /// The key.
    pub key: Key,
    /// Closes by how they ended, over the whole history.
    pub counts: Counts,
    /// Closes the medians are taken over (the most recent, at most the window).
    pub window_closed: u64,
    /// Sales among them.
    pub window_sold: u64,
    /// Median sold price in the window (lower middle), fen.
    pub median_price: Option<Fen>,
    /// Lowest sold price in the window, fen.
    pub min_price: Option<Fen>,
    /// Highest sold price in the window, fen.
    pub max_price: Option<Fen>,
    /// Median accepted bids per close in the window.
    pub median_bids: Option<u32>,
    /// Median soft-close extensions per close in the window.
    pub median_extensions: Option<u32>,
    /// The latest close in the window.
    pub last_ended_at: Option<u64>,
}

/// One sale in a model's price history.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sale {
    /// When bidding closed (see [`Close::ended_at`]).
    pub ended_at: u64,
    /// The lot.
    pub lot: LotId,
    /// The price, fen.
    pub price: Fen,
    /// Model year.
    pub year: u16,
    /// City, as folded.
    pub city: Option<String>,
    /// Whether the seller accepted it below the reserve.
    pub below_reserve: bool,
}

/// Filters of a prices read; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Make, folded.
    pub make: Option<String>,
    /// Model, folded.
    pub model: Option<String>,
    /// First model year of the band.
    pub band: Option<u16>,
    /// City, folded.
    pub city: Option<String>,
}

impl Filter {
    fn keeps(&self, k: &Key) -> bool {
        self.make.as_ref().is_none_or(|m| *m == k.make)
            && self.model.as_ref().is_none_or(|m| *m == k.model)
            && self.band.is_none_or(|b| b == k.band)
            && self
                .city
                .as_ref()
                .is_none_or(|c| Some(c) == k.city.as_ref())
    }
}

/// The statistics of every key and the history of every model.
#[derive(Clone, Debug, Default)]
pub struct MarketStats {
    config: MarketDataConfig,
    keys: BTreeMap<Key, KeyStats>,
    /// (make, model) → the most recent sales, oldest first, at most `history`.
    models: BTreeMap<(String, String), BTreeSet<Sale>>,
}

impl MarketStats {
    /// Nothing recorded yet.
    pub fn new(config: MarketDataConfig) -> Self {
        Self {
            config,
            keys: BTreeMap::new(),
            models: BTreeMap::new(),
        }
    }

    /// How it groups and bounds.
    pub fn config(&self) -> &MarketDataConfig {
        &self.config
    }

    /// Every final lot of `lots` (a book's), in any order.
    pub fn from_lots(config: MarketDataConfig, lots: &[Lot]) -> Self {
        let mut stats = Self::new(config);
        for lot in lots {
            stats.record(&Close::of_lot(lot));
        }
        stats
    }

    /// Takes in one lot that has become final. A lot that is not final (or cancelled)
    /// changes nothing; each lot must be recorded once (the caller records a lot when its
    /// status becomes final, which happens once).
    pub fn record(&mut self, close: &Close<'_>) {
        let Some(kind) = close.kind() else {
            return;
        };
        let car = close.vehicle;
        let (make, model) = (fold(&car.make), fold(&car.model));
        let city = car.city.as_deref().map(fold);
        let key = Key {
            make: make.clone(),
            model: model.clone(),
            band: self.config.band_of(car.year),
            city: city.clone(),
        };
        let stats = self.keys.entry(key).or_default();
        stats.counts.add(kind);
        stats.recent.insert(Point {
            ended_at: close.ended_at,
            lot: close.lot,
            kind,
            price: close.price,
            bids: close.bids,
            extensions: close.extensions,
        });
        keep_latest(&mut stats.recent, self.config.window);
        let (Some(price), true) = (close.price, kind.sold()) else {
            return;
        };
        let sales = self.models.entry((make, model)).or_default();
        sales.insert(Sale {
            ended_at: close.ended_at,
            lot: close.lot,
            price,
            year: car.year,
            city,
            below_reserve: kind == CloseKind::SoldBelowReserve,
        });
        keep_latest(sales, self.config.history);
    }

    /// Rows for every key `filter` keeps, in key order, after `after`, at most `limit`.
    pub fn prices(&self, filter: &Filter, after: Option<&Key>, limit: usize) -> Vec<PriceRow> {
        use std::ops::Bound;
        // Keys sort by make, then model: a read for one make starts at its first key.
        let lowest = filter.make.as_ref().map(|make| Key {
            make: make.clone(),
            model: filter.model.clone().unwrap_or_default(),
            band: 0,
            city: None,
        });
        let from = match (after, lowest) {
            (Some(a), Some(l)) if *a < l => Bound::Included(l),
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(l)) => Bound::Included(l),
            (None, None) => Bound::Unbounded,
        };
        self.keys
            .range((from, Bound::Unbounded))
            // Keys sort by make first: past the make asked for, nothing more can match.
            .take_while(|(k, _)| filter.make.as_ref().is_none_or(|m| k.make <= *m))
            .filter(|(k, _)| filter.keeps(k))
            .take(limit)
            .map(|(k, s)| row(k, s))
            .collect()
    }

    /// One model's most recent sales, newest first, at most `limit`.
    pub fn history(&self, make: &str, model: &str, limit: usize) -> Vec<Sale> {
        self.models
            .get(&(make.to_string(), model.to_string()))
            .map(|s| s.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// Every key's row, in key order (for `gavel replay` and tests).
    pub fn all_prices(&self) -> Vec<PriceRow> {
        self.keys.iter().map(|(k, s)| row(k, s)).collect()
    }

    /// Every model's history, newest first within a model, in (make, model) order.
    pub fn all_histories(&self) -> Vec<((String, String), Vec<Sale>)> {
        self.models
            .iter()
            .map(|(m, s)| (m.clone(), s.iter().rev().cloned().collect()))
            .collect()
    }
}

/// Drops the oldest entries beyond `cap`.
fn keep_latest<T: Ord>(set: &mut BTreeSet<T>, cap: usize) {
    while set.len() > cap {
        set.pop_first();
    }
}

/// The lower median: the middle value, or the lower of the two middle ones.
fn lower_median<T: Ord + Copy>(mut v: Vec<T>) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

fn row(key: &Key, s: &KeyStats) -> PriceRow {
    let prices: Vec<Fen> = s
        .recent
        .iter()
        .filter(|p| p.kind.sold())
        .filter_map(|p| p.price)
        .collect();
    PriceRow {
        key: key.clone(),
        counts: s.counts,
        window_closed: s.recent.len() as u64,
        window_sold: prices.len() as u64,
        min_price: prices.iter().min().copied(),
        max_price: prices.iter().max().copied(),
        median_price: lower_median(prices),
        median_bids: lower_median(s.recent.iter().map(|p| p.bids).collect()),
        median_extensions: lower_median(s.recent.iter().map(|p| p.extensions).collect()),
        last_ended_at: s.recent.last().map(|p| p.ended_at),
    }
}

/// The market data the API reads: [`MarketStats`] behind a lock, kept by the views'
/// publisher from durable updates and rebuilt from the book after every recovery.
#[derive(Default)]
pub struct MarketData {
    stats: parking_lot::RwLock<MarketStats>,
}

impl MarketData {
    /// Empty, grouping and bounding as `config` says (filled by the engine's first
    /// `reset`).
    pub fn new(config: MarketDataConfig) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            stats: parking_lot::RwLock::new(MarketStats::new(config)),
        })
    }

    /// Reads the statistics.
    pub fn read<T>(&self, f: impl FnOnce(&MarketStats) -> T) -> T {
        f(&self.stats.read())
    }

    pub(super) fn reset(&self, lots: &[Lot]) {
        let mut stats = self.stats.write();
        *stats = MarketStats::from_lots(*stats.config(), lots);
    }

    pub(super) fn record(&self, view: &LotView) {
        self.stats.write().record(&Close::of_view(view));
    }
}
