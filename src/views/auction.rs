//! One auction as clients see it: the `auction` object of the WebSocket's `snapshot` and
//! the body of `GET /v1/auctions/{id}`, the same fields in JSON and MessagePack.
//!
//! The wire shape is written out here field by field, not derived from a domain type, so
//! the domain can change without changing the contract (docs/protocol.md). This is also
//! where the privacy rule of a lot's view lives: it is built from a [`LotView`], which
//! holds no leader's max, and says `leading` only to the dealer who leads and `reserve`
//! only to the lot's own seller.

use super::lots::LotView;
use crate::auction::{Increments, LotStatus};
use crate::directory::Principal;
use crate::vocab::{DealerId, Fen, LotId, SellerId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// An auction id as it travels on the wire (`A17`): opaque to clients.
///
/// Kept as the string the client sent, so a reply can echo it exactly even when it names
/// no lot; [`AuctionRef::lot`] gives the lot it names, if any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuctionRef(Arc<str>);

impl AuctionRef {
    /// Wraps a string as sent (the decoder has checked its length).
    pub fn new(s: &str) -> Self {
        Self(s.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lot this id names, if it is a well-formed lot id (it may still be unknown).
    pub fn lot(&self) -> Option<LotId> {
        self.0.parse().ok()
    }
}

impl From<Arc<str>> for AuctionRef {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl From<LotId> for AuctionRef {
    fn from(lot: LotId) -> Self {
        Self(lot.to_string().into())
    }
}

impl fmt::Display for AuctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AuctionRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuctionRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::new(&s))
    }
}

/// A lot's status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Listed, not yet open.
    Scheduled,
    /// Taking bids.
    Live,
    /// Closed under the reserve; the seller decides.
    PendingSeller,
    /// Sold.
    Sold,
    /// Not sold.
    NoSale,
    /// Cancelled.
    Cancelled,
}

impl Status {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::PendingSeller => "pending_seller",
            Self::Sold => "sold",
            Self::NoSale => "no_sale",
            Self::Cancelled => "cancelled",
        }
    }
}

impl From<LotStatus> for Status {
    fn from(s: LotStatus) -> Self {
        match s {
            LotStatus::Scheduled => Self::Scheduled,
            LotStatus::Live => Self::Live,
            LotStatus::PendingSeller => Self::PendingSeller,
            LotStatus::Sold => Self::Sold,
            LotStatus::NoSale => Self::NoSale,
            LotStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// Who is looking at a lot: decides `leading` and whether `reserve` is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// A dealer (sees `leading: true` only while it leads).
    Dealer(DealerId),
    /// A seller (sees `reserve` of its own lots only).
    Seller(SellerId),
    /// Anyone else with a token (admin, service): sees neither.
    Other,
}

impl From<Principal> for Viewer {
    /// How a principal sees a lot.
    fn from(p: Principal) -> Self {
        match p {
            Principal::Dealer(d) => Self::Dealer(d),
            Principal::Seller(s) => Self::Seller(s),
            Principal::Admin | Principal::Service(_) => Self::Other,
        }
    }
}

/// The car, as shown in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleView {
    /// VIN.
    pub vin: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// Model year.
    pub year: u16,
    /// Odometer, km.
    pub mileage_km: u32,
    /// Where the car stands (omitted when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// The inspection report, as shown in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionView {
    /// Structural (frame) damage.
    pub structural_damage: bool,
    /// Fire damage.
    pub fire: bool,
    /// Flood damage.
    pub flood: bool,
    /// Odometer tampering.
    pub odometer_tampered: bool,
    /// Title can be transferred.
    pub title_transferable: bool,
    /// Grade 0–5.
    pub grade: u8,
    /// Inspector's notes.
    pub notes: String,
}

/// The snapshot object: the `auction` of a `snapshot` message and the body of
/// `GET /v1/auctions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionView {
    /// Auction id.
    pub id: AuctionRef,
    /// Status.
    pub status: Status,
    /// Current price; `null` before the first accepted bid.
    pub price: Option<Fen>,
    /// Lowest acceptable next bid.
    pub min_next: Fen,
    /// Count of accepted bids.
    pub bids: u32,
    /// Whether the price has reached the reserve.
    pub reserve_met: bool,
    /// True only for the dealer who leads.
    pub leading: bool,
    /// When bidding opens (ms).
    pub starts_at: u64,
    /// When bidding closes (ms).
    pub ends_at: u64,
    /// Buy-now price while on offer (omitted once withdrawn or when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_now: Option<Fen>,
    /// The reserve: present only for the lot's own seller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve: Option<Fen>,
    /// The car.
    pub vehicle: VehicleView,
    /// Its inspection.
    pub inspection: InspectionView,
}

impl AuctionView {
    /// The view of `lot` for `viewer`; `min_next` is `lot`'s under `increments`.
    pub fn new(lot: &LotView, increments: &Increments, viewer: Viewer) -> Self {
        let l = &lot.listing;
        let leading = match viewer {
            Viewer::Dealer(d) => lot.leader == Some(d),
            Viewer::Seller(_) | Viewer::Other => false,
        };
        let reserve = match viewer {
            Viewer::Seller(s) if s == lot.seller => Some(l.reserve),
            _ => None,
        };
        Self {
            id: lot.id.into(),
            status: lot.status.into(),
            price: lot.price,
            min_next: lot.min_next(increments),
            bids: lot.bids,
            reserve_met: lot.reserve_met(),
            leading,
            starts_at: lot.starts_at,
            ends_at: lot.ends_at,
            buy_now: lot.buy_now(),
            reserve,
            vehicle: VehicleView {
                vin: l.vehicle.vin.clone(),
                make: l.vehicle.make.clone(),
                model: l.vehicle.model.clone(),
                year: l.vehicle.year,
                mileage_km: l.vehicle.mileage_km,
                city: l.vehicle.city.clone(),
            },
            inspection: InspectionView {
                structural_damage: l.inspection.structural_damage,
                fire: l.inspection.fire,
                flood: l.inspection.flood,
                odometer_tampered: l.inspection.odometer_tampered,
                title_transferable: l.inspection.title_transferable,
                grade: l.inspection.grade,
                notes: l.inspection.notes.clone(),
            },
        }
    }
}
