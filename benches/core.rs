//! Throughput of the auction core, in commands per second on one thread.
//!
//! Three workloads from issue 2: (a) bids spread over 10,000 lots, (b) one hot lot with
//! 1,000 dealers in a proxy war, (c) closing 100,000 lots by timer; and (d) the first bid
//! of each of 400 dealers after a snapshot copied a book holding a million receipts, which
//! is what a snapshot costs the engine's task under load. Each command log is
//! built once, outside the measurement, by playing it against a scratch book (so every bid
//! in it is a realistic one: mostly accepted, at the `min_next` of its moment). Each
//! measured iteration then applies the whole log to a fresh clone of the starting book,
//! reusing one `Vec<Event>` through `apply_into` the way the engine does.
//!
//! Run: `cargo bench --bench core` (criterion reports the median time per iteration and
//! the throughput in elements/s, one element being one command).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gavel::auction::{BidId, BidOutcome, Book, Command, Event, Listing, Rules};
use gavel::vocab::{DealerId, Fen, Inspection, LotId, SellerId, Vehicle, FEN_PER_YUAN, MAX_AMOUNT};
use std::time::Duration;

const T0: u64 = 1_700_000_000_000;

type Log = Vec<(u64, u64, Command)>;

/// A starting book and the log the measurement applies to it.
struct Workload {
    base: Book,
    log: Log,
}

/// Builds books and logs, keeping the sequence number running.
struct Builder {
    book: Book,
    seq: u64,
}

impl Builder {
    fn new() -> Self {
        Self {
            book: Book::new(Rules::default()),
            seq: 0,
        }
    }

    fn apply(&mut self, now: u64, command: Command) -> Vec<Event> {
        self.seq += 1;
        self.book.apply(self.seq, now, command)
    }

    fn seller(&mut self) -> SellerId {
        match self.apply(
            T0,
            Command::RegisterSeller {
                name: "seller".into(),
                token_hash: [0; 32],
            },
        )[..]
        {
            [Event::SellerRegistered { seller }] => seller,
            ref e => panic!("{e:?}"),
        }
    }

    fn dealers(&mut self, n: usize) -> Vec<DealerId> {
        (0..n)
            .map(|i| {
                match self.apply(
                    T0,
                    Command::RegisterDealer {
                        name: format!("dealer {i}"),
                        deposit: MAX_AMOUNT,
                        linked_sellers: vec![],
                        token_hash: [0; 32],
                    },
                )[..]
                {
                    [Event::DealerRegistered { dealer }] => dealer,
                    ref e => panic!("{e:?}"),
                }
            })
            .collect()
    }

    fn lot(
        &mut self,
        now: u64,
        seller: SellerId,
        start: Fen,
        reserve: Fen,
        duration_ms: u64,
    ) -> LotId {
        let listing = Box::new(listing(start, reserve, now, duration_ms));
        match self.apply(now, Command::ListCar { seller, listing })[..] {
            [Event::Listed { lot, .. }] => lot,
            ref e => panic!("{e:?}"),
        }
    }

    /// A bid that is valid right now: a challenger at `min_next` with a proxy max a few
    /// increments above it, or, from the leader, a raise by one increment.
    fn bid(&self, dealer: DealerId, lot: LotId, headroom: u64, id: u64) -> Command {
        let inc = &self.book.rules().increments;
        let l = self.book.lot(lot).expect("lot");
        let (amount, max) = match l.lead {
            Some(lead) if lead.dealer == dealer => (0, lead.max + inc.increment(lead.max)),
            _ => {
                let min_next = l.min_next(inc);
                (min_next, min_next + headroom * inc.increment(min_next))
            }
        };
        Command::PlaceBid {
            dealer,
            lot,
            amount,
            max: Some(max),
            bid_id: BidId::from(format!("bid-{id}")),
        }
    }

    /// Records `command` in `log` and plays it on the scratch book; the bid must be
    /// accepted, so the measurement applies only bids that do real work.
    fn push_bid(&mut self, log: &mut Log, now: u64, command: Command) {
        self.seq += 1;
        log.push((self.seq, now, command.clone()));
        let events = self.book.apply(self.seq, now, command);
        assert!(
            matches!(
                events.first(),
                Some(Event::Bid {
                    outcome: BidOutcome::Accepted { .. },
                    ..
                })
            ),
            "{events:?}"
        );
    }
}

/// `dealers` dealers and 10,000 live lots, for bids spread round-robin over the lots.
fn spread_market(dealers: usize) -> (Builder, Vec<DealerId>, Vec<LotId>) {
    let mut b = Builder::new();
    let seller = b.seller();
    let dealers = b.dealers(dealers);
    let lots = (0..10_000)
        .map(|_| {
            b.lot(
                T0,
                seller,
                1_000 * FEN_PER_YUAN,
                50_000 * FEN_PER_YUAN,
                3_600_000,
            )
        })
        .collect();
    (b, dealers, lots)
}

/// The dealer and lot of the `i`th spread bid: successive bids on a lot come from
/// different dealers.
fn spread_turn(i: usize, dealers: &[DealerId], lots: &[LotId]) -> (DealerId, LotId) {
    let lot = lots[i % lots.len()];
    (dealers[(i / lots.len() * 7 + i) % dealers.len()], lot)
}

/// (a) 100,000 bids from 1,000 dealers spread round-robin over 10,000 live lots.
fn spread(bids: usize) -> Workload {
    let (mut b, dealers, lots) = spread_market(1_000);
    let base = b.book.clone();
    let mut log = Vec::with_capacity(bids);
    let now = T0 + 1_000;
    for i in 0..bids {
        let (dealer, lot) = spread_turn(i, &dealers, &lots);
        let cmd = b.bid(dealer, lot, (i % 5) as u64, i as u64);
        b.push_bid(&mut log, now, cmd);
    }
    Workload { base, log }
}

