//! Alliance commands, their events and refusals, the rules' windows, and the hand-off
//! record.
//!
//! Like auction commands, these are journaled before they take effect and replayed on
//! recovery, so everything here serializes, and nothing carries a time of its own: the
//! sequencer's `now_ms` is the only clock.

use super::model::{
    Channel, Complaint, ComplaintId, Finding, Item, ItemId, Reason, Record, RemoteWarning, Warning,
    WarningId,
};
use crate::vocab::{
    DealerId, DealerStatus, Fen, Inspection, LoanId, LotId, SellerId, Vehicle, RULES_VERSION,
};
use serde::{Deserialize, Serialize};

/// The alliance's windows and thresholds. Part of the journaled `Rules`, so a replay uses
/// the rules the live engine used.
///
/// Written as the two windows alone while every later field has its default (byte for byte
/// the rules journaled before those fields existed), and in full otherwise; fields absent
/// when read take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AllianceRules {
    /// A retail sale may be returned "not as described" while `now < retail + this`.
    /// Default 120 h (5 days).
    pub return_window_ms: u64,
    /// A complaint must be resolved before `opened + this`. Default 24 h.
    pub complaint_due_ms: u64,
    /// How a retail sale refused under zero tolerance counts against the dealer (rules
    /// version 2 on).
    #[serde(default)]
    pub refused_retail: RefusedRetail,
    /// A rated dealer is in good standing only with a score of at least this, in tenths
    /// (30 is 3.0 of 5). See [`super::Alliance::good_standing`].
    #[serde(default = "default_min_score_tenths")]
    pub good_standing_min_score_tenths: u32,
    /// Which generation of the rules applies (`crate::vocab::RULES_VERSION` lists what
    /// each changed), set with the auction's in one `Configure`. Not part of
    /// the alliance's journaled shape: the market's durable form writes it once.
    #[serde(skip)]
    pub version: u32,
}

impl Default for AllianceRules {
    fn default() -> Self {
        Self {
            return_window_ms: 120 * 3_600_000,
            complaint_due_ms: 24 * 3_600_000,
            refused_retail: RefusedRetail::default(),
            good_standing_min_score_tenths: default_min_score_tenths(),
            version: RULES_VERSION,
        }
    }
}

fn default_min_score_tenths() -> u32 {
    30
}

impl Serialize for AllianceRules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let defaults = Self::default();
        let full = self.refused_retail != defaults.refused_retail
            || self.good_standing_min_score_tenths != defaults.good_standing_min_score_tenths;
        let mut r = s.serialize_struct("AllianceRules", if full { 4 } else { 2 })?;
        r.serialize_field("return_window_ms", &self.return_window_ms)?;
        r.serialize_field("complaint_due_ms", &self.complaint_due_ms)?;
        if full {
            r.serialize_field("refused_retail", &self.refused_retail)?;
            r.serialize_field(
                "good_standing_min_score_tenths",
                &self.good_standing_min_score_tenths,
            )?;
        }
        r.end()
    }
}

/// How a retail sale refused under zero tolerance counts against the dealer. Every attempt
/// is journaled and counted on the dealer's record either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusedRetail {
    /// The first refused attempt on a car is a violation (one warning, which counts toward
    /// expulsion like any other); later attempts on the same car are counted, not warned
    /// again. The warning is corrected when the dealer disposes of the car out of the
    /// alliance. The promise was broken in intent at the first attempt, though the refusal
    /// spared the consumer; one car is one offence (a retried request must not expel),
    /// and the dealer can put it right by sending the car where it belongs.
    #[default]
    WarnOncePerCar,
    /// Attempts are counted on the record only: no warning. For an alliance phasing the
    /// rule in.
    CountOnly,
}

/// One sold auction, handed to the alliance: what the dealer bought and the report it
/// bought it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOffRecord {
    /// The auction (one inventory item per auction, however often it is handed off).
    pub auction: LotId,
    /// The car's VIN.
    pub vin: String,
    /// The private seller.
    pub seller: SellerId,
    /// The winning dealer.
    pub dealer: DealerId,
    /// The hammer price in fen.
    pub price: Fen,
    /// The inspection report the dealers bid on.
    pub inspection: Inspection,
    /// Its SHA-256 ([`super::inspection_sha256`]), as the sender computed it.
    pub inspection_sha256: [u8; 32],
}

/// Who asks, where the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A dealer (may act only on its own items and complaints).
    Dealer(DealerId),
    /// The alliance's consumer site.
    Service,
    /// An operator.
    Admin,
}

/// Why a consumer returns a car. The contract knows one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    /// The car is not as its report described it.
    NotAsDescribed,
}

