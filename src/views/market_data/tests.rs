//! Market data's rulebook: how a close is counted, which band a year falls in, what a
//! median is, what the window and the history keep, and that the live path (a close at a
//! time, from the views' publication) and a rebuild from the book agree.

use super::*;
use crate::alliance::tests::{clean, VIN};
use crate::auction::{Command as AuctionCommand, Listing};
use crate::market::{Command, Market};
use crate::store::Entry;
use crate::views::{AllianceBoard, Lots, ViewsPublisher};
use crate::vocab::{SellerId, FEN_PER_YUAN as Y};
use std::sync::Arc;

const T0: u64 = 1_760_000_000_000;
const MIN: u64 = 60_000;

fn listing(make: &str, model: &str, year: u16, city: Option<&str>, reserve: Fen) -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: VIN.into(),
            make: make.into(),
            model: model.into(),
            year,
            mileage_km: 40_000,
            city: city.map(Into::into),
        },
        inspection: clean(),
        start_price: Y,
        reserve,
        buy_now: None,
        starts_at: None,
        duration_ms: Some(10 * MIN),
    }
}

/// A final (or not) lot as the book would hold it.
struct L {
    id: u32,
    car: (&'static str, &'static str, u16, Option<&'static str>),
    reserve: Fen,
    status: LotStatus,
    price: Option<Fen>,
    bids: u32,
    extensions: u32,
    ends_at: u64,
}

impl L {
    fn sold(id: u32, price: Fen, ends_at: u64) -> Self {
        Self {
            id,
            car: ("Toyota", "Corolla", 2020, Some("Shanghai")),
            reserve: 50_000 * Y,
            status: LotStatus::Sold,
            price: Some(price),
            bids: 3,
            extensions: 0,
            ends_at,
        }
    }

