//! A dealer's buying power across markets, proven over interleavings.
//!
//! A cluster is two or three real [`Market`]s, each with its own journal (a command log
//! on a shared simulated clock) and snapshots, holding the same dealers and the seller
//! registered in the same order. Each dealer's total deposit is split into per-market
//! allocations; the test plays random interleavings of bids and pre-bids in any market,
//! ticks, settles, listings, the two halves of transfers (the `in` delivered later, after
//! other steps, possibly again), snapshots and crashes (a market rebuilt from its own
//! log, and from its last snapshot and the log's tail through the durable encoding).
//!
//! After every step, for every dealer:
//! - Σ over markets of its deposit + Σ of transfers out but not yet in = its total deposit
//!   (reckoned from what the coordinator was answered, and again from the transfers the
//!   markets remember: both must agree);
//! - in each market, the exposure the book counts (checked against the lots) ≤ the
//!   deposit there × leverage + the credit available there;
//! - so Σ over markets of exposure ≤ total deposit × leverage + Σ of credit available.

use super::*;
use crate::alliance::tests::{clean, VIN};
use crate::auction::{
    Command as AuctionCommand, Direction, Event as AuctionEvent, Listing, LotStatus,
    TransferOutcome, TransferRefusal,
};
use crate::vocab::{Fen, SellerId, Vehicle, FEN_PER_YUAN};
use proptest::prelude::*;

const T0: u64 = 1_760_000_000_000;
const Y: Fen = FEN_PER_YUAN;
const MIN: u64 = 60_000;
const MARKETS: [&str; 3] = ["beijing", "chengdu", "hangzhou"];

/// One market as the node owning it holds it: the live market, its journal, and its last
/// snapshot (the bytes and how much of the journal they cover).
struct Node {
    market: Market,
    log: Vec<(u64, u64, Command)>,
    snapshot: Option<(Vec<u8>, usize)>,
}

impl Node {
    fn apply(&mut self, now: u64, command: impl Into<Command>) -> Vec<Event> {
        let command = command.into();
        let seq = self.log.len() as u64 + 1;
        self.log.push((seq, now, command.clone()));
        self.market.apply(seq, now, command)
    }

    /// The snapshot's bytes, as the engine's snapshot thread writes them.
    fn encode(market: &Market) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmp_serde::encode::write(&mut bytes, market).expect("a market serializes");
        bytes
    }

    fn snapshot(&mut self) {
        self.snapshot = Some((Self::encode(&self.market), self.log.len()));
    }

    /// The node dies and the market is recovered twice: from its journal alone, and from
    /// its last snapshot (through the durable encoding) and the journal after it. Both
    /// must be the market that died; `from_snapshot` says which one takes its place.
    fn crash(&mut self, from_snapshot: bool) -> Result<(), TestCaseError> {
        let mut from_log = Market::default();
        for (seq, now, command) in &self.log {
            from_log.apply(*seq, *now, command.clone());
        }
        prop_assert_eq!(Self::encode(&from_log), Self::encode(&self.market));
        prop_assert!(from_log == self.market, "replayed to another market");
        let mut recovered = from_log;
        if let Some((bytes, len)) = &self.snapshot {
            let mut market: Market = rmp_serde::from_slice(bytes)
                .map_err(|e| TestCaseError::fail(format!("snapshot decodes: {e}")))?;
            for (seq, now, command) in &self.log[*len..] {
                market.apply(*seq, *now, command.clone());
            }
            prop_assert_eq!(Self::encode(&market), Self::encode(&self.market));
            prop_assert!(market == self.market, "recovered to another market");
            if from_snapshot {
                recovered = market;
            }
        }
        self.market = recovered;
        Ok(())
    }
}

/// A transfer out accepted whose `in` has not been accepted yet: deposit on the wire.
#[derive(Clone, Debug)]
struct Flight {
    id: String,
    to: usize,
    dealer: DealerId,
    amount: Fen,
    from: &'static str,
}

/// One step of an interleaving. Indices are taken modulo what exists.
#[derive(Clone, Debug)]
enum Step {
    /// A bid at the lot's next minimum plus `bump` × 500 yuan; with `max`, a proxy bid (a
    /// pre-bid on a lot in its preview) `max` × 1,000 yuan above the amount.
    Bid {
        market: usize,
        dealer: usize,
        lot: usize,
        bump: u8,
        max: Option<u8>,
    },
    /// The clock moves and every market ticks.
    Advance { ms: u32 },
    /// An operator records a sold lot as paid.
    Settle { market: usize, lot: usize },
    /// The seller lists a car (live at once, or in a five-minute preview).
    List {
        market: usize,
        preview: bool,
        reserve: u8,
        buy_now: bool,
    },
    /// A transfer out of `from` of `per_mille` ‰ of the dealer's deposit there (above
    /// 1000: more than it has).
    Out {
        from: usize,
        to: usize,
        dealer: usize,
        per_mille: u16,
    },
    /// The `in` of a transfer on the wire reaches its market.
    Deliver { flight: usize },
    /// A half already sent is sent again.
    Redeliver { sent: usize },
    /// A market writes a snapshot.
    Snapshot { market: usize },
    /// A market's node dies; the market is recovered.
    Crash { market: usize, from_snapshot: bool },
}