/// Every input to the alliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllianceCommand {
    /// A sold auction arrives: create its inventory item (once per auction).
    HandOff(Box<HandOffRecord>),
    /// The holding dealer sold the car on to a consumer: the return window opens.
    Retail {
        /// The item.
        item: ItemId,
        /// Who records the sale (must be the holding dealer).
        by: Actor,
        /// The consumer site's reference for the buyer.
        consumer_ref: String,
        /// Retail price in fen.
        price: Fen,
    },
    /// A consumer returns a car inside the return window.
    Return {
        /// The item.
        item: ItemId,
        /// The consumer site's reference.
        consumer_ref: String,
        /// Why.
        reason: ReturnReason,
        /// What the consumer says.
        details: String,
        /// What the consumer site's check found that the report did not show.
        findings: Vec<Finding>,
    },
    /// The consumer's money went back: corrects the warning the car caused, if any.
    Refund {
        /// The item.
        item: ItemId,
    },
    /// The holding dealer sold the car out of the alliance (wholesale, export, scrap): it
    /// leaves inventory without a consumer sale.
    Dispose {
        /// The item.
        item: ItemId,
        /// Who records it (the holding dealer, or an admin).
        by: Actor,
        /// Where the car went.
        channel: Channel,
        /// The dealer's note.
        note: String,
    },
    /// A consumer complains about a dealer.
    OpenComplaint {
        /// The dealer.
        dealer: DealerId,
        /// The car, if the complaint is about one.
        item: Option<ItemId>,
        /// The consumer site's reference.
        consumer_ref: String,
        /// The complaint.
        text: String,
    },
    /// The dealer (or an operator) resolved a complaint.
    ResolveComplaint {
        /// The complaint.
        complaint: ComplaintId,
        /// Who resolves it (its dealer, or an admin).
        by: Actor,
        /// How.
        resolution: String,
    },
    /// A consumer rates a retail sale.
    Rate {
        /// The dealer rated.
        dealer: DealerId,
        /// The item sold.
        item: ItemId,
        /// The consumer site's reference.
        consumer_ref: String,
        /// Condition as described, 1–5.
        condition: u8,
        /// Service, 1–5.
        service: u8,
    },
    /// Another market of the cluster issued `dealer` a warning, or corrected one it had
    /// issued: the warning counts toward expulsion here while uncorrected. Idempotent by
    /// (`market`, `warning`); a later note of the same warning can only correct it.
    NoteRemoteWarning {
        /// The dealer warned.
        dealer: DealerId,
        /// The market that issued it (at most [`super::MAX_MARKET_NAME`] bytes).
        market: String,
        /// The warning's id in that market.
        warning: WarningId,
        /// When that market issued it.
        issued_at: u64,
        /// When that market corrected it, if it has.
        corrected_at: Option<u64>,
    },
    /// A sold auction of another market of the cluster: that market checked the record
    /// against its own book before sending it; idempotent by (market, auction).
    ///
    /// This market's book does not hold the lot (and its own lot of the same id is another
    /// car), so the record is certified as its own sale's listing, and a loan on the car
    /// lives in the selling market's book (see [`super::Alliance::origin`]).
    HandOffFrom {
        /// The selling market (at most [`super::MAX_MARKET_NAME`] bytes).
        market: String,
        /// Its sold auction, as that market handed it off.
        record: Box<HandOffRecord>,
        /// The car as its seller described it (make, model, year, mileage, city): the
        /// catalogue shows it, and this book holds no listing of it.
        vehicle: Box<Vehicle>,
    },
    /// The market `market` of the cluster financed its sold auction `auction` with `loan`
    /// from `dealer`'s credit line there, or (`repaid`) that loan was repaid. Noted so that
    /// retailing that car here before the loan is repaid is a violation, as for a car of
    /// this book. Idempotent; a repayment is final (a later note saying open changes
    /// nothing).
    ///
    /// Noted whether or not the car has been handed off here yet: the relays of loans and
    /// of sold cars are separate, so the note may come first.
    NoteRemoteLoan {
        /// The market whose book holds the loan (at most [`super::MAX_MARKET_NAME`]
        /// bytes).
        market: String,
        /// Its auction the loan paid for (that market's lot id).
        auction: LotId,
        /// The loan's id in that market.
        loan: LoanId,
        /// The borrower, the auction's buyer.
        dealer: DealerId,
        /// Whether the loan has been repaid.
        repaid: bool,
    },
}

/// Why an alliance command changed nothing. The names are the API's error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllianceRefusal {
    /// No such inventory item.
    UnknownItem,
    /// No such complaint.
    UnknownComplaint,
    /// No such dealer.
    UnknownDealer,
    /// The actor may not do this (not the item's or the complaint's dealer).
    NotAllowed,
    /// The item or complaint belongs to another dealer than the one named.
    WrongDealer,
    /// The item is not in a state where this applies.
    WrongState,
    /// A return or rating before any retail sale.
    NotRetailed,
    /// A return at or after the end of the return window.
    ReturnWindowClosed,
    /// The item was already returned.
    AlreadyReturned,
    /// The retail sale was already rated.
    AlreadyRated,
    /// The complaint was already resolved.
    AlreadyResolved,
    /// A mark outside 1–5.
    InvalidRating,
    /// An amount of 0 or above the cap.
    InvalidAmount,
    /// A hand-off for an auction the book does not hold as sold.
    NotSold,
    /// A hand-off whose seller, buyer or price differ from the book's sale, or a remote
    /// loan's note naming another loan or borrower than the one noted for its auction.
    RecordMismatch,
    /// A remote warning's, hand-off's or loan's market name is empty or longer than
    /// [`super::MAX_MARKET_NAME`].
    InvalidMarket,
}