    fn lot(&self) -> Lot {
        let (make, model, year, city) = self.car;
        Lot {
            id: LotId(self.id),
            seller: SellerId(1),
            listing: Arc::new(listing(make, model, year, city, self.reserve)),
            status: self.status,
            starts_at: 0,
            ends_at: self.ends_at,
            decision_deadline: None,
            extensions: self.extensions,
            bids: self.bids,
            price: self.price,
            lead: None,
            settled: false,
            prebids: Vec::new(),
        }
    }
}

fn config(window: usize, history: usize) -> MarketDataConfig {
    MarketDataConfig {
        year_band_years: 3,
        window,
        history,
    }
}

#[test]
fn how_a_close_is_counted() {
    let r = 50_000 * Y;
    // (status, price, bids, kind)
    let cases = [
        (LotStatus::Sold, Some(r), 4, Some(CloseKind::Sold)),
        (LotStatus::Sold, Some(r + 1), 1, Some(CloseKind::Sold)),
        // Closed under the reserve; the seller accepted.
        (
            LotStatus::Sold,
            Some(r - 1),
            2,
            Some(CloseKind::SoldBelowReserve),
        ),
        // Closed under the reserve; the seller declined or let the window lapse.
        (LotStatus::NoSale, Some(r - 1), 2, Some(CloseKind::Declined)),
        (LotStatus::NoSale, None, 0, Some(CloseKind::NoBids)),
        // Not a market outcome: cancelled, or not final yet.
        (LotStatus::Cancelled, None, 0, None),
        (LotStatus::Live, Some(r), 1, None),
        (LotStatus::PendingSeller, Some(r - 1), 1, None),
        (LotStatus::Scheduled, None, 0, None),
    ];
    for (status, price, bids, want) in cases {
        let lot = L {
            status,
            price,
            bids,
            ..L::sold(1, 0, T0)
        }
        .lot();
        assert_eq!(Close::of_lot(&lot).kind(), want, "{status:?} {price:?}");
    }
}

#[test]
fn bands_start_at_multiples_of_their_width() {
    // (years per band, model year, band from, band to)
    let cases = [
        (3, 2019, 2019, 2021),
        (3, 2020, 2019, 2021),
        (3, 2021, 2019, 2021),
        (3, 2022, 2022, 2024),
        (3, 2018, 2016, 2018),
        (1, 2020, 2020, 2020),
        (5, 2024, 2020, 2024),
        (10, 1999, 1990, 1999),
    ];
    for (years, year, from, to) in cases {
        let c = MarketDataConfig {
            year_band_years: years,
            ..MarketDataConfig::default()
        };
        assert_eq!(c.band_of(year), from, "{years} {year}");
        assert_eq!(c.band_end(c.band_of(year)), to, "{years} {year}");
    }
}

#[test]
fn a_median_is_the_lower_middle_value() {
    let cases: [(&[u64], Option<u64>); 6] = [
        (&[], None),
        (&[7], Some(7)),
        (&[9, 1], Some(1)),
        (&[3, 1, 2], Some(2)),
        (&[40, 10, 30, 20], Some(20)),
        (&[5, 5, 1, 9, 5], Some(5)),
    ];
    for (values, want) in cases {
        assert_eq!(lower_median(values.to_vec()), want, "{values:?}");
    }
}

#[test]
fn a_group_counts_every_close_and_takes_medians_over_its_sales() {
    let r = 50_000 * Y;
    let lots = [
        L {
            bids: 5,
            extensions: 2,
            ..L::sold(1, 52_000 * Y, T0)
        },
        L {
            bids: 2,
            extensions: 0,
            ..L::sold(2, 49_000 * Y, T0 + 1)
        },
        L {
            status: LotStatus::NoSale,
            price: Some(r - Y),
            bids: 1,
            extensions: 1,
            ..L::sold(3, 0, T0 + 2)
        },
        L {
            status: LotStatus::NoSale,
            price: None,
            bids: 0,
            ..L::sold(4, 0, T0 + 3)
        },
        L {
            bids: 9,
            extensions: 4,
            ..L::sold(5, 55_000 * Y, T0 + 4)
        },
        // Cancelled and still open lots are no close.
        L {
            status: LotStatus::Cancelled,
            price: None,
            bids: 0,
            ..L::sold(6, 0, T0 + 5)
        },
        L {
            status: LotStatus::Live,
            ..L::sold(7, 60_000 * Y, T0 + 6)
        },
    ];
    let lots: Vec<Lot> = lots.iter().map(L::lot).collect();
    let stats = MarketStats::from_lots(config(200, 100), &lots);
    let rows = stats.all_prices();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        row.key,
        Key {
            make: "toyota".into(),
            model: "corolla".into(),
            band: 2019,
            city: Some("shanghai".into()),
        }
    );
    assert_eq!(
        row.counts,
        Counts {
            sold: 2,
            sold_below_reserve: 1,
            declined: 1,
            no_bids: 1,
        }
    );
    assert_eq!(row.counts.closed(), 5);
    assert_eq!(row.counts.sell_through_permille(), Some(600));
    assert_eq!((row.window_closed, row.window_sold), (5, 3));
    assert_eq!(row.median_price, Some(52_000 * Y));
    assert_eq!(row.min_price, Some(49_000 * Y));
    assert_eq!(row.max_price, Some(55_000 * Y));
    // Bids 5, 2, 1, 0, 9 and extensions 2, 0, 1, 0, 4, over every close.
    assert_eq!(row.median_bids, Some(2));
    assert_eq!(row.median_extensions, Some(1));
    assert_eq!(row.last_ended_at, Some(T0 + 4));
}

#[test]
fn groups_are_by_make_model_band_and_city_as_folded() {
    let cars = [
        ("Toyota", "Corolla", 2020, Some("Shanghai")),
        (" toyota", "COROLLA ", 2021, Some("shanghai")),
        ("Toyota", "Corolla", 2022, Some("Shanghai")),
        ("Toyota", "Corolla", 2020, Some("Hangzhou")),
        ("Toyota", "Corolla", 2020, None),
        ("Toyota", "Camry", 2020, Some("Shanghai")),
        ("比亚迪", "汉", 2020, Some("深圳")),
    ];
    let lots: Vec<Lot> = cars
        .iter()
        .enumerate()
        .map(|(i, &car)| {
            L {
                car,
                ..L::sold(i as u32 + 1, 51_000 * Y, T0 + i as u64)
            }
            .lot()
        })
        .collect();
    let stats = MarketStats::from_lots(config(200, 100), &lots);
    let keys: Vec<(String, String, u16, Option<String>, u64)> = stats
        .all_prices()
        .into_iter()
        .map(|r| {
            let k = r.key;
            (k.make, k.model, k.band, k.city, r.counts.closed())
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        keys,
        vec![
            (s("toyota"), s("camry"), 2019, Some(s("shanghai")), 1),
            (s("toyota"), s("corolla"), 2019, None, 1),
            (s("toyota"), s("corolla"), 2019, Some(s("hangzhou")), 1),
            (s("toyota"), s("corolla"), 2019, Some(s("shanghai")), 2),
            (s("toyota"), s("corolla"), 2022, Some(s("shanghai")), 1),
            (s("比亚迪"), s("汉"), 2019, Some(s("深圳")), 1),
        ]
    );
    // Filters pick rows; paging resumes after the last key.
    let corolla = Filter {
        make: Some(s("toyota")),
        model: Some(s("corolla")),
        ..Filter::default()
    };
    let page = stats.prices(&corolla, None, 2);
    assert_eq!(page.len(), 2);
    let rest = stats.prices(&corolla, Some(&page[1].key), 10);
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1].key.band, 2022);
    let in_shanghai = Filter {
        city: Some(s("shanghai")),
        band: Some(2019),
        ..Filter::default()
    };
    assert_eq!(stats.prices(&in_shanghai, None, 10).len(), 2);
    let unknown = Filter {
        make: Some(s("honda")),
        ..Filter::default()
    };
    assert!(stats.prices(&unknown, None, 10).is_empty());
}