fn step() -> impl Strategy<Value = Step> {
    let m = 0..3usize;
    prop_oneof![
        6 => (m.clone(), 0..3usize, 0..8usize, 0..4u8, proptest::option::of(0..40u8)).prop_map(
            |(market, dealer, lot, bump, max)| Step::Bid { market, dealer, lot, bump, max }
        ),
        2 => (0..600_000u32).prop_map(|ms| Step::Advance { ms }),
        1 => (m.clone(), 0..8usize).prop_map(|(market, lot)| Step::Settle { market, lot }),
        1 => (m.clone(), any::<bool>(), 1..30u8, any::<bool>()).prop_map(
            |(market, preview, reserve, buy_now)| Step::List { market, preview, reserve, buy_now }
        ),
        3 => (m.clone(), m.clone(), 0..3usize, 1..1_050u16).prop_map(
            |(from, to, dealer, per_mille)| Step::Out { from, to, dealer, per_mille }
        ),
        3 => (0..8usize).prop_map(|flight| Step::Deliver { flight }),
        1 => (0..64usize).prop_map(|sent| Step::Redeliver { sent }),
        1 => m.clone().prop_map(|market| Step::Snapshot { market }),
        1 => (m, any::<bool>()).prop_map(|(market, from_snapshot)| Step::Crash { market, from_snapshot }),
    ]
}

/// How a cluster starts: its markets, and for each dealer its total deposit (yuan), its
/// allocation weights per market, and its credit limit per market (yuan).
#[derive(Clone, Debug)]
struct Start {
    markets: usize,
    dealers: Vec<(u32, [u8; 3], [u16; 3])>,
}

fn start() -> impl Strategy<Value = Start> {
    let dealer = (
        1_000..20_000u32,
        [0..4u8, 0..4u8, 0..4u8],
        [0..3u16, 0..3u16, 0..3u16],
    )
        .prop_map(|(total, weights, credit)| (total, weights, credit.map(|c| c * 5_000)));
    (2..=3usize, proptest::collection::vec(dealer, 2..=3))
        .prop_map(|(markets, dealers)| Start { markets, dealers })
}

fn listing(now: u64, preview: bool, reserve: Fen, buy_now: bool) -> Listing {
    Listing {
        vehicle: Vehicle {
            vin: VIN.into(),
            make: "Toyota".into(),
            model: "Corolla".into(),
            year: 2020,
            mileage_km: 50_000,
            city: None,
        },
        inspection: clean(),
        start_price: 1_000 * Y,
        reserve: reserve.max(1_000 * Y),
        buy_now: buy_now.then_some(reserve.max(1_000 * Y) * 2),
        starts_at: preview.then_some(now + 5 * MIN),
        duration_ms: Some(10 * MIN),
    }
}

/// The cluster: its markets and what the coordinator between them knows.
struct Cluster {
    nodes: Vec<Node>,
    now: u64,
    /// Each dealer's total deposit (dealer i is `DealerId(i + 1)` in every market).
    totals: Vec<Fen>,
    /// Transfers out accepted, their `in` not yet accepted.
    flights: Vec<Flight>,
    /// Every half sent, to its market, to be sent again.
    sent: Vec<(usize, AuctionCommand)>,
    next_id: u32,
}

/// The direct answer to a transfer's half.
fn answer(events: &[Event]) -> Result<(TransferOutcome, bool, Fen), TestCaseError> {
    match events.first() {
        Some(Event::Auction(AuctionEvent::Transfer {
            record,
            duplicate,
            deposit,
        })) => Ok((record.outcome, *duplicate, *deposit)),
        other => Err(TestCaseError::fail(format!(
            "not a transfer's answer: {other:?}"
        ))),
    }
}

