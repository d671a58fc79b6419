//! The alliance's objects: inventory items, complaints, warnings, and each dealer's
//! record and public standing.
//!
//! Times are ms since the Unix epoch, from the command that changed the object. Deadlines
//! are stored when they are set (`return_until`, `due_at`), so a later change of the
//! configured windows never moves a promise already made to a consumer.

use crate::vocab::{
    id_type, DealerId, DealerStatus, Fen, Inspection, LoanId, LotId, SellerId, Vehicle,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

id_type!(
    /// An inventory item: one car handed off from one sold auction.
    ItemId,
    'I'
);
id_type!(
    /// A consumer complaint against a dealer.
    ComplaintId,
    'C'
);
id_type!(
    /// A warning issued to a dealer for a violation.
    WarningId,
    'W'
);

/// A certification rule a car failed. The names are the wire's `reasons`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The inspection found major structural damage.
    StructuralDamage,
    /// The inspection found fire damage.
    Fire,
    /// The inspection found flood damage.
    Flood,
    /// The inspection found the odometer tampered with.
    OdometerTampered,
    /// The title cannot be transferred to a buyer.
    TitleNotTransferable,
    /// The VIN is not 17 valid characters with a correct check digit.
    VinInvalid,
    /// The VIN differs from the listing's.
    VinMismatch,
    /// The report differs from the one the dealers bid on, or its hash does not match it.
    InspectionMismatch,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StructuralDamage => "structural_damage",
            Self::Fire => "fire",
            Self::Flood => "flood",
            Self::OdometerTampered => "odometer_tampered",
            Self::TitleNotTransferable => "title_not_transferable",
            Self::VinInvalid => "vin_invalid",
            Self::VinMismatch => "vin_mismatch",
            Self::InspectionMismatch => "inspection_mismatch",
        }
    }

    /// Whether a car failing this rule may never be sold on to a consumer by a member
    /// (rules version 2 on): hidden damage (structural, fire, flood) breaks "zero
    /// tolerance", a tampered odometer "100% real condition" (no disclosure makes the
    /// reading on the dashboard true), a title that cannot pass "100% real source" (the
    /// consumer could never own the car). The other reasons are about the record's
    /// integrity, not the car: such a car may be sold, marked not certified.
    pub fn is_zero_tolerance(self) -> bool {
        matches!(
            self,
            Self::StructuralDamage
                | Self::Fire
                | Self::Flood
                | Self::OdometerTampered
                | Self::TitleNotTransferable
        )
    }
}

/// What a returned car was found to have that its report did not show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// Major structural damage.
    StructuralDamage,
    /// Fire damage.
    Fire,
    /// Flood damage.
    Flood,
    /// The title cannot be transferred.
    TitleNotTransferable,
}

impl Finding {
    /// Whether this is hidden damage (structural, fire, flood): zero tolerance.
    pub fn is_damage(self) -> bool {
        matches!(self, Self::StructuralDamage | Self::Fire | Self::Flood)
    }
}

/// Where an item is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Delivered to the dealer who bought it; not yet sold on.
    InStock,
    /// Sold to a consumer: the return window runs.
    Retailed,
    /// Returned by the consumer: a refund is due.
    Returned,
    /// The consumer's money went back: the car is the dealer's again.
    Refunded,
    /// Sold out of the alliance (wholesale, export or scrap): it left inventory without
    /// a consumer sale (final).
    Disposed,
}

impl ItemStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::Retailed => "retailed",
            Self::Returned => "returned",
            Self::Refunded => "refunded",
            Self::Disposed => "disposed",
        }
    }
}

/// Where a car sold out of the alliance went. The names are the wire's `channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Sold to another trader, not to a consumer.
    Wholesale,
    /// Sold abroad.
    Export,
    /// Scrapped.
    Scrap,
}

impl Channel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wholesale => "wholesale",
            Self::Export => "export",
            Self::Scrap => "scrap",
        }
    }
}

/// A dealer's disposal of a car out of the alliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposal {
    /// Where it went.
    pub channel: Channel,
    /// The dealer's note (buyer, export papers, scrap certificate).
    pub note: String,
    /// When it was recorded.
    pub at: u64,
}

/// A dealer's retail sale of an item to a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetailSale {
    /// The consumer site's reference for the buyer.
    pub consumer_ref: String,
    /// Retail price in fen.
    pub price: Fen,
    /// When the sale was recorded.
    pub at: u64,
    /// Returns are accepted while `now < return_until` (`at` + the return window).
    pub return_until: u64,
}