#[test]
fn medians_are_over_the_latest_closes_whatever_order_they_came_in() {
    // Five sales, prices rising with time; a window of 3 keeps the last three.
    let lots: Vec<Lot> = (1..=5u32)
        .map(|i| L::sold(i, u64::from(i) * 10_000 * Y, T0 + u64::from(i) * MIN).lot())
        .collect();
    let in_order = MarketStats::from_lots(config(3, 2), &lots);
    let row = &in_order.all_prices()[0];
    assert_eq!(row.counts.closed(), 5);
    assert_eq!(row.window_closed, 3);
    assert_eq!(row.median_price, Some(40_000 * Y));
    assert_eq!(row.min_price, Some(30_000 * Y));
    let history = in_order.history("toyota", "corolla", 10);
    let prices: Vec<Fen> = history.iter().map(|s| s.price).collect();
    assert_eq!(prices, vec![50_000 * Y, 40_000 * Y]);
    // A close that comes in late (a seller's decision after later lots closed) takes its
    // place by its close time, so every order of arrival gives the same statistics.
    for order in [[4, 2, 0, 3, 1], [1, 0, 4, 3, 2], [2, 3, 4, 1, 0]] {
        let mut stats = MarketStats::new(config(3, 2));
        for i in order {
            stats.record(&Close::of_lot(&lots[i]));
        }
        assert_eq!(stats.all_prices(), in_order.all_prices(), "{order:?}");
        assert_eq!(stats.all_histories(), in_order.all_histories(), "{order:?}");
    }
}

#[test]
fn the_history_holds_sales_only_newest_first() {
    let r = 50_000 * Y;
    let lots = [
        L::sold(1, 51_000 * Y, T0),
        L {
            status: LotStatus::NoSale,
            price: Some(r - Y),
            ..L::sold(2, 0, T0 + MIN)
        },
        L {
            car: ("Toyota", "Corolla", 2017, Some("Beijing")),
            ..L::sold(3, 48_000 * Y, T0 + 2 * MIN)
        },
        L {
            car: ("Toyota", "Camry", 2020, Some("Beijing")),
            ..L::sold(4, 70_000 * Y, T0 + 3 * MIN)
        },
    ];
    let lots: Vec<Lot> = lots.iter().map(L::lot).collect();
    let stats = MarketStats::from_lots(config(200, 100), &lots);
    let history = stats.history("toyota", "corolla", 10);
    assert_eq!(
        history,
        vec![
            Sale {
                ended_at: T0 + 2 * MIN,
                lot: LotId(3),
                price: 48_000 * Y,
                year: 2017,
                city: Some("beijing".into()),
                below_reserve: true,
            },
            Sale {
                ended_at: T0,
                lot: LotId(1),
                price: 51_000 * Y,
                year: 2020,
                city: Some("shanghai".into()),
                below_reserve: false,
            },
        ]
    );
    assert_eq!(stats.history("toyota", "corolla", 1).len(), 1);
    assert!(stats.history("toyota", "supra", 10).is_empty());
}

/// A market on a simulated clock whose durable publication feeds a [`ViewsPublisher`], as
/// the engine's does.
struct Sim {
    market: Market,
    seq: u64,
    now: u64,
    views: ViewsPublisher,
    events: Vec<crate::market::Event>,
}

impl Sim {
    fn new() -> Self {
        let mut views = ViewsPublisher {
            lots: Lots::new(),
            alliance: AllianceBoard::new(),
            market_data: MarketData::new(config(3, 3)),
        };
        let market = Market::default();
        crate::engine::Publisher::reset(&mut views, &market);
        let mut sim = Self {
            market,
            seq: 0,
            now: T0,
            views,
            events: Vec::new(),
        };
        for command in crate::market::tests::accounts() {
            sim.apply(command);
        }
        sim
    }

