//! The alliance pipeline around the pure rules: sold outcomes in, a read view out.
//!
//! Owns how a sold auction reaches the alliance and how the alliance's state is read. It
//! decides no rule (`crate::alliance` does, inside the book) and keeps no state of its
//! own that the journal does not also hold.
//!
//! Every sold outcome becomes a [`HandOffRecord`] (auction, VIN, seller, winning dealer,
//! price, inspection report and its SHA-256) and is submitted to the engine as a journaled
//! `Command::Alliance(HandOff)`. The book creates one inventory item per auction however
//! often the record arrives, so delivery may be at least once while the effect is once:
//!
//! - With the Redis journal ([`redis_consumer`]), records come from the `{prefix}:outcomes`
//!   stream through a consumer group. An entry is acknowledged (`XACK`) only after its
//!   hand-off is durable; entries a consumer read but never acknowledged (it died, or the
//!   engine was unavailable) are read again or claimed (`XAUTOCLAIM`) by another.
//! - In a cluster, one market's alliance (the alliance market's) holds every market's sold
//!   cars: the others forward theirs to its inbox stream, whole ([`redis_consumer::Role`]).
//! - With the file journal ([`local`]) there is no stream: sold outcomes are taken from the
//!   engine's publication, which happens only after they are durable, into an in-memory
//!   queue. The queue can be lost in a crash, so at every (re)start it is rebuilt from the
//!   durable book itself — every sold lot that has no inventory item — which makes it as
//!   complete as the journal.
//!
//! Either way the car's listing (its VIN and report) comes from `crate::views::Lots`,
//! which holds it from the command that listed the lot on. The alliance's read view is
//! `crate::views::AllianceBoard`.
//!
//! - [`local`]: the file-journal hand-off.
//! - [`redis_consumer`]: the Redis consumer group.

pub mod local;
pub mod redis_consumer;

pub use local::{FeedPublisher, LocalFeed};
pub use redis_consumer::{RedisHandoff, RedisHandoffConfig, Role};

use crate::alliance::{
    inspection_sha256, AllianceCommand, AllianceEvent, AllianceRefusal, HandOffRecord, ItemId,
};
use crate::auction::Listing;
use crate::engine::{EngineHandle, Unavailable};
use crate::market::{Command, Event};
use crate::vocab::{DealerId, Fen, LotId, SellerId, Vehicle};

/// The hand-off record of a sold auction, from its listing and its sale.
pub fn hand_off_record(
    auction: LotId,
    seller: SellerId,
    dealer: DealerId,
    price: Fen,
    listing: &Listing,
) -> HandOffRecord {
    HandOffRecord {
        auction,
        vin: listing.vehicle.vin.clone(),
        seller,
        dealer,
        price,
        inspection: listing.inspection.clone(),
        inspection_sha256: inspection_sha256(&listing.inspection),
    }
}

/// What the engine made of a hand-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handed {
    /// Durable: the auction's item, created now or (`duplicate`) before.
    Done {
        /// The item.
        item: ItemId,
        /// The auction had been handed off already.
        duplicate: bool,
    },
    /// The book refused the record (not sold, or it disagrees with the sale); retrying
    /// cannot help.
    Refused(AllianceRefusal),
}

/// Submits a hand-off and waits until it is durable. `Unavailable` means nothing
/// happened and the record must be offered again later.
pub async fn submit_hand_off(
    engine: &EngineHandle,
    record: HandOffRecord,
) -> Result<Handed, Unavailable> {
    submit(engine, AllianceCommand::HandOff(Box::new(record))).await
}

/// Submits the hand-off of a car `market` (another market of the cluster) sold, as
/// [`submit_hand_off`] does.
pub async fn submit_hand_off_from(
    engine: &EngineHandle,
    market: String,
    record: HandOffRecord,
    vehicle: Vehicle,
) -> Result<Handed, Unavailable> {
    let command = AllianceCommand::HandOffFrom {
        market,
        record: Box::new(record),
        vehicle: Box::new(vehicle),
    };
    submit(engine, command).await
}

async fn submit(engine: &EngineHandle, command: AllianceCommand) -> Result<Handed, Unavailable> {
    let applied = engine.submit(Command::Alliance(command)).await?;
    Ok(applied
        .events
        .iter()
        .find_map(|e| match e {
            Event::Alliance(AllianceEvent::HandedOff {
                item, duplicate, ..
            }) => Some(Handed::Done {
                item: *item,
                duplicate: *duplicate,
            }),
            Event::Alliance(AllianceEvent::Refused(r)) => Some(Handed::Refused(*r)),
            _ => None,
        })
        // A HandOff always answers one of the two; anything else would be a book bug,
        // and retrying it would not help either.
        .unwrap_or(Handed::Refused(AllianceRefusal::NotSold)))
}

#[cfg(test)]
mod tests;
