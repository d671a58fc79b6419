//! Read models kept current from the engine's durable publication.
//!
//! Owns what HTTP and the WebSocket read without asking the engine: the public state of
//! every lot ([`Lots`]) and the alliance's inventory, complaints and standings
//! ([`AllianceBoard`]). One publisher ([`ViewsPublisher`]) keeps both, from durable events
//! only, so no reader ever sees a price or a sale the journal could still lose; after
//! every recovery both are rebuilt from the book.
//!
//! Must not: decide a rule (the book does), hold a leader's max (a [`LotView`] has no
//! field for it), or depend on a layer above the engine.
//!
//! - [`auction`]: one auction as clients see it (the snapshot object), and who is looking.
//! - [`lots`]: the durable public state of every lot.
//! - [`alliance`]: the alliance's durable read view.
//! - [`accounts`]: account names, and each dealer's status, deposit and exposure.

pub mod accounts;
pub mod alliance;
pub mod auction;
pub mod lots;

pub use accounts::{Accounts, DealerView, StatusChange};
pub use alliance::AllianceBoard;
pub use auction::{AuctionRef, AuctionView, InspectionView, Status, VehicleView, Viewer};
pub use lots::{LotView, Lots};

use crate::auction::{BidOutcome, Command as AuctionCommand, Event as AuctionEvent};
use crate::engine::Publisher;
use crate::market::{Command, Event, Market};
use crate::store::Entry;
use std::sync::Arc;

/// Keeps the [`Lots`] and the [`AllianceBoard`] current.
pub struct ViewsPublisher {
    /// The lots' public state.
    pub lots: Arc<Lots>,
    /// The alliance's read view.
    pub alliance: Arc<AllianceBoard>,
}

impl Publisher for ViewsPublisher {
    fn reset(&mut self, market: &Market) {
        let book = market.book();
        let rules = book.rules();
        self.lots.configure(&rules.increments, rules.leverage);
        self.lots.reset(book.lots());
        self.alliance.reset(market);
    }

    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        for event in events {
            match *event {
                Event::Configured => {
                    if let Command::Configure(rules) = &entry.command {
                        self.alliance.configure(&rules.alliance);
                        let rules = &rules.auction;
                        self.lots.configure(&rules.increments, rules.leverage);
                    }
                }
                Event::Auction(AuctionEvent::Listed {
                    lot,
                    status,
                    starts_at,
                    ends_at,
                }) => {
                    let Command::Auction(AuctionCommand::ListCar { seller, listing }) =
                        &entry.command
                    else {
                        continue;
                    };
                    self.lots.insert(LotView {
                        id: lot,
                        seller: *seller,
                        listing: Arc::new((**listing).clone()),
                        status,
                        starts_at,
                        ends_at,
                        bids: 0,
                        price: None,
                        leader: None,
                        decide_by: None,
                    });
                }
                Event::Auction(AuctionEvent::Updated(u)) => self.lots.update(&u),
                Event::Auction(AuctionEvent::DecisionWindow { lot, until }) => {
                    self.lots.decision_window(lot, until)
                }
                _ => {}
            }
        }
        self.alliance.publish(events);
    }
}

/// Keeps the [`Accounts`] current.
pub struct AccountsPublisher(pub Arc<Accounts>);

impl Publisher for AccountsPublisher {
    fn reset(&mut self, market: &Market) {
        self.0.reset(market);
    }

    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        for event in events {
            match *event {
                Event::Auction(AuctionEvent::Bid {
                    dealer,
                    outcome: BidOutcome::Accepted { .. },
                    duplicate: false,
                    exposure,
                    ..
                })
                | Event::Auction(AuctionEvent::Outbid {
                    dealer, exposure, ..
                })
                | Event::Auction(AuctionEvent::ExposureChanged { dealer, exposure }) => {
                    self.0.exposure(dealer, exposure)
                }
                Event::Auction(AuctionEvent::DealerRegistered { dealer }) => {
                    self.0.registered_dealer(entry, dealer)
                }
                Event::Auction(AuctionEvent::SellerRegistered { seller }) => {
                    self.0.registered_seller(entry, seller)
                }
                Event::Auction(AuctionEvent::ServiceRegistered { service }) => {
                    self.0.registered_service(entry, service)
                }
                Event::Auction(AuctionEvent::DealerChanged {
                    dealer,
                    status,
                    deposit,
                    exposure,
                }) => self.0.changed(entry, dealer, status, deposit, exposure),
                _ => {}
            }
        }
    }
}