/// An accepted "not as described" return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnClaim {
    /// The consumer site's reference.
    pub consumer_ref: String,
    /// What the consumer says is wrong.
    pub details: String,
    /// What the consumer site's check found that the report did not show (may be empty).
    pub findings: Vec<Finding>,
    /// When the return was accepted.
    pub at: u64,
}

/// One car in a dealer's inventory, handed off from one sold auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub id: ItemId,
    /// The auction it was bought in (one item per auction).
    pub auction: LotId,
    /// The VIN, as handed off.
    pub vin: String,
    /// Who sold it at auction.
    pub seller: SellerId,
    /// The dealer who bought it and holds it.
    pub dealer: DealerId,
    /// The auction price in fen.
    pub price: Fen,
    /// The inspection report, unchanged from the listing the dealers bid on.
    pub inspection: Inspection,
    /// SHA-256 of the report's canonical form ([`super::canonical_inspection`]).
    pub inspection_sha256: [u8; 32],
    /// Whether every certification rule passed. Set once, at hand-off.
    pub certified: bool,
    /// Every rule that failed (empty when certified).
    pub reasons: Vec<Reason>,
    /// Where it is now.
    pub status: ItemStatus,
    /// When it was handed off.
    pub delivered_at: u64,
    /// The retail sale, once recorded.
    pub retail: Option<RetailSale>,
    /// The accepted return, if any.
    pub return_claim: Option<ReturnClaim>,
    /// When the refund was made, if it was.
    pub refunded_at: Option<u64>,
    /// Whether the consumer rated this sale (one rating per retail sale).
    pub rated: bool,
    /// The disposal out of the alliance, once recorded. Last, and left out while `None`,
    /// so an item without one is written as items were before disposals existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposal: Option<Disposal>,
}

impl Item {
    /// Whether the consumer-facing catalogue shows this car: only while a dealer offers
    /// it or a consumer owns it (in stock or retailed; not returned, refunded or disposed
    /// of). A car whose report bars it from retail (a zero-tolerance reason) never
    /// appears: the alliance promised consumers such cars are not sold through its
    /// members. A car that failed certification only for its record (VIN, report hash)
    /// appears when the reader asks for `not_certified` cars too, and is shown marked
    /// with its reasons.
    pub fn in_catalogue(&self, not_certified: bool) -> bool {
        let offered = matches!(self.status, ItemStatus::InStock | ItemStatus::Retailed);
        let barred = self.reasons.iter().any(|r| r.is_zero_tolerance());
        offered && !barred && (self.certified || not_certified)
    }
}

/// Where a complaint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintStatus {
    /// Waiting for the dealer, before its due time.
    Open,
    /// Unresolved at its due time: a violation was recorded.
    Overdue,
    /// Resolved (in time, or late if a warning was issued first).
    Resolved,
}

impl ComplaintStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Overdue => "overdue",
            Self::Resolved => "resolved",
        }
    }
}

/// A consumer complaint against a dealer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    /// Its id.
    pub id: ComplaintId,
    /// The dealer complained about.
    pub dealer: DealerId,
    /// The car it concerns, if any.
    pub item: Option<ItemId>,
    /// The consumer site's reference.
    pub consumer_ref: String,
    /// The complaint.
    pub text: String,
    /// When it was opened.
    pub opened_at: u64,
    /// It must be resolved before this time (`opened_at` + the complaint window); still
    /// unresolved when the clock reaches it, it is overdue.
    pub due_at: u64,
    /// Where it is.
    pub status: ComplaintStatus,
    /// How it was resolved.
    pub resolution: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<u64>,
    /// The warning it caused by going overdue.
    pub warning: Option<WarningId>,
}

/// Why a warning was issued: the violation, and the thing whose resolution corrects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A certified car was returned with structural, fire or flood damage its report did
    /// not show. Corrected when the consumer is refunded.
    HiddenDamage {
        /// The car.
        item: ItemId,
    },
    /// A car was sold on to a consumer whose title cannot be transferred (retailed with a
    /// report that says so, or a certified car returned with that finding). Corrected when
    /// the consumer is refunded.
    TitleNotTransferable {
        /// The car.
        item: ItemId,
    },
    /// A complaint was not resolved within its window. Corrected when it is resolved.
    OverdueComplaint {
        /// The complaint.
        complaint: ComplaintId,
    },
    /// The dealer tried to sell a consumer a car zero tolerance bars from retail
    /// ([`Reason::is_zero_tolerance`]); the sale was refused. Corrected when the dealer
    /// disposes of the car out of the alliance.
    ZeroToleranceRetail {
        /// The car.
        item: ItemId,
    },
    /// The dealer sold a consumer a car it had financed on its credit line before
    /// repaying the loan ("sold out of trust": the lender's security was sold). The sale
    /// stands (the consumer is not harmed). Corrected when the loan is repaid.
    SoldOutOfTrust {
        /// The car.
        item: ItemId,
        /// The loan still open at the sale.
        loan: LoanId,
    },
    /// A loan on the dealer's credit line passed its due time unrepaid (or was repaid at
    /// or after it). Corrected when it is repaid.
    LateRepayment {
        /// The loan.
        loan: LoanId,
    },
}