impl Cluster {
    fn new(s: &Start) -> Self {
        let mut c = Self {
            nodes: (0..s.markets)
                .map(|_| Node {
                    market: Market::default(),
                    log: Vec::new(),
                    snapshot: None,
                })
                .collect(),
            now: T0,
            totals: Vec::new(),
            flights: Vec::new(),
            sent: Vec::new(),
            next_id: 0,
        };
        for node in &mut c.nodes {
            node.apply(
                T0,
                AuctionCommand::RegisterSeller {
                    name: "seller".into(),
                    token_hash: [1; 32],
                },
            );
        }
        for (i, (total, weights, credit)) in s.dealers.iter().enumerate() {
            let total = Fen::from(*total) * Y;
            let weights = &weights[..s.markets];
            let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum::<u64>().max(1);
            // The last market takes the rounding, and everything when no weight is set.
            let mut left = total;
            for (m, node) in c.nodes.iter_mut().enumerate() {
                let share = if m + 1 == s.markets {
                    left
                } else {
                    total / sum * u64::from(weights[m])
                };
                left -= share;
                node.apply(
                    T0,
                    AuctionCommand::RegisterDealer {
                        name: format!("dealer {i}"),
                        deposit: share,
                        linked_sellers: Vec::new(),
                        token_hash: [10 + i as u8; 32],
                    },
                );
                if credit[m] > 0 {
                    node.apply(
                        T0,
                        AuctionCommand::SetCreditLimit {
                            dealer: DealerId(i as u32 + 1),
                            limit: Fen::from(credit[m]) * Y,
                        },
                    );
                }
            }
            c.totals.push(total);
        }
        for node in &mut c.nodes {
            for (preview, reserve) in [(false, 5_000), (false, 30_000), (true, 8_000)] {
                node.apply(
                    T0,
                    AuctionCommand::ListCar {
                        seller: SellerId(1),
                        listing: Box::new(listing(T0, preview, reserve * Y, !preview)),
                    },
                );
            }
        }
        c
    }

    fn dealers(&self) -> usize {
        self.totals.len()
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let n = self.nodes.len();
        let now = self.now;
        match *step {
            Step::Bid {
                market,
                dealer,
                lot,
                bump,
                max,
            } => {
                let node = &mut self.nodes[market % n];
                let book = node.market.book();
                let lots = book.lots();
                let lot = &lots[lot % lots.len()];
                let amount = match lot.status {
                    LotStatus::Scheduled => lot.listing.start_price,
                    _ => lot.min_next(&book.rules().increments) + Fen::from(bump) * 500 * Y,
                };
                let id = lot.id;
                let max = max.map(|m| amount + Fen::from(m) * 1_000 * Y);
                let bid_id = format!("b{}", node.log.len());
                node.apply(
                    now,
                    AuctionCommand::PlaceBid {
                        dealer: DealerId((dealer % self.totals.len()) as u32 + 1),
                        lot: id,
                        amount,
                        max,
                        bid_id: bid_id.into(),
                    },
                );
            }
            Step::Advance { ms } => {
                self.now += u64::from(ms);
                for node in &mut self.nodes {
                    node.apply(self.now, AuctionCommand::Tick);
                }
            }
            Step::Settle { market, lot } => {
                let node = &mut self.nodes[market % n];
                let lots = node.market.book().lots().len();
                let lot = LotId((lot % lots) as u32 + 1);
                node.apply(now, AuctionCommand::Settle { lot });
            }
            Step::List {
                market,
                preview,
                reserve,
                buy_now,
            } => {
                let listing = listing(now, preview, Fen::from(reserve) * 1_000 * Y, buy_now);
                self.nodes[market % n].apply(
                    now,
                    AuctionCommand::ListCar {
                        seller: SellerId(1),
                        listing: Box::new(listing),
                    },
                );
            }
            Step::Out {
                from,
                to,
                dealer,
                per_mille,
            } => {
                let from = from % n;
                let to = if to % n == from {
                    (from + 1) % n
                } else {
                    to % n
                };
                let dealer = DealerId((dealer % self.dealers()) as u32 + 1);
                let book = self.nodes[from].market.book();
                let d = book.dealer(dealer).expect("registered everywhere");
                let (deposit, free) = (d.deposit, book.free_deposit(d));
                let amount = (deposit / 1_000 * Fen::from(per_mille)).max(1);
                self.next_id += 1;
                let id = format!("t{}", self.next_id);
                let command = AuctionCommand::TransferOut {
                    transfer: id.as_str().into(),
                    dealer,
                    to: MARKETS[to].into(),
                    amount,
                };
                self.sent.push((from, command.clone()));
                let events = self.nodes[from].apply(now, command);
                match answer(&events)? {
                    (TransferOutcome::Accepted, false, after) => {
                        prop_assert!(amount <= free, "{amount} out of {free} free");
                        prop_assert_eq!(after, deposit - amount);
                        self.flights.push(Flight {
                            id,
                            to,
                            dealer,
                            amount,
                            from: MARKETS[from],
                        });
                    }
                    (
                        TransferOutcome::Refused(TransferRefusal::ExceedsFree { free: said }),
                        false,
                        after,
                    ) => {
                        prop_assert!(amount > free, "{amount} refused with {free} free");
                        prop_assert_eq!((said, after), (free, deposit));
                    }
                    other => prop_assert!(false, "out of {amount}: {other:?}"),
                }
            }
            Step::Deliver { flight } => {
                if self.flights.is_empty() {
                    return Ok(());
                }
                let f = self.flights.remove(flight % self.flights.len());
                let command = AuctionCommand::TransferIn {
                    transfer: f.id.as_str().into(),
                    dealer: f.dealer,
                    from: f.from.into(),
                    amount: f.amount,
                };
                self.sent.push((f.to, command.clone()));
                let before = self.nodes[f.to]
                    .market
                    .book()
                    .dealer(f.dealer)
                    .map(|d| d.deposit);
                let events = self.nodes[f.to].apply(now, command);
                let (outcome, duplicate, after) = answer(&events)?;
                prop_assert_eq!((outcome, duplicate), (TransferOutcome::Accepted, false));
                prop_assert_eq!(Some(after), before.map(|b| b + f.amount));
            }
            Step::Redeliver { sent } => {
                if self.sent.is_empty() {
                    return Ok(());
                }
                let (to, command) = self.sent[sent % self.sent.len()].clone();
                let events = self.nodes[to].apply(now, command);
                let (_, duplicate, _) = answer(&events)?;
                prop_assert!(duplicate, "a half sent again was applied again");
                prop_assert_eq!(events.len(), 1, "a repeat changed something");
            }
            Step::Snapshot { market } => self.nodes[market % n].snapshot(),
            Step::Crash {
                market,
                from_snapshot,
            } => self.nodes[market % n].crash(from_snapshot)?,
        }
        Ok(())
    }

