//! Generated journals for the shill tests and the audit's measurements: a market of
//! honest dealers with varied random behaviour, and three planted ones (a shill tied to
//! one seller, a prober of proxy maxima, an honest heavy bidder). Every command is decided
//! by a real `Market` as the dealers see it, and written in batches to a real file
//! journal, with the outcomes each batch produced (so `gavel replay --verify` agrees).
//!
//! Deterministic: the seed decides everything, time included (1 s per step from a fixed
//! start).

use gavel::auction::{BidOutcome, Command, Event as AuctionEvent, Listing, LotStatus};
use gavel::market::{Event, Market, Rules};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::{Batch, Entry, Journal, OutcomeRecord};
use gavel::vocab::{DealerId, Inspection, LotId, SellerId, Vehicle};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The journal's first time (ms): 2025-10-09.
pub const START_MS: u64 = 1_760_000_000_000;
const STEP_MS: u64 = 1_000;
const LOT_DURATION_MS: u64 = 20 * 60 * 1000;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    /// Sellers (the shill's is the first).
    pub sellers: u32,
    /// Honest dealers besides the heavy bidder.
    pub honest: u32,
    /// Lots kept live at once.
    pub live_lots: usize,
    /// Bid opportunities per second (one random live lot each).
    pub bids_per_step: u32,
    /// Stop after this many commands.
    pub commands: u64,
    /// Decides everything.
    pub seed: u64,
}

/// Who is who in a generated journal.
#[derive(Clone, Debug)]
pub struct Planted {
    /// The shill.
    pub shill: DealerId,
    /// The seller the shill is tied to.
    pub shill_seller: SellerId,
    /// The prober.
    pub prober: DealerId,
    /// The honest heavy bidder.
    pub heavy: DealerId,
    /// Every honest dealer (the heavy bidder included).
    pub honest: Vec<DealerId>,
    /// The journal's last time (ms).
    pub last_at: u64,
    /// Commands written.
    pub commands: u64,
    /// Bid commands among them, and how many were accepted.
    pub bids: u64,
    /// Accepted bids.
    pub accepted: u64,
    /// Lots closed (sold, no sale or pending).
    pub closed: u64,
}

/// A fixed xorshift generator: the same seed, the same journal.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A draw in [0, n) (0 for n = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A uniform draw in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// How an honest dealer behaves, drawn once per dealer.
#[derive(Clone, Debug)]
struct Honest {
    /// Chance to take an interest in a lot.
    interest: f64,
    /// Sellers it prefers (interest ×4 on their cars).
    favourites: Vec<u32>,
    /// Its valuations range over start × [lo, hi].
    value: (f64, f64),
    /// Chance to bid with a proxy maximum at its valuation.
    proxy: f64,
    /// Chance to bid above the minimum (one to three increments).
    jump: f64,
    /// Chance to act on a chance to bid.
    eagerness: f64,
    /// It only starts bidding after this share of the lot's time (a late bidder).
    wakes: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Honest,
    Shill,
    Prober,
}

/// A dealer's interest in one lot.
#[derive(Clone, Debug)]
struct Interest {
    dealer: DealerId,
    role: Role,
    /// The most it will pay, in fen.
    value: u64,
    proxy: bool,
    /// Chance to act on a chance to bid.
    eagerness: f64,
    /// Bids only after this share of the lot's time.
    wakes: f64,
    /// Done with this lot (a prober that found the maximum, a shill past its time).
    done: bool,
}

/// A car listed for 20 minutes: a Sagitar, start 30,000-229,000 yuan, reserve a quarter
/// above the start.
pub fn listing(rng: &mut Rng) -> Listing {
    let start = (30_000 + rng.below(200) * 1_000) * 100;
    Listing {
        vehicle: Vehicle {
            vin: "1M8GDM9AXKP042788".into(),
            make: "Volkswagen".into(),
            model: "Sagitar".into(),
            year: 2015 + rng.below(10) as u16,
            mileage_km: rng.below(200_000) as u32,
            city: Some("Changchun".into()),
        },
        inspection: Inspection {
            structural_damage: false,
            fire: false,
            flood: false,
            odometer_tampered: false,
            title_transferable: true,
            grade: 3 + rng.below(3) as u8,
            notes: "Front bumper resprayed; tyres 60%.".into(),
        },
        start_price: start,
        reserve: start + start / 4,
        buy_now: None,
        starts_at: None,
        duration_ms: Some(LOT_DURATION_MS),
    }
}