impl AllianceRefusal {
    /// The API's error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownItem => "unknown_item",
            Self::UnknownComplaint => "unknown_complaint",
            Self::UnknownDealer => "unknown_dealer",
            Self::NotAllowed => "forbidden",
            Self::WrongDealer => "wrong_dealer",
            Self::WrongState => "wrong_state",
            Self::NotRetailed => "not_retailed",
            Self::ReturnWindowClosed => "return_window_closed",
            Self::AlreadyReturned => "already_returned",
            Self::AlreadyRated => "already_rated",
            Self::AlreadyResolved => "already_resolved",
            Self::InvalidRating => "invalid_rating",
            Self::InvalidAmount => "invalid",
            Self::NotSold => "not_sold",
            Self::RecordMismatch => "record_mismatch",
            Self::InvalidMarket => "invalid",
        }
    }
}

/// What applying an alliance command (or a tick) did. Objects travel whole, as they are
/// after the change, so a read view can upsert them without running the rules again
/// ([`super::Alliance::absorb`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllianceEvent {
    /// The answer to a `HandOff` or a `HandOffFrom`: the auction's item, new or
    /// (`duplicate`) already there. For a `HandOffFrom`, `auction` is the selling
    /// market's.
    HandedOff {
        /// The auction.
        auction: LotId,
        /// Its item.
        item: ItemId,
        /// True when the auction had been handed off before; nothing changed.
        duplicate: bool,
    },
    /// An item was created or changed; as it is now.
    ItemChanged(Box<Item>),
    /// A complaint was opened or changed; as it is now.
    ComplaintChanged(Box<Complaint>),
    /// A warning was issued or corrected; as it is now.
    WarningChanged(Box<Warning>),
    /// A warning another market issued was noted here, or its correction was; as it is
    /// now. Not sent for a note that changed nothing.
    RemoteWarningNoted {
        /// The dealer warned.
        dealer: DealerId,
        /// The warning, as this market now holds it.
        warning: RemoteWarning,
    },
    /// A dealer's record changed; as it is now.
    RecordChanged {
        /// The dealer.
        dealer: DealerId,
        /// Its record.
        record: Record,
    },
    /// A dealer with two uncorrected warnings (this market's and other markets' of the
    /// cluster together) committed another violation and is expelled. The book sets the dealer's status in the same step (and drops this event
    /// when the dealer is expelled already).
    Expelled {
        /// The dealer.
        dealer: DealerId,
        /// The warning of the violation that expelled it.
        warning: WarningId,
    },
    /// A retail sale zero tolerance forbids was refused, and counted against the dealer
    /// (its `RecordChanged`, and the warning's events when it was warned, follow).
    RetailRefused {
        /// The car.
        item: ItemId,
        /// The holding dealer.
        dealer: DealerId,
        /// The reasons that bar it from retail.
        reasons: Vec<Reason>,
        /// The warning this attempt earned, if it earned one.
        warning: Option<WarningId>,
    },
    /// The command changed nothing.
    Refused(AllianceRefusal),
    /// A new item came from another market of the cluster (a `HandOffFrom`): where it was
    /// sold. Sent between its `HandedOff` and its first `ItemChanged`, so a read view files
    /// the item under that market's auction, not under this market's lot of the same id.
    ItemFrom {
        /// The item.
        item: ItemId,
        /// The selling market.
        market: String,
        /// Its auction there.
        auction: LotId,
        /// The car as its seller described it.
        vehicle: Box<Vehicle>,
    },
    /// A loan another market made on a car it sold was noted here, or its repayment was
    /// (`NoteRemoteLoan`); as this market now holds it. Not sent for a note that changed
    /// nothing. A repayment's corrections (`WarningChanged`) follow it.
    RemoteLoanNoted {
        /// The market whose book holds the loan.
        market: String,
        /// Its auction the loan paid for.
        auction: LotId,
        /// The loan's id in that market.
        loan: LoanId,
        /// The borrower.
        dealer: DealerId,
        /// Whether it has been repaid.
        repaid: bool,
    },
}

/// A sold auction as the book knows it.
#[derive(Clone, Copy, Debug)]
pub struct Sale<'a> {
    /// The listing's VIN.
    pub vin: &'a str,
    /// The listing's inspection report.
    pub inspection: &'a Inspection,
    /// The seller.
    pub seller: SellerId,
    /// The buyer.
    pub buyer: DealerId,
    /// The price.
    pub price: Fen,
}

/// What the alliance needs to know about the rest of the book.
pub trait Registry {
    /// The auction's sale, if the auction exists and is sold.
    fn sale(&self, lot: LotId) -> Option<Sale<'_>>;
    /// A dealer's status, if the dealer exists.
    fn dealer_status(&self, dealer: DealerId) -> Option<DealerStatus>;
    /// The loan on the auction's car still to be repaid, if the buyer financed it.
    fn open_loan(&self, lot: LotId) -> Option<LoanId>;
}