    /// The invariant, for every dealer.
    fn check(&self) -> Result<(), TestCaseError> {
        for (i, &total) in self.totals.iter().enumerate() {
            let id = DealerId(i as u32 + 1);
            let flying: Fen = self
                .flights
                .iter()
                .filter(|f| f.dealer == id)
                .map(|f| f.amount)
                .sum();
            let (mut deposits, mut exposure, mut credit, mut outs, mut ins) = (0, 0, 0, 0, 0);
            for node in &self.nodes {
                let book = node.market.book();
                let d = book.dealer(id).expect("registered everywhere");
                let leverage = book.rules().leverage;
                // The book's count of what the dealer holds, against the lots themselves.
                let held: Fen = book
                    .lots()
                    .iter()
                    .map(|l| {
                        let leads = l.lead.is_some_and(|lead| lead.dealer == id);
                        let lead = if leads { l.leader_exposure() } else { 0 };
                        lead + l.prebid_exposure(id)
                    })
                    .sum();
                prop_assert_eq!(d.exposure, held, "{} counts another exposure", id);
                let power = d.deposit * leverage + d.credit.available();
                prop_assert!(
                    d.exposure <= power,
                    "{}: exposure {} over its buying power {} here",
                    id,
                    d.exposure,
                    power
                );
                deposits += d.deposit;
                exposure += d.exposure;
                credit += d.credit.available();
                for t in book.transfers().iter().filter(|t| t.dealer == id) {
                    if t.outcome == TransferOutcome::Accepted {
                        match t.direction {
                            Direction::Out => outs += t.amount,
                            Direction::In => ins += t.amount,
                        }
                    }
                }
            }
            prop_assert_eq!(deposits + flying, total, "{} deposit not conserved", id);
            prop_assert_eq!(outs, ins + flying, "{}: the markets' records disagree", id);
            let leverage = self.nodes[0].market.book().rules().leverage;
            prop_assert!(
                exposure <= total * leverage + credit,
                "{}: exposure {} across markets over {}",
                id,
                exposure,
                total * leverage + credit
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The invariant holds after every step of any interleaving.
    #[test]
    fn buying_power_is_conserved_across_markets(
        s in start(),
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut cluster = Cluster::new(&s);
        cluster.check()?;
        for step in &steps {
            cluster.run(step)?;
            cluster.check()?;
        }
        // Everything on the wire lands, and every market recovers to itself.
        while !cluster.flights.is_empty() {
            cluster.run(&Step::Deliver { flight: 0 })?;
            cluster.check()?;
        }
        for m in 0..cluster.nodes.len() {
            cluster.run(&Step::Crash { market: m, from_snapshot: true })?;
        }
        let deposits: Vec<Fen> = (0..cluster.dealers())
            .map(|i| {
                cluster
                    .nodes
                    .iter()
                    .filter_map(|n| n.market.book().dealer(DealerId(i as u32 + 1)))
                    .map(|d| d.deposit)
                    .sum()
            })
            .collect();
        prop_assert_eq!(deposits, cluster.totals.clone());
    }
}