/// Writes the population's journal into `dir` (a fresh directory).
pub async fn generate(dir: &Path, p: Population) -> Planted {
    let mut journal = FileJournal::open(dir, FileJournalConfig::default())
        .await
        .expect("open the file journal");
    let mut rng = Rng(p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut market = Market::new(Rules::first());
    let honest: Vec<Honest> = (0..p.honest)
        .map(|_| {
            let favourites = if rng.chance(0.3) {
                (0..1 + rng.below(2))
                    .map(|_| 1 + rng.below(u64::from(p.sellers)) as u32)
                    .collect()
            } else {
                Vec::new()
            };
            let lo = rng.between(0.95, 1.2);
            Honest {
                interest: rng.between(0.01, 0.08),
                favourites,
                value: (lo, lo + rng.between(0.1, 0.5)),
                proxy: rng.between(0.0, 0.6),
                jump: rng.between(0.0, 0.5),
                eagerness: rng.between(0.05, 0.6),
                wakes: if rng.chance(0.2) {
                    rng.between(0.5, 0.9)
                } else {
                    0.0
                },
            }
        })
        .collect();
    let heavy_traits = Honest {
        interest: 0.4,
        favourites: Vec::new(),
        value: (1.0, 1.6),
        proxy: 0.5,
        jump: 0.2,
        eagerness: 0.4,
        wakes: 0.0,
    };
    let heavy = DealerId(p.honest + 1);
    let shill = DealerId(p.honest + 2);
    let prober = DealerId(p.honest + 3);
    let shill_seller = SellerId(1);
    let mut registrations: Vec<Command> = (1..=p.sellers)
        .map(|s| Command::RegisterSeller {
            name: format!("seller {s}"),
            token_hash: [s as u8; 32],
        })
        .collect();
    registrations.extend((1..=p.honest + 3).map(|d| Command::RegisterDealer {
        name: format!("dealer {d}"),
        deposit: 100_000_000_000,
        linked_sellers: Vec::new(),
        token_hash: [(d >> 8) as u8; 32],
    }));
    let mut plans: HashMap<LotId, Vec<Interest>> = HashMap::new();
    let mut live: Vec<LotId> = Vec::new();
    let mut now = START_MS;
    let mut seq = 0u64;
    let mut batch = Batch::default();
    let mut events = Vec::new();
    let mut planted = Planted {
        shill,
        shill_seller,
        prober,
        heavy,
        honest: (1..=p.honest + 1).map(DealerId).collect(),
        last_at: now,
        commands: 0,
        bids: 0,
        accepted: 0,
        closed: 0,
    };
    let mut pending: Vec<Command> = registrations;
    while seq < p.commands {
        if pending.is_empty() {
            now += STEP_MS;
            if market.next_deadline().is_some_and(|t| t <= now) {
                pending.push(Command::Tick);
            }
            live.retain(|l| {
                market
                    .book()
                    .lot(*l)
                    .is_some_and(|lot| lot.status == LotStatus::Live)
            });
            while live.len() + pending.len() < p.live_lots {
                let seller = 1 + rng.below(u64::from(p.sellers)) as u32;
                pending.push(Command::ListCar {
                    seller: SellerId(seller),
                    listing: Box::new(listing(&mut rng)),
                });
            }
            for _ in 0..p.bids_per_step {
                if live.is_empty() {
                    break;
                }
                let lot = live[rng.below(live.len() as u64) as usize];
                if let Some(bid) = choose_bid(&market, lot, &mut plans, &mut rng, now, seq) {
                    pending.push(bid);
                }
            }
            continue;
        }
        let command = pending.remove(0);
        let is_bid = matches!(command, Command::PlaceBid { .. });
        seq += 1;
        events.clear();
        market.apply_into(seq, now, command.clone().into(), &mut events);
        for e in &events {
            if let Some(o) = OutcomeRecord::from_event(seq, e) {
                batch.outcomes.push(o);
            }
            match e {
                Event::Auction(AuctionEvent::Listed { lot, .. }) => {
                    let l = market.book().lot(*lot).expect("a listed lot");
                    let plan = interests(
                        l.seller,
                        l.listing.start_price,
                        &honest,
                        &heavy_traits,
                        p,
                        &mut rng,
                    );
                    plans.insert(*lot, plan);
                    live.push(*lot);
                }
                Event::Auction(AuctionEvent::Bid { outcome, .. }) => {
                    planted.bids += u64::from(is_bid);
                    let BidOutcome::Accepted { price, leading, .. } = *outcome else {
                        continue;
                    };
                    planted.accepted += 1;
                    let Command::PlaceBid {
                        dealer,
                        lot,
                        amount,
                        ..
                    } = &command
                    else {
                        continue;
                    };
                    let step = market.book().rules().increments.increment(*amount);
                    if *dealer == prober && (leading || price < amount + step) {
                        for want in plans.get_mut(lot).into_iter().flatten() {
                            if want.dealer == prober {
                                want.done = true;
                            }
                        }
                    }
                }
                Event::Auction(AuctionEvent::Closed { lot, .. }) => {
                    planted.closed += 1;
                    plans.remove(lot);
                }
                _ => {}
            }
        }
        batch.entries.push(Entry {
            seq,
            now_ms: now,
            command: command.into(),
        });
        if batch.entries.len() >= 512 || seq == p.commands {
            journal
                .append(&std::mem::take(&mut batch))
                .await
                .expect("append a batch");
        }
    }
    if !batch.entries.is_empty() {
        journal.append(&batch).await.expect("append the last batch");
    }
    journal.close().await.expect("close the journal");
    planted.last_at = now;
    planted.commands = seq;
    planted
}

/// Who takes an interest in a new lot, and at what valuation.
fn interests(
    seller: SellerId,
    start: u64,
    honest: &[Honest],
    heavy: &Honest,
    p: Population,
    rng: &mut Rng,
) -> Vec<Interest> {
    let mut out = Vec::new();
    let add = |dealer: DealerId, h: &Honest, rng: &mut Rng, out: &mut Vec<Interest>| {
        let boost = if h.favourites.contains(&seller.0) {
            4.0
        } else {
            1.0
        };
        if rng.chance((h.interest * boost).min(0.9)) {
            let value = (start as f64 * rng.between(h.value.0, h.value.1)) as u64;
            out.push(Interest {
                dealer,
                role: Role::Honest,
                value,
                proxy: rng.chance(h.proxy),
                eagerness: h.eagerness,
                wakes: h.wakes,
                done: false,
            });
        }
    };
    for (i, h) in honest.iter().enumerate() {
        add(DealerId(i as u32 + 1), h, rng, &mut out);
    }
    add(DealerId(p.honest + 1), heavy, rng, &mut out);
    // The shill: nearly every car of its seller, a few others as cover. It pushes the
    // price toward what it thinks the market bears, never past it.
    let shill_chance = if seller == SellerId(1) { 0.9 } else { 0.02 };
    if rng.chance(shill_chance) {
        out.push(Interest {
            dealer: DealerId(p.honest + 2),
            role: Role::Shill,
            value: (start as f64 * rng.between(1.1, 1.3)) as u64,
            proxy: false,
            eagerness: 0.9,
            wakes: 0.0,
            done: false,
        });
    }
    // The prober: a few lots of any seller.
    if rng.chance(0.08) {
        out.push(Interest {
            dealer: DealerId(p.honest + 3),
            role: Role::Prober,
            value: u64::MAX,
            proxy: false,
            eagerness: 0.9,
            wakes: 0.0,
            done: false,
        });
    }
    out
}

/// One interested dealer's bid on `lot` now, if one wants to bid.
fn choose_bid(
    market: &Market,
    lot_id: LotId,
    plans: &mut HashMap<LotId, Vec<Interest>>,
    rng: &mut Rng,
    now: u64,
    seq: u64,
) -> Option<Command> {
    let book = market.book();
    let lot = book.lot(lot_id)?;
    let plan = plans.get_mut(&lot_id)?;
    if plan.is_empty() || lot.status != LotStatus::Live {
        return None;
    }
    let increments = &book.rules().increments;
    let min_next = lot.min_next(increments);
    let elapsed = now.saturating_sub(lot.starts_at) as f64
        / lot.ends_at.saturating_sub(lot.starts_at).max(1) as f64;
    let leader = lot.lead.map(|l| l.dealer);
    let i = rng.below(plan.len() as u64) as usize;
    let want = &mut plan[i];
    if want.done || leader == Some(want.dealer) {
        return None;
    }
    let (amount, max) = match want.role {
        Role::Honest => {
            if min_next > want.value || elapsed < want.wakes || !rng.chance(want.eagerness) {
                return None;
            }
            let step = increments.increment(min_next);
            let amount = if rng.chance(0.25) {
                (min_next + (1 + rng.below(3)) * step).min(want.value.max(min_next))
            } else {
                min_next
            };
            (amount, want.proxy.then_some(want.value.max(amount)))
        }
        Role::Shill => {
            // Early and quick, only behind a real bidder, stopping at its target or
            // past half the lot's time: it must not be left holding the car.
            if elapsed > 0.5 {
                want.done = true;
                return None;
            }
            if leader.is_none() || min_next > want.value {
                return None;
            }
            (min_next, None)
        }
        Role::Prober => {
            // Only against a leader, by the minimum each time; `generate` marks it done
            // once an answer rises by less than a full increment (the maximum is found).
            leader?;
            (min_next, None)
        }
    };
    Some(Command::PlaceBid {
        dealer: want.dealer,
        lot: lot_id,
        amount,
        max,
        bid_id: Arc::from(format!("g{seq}-{}", rng.below(1 << 20))),
    })
}