    fn apply(&mut self, command: impl Into<Command>) {
        self.seq += 1;
        let entry = Entry {
            seq: self.seq,
            now_ms: self.now,
            command: command.into(),
        };
        self.events = self
            .market
            .apply(entry.seq, entry.now_ms, entry.command.clone());
        crate::engine::Publisher::publish(&mut self.views, &entry, &self.events);
        // After a recovery the engine may publish a command a second time: it must count
        // once.
        crate::engine::Publisher::publish(&mut self.views, &entry, &self.events);
    }

    fn list(&mut self, make: &str, model: &str, reserve: Fen, buy_now: Option<Fen>) -> LotId {
        let lot = LotId(self.market.book().lots().len() as u32 + 1);
        let mut l = listing(make, model, 2020, Some("Shanghai"), reserve);
        l.buy_now = buy_now;
        self.apply(AuctionCommand::ListCar {
            seller: SellerId(1),
            listing: Box::new(l),
        });
        lot
    }

    fn bid(&mut self, dealer: u32, lot: LotId, amount: Fen) {
        let bid_id = format!("b{}", self.seq);
        self.apply(AuctionCommand::PlaceBid {
            dealer: crate::vocab::DealerId(dealer),
            lot,
            amount,
            max: None,
            bid_id: bid_id.into(),
        });
    }

    fn at(&mut self, now: u64) {
        self.now = now;
        self.apply(AuctionCommand::Tick);
    }
}

#[test]
fn the_live_path_and_a_rebuild_from_the_book_agree() {
    let mut sim = Sim::new();
    let r = 50_000 * Y;
    // Sold over the reserve, after a bid in the last seconds extended it.
    let sold = sim.list("Toyota", "Corolla", r, None);
    // Under the reserve, extended: the seller accepts, later.
    let accepted = sim.list("Toyota", "Corolla", r, None);
    // Under the reserve: the seller declines.
    let declined = sim.list("Toyota", "Corolla", r, None);
    // No bids.
    sim.list("Toyota", "Corolla", r, None);
    // Buy-now.
    let bought = sim.list("Honda", "Civic", r, Some(60_000 * Y));
    // Cancelled: no market outcome.
    let cancelled = sim.list("Honda", "Civic", r, None);
    sim.apply(AuctionCommand::CancelLot {
        lot: cancelled,
        by: crate::auction::Canceller::Seller(SellerId(1)),
    });
    sim.bid(1, sold, 50_000 * Y);
    sim.bid(1, accepted, 40_000 * Y);
    sim.bid(2, declined, 30_000 * Y);
    sim.bid(2, bought, 60_000 * Y);
    sim.now = T0 + 10 * MIN - 5_000;
    sim.bid(2, sold, 52_000 * Y);
    sim.bid(2, accepted, 41_000 * Y);
    sim.at(T0 + 11 * MIN);
    sim.apply(AuctionCommand::Decide {
        lot: declined,
        seller: SellerId(1),
        accept: false,
    });
    sim.now = T0 + 20 * MIN;
    sim.apply(AuctionCommand::Decide {
        lot: accepted,
        seller: SellerId(1),
        accept: true,
    });
    let live = &sim.views.market_data;
    let (live_prices, live_histories) = live.read(|m| (m.all_prices(), m.all_histories()));
    let rebuilt = MarketStats::from_lots(config(3, 3), sim.market.book().lots());
    assert_eq!(live_prices, rebuilt.all_prices());
    assert_eq!(live_histories, rebuilt.all_histories());
    // And what it holds is what happened.
    let corolla = &live_prices[1];
    assert_eq!(corolla.key.model, "corolla");
    assert_eq!(
        corolla.counts,
        Counts {
            sold: 1,
            sold_below_reserve: 1,
            declined: 1,
            no_bids: 1,
        }
    );
    // The window of 3 keeps the three latest Corolla closes by close time: the two
    // extended lots (which closed last) and one of those that closed on time.
    assert_eq!(corolla.window_closed, 3);
    assert_eq!(corolla.median_extensions, Some(1));
    assert_eq!(corolla.median_price, Some(41_000 * Y));
    assert_eq!(corolla.max_price, Some(52_000 * Y));
    let civic = &live_prices[0];
    assert_eq!(civic.counts.sold, 1);
    assert_eq!(civic.counts.closed(), 1);
    assert_eq!(civic.median_price, Some(60_000 * Y));
}