/// (b) 100,000 bids on one lot from 1,000 dealers, each with a proxy max: a proxy war in
/// which most bids are answered by the leader's proxy and some take the lead.
fn hot_lot(bids: usize) -> Workload {
    let mut b = Builder::new();
    let seller = b.seller();
    let dealers = b.dealers(1_000);
    let lot = b.lot(
        T0,
        seller,
        1_000 * FEN_PER_YUAN,
        50_000 * FEN_PER_YUAN,
        24 * 3_600_000,
    );
    let base = b.book.clone();
    let mut log = Vec::with_capacity(bids);
    let now = T0 + 1_000;
    for i in 0..bids {
        let dealer = dealers[(i * 13) % dealers.len()];
        let cmd = b.bid(dealer, lot, (i % 4) as u64, i as u64);
        b.push_bid(&mut log, now, cmd);
    }
    Workload { base, log }
}

/// (c) 100,000 live lots closing one per millisecond, one `Tick` each: a third with no
/// bid (no_sale), a third over the reserve (sold), a third under it (pending_seller).
fn closing(n: usize) -> Workload {
    let mut b = Builder::new();
    let seller = b.seller();
    let dealers = b.dealers(1_000);
    let start = 1_000 * FEN_PER_YUAN;
    let reserve = 5_000 * FEN_PER_YUAN;
    let duration = 3_600_000;
    let lots: Vec<LotId> = (0..n)
        // Listed one millisecond apart, so each closes at its own millisecond.
        .map(|i| b.lot(T0 + i as u64, seller, start, reserve, duration))
        .collect();
    let mut bids = Vec::new();
    let now = T0 + n as u64;
    for (i, &lot) in lots.iter().enumerate() {
        let amount = match i % 3 {
            0 => continue,
            1 => reserve,
            _ => start,
        };
        let cmd = Command::PlaceBid {
            dealer: dealers[i % dealers.len()],
            lot,
            amount,
            max: None,
            bid_id: BidId::from(format!("bid-{i}")),
        };
        b.push_bid(&mut bids, now, cmd);
    }
    let base = b.book.clone();
    let first_close = T0 + duration;
    assert_eq!(base.next_deadline(), Some(first_close));
    let log: Log = (0..n as u64)
        .map(|i| (b.seq + 1 + i, first_close + i, Command::Tick))
        .collect();
    // Every tick closes exactly one lot.
    let mut check = base.clone();
    for (seq, now, command) in log.iter().cloned() {
        let events = check.apply(seq, now, command);
        let closed = events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .count();
        assert_eq!(closed, 1, "{events:?}");
    }
    Workload { base, log }
}

/// (d) A book with a million receipts (1,000,000 bids from 400 dealers over 10,000 lots),
/// then one more bid from each dealer. The measured book is a clone of `base`, which stays
/// alive across the iteration as a snapshot's copy does: every receipt is shared, and each
/// dealer's first bid pays for copying what it writes to.
fn after_snapshot(history: usize) -> Workload {
    let (mut b, dealers, lots) = spread_market(400);
    let now = T0 + 1_000;
    let mut played = Vec::new();
    let next = |i: usize| spread_turn(i, &dealers, &lots);
    for i in 0..history {
        let (dealer, lot) = next(i);
        let cmd = b.bid(dealer, lot, (i % 5) as u64, i as u64);
        b.push_bid(&mut played, now, cmd);
        played.clear();
    }
    let base = b.book.clone();
    let mut log = Vec::with_capacity(dealers.len());
    for i in history..history + dealers.len() {
        let (dealer, lot) = next(i);
        let cmd = b.bid(dealer, lot, 0, i as u64);
        b.push_bid(&mut log, now, cmd);
    }
    let mut seen: Vec<_> = log
        .iter()
        .map(|(_, _, c)| match c {
            Command::PlaceBid { dealer, .. } => *dealer,
            c => panic!("{c:?}"),
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), dealers.len(), "one bid per dealer");
    Workload { base, log }
}

fn listing(start: Fen, reserve: Fen, starts_at: u64, duration_ms: u64) -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: "LSVAU2180N2183294".into(),
            make: "Volkswagen".into(),
            model: "Lavida".into(),
            year: 2019,
            mileage_km: 62_000,
            city: None,
        },
        inspection: Inspection {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 4,
            notes: String::new(),
        },
        start_price: start,
        reserve,
        buy_now: None,
        starts_at: Some(starts_at),
        duration_ms: Some(duration_ms),
    }
}

/// Applies the whole log; returns the book and events so they drop outside the timing.
fn run((mut book, log, mut out): (Book, Log, Vec<Event>)) -> (Book, Vec<Event>) {
    for (seq, now, command) in log {
        book.apply_into(seq, now, command, &mut out);
        out.clear();
    }
    (book, out)
}

fn bench(c: &mut Criterion, name: &str, w: &Workload) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(w.log.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(name, |bencher| {
        bencher.iter_batched(
            || (w.base.clone(), w.log.clone(), Vec::with_capacity(64)),
            run,
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let w = spread(100_000);
    bench(c, "a_bids_over_10k_lots", &w);
    let w = hot_lot(100_000);
    bench(c, "b_hot_lot_1k_dealers", &w);
    let w = closing(100_000);
    bench(c, "c_close_100k_lots_by_tick", &w);
    let w = after_snapshot(1_000_000);
    bench(c, "d_first_bids_after_a_snapshot_copy", &w);
}

criterion_group!(core, benches);
criterion_main!(core);
