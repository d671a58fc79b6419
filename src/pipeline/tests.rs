//! The file-journal hand-off on the memory journal: sold outcomes become one item each,
//! and a sold lot a crash kept from the alliance is handed off at the next start.

use super::*;
use crate::auction::{Command as AuctionCommand, Event as AuctionEvent};
use crate::engine::{self, EngineConfig};
use crate::market::Rules;
use crate::store::memory::MemoryJournal;
use crate::store::StoreError;
use crate::views::{AllianceBoard, Lots, MarketData, ViewsPublisher};
use crate::vocab::{DealerStatus, Inspection, Vehicle, FEN_PER_YUAN};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const Y: u64 = FEN_PER_YUAN;

struct Node {
    engine: EngineHandle,
    task: JoinHandle<Result<(), StoreError>>,
    board: Arc<AllianceBoard>,
    feed: Option<Arc<LocalFeed>>,
    stop: watch::Sender<bool>,
}

async fn start(journal: &MemoryJournal, with_feed: bool) -> Node {
    let lots = Lots::new();
    let board = AllianceBoard::new();
    let feed = with_feed.then(LocalFeed::new);
    let publisher = (
        ViewsPublisher {
            lots: lots.clone(),
            alliance: board.clone(),
            market_data: MarketData::new(Default::default()),
        },
        feed.clone().map(|feed| FeedPublisher { feed, lots }),
    );
    let (engine, task) = engine::spawn(
        journal.clone(),
        Rules::default(),
        publisher,
        EngineConfig::default(),
    )
    .await
    .expect("engine starts");
    let (stop, stopped) = watch::channel(false);
    if let Some(feed) = &feed {
        tokio::spawn(feed.clone().run(engine.clone(), stopped));
    }
    Node {
        engine,
        task,
        board,
        feed,
        stop,
    }
}

impl Node {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.engine.close();
        drop(self.engine);
        self.task
            .await
            .expect("joins")
            .expect("engine stops cleanly");
    }

    async fn run(&self, command: Command) -> Vec<Event> {
        self.engine.submit(command).await.expect("durable").events
    }

    async fn setup(&self) {
        self.run(Command::Auction(AuctionCommand::RegisterSeller {
            name: "seller".into(),
            token_hash: [1; 32],
        }))
        .await;
        self.run(Command::Auction(AuctionCommand::RegisterDealer {
            name: "dealer".into(),
            deposit: 1_000_000 * Y,
            linked_sellers: Vec::new(),
            token_hash: [2; 32],
        }))
        .await;
    }

    /// Lists a car and buys it at once (buy-now) with dealer D1.
    async fn buy(&self, n: u32) -> LotId {
        let events = self
            .run(Command::Auction(AuctionCommand::ListCar {
                seller: SellerId(1),
                listing: Box::new(Listing {
                    vehicle: Vehicle {
                        vin: "1M8GDM9AXKP042788".into(),
                        make: "Toyota".into(),
                        model: "Corolla".into(),
                        year: 2020,
                        mileage_km: 50_000,
                        city: None,
                    },
                    inspection: Inspection {
                        structural_damage: false,
                        fire: false,
                        flood: n.is_multiple_of(2),
                        odometer_tampered: false,
                        title_transferable: true,
                        grade: 4,
                        notes: String::new(),
                    },
                    start_price: 50_000 * Y,
                    reserve: 50_000 * Y,
                    buy_now: Some(60_000 * Y),
                    starts_at: None,
                    duration_ms: None,
                }),
            }))
            .await;
        let Some(Event::Auction(AuctionEvent::Listed { lot, .. })) = events.first() else {
            panic!("not listed: {events:?}");
        };
        self.run(Command::Auction(AuctionCommand::PlaceBid {
            dealer: DealerId(1),
            lot: *lot,
            amount: 60_000 * Y,
            max: None,
            bid_id: format!("buy-{n}").into(),
        }))
        .await;
        *lot
    }

    async fn item_of(&self, lot: LotId) -> crate::alliance::Item {
        for _ in 0..200 {
            if let Some(item) = self.board.item_for_auction(lot) {
                return item;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{lot} was not handed off");
    }
}

#[tokio::test]
async fn sold_outcomes_are_handed_off_once_even_across_a_crash() {
    let journal = MemoryJournal::new();
    let node = start(&journal, true).await;
    node.setup().await;
    let first = node.buy(1).await;
    let item = node.item_of(first).await;
    assert!(item.certified, "{:?}", item.reasons);
    assert_eq!(item.dealer, DealerId(1));
    assert_eq!(item.price, 60_000 * Y);
    node.stop().await;

    // A node whose hand-off never ran (a crash between the sale and the hand-off).
    let node = start(&journal, false).await;
    let second = node.buy(2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(node.board.item_for_auction(second).is_none());
    node.stop().await;

    // The next start finds the sold lot without an item in the durable book.
    let node = start(&journal, true).await;
    let item = node.item_of(second).await;
    assert_eq!(item.reasons, [crate::alliance::Reason::Flood]);
    assert_eq!(
        node.board.items(None, None).len(),
        2,
        "one item per auction"
    );
    assert_eq!(node.board.items(Some(true), None).len(), 1);
    let feed = node.feed.clone().expect("feed");
    for _ in 0..200 {
        if feed.pending().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(feed.pending().is_empty());
    node.stop().await;

    // Replaying the whole journal reaches the same alliance state: one item per auction.
    let node = start(&journal, true).await;
    assert_eq!(node.board.items(None, None).len(), 2);
    let standing = node.board.standing(DealerId(1)).expect("dealer");
    assert_eq!(standing.status, DealerStatus::Active);
    node.stop().await;
    let hand_offs = journal
        .entries()
        .iter()
        .filter(|e| matches!(e.command, Command::Alliance(AllianceCommand::HandOff(_))))
        .count();
    assert!(hand_offs >= 2, "{hand_offs}");
}