impl Cause {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HiddenDamage { .. } => "hidden_damage",
            Self::TitleNotTransferable { .. } => "title_not_transferable",
            Self::OverdueComplaint { .. } => "overdue_complaint",
            Self::ZeroToleranceRetail { .. } => "zero_tolerance_retail",
            Self::SoldOutOfTrust { .. } => "sold_out_of_trust",
            Self::LateRepayment { .. } => "late_repayment",
        }
    }

    /// The car this violation concerns, if it concerns one.
    pub fn item(self) -> Option<ItemId> {
        match self {
            Self::HiddenDamage { item }
            | Self::TitleNotTransferable { item }
            | Self::ZeroToleranceRetail { item }
            | Self::SoldOutOfTrust { item, .. } => Some(item),
            Self::OverdueComplaint { .. } | Self::LateRepayment { .. } => None,
        }
    }

    /// Whether refunding the consumer for `car` corrects this violation: the sale that
    /// should not have been made is undone.
    pub fn corrected_by_refund_of(self, car: ItemId) -> bool {
        match self {
            Self::HiddenDamage { item } | Self::TitleNotTransferable { item } => item == car,
            Self::OverdueComplaint { .. }
            | Self::ZeroToleranceRetail { .. }
            | Self::SoldOutOfTrust { .. }
            | Self::LateRepayment { .. } => false,
        }
    }

    /// Whether disposing of `car` out of the alliance corrects this violation: the car
    /// the dealer tried to retail went where it belongs.
    pub fn corrected_by_disposal_of(self, car: ItemId) -> bool {
        self == Self::ZeroToleranceRetail { item: car }
    }

    /// The loan this violation concerns, if it concerns one.
    pub fn loan(self) -> Option<LoanId> {
        match self {
            Self::SoldOutOfTrust { loan, .. } | Self::LateRepayment { loan } => Some(loan),
            _ => None,
        }
    }

    /// Whether repaying `repaid` corrects this violation: the lender is whole again.
    pub fn corrected_by_repayment_of(self, repaid: LoanId) -> bool {
        self.loan() == Some(repaid)
    }
}

/// A warning issued for one violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Its id.
    pub id: WarningId,
    /// The dealer warned.
    pub dealer: DealerId,
    /// The violation.
    pub cause: Cause,
    /// When it was issued.
    pub issued_at: u64,
    /// When its cause was resolved, if it was.
    pub corrected_at: Option<u64>,
}

impl Warning {
    /// Whether its cause has been resolved.
    pub fn corrected(&self) -> bool {
        self.corrected_at.is_some()
    }
}

/// The longest market name a [`RemoteWarning`] (or any note from another market) may
/// carry, in bytes: the longest name `cluster.markets` accepts, and a bound that keeps a
/// journaled note small.
pub const MAX_MARKET_NAME: usize = 32;

/// An item another market of the cluster sold, as filed here under that market's auction
/// (`AllianceCommand::HandOffFrom`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoldElsewhere {
    /// The item.
    pub item: ItemId,
    /// The car as its seller described it: this book holds no listing of it.
    pub vehicle: Vehicle,
}

/// A loan another market of the cluster made on a car it sold, as this market was told of
/// it (`AllianceCommand::NoteRemoteLoan`), filed under that market and its auction (a
/// book finances an auction at most once). The loan lives in that market's book; what
/// this market needs of it is whether it is still open when the car is retailed here, and
/// when it is repaid (which corrects a sale out of trust, as for a car of this book).
///
/// A repayment is final: once `repaid`, a later note saying open changes nothing, so notes
/// relayed late or twice end in the same value whatever their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteLoan {
    /// Its id in that market (ids are per market: this book's loan of the same id is
    /// another).
    pub loan: LoanId,
    /// The borrower: the buyer of the car, who holds it here.
    pub dealer: DealerId,
    /// Whether that market saw it repaid.
    pub repaid: bool,
}

impl RemoteLoan {
    /// Whether another note of `loan` saying `repaid` would change nothing: it is this
    /// loan, and it is repaid already or the note says open. A relay can skip submitting
    /// it.
    pub fn covers(&self, loan: LoanId, repaid: bool) -> bool {
        self.loan == loan && (self.repaid || !repaid)
    }
}

/// A warning another market of the cluster issued to a dealer, as this market was told of
/// it (`AllianceCommand::NoteRemoteWarning`). The alliance is one across the cluster's
/// markets, so its uncorrected remote warnings count toward expulsion here like the
/// market's own; the warning itself, its cause and its correction, live in the market
/// that issued it.
///
/// Keyed by (`market`, `warning`). Notes of one key merge into the same value whatever
/// their order: a correction is final, so the earliest `corrected_at` any note carried
/// stands, and `issued_at` is the earliest any note carried (they are all the issuing
/// market's own reading).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteWarning {
    /// The market that issued it.
    pub market: String,
    /// Its id in that market.
    pub warning: WarningId,
    /// When that market issued it (its clock).
    pub issued_at: u64,
    /// When that market saw its cause resolved, if it has.
    pub corrected_at: Option<u64>,
}

impl RemoteWarning {
    /// Whether its cause has been resolved.
    pub fn corrected(&self) -> bool {
        self.corrected_at.is_some()
    }

    /// Whether another note of this warning, saying `issued_at` and `corrected_at`, would
    /// change nothing: a relay can skip submitting it.
    pub fn covers(&self, issued_at: u64, corrected_at: Option<u64>) -> bool {
        !self.clone().merge(issued_at, corrected_at)
    }

    /// Takes in another note of the same warning; returns whether anything changed.
    pub(super) fn merge(&mut self, issued_at: u64, corrected_at: Option<u64>) -> bool {
        let before = (self.issued_at, self.corrected_at);
        self.issued_at = self.issued_at.min(issued_at);
        self.corrected_at = match (self.corrected_at, corrected_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        before != (self.issued_at, self.corrected_at)
    }
}

/// A dealer's alliance record: ratings and violations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Ratings received (one per retail sale).
    pub ratings: u32,
    /// Marks received: two per rating (condition and service).
    pub marks: u32,
    /// Sum of all marks.
    pub marks_sum: u64,
    /// Violations committed (each issued one warning).
    pub violations: u32,
    /// The warnings, oldest first.
    pub warnings: Vec<WarningId>,
    /// Retail sales refused under zero tolerance, every attempt counted (warned or not).
    /// Last, and left out while 0, so a record without one is written as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_retail: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Record {
    /// The mean of all marks in tenths, rounded half up (`Some(38)` is 3.8); `None`
    /// before the first rating. Integer arithmetic, so no float rounding decides a score.
    pub fn score_tenths(&self) -> Option<u32> {
        if self.marks == 0 {
            return None;
        }
        let marks = u64::from(self.marks);
        // round(10·sum/marks) = floor((20·sum + marks) / (2·marks))
        let tenths = (self.marks_sum * 20 + marks) / (2 * marks);
        u32::try_from(tenths).ok()
    }
}

/// A dealer's public standing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The dealer.
    pub dealer: DealerId,
    /// Mean of all marks in tenths; `None` before the first rating.
    pub score_tenths: Option<u32>,
    /// Ratings received.
    pub ratings: u32,
    /// Violations committed.
    pub violations: u32,
    /// Retail sales refused under zero tolerance.
    pub refused_retail: u32,
    /// Every warning, oldest first.
    pub warnings: Vec<Warning>,
    /// The dealer's status in the book.
    pub status: DealerStatus,
    /// Warnings other markets of the cluster issued to the dealer, by (market, id). Last,
    /// and left out while empty, so a standing without one is written as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_warnings: Vec<RemoteWarning>,
}

impl Standing {
    /// The score as a number with one decimal (3.8), for the wire.
    pub fn score(&self) -> Option<f64> {
        self.score_tenths.map(|t| f64::from(t) / 10.0)
    }

    /// Warnings whose cause is not yet resolved, this market's and other markets' alike
    /// (what counts toward expulsion).
    pub fn uncorrected(&self) -> usize {
        let local = self.warnings.iter().filter(|w| !w.corrected()).count();
        let remote = self
            .remote_warnings
            .iter()
            .filter(|w| !w.corrected())
            .count();
        local + remote
    }
}
