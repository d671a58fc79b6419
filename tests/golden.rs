//! Golden tests: the public contract and the durable formats, pinned byte for byte.
//!
//! What is pinned, each in a file under `tests/golden/`:
//!
//! - `ws-server.json.txt`, `ws-server.msgpack.hex`: every WebSocket message the server
//!   sends (docs/protocol.md), as `codec::encode` writes it, with every optional field
//!   present and absent, every status, reason, outcome and error code, and every kind of
//!   echoed `req`. The test also checks that every other path that writes the same message
//!   writes the same bytes: the hand-written JSON of `update` and `bid_result` against
//!   serde_json, and the fan-out (`Broadcast::update`/`closed` and `frame_for`) against
//!   `codec::encode`.
//! - `ws-client.json.txt`, `ws-client.msgpack.hex`: a request of every type in both
//!   encodings; the stored bytes must decode (`codec::decode`) to the expected message.
//! - `ws-client-malformed.txt`: malformed frames (`name<TAB>frame<TAB>reply`; the frame as
//!   text for `json/` rows, as hex for `msgpack/` rows) and the exact `error` each gets.
//! - `http-auction.json.txt`: the body of `GET /v1/auctions/{id}` for dealers, the seller
//!   and other viewers.
//! - `journal-batch.msgpack.hex`: one journal batch (`rmp_serde::to_vec_named(&Batch)`,
//!   what the file and Redis journals store) holding every `Command` and every
//!   `AllianceCommand` variant, with its outcomes.
//! - `journal-batch-v2.msgpack.hex`: the sequel's batch, journaled under rules version 2
//!   after the script: the commands that version added (`SetDealerLinks`,
//!   `Alliance::Dispose`) and a retail sale refused under zero tolerance. Its own file, so
//!   the story's batch stays the bytes the first version wrote.
//! - `snapshot-v2.msgpack.hex`: the book after the script and the sequel (a disposal, a
//!   refused-retail count, a version-2 `Configure`).
//! - `journal-batch-v3.msgpack.hex`: the third act's batch, journaled under rules version
//!   3 after the sequel: pre-bids in a lot's preview (accepted, raised, lowered, from a
//!   dealer not in good standing, beyond buying power), the opening that resolves them, and
//!   a seller's cancel refused for a standing pre-bid. Its own file, like the sequel's.
//! - `snapshot-v3.msgpack.hex`: the book after the third act (a lot opened on pre-bids, a
//!   lot in its preview holding one, a version-3 `Configure`).
//! - `journal-batch-credit.msgpack.hex`: the credit sequel's batch, journaled after the
//!   sequel (beside the third act, not after it): the credit line's commands
//!   (`SetCreditLimit`, `Finance`, `Repay`), rules with a loan term other than the default,
//!   a car sold out of trust and a late repayment.
//! - `snapshot-credit.msgpack.hex`: the book after the script, the sequel and the credit
//!   sequel (credit lines and loans).
//! - `journal-batch-transfers.msgpack.hex`: the transfer sequel's batch, journaled after
//!   the credit sequel: both halves of transfers between markets (`TransferOut`,
//!   `TransferIn`), accepted, repeated, beyond the free deposit, for no dealer.
//! - `snapshot-transfers.msgpack.hex`: the book after the credit sequel and the transfer
//!   sequel (the transfers it remembers, after its loans).
//! - `journal-batch-warnings.msgpack.hex`: the warnings sequel's batch, journaled after
//!   the transfer sequel: other markets' warnings noted (`Alliance::NoteRemoteWarning`:
//!   new, repeated, corrected, refused) and a local violation that, counted with them,
//!   expels.
//! - `snapshot-warnings.msgpack.hex`: the book after the transfer sequel and the warnings
//!   sequel (an alliance holding remote warnings).
//! - `journal-batch-handfrom.msgpack.hex`: the hand-off sequel's batch, journaled after
//!   the warnings sequel: sold cars of other markets of the cluster handed off to this
//!   one (`Alliance::HandOffFrom`: accepted, repeated, not certified, refused) and the
//!   retail sale of one whose auction id is a local lot's with an open loan.
//! - `snapshot-handfrom.msgpack.hex`: the book after the warnings sequel and the hand-off
//!   sequel (an alliance holding items from other markets, beside remote warnings).
//! - `journal-batch-rloans.msgpack.hex`: the remote loans sequel's batch, journaled after
//!   the hand-off sequel: loans other markets made on cars they sold, noted
//!   (`Alliance::NoteRemoteLoan`: new, repeated, before the car, repaid, open again after
//!   repaid, refused), a car of another market sold out of trust, a repayment of this
//!   book's loan of the same id that does not correct it, and the other market's that does.
//! - `snapshot-rloans.msgpack.hex`: the book after the hand-off sequel and the remote loans
//!   sequel (an alliance holding other markets' loans, beside their items and warnings).
//! - `snapshot.msgpack.hex`: a snapshot (`rmp_serde::encode::write(&mut bytes, &book)`,
//!   positional, as the engine's snapshot thread writes it) of the book a deterministic
//!   command script builds: lots in every status, dealers with receipts (one with more than
//!   a receipt map's split size), sellers, services and alliance state of every kind.
//!
//! Why: these are the bytes clients parse and the bytes a later gavel must read back.
//! Code may move and types may be renamed, but these files may not change by accident.
//!
//! The file is laid out so that a refactor touches only its `use` lines (and, where a
//! method moves to another type, the body of a helper): every value is built by the
//! helpers under "Values", every fact read by the helpers under "Facts", and the expected
//! bytes are in the data files, never in this source.
//!
//! Blessing: `GAVEL_BLESS=1 cargo test --test golden` (re)writes every file from the
//! current code instead of comparing, and says so on stderr. Without it each test compares
//! and fails with the name of every entry that differs, expected against actual.
//!
//! **A diff in these files is a contract change: it needs a protocol version or a
//! migration, never a bless to make a refactor pass.**

use gavel::alliance::{
    inspection_sha256, Actor, AllianceCommand, AllianceEvent, AllianceRules, Channel, Complaint,
    ComplaintId, ComplaintStatus, Finding, HandOffRecord, ItemId, RefusedRetail, ReturnReason,
    WarningId,
};
use gavel::auction::{
    self, BidOutcome, Borrower, Canceller, Command as AuctionCommand,
    Direction as TransferDirection, Event as AuctionEvent, Increments, Listing, LotStatus,
    LotUpdate, Outcome, Rejection, TransferOutcome, TransferRefusal,
};
use gavel::engine::Publisher;
use gavel::gateway::{
    codec, BidRequest, BidResult, Broadcast, ClientMessage, Closed, ComplaintNotice, ErrorCode,
    ErrorReply, Format, Frame, Outbid, RejectReason, Reply, Req, Request, ServerMessage, Snapshot,
    Update,
};
use gavel::market::{Command, Event, Market, Rules};
use gavel::store::file::{FileJournal, FileJournalConfig};
use gavel::store::{Batch, Entry, Journal, JournalRead, OutcomeRecord, Snapshot as StoredSnapshot};
use gavel::views::{
    AllianceBoard, AuctionRef, AuctionView, LotView, Lots, MarketData, Status, Viewer,
    ViewsPublisher,
};
use gavel::vocab::{
    check_vin, DealerId, DealerStatus, Fen, Inspection, LoanId, LotId, SellerId, Vehicle,
    FIRST_RULES_VERSION,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

// =======================================================================================
// Values: everything this file pins is built here, and only here.
// =======================================================================================

/// The script's epoch: 2025-10-09T08:53:20Z.
const T0: u64 = 1_760_000_000_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn req_str(s: &str) -> Option<Req> {
    Some(Req::Str(s.into()))
}

fn req_uint(v: u64) -> Option<Req> {
    Some(Req::UInt(v))
}

fn req_int(v: i64) -> Option<Req> {
    Some(Req::Int(v))
}

/// Every kind of `req` a reply echoes: none, a string, a non-negative and a negative
/// integer (named as the golden entries name them).
fn every_req() -> [(&'static str, Option<Req>); 4] {
    [
        ("no-req", None),
        ("req-str", req_str("r-1")),
        ("req-uint", req_uint(1)),
        ("req-int", req_int(-1)),
    ]
}

/// The rules the script configures: the defaults but for shorter alliance windows and a
/// longer decision window, so every kind of deadline falls inside a few hours.
fn script_rules() -> Rules {
    let auction = auction::Rules {
        default_duration_ms: 1_200_000,
        min_duration_ms: 60_000,
        max_duration_ms: 7 * DAY,
        extend_window_ms: 30_000,
        extend_by_ms: 30_000,
        max_extensions: 40,
        decision_window_ms: 3 * DAY,
        leverage: 10,
        increments: Increments::standard(),
        outage_grace_ms: 300_000,
        bid_id_retention_ms: 7 * DAY,
        // The story was written for the first rules (its retail of a car whose title
        // cannot pass is a violation, not a refusal): the bytes and facts pinned here are
        // those rules' (see `vocab::RULES_VERSION`).
        version: FIRST_RULES_VERSION,
        // The default term, which rules written before credit lines existed imply.
        credit_due_ms: 60 * DAY,
    };
    let alliance = AllianceRules {
        return_window_ms: 6 * HOUR,
        complaint_due_ms: 2 * HOUR,
        refused_retail: RefusedRetail::WarnOncePerCar,
        good_standing_min_score_tenths: 30,
        version: FIRST_RULES_VERSION,
    };
    Rules { auction, alliance }
}

/// The sequel's rules: the script's, in the version that introduced zero tolerance at the
/// point of sale and links an operator can edit.
fn sequel_rules() -> Rules {
    script_rules_of(2)
}

/// The script's rules in another version.
fn script_rules_of(version: u32) -> Rules {
    let Rules {
        mut auction,
        mut alliance,
    } = script_rules();
    auction.version = version;
    alliance.version = version;
    Rules { auction, alliance }
}

fn vehicle(vin: &str, make: &str, model: &str, year: u16, km: u32, city: Option<&str>) -> Vehicle {
    Vehicle {
        vin: vin.into(),
        make: make.into(),
        model: model.into(),
        year,
        mileage_km: km,
        city: city.map(Into::into),
    }
}

fn report(title_transferable: bool, grade: u8, notes: &str) -> Inspection {
    Inspection {
        structural_damage: false,
        fire: false,
        flood: false,
        odometer_tampered: false,
        title_transferable,
        grade,
        notes: notes.into(),
    }
}

/// (start price, reserve, buy-now) in fen.
type Prices = (Fen, Fen, Option<Fen>);

fn listing(
    vehicle: Vehicle,
    inspection: Inspection,
    (start_price, reserve, buy_now): Prices,
    starts_at: Option<u64>,
    duration_ms: Option<u64>,
) -> Listing {
    Listing {
        vehicle,
        inspection,
        start_price,
        reserve,
        buy_now,
        starts_at,
        duration_ms,
    }
}

/// The script's twelve listings, A1 to A12, with their sellers. What becomes of each:
///
/// | lot | seller | end |
/// |---|---|---|
/// | A1 | S1 | sold to D1 at the close (reserve met when D1 raised its max), settled |
/// | A2 | S1 | sold to D2 by buy-now; title not transferable (not certified) |
/// | A3 | S2 | pending_seller, accepted: sold to D1, unsettled |
/// | A4 | S2 | pending_seller, undecided |
/// | A5 | S1 | no_sale (no bids) |
/// | A6 | S2 | pending_seller, declined: no_sale |
/// | A7 | S1 | cancelled by its seller |
/// | A8 | S2 | cancelled by an admin after a bid |
/// | A9 | S1 | live, D2 leads by proxy, reserve not met, buy-now on offer |
/// | A10 | S1 | scheduled (opens in 30 days) |
/// | A11 | S2 | live, no bids, buy-now on offer |
/// | A12 | S1 | sold to D1 by buy-now |
fn script_listings() -> Vec<(SellerId, Listing)> {
    let (s1, s2) = (SellerId(1), SellerId(2));
    let clean = |grade, notes| report(true, grade, notes);
    vec![
        (
            s1,
            listing(
                vehicle(
                    "LFV2A21K0M3123456",
                    "FAW-Volkswagen",
                    "Sagitar",
                    2021,
                    48_500,
                    Some("Changchun"),
                ),
                clean(4, "Front bumper resprayed; tyres 60%."),
                (5_000_000, 6_000_000, Some(9_000_000)),
                None,
                None,
            ),
        ),
        (
            s1,
            listing(
                vehicle("LGBH52E05LY000101", "BYD", "Qin Plus", 2020, 61_000, None),
                report(false, 3, "Mortgage lien on the title."),
                (6_000_000, 7_000_000, Some(8_000_000)),
                None,
                None,
            ),
        ),
        (
            s2,
            listing(
                vehicle(
                    "LSGPC52U0NF000303",
                    "SAIC-GM Buick",
                    "Excelle GT",
                    2022,
                    23_000,
                    Some("Shanghai"),
                ),
                clean(5, ""),
                (4_000_000, 9_000_000, None),
                None,
                None,
            ),
        ),
        (
            s2,
            listing(
                vehicle(
                    "LHGRU5830K2000505",
                    "GAC Honda",
                    "CR-V",
                    2019,
                    88_000,
                    Some("Guangzhou"),
                ),
                clean(3, "Scratches on both rear doors."),
                (3_000_000, 9_000_000, Some(12_000_000)),
                None,
                None,
            ),
        ),
        (
            s1,
            listing(
                vehicle("LVSHCAMB4KE000202", "Geely", "Emgrand", 2019, 97_000, None),
                clean(2, "Clutch slips in third gear."),
                (2_000_000, 2_500_000, None),
                None,
                None,
            ),
        ),
        (
            s2,
            listing(
                vehicle(
                    "LFMAP86C7M0000404",
                    "FAW Toyota",
                    "Corolla",
                    2021,
                    41_000,
                    Some("Tianjin"),
                ),
                clean(4, "One owner."),
                (3_500_000, 5_000_000, None),
                None,
                None,
            ),
        ),
        (
            s1,
            listing(
                vehicle(
                    "LBV8V3100NMH00606",
                    "BMW Brilliance",
                    "3 Series",
                    2022,
                    30_000,
                    Some("Shenyang"),
                ),
                clean(5, ""),
                (18_000_000, 20_000_000, None),
                None,
                None,
            ),
        ),
        (
            s2,
            listing(
                vehicle(
                    "LRW3E7FA4NC000707",
                    "Tesla",
                    "Model 3",
                    2022,
                    52_000,
                    Some("Shanghai"),
                ),
                clean(4, "Battery health 91%."),
                (2_500_000, 3_000_000, None),
                None,
                None,
            ),
        ),
        (
            s1,
            listing(
                vehicle(
                    "LGXC16DF5N0000808",
                    "Li Auto",
                    "L7",
                    2023,
                    12_000,
                    Some("Beijing"),
                ),
                clean(5, "Under manufacturer warranty until 2028."),
                (20_000_000, 26_000_000, Some(35_000_000)),
                None,
                Some(7 * DAY),
            ),
        ),
        (
            s1,
            listing(
                vehicle("LNBSCCAH3NR000909", "BAIC", "X7", 2022, 35_000, None),
                clean(3, "Tinted windows \"as is\"; tab\there."),
                (4_000_000, 5_000_000, None),
                Some(T0 + 30 * DAY),
                None,
            ),
        ),
        (
            s2,
            listing(
                vehicle(
                    "LSJA24U6XMS001010",
                    "SAIC MG",
                    "MG ONE",
                    2021,
                    44_000,
                    Some("Chengdu"),
                ),
                clean(4, "Dashcam included."),
                (10_000_000, 12_000_000, Some(15_000_000)),
                None,
                Some(7 * DAY),
            ),
        ),
        (
            s1,
            listing(
                vehicle(
                    "LDC613P27M1001111",
                    "Dongfeng Citroen",
                    "C5 Aircross",
                    2021,
                    66_000,
                    Some("Wuhan"),
                ),
                clean(4, ""),
                (3_000_000, 3_500_000, Some(4_000_000)),
                None,
                None,
            ),
        ),
    ]
}

fn bid(dealer: u32, lot: u32, amount: Fen, max: Option<Fen>, bid_id: &str) -> Command {
    Command::Auction(AuctionCommand::PlaceBid {
        dealer: DealerId(dealer),
        lot: LotId(lot),
        amount,
        max,
        bid_id: bid_id.into(),
    })
}

/// The hand-off of a sold lot, as the pipeline would send it (the report's true hash).
fn hand_off(listings: &[(SellerId, Listing)], lot: u32, dealer: u32, price: Fen) -> Command {
    let (seller, l) = &listings[lot as usize - 1];
    Command::Alliance(AllianceCommand::HandOff(Box::new(HandOffRecord {
        auction: LotId(lot),
        vin: l.vehicle.vin.clone(),
        seller: *seller,
        dealer: DealerId(dealer),
        price,
        inspection: l.inspection.clone(),
        inspection_sha256: inspection_sha256(&l.inspection),
    })))
}

/// Sequenced entries: each gets the next seq (after `base`), stamped at `T0 + offset`.
#[derive(Default)]
struct Log {
    base: u64,
    entries: Vec<Entry>,
}

impl Log {
    fn at(&mut self, offset_ms: u64, command: Command) {
        self.entries.push(Entry {
            seq: self.base + self.entries.len() as u64 + 1,
            now_ms: T0 + offset_ms,
            command,
        });
    }
}

/// How many receipts the bulk phase gives D1: with D1's ten from the story, more than a
/// receipt map holds before it splits into parts (128, `SPLIT_AT` in auction/receipts.rs).
const BULK_BIDS: usize = 130;

/// The deterministic script: the story (every command variant; it is the journal batch)
/// and then the bulk (D1's extra receipts). `(story, bulk)`, with consecutive seqs.
fn script() -> (Vec<Entry>, Vec<Entry>) {
    let listings = script_listings();
    let mut log = Log::default();
    // Accounts.
    log.at(0, Command::Configure(Box::new(script_rules())));
    log.at(0, Command::Auction(AuctionCommand::Resume));
    log.at(
        0,
        Command::Auction(AuctionCommand::RegisterSeller {
            name: "Wang Fang".into(),
            token_hash: [0x51; 32],
        }),
    );
    log.at(
        0,
        Command::Auction(AuctionCommand::RegisterSeller {
            name: "Zhao Lei".into(),
            token_hash: [0x52; 32],
        }),
    );
    let dealers: [(&str, Fen, &[u32]); 5] = [
        ("Hangzhou Yuantong Auto", 50_000_000, &[]),
        ("Suzhou Mingche Trading", 20_000_000, &[]),
        ("Ningbo Jiaxin Cars", 5_000_000, &[2]),
        ("Wuxi Xiaoma Used Cars", 100_000, &[]),
        ("Shaoxing Motors", 10_000_000, &[]),
    ];
    for (i, (name, deposit, linked)) in dealers.into_iter().enumerate() {
        log.at(
            0,
            Command::Auction(AuctionCommand::RegisterDealer {
                name: name.into(),
                deposit,
                linked_sellers: linked.iter().map(|&s| SellerId(s)).collect(),
                token_hash: [0xd1 + i as u8; 32],
            }),
        );
    }
    log.at(
        0,
        Command::Auction(AuctionCommand::RegisterService {
            name: "Alliance consumer site".into(),
            token_hash: [0x5e; 32],
        }),
    );
    log.at(
        0,
        Command::Auction(AuctionCommand::SetDeposit {
            dealer: DealerId(4),
            deposit: 200_000,
        }),
    );
    log.at(
        0,
        Command::Auction(AuctionCommand::SetDealerStatus {
            dealer: DealerId(5),
            status: DealerStatus::Suspended,
            reason: "deposit cheque bounced".into(),
        }),
    );
    // Lots A1..A12, listed at +1 s: the 20-minute ones close at +1,201 s.
    for (seller, l) in &listings {
        log.at(
            1_000,
            Command::Auction(AuctionCommand::ListCar {
                seller: *seller,
                listing: Box::new(l.clone()),
            }),
        );
    }
    // Bids.
    log.at(10_000, bid(1, 1, 5_000_000, Some(5_800_000), "d1-0001")); // leads A1
    log.at(11_000, bid(2, 1, 5_200_000, None, "d2-0001")); // D1's proxy answers: 52,500
    log.at(12_000, bid(2, 1, 5_250_000, None, "d2-0002")); // below_minimum (53,000)
    log.at(13_000, bid(1, 1, 7_000_000, None, "d1-0001")); // a repeated bid_id
    log.at(13_500, bid(1, 1, 0, Some(6_500_000), "d1-0010")); // D1 raises past the reserve
    log.at(14_000, bid(2, 2, 8_000_000, None, "d2-0003")); // buy-now: A2 sold
    log.at(15_000, bid(1, 3, 4_000_000, None, "d1-0002"));
    log.at(16_000, bid(3, 3, 4_500_000, None, "d3-0001")); // own_listing
    log.at(17_000, bid(2, 4, 3_000_000, None, "d2-0004"));
    log.at(18_000, bid(1, 6, 3_500_000, None, "d1-0003"));
    log.at(19_000, bid(2, 8, 2_500_000, None, "d2-0005"));
    log.at(20_000, bid(1, 9, 20_000_000, None, "d1-0004"));
    log.at(21_000, bid(2, 9, 20_500_000, Some(25_000_000), "d2-0006")); // D1 outbid
    log.at(22_000, bid(1, 9, 21_000_000, None, "d1-0005")); // D2's proxy answers
    log.at(23_000, bid(2, 9, 0, Some(25_500_000), "d2-0007")); // the leader raises its max
    log.at(24_000, bid(4, 9, 21_500_000, None, "d4-0001")); // exposure_limit
    log.at(25_000, bid(1, 9, 0, None, "d1-0006")); // invalid
    log.at(26_000, bid(5, 9, 22_000_000, None, "d5-0001")); // not_eligible (suspended)
    log.at(27_000, bid(1, 99, 1_000_000, None, "d1-0007")); // unknown_auction
    log.at(28_000, bid(1, 10, 4_000_000, None, "d1-0008")); // not_live (scheduled)
    log.at(29_000, bid(99, 9, 22_000_000, None, "nobody")); // no such dealer: no receipt
    log.at(30_000, bid(1, 12, 4_000_000, None, "d1-0009")); // buy-now: A12 sold
    log.at(
        31_000,
        Command::Auction(AuctionCommand::CancelLot {
            lot: LotId(7),
            by: Canceller::Seller(SellerId(1)),
        }),
    );
    log.at(
        32_000,
        Command::Auction(AuctionCommand::CancelLot {
            lot: LotId(8),
            by: Canceller::Admin,
        }),
    );
    // The close of the 20-minute lots, the seller's decisions, a payment.
    log.at(1_201_000, Command::Auction(AuctionCommand::Tick));
    log.at(
        1_300_000,
        Command::Auction(AuctionCommand::Decide {
            lot: LotId(3),
            seller: SellerId(2),
            accept: true,
        }),
    );
    log.at(
        1_300_000,
        Command::Auction(AuctionCommand::Decide {
            lot: LotId(6),
            seller: SellerId(2),
            accept: false,
        }),
    );
    log.at(
        1_300_000,
        Command::Auction(AuctionCommand::Settle { lot: LotId(1) }),
    );
    // The alliance.
    log.at(1_400_000, hand_off(&listings, 1, 1, 6_000_000)); // I1, certified
    log.at(1_400_000, hand_off(&listings, 2, 2, 8_000_000)); // I2, title not transferable
    log.at(1_400_000, hand_off(&listings, 3, 1, 4_000_000)); // I3, certified
    log.at(1_400_000, hand_off(&listings, 12, 1, 4_000_000)); // I4, certified
    log.at(1_400_000, hand_off(&listings, 3, 1, 4_000_000)); // a duplicate
    log.at(1_400_000, hand_off(&listings, 5, 1, 2_000_000)); // not sold: refused
    let retail = |item, dealer, consumer_ref: &str, price| {
        Command::Alliance(AllianceCommand::Retail {
            item: ItemId(item),
            by: Actor::Dealer(DealerId(dealer)),
            consumer_ref: consumer_ref.into(),
            price,
        })
    };
    log.at(1_500_000, retail(1, 1, "c-1001", 7_200_000));
    log.at(1_500_000, retail(2, 2, "c-1002", 9_000_000)); // a violation: W1
    log.at(1_500_000, retail(3, 1, "c-1003", 4_800_000));
    let rate = |dealer, item, consumer_ref: &str, condition, service| {
        Command::Alliance(AllianceCommand::Rate {
            dealer: DealerId(dealer),
            item: ItemId(item),
            consumer_ref: consumer_ref.into(),
            condition,
            service,
        })
    };
    log.at(1_550_000, rate(2, 2, "c-1002", 4, 5));
    log.at(1_550_000, rate(1, 1, "c-1001", 5, 4));
    let give_back = |item, consumer_ref: &str, details: &str, findings| {
        Command::Alliance(AllianceCommand::Return {
            item: ItemId(item),
            consumer_ref: consumer_ref.into(),
            reason: ReturnReason::NotAsDescribed,
            details: details.into(),
            findings,
        })
    };
    let water = "Water line under the carpets; burnt wiring loom.";
    // Hidden damage in a certified car: W2.
    log.at(
        1_600_000,
        give_back(1, "c-1001", water, vec![Finding::Flood, Finding::Fire]),
    );
    log.at(
        1_600_000,
        give_back(3, "c-1003", "Not the colour in the photos.", vec![]),
    );
    // The refund corrects W2.
    log.at(
        1_700_000,
        Command::Alliance(AllianceCommand::Refund { item: ItemId(1) }),
    );
    let complain = |dealer, item: Option<u32>, consumer_ref: &str, text: &str| {
        Command::Alliance(AllianceCommand::OpenComplaint {
            dealer: DealerId(dealer),
            item: item.map(ItemId),
            consumer_ref: consumer_ref.into(),
            text: text.into(),
        })
    };
    log.at(
        1_700_000,
        complain(1, None, "c-2001", "The salesman was rude."),
    );
    log.at(
        1_700_000,
        complain(3, None, "c-2002", "Nobody answers the phone."),
    );
    log.at(
        1_700_000,
        complain(3, None, "c-2003", "Deposit not returned."),
    );
    log.at(
        1_700_000,
        complain(3, None, "c-2004", "Mileage in the advert was wrong."),
    );
    let resolve = |complaint, by, resolution: &str| {
        Command::Alliance(AllianceCommand::ResolveComplaint {
            complaint: ComplaintId(complaint),
            by,
            resolution: resolution.into(),
        })
    };
    log.at(1_800_000, resolve(1, Actor::Service, "Closed by the site.")); // refused
    log.at(
        1_800_000,
        resolve(
            1,
            Actor::Dealer(DealerId(1)),
            "Apologised; staff retrained.",
        ),
    );
    // C2..C4 overdue: W3, W4, W5, and D3 expelled with the third.
    log.at(1_700_000 + 2 * HOUR, Command::Auction(AuctionCommand::Tick));
    // Resolved late: W5 corrected; D3 stays expelled.
    log.at(
        9_000_000,
        resolve(4, Actor::Admin, "Advert corrected; difference refunded."),
    );
    log.at(9_000_000, bid(3, 9, 22_000_000, None, "d3-0002")); // not_eligible (expelled)
                                                               // Still open when the script ends.
    log.at(
        9_000_000,
        complain(2, Some(2), "c-1002", "The title cannot be transferred."),
    );
    log.at(
        9_000_000,
        Command::Auction(AuctionCommand::SetDealerStatus {
            dealer: DealerId(5),
            status: DealerStatus::Active,
            reason: "cheque cleared".into(),
        }),
    );
    let story_len = log.entries.len();
    // The bulk: D1's bids on the closed A5, each a `not_live` receipt.
    for i in 0..BULK_BIDS {
        log.at(
            9_100_000 + i as u64 * 10,
            bid(1, 5, 2_000_000, None, &format!("bulk-{i:03}")),
        );
    }
    let bulk = log.entries.split_off(story_len);
    (log.entries, bulk)
}

/// The sequel's flooded car, A13 (S2).
fn sequel_flooded() -> Listing {
    listing(
        vehicle(
            "1M8GDM9AXKP042788",
            "Chery",
            "Tiggo 8",
            2020,
            70_000,
            Some("Zhengzhou"),
        ),
        Inspection {
            flood: true,
            ..report(true, 2, "Water line under the seats.")
        },
        (1_000_000, 1_200_000, Some(1_500_000)),
        None,
        None,
    )
}

/// The sequel: what an engine of rules version 2 journals after the script, on the
/// script's book. It holds the commands version 2 added (`SetDealerLinks`,
/// `Alliance::Dispose`) and the retail refusal, so it is its own batch: the story's batch
/// stays the bytes version 1 wrote.
///
/// A13 (S2, flood damage) is sold to D1 by buy-now and handed off as I5; D1's retail of
/// it is refused twice (W6 for the first), and its scrapping corrects W6; D1 wholesales
/// the certified I4; D2, leading A9 (S1), is linked to S1: its lead stands, its raise is
/// `own_listing`.
fn sequel() -> Vec<Entry> {
    let (story, bulk) = script();
    let mut log = Log {
        base: (story.len() + bulk.len()) as u64,
        entries: Vec::new(),
    };
    let start = 10 * HOUR;
    log.at(start, Command::Configure(Box::new(sequel_rules())));
    let flooded = sequel_flooded();
    log.at(
        start + 1_000,
        Command::Auction(AuctionCommand::ListCar {
            seller: SellerId(2),
            listing: Box::new(flooded.clone()),
        }),
    );
    log.at(start + 2_000, bid(1, 13, 1_500_000, None, "d1-0011")); // buy-now: A13 sold
    let mut listings = script_listings();
    listings.push((SellerId(2), flooded));
    log.at(start + 3_000, hand_off(&listings, 13, 1, 1_500_000)); // I5, flood
    let retail = |consumer_ref: &str| {
        Command::Alliance(AllianceCommand::Retail {
            item: ItemId(5),
            by: Actor::Dealer(DealerId(1)),
            consumer_ref: consumer_ref.into(),
            price: 2_000_000,
        })
    };
    log.at(start + 4_000, retail("c-1004")); // refused: zero tolerance, W6
    log.at(start + 5_000, retail("c-1005")); // refused again: counted, no warning
    let dispose = |item, dealer, channel, note: &str| {
        Command::Alliance(AllianceCommand::Dispose {
            item: ItemId(item),
            by: Actor::Dealer(DealerId(dealer)),
            channel,
            note: note.into(),
        })
    };
    log.at(
        start + 6_000,
        dispose(5, 1, Channel::Scrap, "Scrap certificate ZZ-2025-118."),
    ); // corrects W6
    log.at(
        start + 7_000,
        dispose(4, 1, Channel::Wholesale, "To a Hefei trader."),
    );
    log.at(start + 8_000, dispose(3, 1, Channel::Export, "")); // wrong_state (returned)
    log.at(start + 8_000, dispose(2, 1, Channel::Export, "")); // forbidden (D2's car)
    log.at(
        start + 9_000,
        Command::Auction(AuctionCommand::SetDealerLinks {
            dealer: DealerId(2),
            linked_sellers: vec![SellerId(1), SellerId(1)],
        }),
    ); // D2 leads A9 (S1): the lead stands
    log.at(start + 10_000, bid(2, 9, 0, Some(26_000_000), "d2-0008")); // own_listing
    log.at(
        start + 11_000,
        Command::Auction(AuctionCommand::SetDealerLinks {
            dealer: DealerId(4),
            linked_sellers: vec![SellerId(9)],
        }),
    ); // refused: no such seller
    log.entries
}

/// The credit sequel's rules: the sequel's, with a two-hour loan term (not the default,
/// so the rules are written with it).
fn credit_rules() -> Rules {
    let mut rules = sequel_rules();
    rules.auction.credit_due_ms = 2 * HOUR;
    rules
}

/// The credit sequel's two cars, A14 and A15 (S2), clean, each with a 12,000-yuan
/// buy-now.
fn credit_listing(vin: &str, model: &str) -> Listing {
    listing(
        vehicle(vin, "Geely", model, 2022, 30_000, Some("Hangzhou")),
        report(true, 4, "Clean."),
        (1_000_000, 1_100_000, Some(1_200_000)),
        None,
        None,
    )
}

/// The credit sequel: what an engine with credit lines journals after the sequel, on
/// its book. Its own batch, so the earlier ones stay the bytes their builds wrote.
///
/// D1 gets a 300,000-yuan line and buys A14 and A15 by buy-now; it finances A14 (L1,
/// due in 2 h) and an operator finances A15 (L2); a second financing of A15 is
/// `wrong_state`. D1 retails A14's car (I6) with L1 open: sold out of trust (W7). L1 is
/// repaid 3 h later, past its due time and before any tick: a late repayment (W8), and
/// both warnings are corrected. The line is lowered to 10,000 yuan, below L2's 12,000
/// drawn (allowed: nothing is available). A limit for no dealer and the repayment of
/// no loan are refused.
fn credit_sequel() -> Vec<Entry> {
    let mut log = Log {
        base: sequel().last().map_or(0, |e| e.seq),
        entries: Vec::new(),
    };
    let start = 11 * HOUR;
    let limit = |dealer, limit| {
        Command::Auction(AuctionCommand::SetCreditLimit {
            dealer: DealerId(dealer),
            limit,
        })
    };
    let finance = |lot, by| {
        Command::Auction(AuctionCommand::Finance {
            lot: LotId(lot),
            by,
        })
    };
    let repay = |loan| Command::Auction(AuctionCommand::Repay { loan: LoanId(loan) });
    let cars = [
        credit_listing("LFV2A21K0M3123456", "Emgrand"),
        credit_listing("LGBH52E05LY000101", "Coolray"),
    ];
    log.at(start, Command::Configure(Box::new(credit_rules())));
    log.at(start + 1_000, limit(1, 30_000_000));
    for (i, car) in cars.iter().enumerate() {
        let at = start + 2_000 + 2_000 * i as u64;
        log.at(
            at,
            Command::Auction(AuctionCommand::ListCar {
                seller: SellerId(2),
                listing: Box::new(car.clone()),
            }),
        );
        log.at(
            at + 1_000,
            bid(1, 14 + i as u32, 1_200_000, None, &format!("d1-c{i}")),
        );
    }
    log.at(start + 6_000, finance(14, Borrower::Dealer(DealerId(1)))); // L1
    log.at(start + 7_000, finance(15, Borrower::Admin)); // L2
    log.at(start + 8_000, finance(15, Borrower::Dealer(DealerId(1)))); // wrong_state
    let mut listings = script_listings();
    listings.push((SellerId(2), sequel_flooded()));
    listings.extend(cars.iter().map(|c| (SellerId(2), c.clone())));
    log.at(start + 9_000, hand_off(&listings, 14, 1, 1_200_000)); // I6
    log.at(
        start + 10_000,
        Command::Alliance(AllianceCommand::Retail {
            item: ItemId(6),
            by: Actor::Dealer(DealerId(1)),
            consumer_ref: "c-1006".into(),
            price: 1_500_000,
        }),
    ); // sold out of trust: W7
    log.at(start + 3 * HOUR, repay(1)); // late: W8; W7 and W8 corrected
    log.at(start + 3 * HOUR + 1_000, limit(1, 1_000_000)); // below L2's 1,200,000 drawn
    log.at(start + 3 * HOUR + 2_000, limit(9, 1_000_000)); // no such dealer
    log.at(start + 3 * HOUR + 3_000, repay(3)); // no such loan
    log.entries
}

/// The transfer sequel: what an engine of a market in a cluster journals after the
/// credit sequel, on its book. Its own batch, so the earlier ones stay the bytes their
/// builds wrote.
///
/// D1 (500,000 yuan of deposit, 95,000 yuan held: 9,500 yuan of its deposit needed at
/// leverage 10, no credit available) moves 200,000 yuan to Chengdu (T1); T1 is delivered
/// again (`duplicate`); 300,000 more is beyond its free deposit (290,500 yuan); D5 gets
/// 50,000 yuan from Chengdu (T3), delivered twice; a transfer for no dealer is refused.
fn transfer_sequel() -> Vec<Entry> {
    let credit = credit_sequel();
    let mut log = Log {
        base: credit.last().map_or(0, |e| e.seq),
        entries: Vec::new(),
    };
    let start = 15 * HOUR;
    let out = |id: &str, dealer, amount| {
        Command::Auction(AuctionCommand::TransferOut {
            transfer: id.into(),
            dealer: DealerId(dealer),
            to: "chengdu".into(),
            amount,
        })
    };
    let r#in = |id: &str, dealer, amount| {
        Command::Auction(AuctionCommand::TransferIn {
            transfer: id.into(),
            dealer: DealerId(dealer),
            from: "chengdu".into(),
            amount,
        })
    };
    log.at(start, out("T1", 1, 20_000_000));
    log.at(start + 1_000, out("T1", 1, 20_000_000)); // duplicate
    log.at(start + 2_000, out("T2", 1, 30_000_000)); // transfer_exceeds_free
    log.at(start + 3_000, r#in("T3", 5, 5_000_000));
    log.at(start + 4_000, r#in("T3", 5, 5_000_000)); // duplicate
    log.at(start + 5_000, out("T4", 9, 1_000_000)); // unknown_dealer
    log.entries
}

/// The warnings sequel: what an engine of a market in a cluster journals after the
/// transfer sequel when other markets relay the warnings they issued. Its own batch, so
/// the earlier ones stay the bytes their builds wrote.
///
/// Beijing's W3 to D5 is noted, then noted again (nothing changes); Chengdu's W1 is noted
/// and then its correction; Xi'an's W2 is noted: D5 holds two uncorrected warnings, none
/// of them this market's. Notes with no market and for no dealer are refused. A complaint
/// against D5 goes overdue (W11, this market's first warning to D5): a violation with two
/// uncorrected warnings across the alliance, so D5 is expelled. (The same tick, the first
/// since the credit sequel, also finds what fell due meanwhile: L2, never repaid, overdue
/// (W9 to D1), and D2's complaint C5 unresolved (W10).)
fn warnings_sequel() -> Vec<Entry> {
    let mut log = Log {
        base: transfer_sequel().last().map_or(0, |e| e.seq),
        entries: Vec::new(),
    };
    let start = 16 * HOUR;
    let note = |dealer, market: &str, warning, corrected_at: Option<u64>| {
        Command::Alliance(AllianceCommand::NoteRemoteWarning {
            dealer: DealerId(dealer),
            market: market.into(),
            warning: WarningId(warning),
            issued_at: T0 + 15 * HOUR + u64::from(warning),
            corrected_at: corrected_at.map(|c| T0 + c),
        })
    };
    log.at(start, note(5, "beijing", 3, None));
    log.at(start + 1_000, note(5, "beijing", 3, None)); // the same note: nothing changes
    log.at(start + 2_000, note(5, "chengdu", 1, None));
    log.at(start + 3_000, note(5, "chengdu", 1, Some(start + 2_500))); // corrected
    log.at(start + 4_000, note(5, "xian", 2, None));
    log.at(start + 5_000, note(5, "", 4, None)); // invalid
    log.at(start + 6_000, note(9, "beijing", 5, None)); // unknown_dealer
    log.at(
        start + 7_000,
        Command::Alliance(AllianceCommand::OpenComplaint {
            dealer: DealerId(5),
            item: None,
            consumer_ref: "c-2001".into(),
            text: "deposit not returned".into(),
        }),
    );
    log.at(
        start + 7_000 + 2 * HOUR,
        Command::Auction(AuctionCommand::Tick),
    ); // W11: expelled
    log.entries
}

/// The record of a car another market of the cluster sold at its auction `lot` to `dealer`.
fn sold_elsewhere(lot: u32, dealer: u32, price: Fen, inspection: Inspection) -> HandOffRecord {
    HandOffRecord {
        auction: LotId(lot),
        vin: "LFV2A21K0M3123456".into(),
        seller: SellerId(1),
        dealer: DealerId(dealer),
        price,
        inspection_sha256: inspection_sha256(&inspection),
        inspection,
    }
}

/// `market` hands off `record`, with the car as its seller described it.
fn hand_off_from(market: &str, record: HandOffRecord) -> Command {
    let car = vehicle(
        &record.vin,
        "Volkswagen",
        "Sagitar",
        2021,
        42_000,
        Some("Beijing"),
    );
    Command::Alliance(AllianceCommand::HandOffFrom {
        market: market.into(),
        record: Box::new(record),
        vehicle: Box::new(car),
    })
}

/// The hand-off sequel: what the engine of a cluster's alliance market journals after the
/// warnings sequel when other markets forward their sold cars. Its own batch, so the
/// earlier ones stay the bytes their builds wrote.
///
/// Beijing's A15, bought by D1, is handed off (I7), then again (nothing changes): it is
/// another car than this book's A15, which D1 financed (L2, still open). Chengdu's A15,
/// with a fire in its report, is I8, not certified; Xi'an's A2, whose claimed hash is not
/// its report's, is I9, not certified (`inspection_mismatch`). Hand-offs with no market,
/// for no dealer and at no price are refused. D1 retails I7: no sale out of trust, since
/// L2 is on this book's A15, not on Beijing's.
fn handfrom_sequel() -> Vec<Entry> {
    let mut log = Log {
        base: warnings_sequel().last().map_or(0, |e| e.seq),
        entries: Vec::new(),
    };
    let start = 19 * HOUR;
    let (record, from) = (sold_elsewhere, hand_off_from);
    let clean = || report(true, 4, "Clean.");
    let fire = Inspection {
        fire: true,
        ..clean()
    };
    let mut misrecorded = record(2, 2, 900_000, clean());
    misrecorded.inspection_sha256[0] ^= 1;
    log.at(start, from("beijing", record(15, 1, 1_300_000, clean()))); // I7
    log.at(
        start + 1_000,
        from("beijing", record(15, 1, 1_300_000, clean())),
    ); // duplicate
    log.at(start + 2_000, from("chengdu", record(15, 3, 700_000, fire))); // I8
    log.at(start + 3_000, from("xian", misrecorded)); // I9
    log.at(start + 4_000, from("", record(3, 1, 1_000_000, clean()))); // invalid
    log.at(
        start + 5_000,
        from("beijing", record(4, 9, 1_000_000, clean())),
    ); // unknown_dealer
    log.at(start + 6_000, from("beijing", record(5, 1, 0, clean()))); // invalid
    log.at(
        start + 7_000,
        Command::Alliance(AllianceCommand::Retail {
            item: ItemId(7),
            by: Actor::Dealer(DealerId(1)),
            consumer_ref: "c-3001".into(),
            price: 1_500_000,
        }),
    ); // no sold_out_of_trust
    log.entries
}

/// The remote loans sequel: what the engine of a cluster's alliance market journals after
/// the hand-off sequel when other markets relay the loans they made on the cars they sold.
/// Its own batch, so the earlier ones stay the bytes their builds wrote.
///
/// Beijing's A16, bought by D1, arrives (I10); Beijing financed it with its L2 (this
/// book's L2, D1's overdue loan on this book's A15, is another), noted, then again
/// (nothing changes). Chengdu's L1 on its A20 (D3's) is noted before the car arrives
/// (I11). Xi'an's L5 on its A2 (I9, D2's) is noted, then its repayment. Notes with no
/// market, for no dealer, and naming another loan for Beijing's A16 are refused. D1
/// retails I10 before Beijing's L2 is repaid: sold out of trust (W12). D2 retails I9:
/// Xi'an's loan was repaid, no violation. D1 repays this book's L2: its lateness (W9) is
/// corrected, W12 is not. Beijing's L2 is noted repaid: W12 is corrected; a stale note
/// saying it is open changes nothing.
fn rloans_sequel() -> Vec<Entry> {
    let mut log = Log {
        base: handfrom_sequel().last().map_or(0, |e| e.seq),
        entries: Vec::new(),
    };
    let start = 20 * HOUR;
    let record = |lot, dealer, price| sold_elsewhere(lot, dealer, price, report(true, 4, "Clean."));
    let from = hand_off_from;
    let loan = |market: &str, auction, loan, dealer, repaid| {
        Command::Alliance(AllianceCommand::NoteRemoteLoan {
            market: market.into(),
            auction: LotId(auction),
            loan: LoanId(loan),
            dealer: DealerId(dealer),
            repaid,
        })
    };
    let retail = |item, dealer, consumer_ref: &str| {
        Command::Alliance(AllianceCommand::Retail {
            item: ItemId(item),
            by: Actor::Dealer(DealerId(dealer)),
            consumer_ref: consumer_ref.into(),
            price: 1_400_000,
        })
    };
    log.at(start, from("beijing", record(16, 1, 1_100_000))); // I10
    log.at(start + 1_000, loan("beijing", 16, 2, 1, false));
    log.at(start + 2_000, loan("beijing", 16, 2, 1, false)); // the same note: nothing
    log.at(start + 3_000, loan("chengdu", 20, 1, 3, false)); // before its car
    log.at(start + 4_000, from("chengdu", record(20, 3, 800_000))); // I11
    log.at(start + 5_000, loan("xian", 2, 5, 2, false));
    log.at(start + 6_000, loan("xian", 2, 5, 2, true)); // repaid
    log.at(start + 7_000, loan("", 16, 2, 1, false)); // invalid
    log.at(start + 8_000, loan("beijing", 17, 3, 9, false)); // unknown_dealer
    log.at(start + 9_000, loan("beijing", 16, 3, 1, false)); // record_mismatch
    log.at(start + 10_000, retail(10, 1, "c-4001")); // W12: sold_out_of_trust
    log.at(start + 11_000, retail(9, 2, "c-4002")); // no violation
    log.at(
        start + 12_000,
        Command::Auction(AuctionCommand::Repay { loan: LoanId(2) }),
    ); // this book's L2: W9 corrected, W12 not
    log.at(start + 13_000, loan("beijing", 16, 2, 1, true)); // W12 corrected
    log.at(start + 14_000, loan("beijing", 16, 2, 1, false)); // repaid is final: nothing
    log.entries
}

/// The remote loans sequel as a batch (applied after the hand-off sequel).
fn rloans_batch() -> Batch {
    batch_after(handfrom_book(), rloans_sequel())
}

/// The book after the hand-off sequel and the remote loans sequel.
fn rloans_book() -> Market {
    book_after(handfrom_book(), &rloans_sequel())
}

/// The hand-off sequel as a batch (applied after the warnings sequel).
fn handfrom_batch() -> Batch {
    batch_after(warnings_book(), handfrom_sequel())
}

/// The book after the warnings sequel and the hand-off sequel.
fn handfrom_book() -> Market {
    book_after(warnings_book(), &handfrom_sequel())
}

/// The warnings sequel as a batch (applied after the transfer sequel).
fn warnings_batch() -> Batch {
    batch_after(transfer_book(), warnings_sequel())
}

/// The book after the transfer sequel and the warnings sequel.
fn warnings_book() -> Market {
    book_after(transfer_book(), &warnings_sequel())
}

/// The transfer sequel as a batch (applied after the credit sequel).
fn transfer_batch() -> Batch {
    batch_after(credit_book(), transfer_sequel())
}

/// The book after the script, the sequel, the credit sequel and the transfer sequel.
fn transfer_book() -> Market {
    book_after(credit_book(), &transfer_sequel())
}

/// The credit sequel as a batch, with its outcomes (applied after the sequel).
fn credit_batch() -> Batch {
    batch_after(sequel_book(), credit_sequel())
}

/// The book after the script, the sequel and the credit sequel.
fn credit_book() -> Market {
    book_after(sequel_book(), &credit_sequel())
}

/// The sequel as a batch, with its outcomes (applied after the script).
fn sequel_batch() -> Batch {
    batch_after(script_book(), sequel())
}

/// `entries` as a batch, with the outcomes they produce applied to `book`.
fn batch_after(mut book: Market, entries: Vec<Entry>) -> Batch {
    let outcomes = apply(&mut book, &entries)
        .iter()
        .flat_map(|(seq, events)| {
            events
                .iter()
                .filter_map(|e| OutcomeRecord::from_event(*seq, e))
        })
        .collect();
    Batch { entries, outcomes }
}

/// The third act's rules: the script's, in the version that introduced pre-bids.
fn third_act_rules() -> Rules {
    script_rules_of(3)
}

/// The third act: what an engine of rules version 3 journals after the sequel, on the
/// sequel's book. It holds what version 3 changed, pre-bids in a lot's preview, so it is
/// its own batch: the story's and the sequel's stay the bytes their versions wrote.
///
/// A14 (S2) is listed with an hour's preview: D1 and D5 pre-bid (D5 raises to D1's max,
/// which D1 reached first), D2 (an uncorrected warning) is not in good standing, D1 may
/// not lower its pre-bid, D5's plain bid is `not_live`, D4's pre-bid is beyond its buying
/// power; at the opening D1 leads at its max, D5 is outbid. A15 opens in 30 days and
/// keeps D5's pre-bid (so the snapshot holds one); its seller (S1) may not cancel it.
fn third_act() -> Vec<Entry> {
    let (story, bulk) = script();
    let mut log = Log {
        base: (story.len() + bulk.len() + sequel().len()) as u64,
        entries: Vec::new(),
    };
    let start = 11 * HOUR;
    log.at(start, Command::Configure(Box::new(third_act_rules())));
    let previewed = |starts_at, vin, make, model| {
        listing(
            vehicle(vin, make, model, 2021, 35_000, Some("Suzhou")),
            report(true, 4, "Previewed: members pre-bid before it opens."),
            (2_000_000, 3_000_000, None),
            Some(starts_at),
            None,
        )
    };
    let list = |seller, listing: Listing| {
        Command::Auction(AuctionCommand::ListCar {
            seller: SellerId(seller),
            listing: Box::new(listing),
        })
    };
    let opens = T0 + start + HOUR;
    log.at(
        start + 1_000,
        list(
            2,
            previewed(opens, "LVSHCAMB1CE054249", "Geely", "Xingyue L"),
        ),
    ); // A14
    log.at(
        start + 2_000,
        bid(1, 14, 2_000_000, Some(2_600_000), "d1-0012"),
    );
    log.at(
        start + 3_000,
        bid(5, 14, 2_000_000, Some(2_400_000), "d5-0002"),
    );
    log.at(
        start + 4_000,
        bid(2, 14, 2_000_000, Some(3_000_000), "d2-0009"),
    ); // not_in_good_standing
    log.at(
        start + 5_000,
        bid(1, 14, 2_000_000, Some(2_500_000), "d1-0013"),
    ); // prebid_lowered
    log.at(start + 6_000, bid(5, 14, 2_100_000, None, "d5-0003")); // not_live
    log.at(
        start + 7_000,
        bid(5, 14, 2_000_000, Some(2_600_000), "d5-0004"),
    ); // raised: a tie
    log.at(
        start + 8_000,
        bid(4, 14, 2_000_000, Some(2_500_000), "d4-0002"),
    ); // exposure_limit
    log.at(
        start + 9_000,
        list(
            1,
            previewed(opens + 30 * DAY, "LNBSCCAH3NR000909", "Haval", "H6"),
        ),
    ); // A15
    log.at(
        start + 10_000,
        bid(5, 15, 2_000_000, Some(2_100_000), "d5-0005"),
    );
    log.at(start + HOUR, Command::Auction(AuctionCommand::Tick)); // A14 opens
    log.at(
        start + HOUR + 1_000,
        Command::Auction(AuctionCommand::CancelLot {
            lot: LotId(15),
            by: Canceller::Seller(SellerId(1)),
        }),
    ); // not_allowed: a pre-bid binds the seller
    log.entries
}

/// The third act as a batch, with its outcomes (applied after the script and the sequel).
fn third_act_batch() -> Batch {
    batch_after(sequel_book(), third_act())
}

/// The book after the script, the sequel and the third act.
fn third_act_book() -> Market {
    book_after(sequel_book(), &third_act())
}

/// The book after the script and the sequel.
fn sequel_book() -> Market {
    book_after(script_book(), &sequel())
}

/// `book` with `entries` applied (the sequels' books, each after the one it follows).
fn book_after(mut book: Market, entries: &[Entry]) -> Market {
    apply(&mut book, entries);
    book
}

/// Applies entries to a book, returning each entry's seq and events.
fn apply(book: &mut Market, entries: &[Entry]) -> Vec<(u64, Vec<Event>)> {
    entries
        .iter()
        .map(|e| (e.seq, book.apply(e.seq, e.now_ms, e.command.clone())))
        .collect()
}

/// The journal batch: the story's entries and the outcomes they produced.
fn journal_batch() -> Batch {
    let (story, _) = script();
    let mut book = Market::default();
    let outcomes = apply(&mut book, &story)
        .iter()
        .flat_map(|(seq, events)| {
            events
                .iter()
                .filter_map(|e| OutcomeRecord::from_event(*seq, e))
        })
        .collect();
    Batch {
        entries: story,
        outcomes,
    }
}

/// The bulk's entries as a batch of their own (outcomes: none).
fn bulk_batch() -> Batch {
    let (_, bulk) = script();
    Batch {
        entries: bulk,
        outcomes: Vec::new(),
    }
}

/// The book after the whole script (story, then bulk), as the engine would hold it.
fn script_book() -> Market {
    let (story, bulk) = script();
    let mut book = Market::default();
    apply(&mut book, &story);
    apply(&mut book, &bulk);
    book
}

/// The snapshot's bytes, written as the engine's snapshot thread writes them.
fn snapshot_bytes(book: &Market) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmp_serde::encode::write(&mut bytes, book).expect("a book always serializes");
    bytes
}

fn decode_snapshot(bytes: &[u8]) -> Market {
    rmp_serde::from_slice(bytes).expect("the golden snapshot decodes into a Market")
}

fn batch_bytes(batch: &Batch) -> Vec<u8> {
    rmp_serde::to_vec_named(batch).expect("a batch always serializes")
}

fn decode_batch(bytes: &[u8]) -> Batch {
    rmp_serde::from_slice(bytes).expect("the golden batch decodes into a Batch")
}

/// The lots' views as the server's engine leaves them after the script: what subscribe
/// and `GET /v1/auctions/{id}` read.
fn script_views(book: &Market) -> Arc<Lots> {
    let lots = Lots::new();
    ViewsPublisher {
        lots: lots.clone(),
        alliance: AllianceBoard::new(),
        market_data: MarketData::new(Default::default()),
    }
    .reset(book);
    lots
}

fn lots_view(lots: &Lots, lot: u32, viewer: Viewer) -> AuctionView {
    lots.view(LotId(lot), viewer)
        .expect("the script listed this lot")
}

/// The same view built straight from the book's lot.
fn book_view(book: &Market, lot: u32, viewer: Viewer) -> AuctionView {
    let lot = book
        .book()
        .lot(LotId(lot))
        .expect("the script listed this lot");
    AuctionView::new(&LotView::of(lot), &book.book().rules().increments, viewer)
}

fn dealer(id: u32) -> Viewer {
    Viewer::Dealer(DealerId(id))
}

fn seller(id: u32) -> Viewer {
    Viewer::Seller(SellerId(id))
}

/// The auctions `GET /v1/auctions/{id}` is pinned for: (name, lot, viewer).
fn http_views() -> Vec<(&'static str, u32, Viewer)> {
    vec![
        ("A9-live/dealer-leading", 9, dealer(2)),
        ("A9-live/dealer-outbid", 9, dealer(1)),
        ("A9-live/dealer-never-bid", 9, dealer(4)),
        ("A9-live/its-seller", 9, seller(1)),
        ("A9-live/another-seller", 9, seller(2)),
        ("A9-live/other", 9, Viewer::Other),
        ("A11-live-no-price/its-seller", 11, seller(2)),
        ("A11-live-no-price/dealer", 11, dealer(1)),
        ("A10-scheduled/other", 10, Viewer::Other),
        ("A4-pending_seller/its-seller", 4, seller(2)),
        ("A1-sold/buyer", 1, dealer(1)),
        ("A6-no_sale/its-seller", 6, seller(2)),
        ("A8-cancelled/other", 8, Viewer::Other),
    ]
}

/// A lot's public change as the book reports it, for `update` and the fan-out.
fn lot_update(status: LotStatus, price: Option<Fen>, leader: Option<u32>) -> LotUpdate {
    LotUpdate {
        lot: LotId(17),
        status,
        price,
        min_next: price.map_or(5_000_000, |p| p + 50_000),
        bids: if price.is_some() { 4 } else { 0 },
        reserve_met: price.is_some_and(|p| p >= 6_000_000),
        leader: leader.map(DealerId),
        ends_at: T0 + 1_230_000,
    }
}

/// The update every other test names: A17 live at 52,500 yuan, led by D7.
fn led_update() -> LotUpdate {
    lot_update(LotStatus::Live, Some(5_250_000), Some(7))
}

/// An update before the first bid: no price, no leader.
fn opening_update() -> LotUpdate {
    lot_update(LotStatus::Live, None, None)
}

/// A `complaint` push: C4 against D3, filed at T, due a day later.
fn complaint(
    status: ComplaintStatus,
    item: Option<ItemId>,
    warning: Option<WarningId>,
    resolution: Option<&str>,
) -> ServerMessage {
    let opened_at = 1_760_000_000_000;
    let resolved = status == ComplaintStatus::Resolved;
    ServerMessage::Complaint(ComplaintNotice::from(&Complaint {
        id: ComplaintId(4),
        dealer: DealerId(3),
        item,
        consumer_ref: "cust-42".into(),
        text: "The spare key is missing.".into(),
        opened_at,
        due_at: opened_at + 86_400_000,
        status,
        resolution: resolution.map(str::to_owned),
        resolved_at: resolved.then_some(opened_at + 90_000_000),
        warning,
    }))
}

/// Every server message pinned in `ws-server.*`, by name. Snapshots are read from the
/// script's views, as a session reads them.
fn server_messages(lots: &Lots) -> Vec<(String, ServerMessage)> {
    let snapshot = |req, lot, viewer| {
        ServerMessage::Snapshot(Snapshot {
            req,
            auction: lots_view(lots, lot, viewer),
        })
    };
    let accepted = |req, bid_id: &str, leading| {
        ServerMessage::BidResult(BidResult::from_outcome(
            req,
            bid_id.into(),
            LotId(17).into(),
            &BidOutcome::Accepted {
                price: 5_250_000,
                leading,
                ends_at: T0 + 1_230_000,
                seq: 8_812,
            },
        ))
    };
    let rejected = |req, bid_id: &str, auction: &str, rejection| {
        ServerMessage::BidResult(BidResult::from_outcome(
            req,
            bid_id.into(),
            AuctionRef::new(auction),
            &BidOutcome::Rejected(rejection),
        ))
    };
    let refused = |req, bid_id: &str, reason| {
        ServerMessage::BidResult(BidResult::refused(
            req,
            bid_id.into(),
            AuctionRef::new("A17"),
            reason,
        ))
    };
    let update = |seq, u: &LotUpdate, leading| ServerMessage::Update(Update::new(seq, u, leading));
    let closed =
        |outcome, price, won| ServerMessage::Closed(Closed::new(LotId(17), outcome, price, won));
    let error = |code, message: &str, req| {
        ServerMessage::Error(ErrorReply {
            code,
            message: message.into(),
            req,
        })
    };
    // Quotes, a backslash, control characters, DEL and non-ASCII: every escape rule.
    let awkward = "q\"uote\\ \u{1}\u{8}\t\n\r\u{1f}\u{7f} é速😀";
    let v = vec![
        (
            "snapshot/live-leading-req-str",
            snapshot(req_str("sub-1"), 9, dealer(2)),
        ),
        (
            "snapshot/live-outbid-req-uint",
            snapshot(req_uint(7), 9, dealer(1)),
        ),
        (
            "snapshot/live-seller-reserve-req-int",
            snapshot(req_int(-7), 9, seller(1)),
        ),
        (
            "snapshot/live-no-price-buy-now",
            snapshot(None, 11, Viewer::Other),
        ),
        ("snapshot/scheduled-no-city", snapshot(None, 10, dealer(1))),
        (
            "snapshot/pending_seller-seller",
            snapshot(req_uint(0), 4, seller(2)),
        ),
        ("snapshot/sold-buyer", snapshot(None, 2, dealer(2))),
        ("snapshot/no_sale", snapshot(None, 5, Viewer::Other)),
        (
            "snapshot/cancelled-with-price",
            snapshot(None, 8, dealer(2)),
        ),
        (
            "bid_result/accepted-leading-req-str",
            accepted(req_str("r-3"), "d3-0001", true),
        ),
        (
            "bid_result/accepted-not-leading-req-uint",
            accepted(req_uint(12), "d3-0002", false),
        ),
        (
            "bid_result/accepted-req-int",
            accepted(req_int(-12), "d3-0003", true),
        ),
        (
            "bid_result/accepted-no-req",
            accepted(None, "d3-0004", true),
        ),
        (
            "bid_result/accepted-escaped",
            accepted(req_str(awkward), awkward, true),
        ),
        (
            "bid_result/below_minimum",
            rejected(
                None,
                "d5-0042",
                "A17",
                Rejection::BelowMinimum {
                    min_next: 5_300_000,
                },
            ),
        ),
        (
            "bid_result/not_live",
            rejected(req_str("r-5"), "d5-0044", "A17", Rejection::NotLive),
        ),
        (
            "bid_result/unknown_auction-no-id",
            rejected(req_uint(5), "d5-0045", "XYZ", Rejection::UnknownAuction),
        ),
        (
            "bid_result/unknown_auction-escaped",
            rejected(
                req_int(i64::MIN),
                awkward,
                awkward,
                Rejection::UnknownAuction,
            ),
        ),
        (
            "bid_result/not_eligible",
            rejected(req_int(-5), "d5-0046", "A17", Rejection::NotEligible),
        ),
        (
            "bid_result/own_listing",
            rejected(None, "d5-0047", "A17", Rejection::OwnListing),
        ),
        (
            "bid_result/exposure_limit",
            rejected(req_str(""), "d5-0048", "A17", Rejection::ExposureLimit),
        ),
        (
            "bid_result/rate_limited",
            refused(None, "d5-0043", RejectReason::RateLimited),
        ),
        (
            "bid_result/invalid",
            rejected(req_uint(u64::MAX), "", "A17", Rejection::Invalid),
        ),
        (
            "bid_result/unavailable",
            refused(req_str("r-9"), "d5-0049", RejectReason::Unavailable),
        ),
        (
            "bid_result/already_leading",
            rejected(
                req_str("r-10"),
                "d5-0050",
                "A17",
                Rejection::AlreadyLeading { max: 6_000_000 },
            ),
        ),
        (
            "bid_result/not_in_good_standing",
            rejected(
                req_str("r-11"),
                "d5-0051",
                "A18",
                Rejection::NotInGoodStanding,
            ),
        ),
        (
            "bid_result/prebid_lowered",
            rejected(
                req_str("r-12"),
                "d5-0052",
                "A18",
                Rejection::PrebidLowered { max: 7_000_000 },
            ),
        ),
        ("update/live-leading", update(8_812, &led_update(), true)),
        (
            "update/live-not-leading",
            update(8_812, &led_update(), false),
        ),
        (
            "update/live-no-price",
            update(8_801, &opening_update(), false),
        ),
        (
            "update/scheduled",
            update(8_790, &lot_update(LotStatus::Scheduled, None, None), false),
        ),
        (
            "update/pending_seller",
            update(
                8_900,
                &lot_update(LotStatus::PendingSeller, Some(5_250_000), Some(7)),
                true,
            ),
        ),
        (
            "update/sold-reserve-met",
            update(
                8_901,
                &lot_update(LotStatus::Sold, Some(6_100_000), Some(7)),
                true,
            ),
        ),
        (
            "update/no_sale",
            update(8_902, &lot_update(LotStatus::NoSale, None, None), false),
        ),
        (
            "update/cancelled",
            update(
                8_903,
                &lot_update(LotStatus::Cancelled, Some(5_250_000), Some(7)),
                false,
            ),
        ),
        (
            "update/extremes",
            ServerMessage::Update(Update {
                auction: AuctionRef::new(awkward),
                seq: u64::MAX,
                status: Status::Live,
                price: Some(u64::MAX),
                min_next: 0,
                bids: u32::MAX,
                reserve_met: true,
                leading: true,
                ends_at: u64::MAX,
            }),
        ),
        (
            "outbid",
            ServerMessage::Outbid(Outbid::new(LotId(17), 5_250_000, 5_300_000)),
        ),
        (
            "closed/sold-won",
            closed(Outcome::Sold, Some(6_100_000), true),
        ),
        (
            "closed/sold-not-won",
            closed(Outcome::Sold, Some(6_100_000), false),
        ),
        (
            "closed/pending_seller",
            closed(Outcome::PendingSeller, Some(5_250_000), false),
        ),
        (
            "closed/pending_seller-never-won",
            closed(Outcome::PendingSeller, Some(5_250_000), true),
        ),
        ("closed/no_sale", closed(Outcome::NoSale, None, false)),
        (
            "complaint/open",
            complaint(ComplaintStatus::Open, Some(ItemId(1)), None, None),
        ),
        (
            "complaint/resolved-after-overdue",
            complaint(
                ComplaintStatus::Resolved,
                None,
                Some(WarningId(1)),
                Some("Key found and handed over."),
            ),
        ),
    ];
    let edge_echoes_and_errors = vec![
        (
            "pong/req-uint-max",
            ServerMessage::Pong(Reply {
                req: req_uint(u64::MAX),
            }),
        ),
        (
            "pong/req-int-min",
            ServerMessage::Pong(Reply {
                req: req_int(i64::MIN),
            }),
        ),
        (
            "pong/req-str-escaped",
            ServerMessage::Pong(Reply {
                req: req_str(awkward),
            }),
        ),
        (
            "error/bad_message-req-uint",
            error(
                ErrorCode::BadMessage,
                "`amount` must not be negative",
                req_uint(7),
            ),
        ),
        // The text a session sends for a frame of the wrong kind (gateway/session.rs).
        (
            "error/bad_message-no-req",
            error(
                ErrorCode::BadMessage,
                "this connection speaks json: send text frames",
                None,
            ),
        ),
        (
            "error/unknown_type-req-str",
            error(
                ErrorCode::UnknownType,
                "unknown message type \"bet\"",
                req_str("r-8"),
            ),
        ),
        // The text a session sends for a subscribe to an unknown auction (gateway/session.rs).
        (
            "error/unknown_auction-req-int",
            error(ErrorCode::UnknownAuction, "no auction A99", req_int(-9)),
        ),
    ];
    let named = |(n, m): (&str, ServerMessage)| (n.to_owned(), m);
    let mut all: Vec<(String, ServerMessage)> = v.into_iter().map(named).collect();
    // The two replies that carry nothing but the echo, with every kind of `req`.
    for (kind, req) in every_req() {
        all.push((
            format!("unsubscribed/{kind}"),
            ServerMessage::Unsubscribed(Reply { req }),
        ));
    }
    for (kind, req) in every_req() {
        all.push((format!("pong/{kind}"), ServerMessage::Pong(Reply { req })));
    }
    all.extend(edge_echoes_and_errors.into_iter().map(named));
    all
}

/// One fan-out event: its broadcast, and which pinned message each receiver must get.
struct FanOut {
    name: &'static str,
    broadcast: Broadcast,
    /// (receiver, name of the `ws-server` entry it gets); `None` is a receiver who is not
    /// a dealer.
    receivers: Vec<(Option<DealerId>, &'static str)>,
}

/// The fan-out cases: every receiver kind of every `update` and `closed` broadcast, each
/// mapped to the entry of `server_messages` it must equal byte for byte.
fn fan_outs() -> Vec<FanOut> {
    let (leader, other) = (Some(DealerId(7)), Some(DealerId(8)));
    vec![
        FanOut {
            name: "update with a leader",
            broadcast: Broadcast::update(8_812, &led_update()),
            receivers: vec![
                (leader, "update/live-leading"),
                (other, "update/live-not-leading"),
                (None, "update/live-not-leading"),
            ],
        },
        FanOut {
            name: "update without a leader",
            broadcast: Broadcast::update(8_801, &opening_update()),
            receivers: vec![
                (other, "update/live-no-price"),
                (None, "update/live-no-price"),
            ],
        },
        FanOut {
            name: "closed sold",
            broadcast: Broadcast::closed(LotId(17), Outcome::Sold, Some(6_100_000), leader),
            receivers: vec![
                (leader, "closed/sold-won"),
                (other, "closed/sold-not-won"),
                (None, "closed/sold-not-won"),
            ],
        },
        FanOut {
            name: "closed pending_seller",
            broadcast: Broadcast::closed(
                LotId(17),
                Outcome::PendingSeller,
                Some(5_250_000),
                leader,
            ),
            receivers: vec![
                (leader, "closed/pending_seller"),
                (None, "closed/pending_seller"),
            ],
        },
        FanOut {
            name: "closed no_sale",
            broadcast: Broadcast::closed(LotId(17), Outcome::NoSale, None, None),
            receivers: vec![(leader, "closed/no_sale"), (None, "closed/no_sale")],
        },
    ]
}

/// Every client message pinned in `ws-client.*`, by name.
fn client_messages() -> Vec<(String, ClientMessage)> {
    let message = |req, request| ClientMessage { req, request };
    let auction = || AuctionRef::new("A17");
    let bid = |amount, max, bid_id: &str| {
        Request::Bid(BidRequest {
            auction: auction(),
            amount,
            max,
            bid_id: bid_id.into(),
        })
    };
    let mut v = Vec::new();
    let requests = [
        ("subscribe", Request::Subscribe { auction: auction() }),
        ("unsubscribe", Request::Unsubscribe { auction: auction() }),
        ("ping", Request::Ping),
    ];
    for (ty, request) in requests {
        for (kind, req) in every_req() {
            v.push((format!("{ty}/{kind}"), message(req, request.clone())));
        }
    }
    let bids = [
        (
            "bid/with-max-req-str",
            req_str("r-3"),
            bid(5_250_000, Some(6_000_000), "d3-0001"),
        ),
        (
            "bid/without-max-req-uint",
            req_uint(3),
            bid(5_250_000, None, "d3-0002"),
        ),
        (
            "bid/with-max-req-int",
            req_int(-3),
            bid(1, Some(1_000_000_000_000), "d3-0003"),
        ),
        ("bid/without-max-no-req", None, bid(0, None, "")),
        (
            "bid/amount-u64-max",
            req_uint(u64::MAX),
            bid(u64::MAX, Some(u64::MAX), "d3-0004"),
        ),
        ("ping/req-int-min", req_int(i64::MIN), Request::Ping),
    ];
    v.extend(
        bids.into_iter()
            .map(|(name, req, r)| (name.to_owned(), message(req, r))),
    );
    v
}

/// MessagePack of any value, maps with names.
fn mp<T: serde::Serialize + ?Sized>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).expect("a test value encodes")
}

/// Malformed frames, one representative of each error path of the decoder, in each
/// encoding: (name, the connection's format, the frame).
fn malformed_frames() -> Vec<(String, Format, Vec<u8>)> {
    let r65 = "r".repeat(65);
    let deep_json = format!(
        r#"{{"type":"ping","req":"r","x":{}0{}}}"#,
        "[".repeat(16),
        "]".repeat(16)
    );
    let json: Vec<(&str, String)> = vec![
        ("empty-frame", String::new()),
        ("not-json", "hello".into()),
        (
            "truncated-after-req",
            r#"{"req":"r1","type":"bid","auction":"A"#.into(),
        ),
        ("trailing-characters", r#"{"type":"ping","req":2} x"#.into()),
        ("array-not-map", "[1,2]".into()),
        ("missing-type", r#"{"req":"r","auction":"A1"}"#.into()),
        ("type-not-string", r#"{"type":1,"req":-4}"#.into()),
        ("unknown-type", r#"{"type":"bet","req":8}"#.into()),
        (
            "unknown-type-too-long",
            format!(r#"{{"type":"{}","req":8}}"#, "t".repeat(65)),
        ),
        ("req-float", r#"{"type":"ping","req":1.5}"#.into()),
        (
            "req-too-long",
            format!(r#"{{"type":"ping","req":"{r65}"}}"#),
        ),
        (
            "duplicate-field",
            r#"{"req":"r","type":"bid","auction":"A1","amount":1,"amount":2,"bid_id":"b"}"#.into(),
        ),
        (
            "subscribe-missing-auction",
            r#"{"type":"subscribe","req":3}"#.into(),
        ),
        (
            "auction-not-string",
            r#"{"type":"subscribe","auction":17,"req":"s"}"#.into(),
        ),
        (
            "auction-too-long",
            format!(r#"{{"type":"unsubscribe","auction":"{}"}}"#, "A".repeat(65)),
        ),
        (
            "amount-negative",
            r#"{"type":"bid","req":7,"auction":"A17","amount":-1,"bid_id":"x"}"#.into(),
        ),
        (
            "amount-fraction",
            r#"{"type":"bid","req":-1,"auction":"A17","amount":100.5,"bid_id":"x"}"#.into(),
        ),
        (
            "amount-float-integral",
            r#"{"type":"bid","auction":"A17","amount":100.0,"bid_id":"x"}"#.into(),
        ),
        (
            "amount-exponent",
            r#"{"type":"bid","auction":"A17","amount":1e3,"bid_id":"x"}"#.into(),
        ),
        (
            "amount-over-u64",
            r#"{"type":"bid","auction":"A17","amount":18446744073709551616,"bid_id":"x"}"#.into(),
        ),
        (
            "amount-string",
            r#"{"type":"bid","req":"r","auction":"A17","amount":"100","bid_id":"x"}"#.into(),
        ),
        (
            "max-negative",
            r#"{"type":"bid","req":"r","auction":"A17","amount":100,"max":-1,"bid_id":"x"}"#.into(),
        ),
        (
            "bid-missing-bid_id",
            r#"{"type":"bid","req":"r","auction":"A17","amount":100}"#.into(),
        ),
        (
            "bid_id-too-long",
            format!(
                r#"{{"type":"bid","auction":"A17","amount":100,"bid_id":"{}"}}"#,
                "x".repeat(65)
            ),
        ),
        ("nested-too-deep", deep_json),
    ];
    let req_r1 = [mp("req"), mp("r1")].concat();
    let ping_kv = [mp("type"), mp("ping")].concat();
    let bid_with_amount = |amount: &[u8]| {
        [
            &[0x85][..],
            &req_r1,
            &mp("type"),
            &mp("bid"),
            &mp("auction"),
            &mp("A17"),
            &mp("bid_id"),
            &mp("b"),
            &mp("amount"),
            amount,
        ]
        .concat()
    };
    let msgpack: Vec<(&str, Vec<u8>)> = vec![
        ("empty-frame", vec![]),
        ("reserved-byte-c1", vec![0xc1]),
        ("nil-not-map", vec![0xc0]),
        ("json-text", br#"{"type":"ping"}"#.to_vec()),
        (
            "truncated-after-req",
            [&[0x83][..], &req_r1, &ping_kv].concat(),
        ),
        (
            "trailing-bytes",
            [&[0x82][..], &req_r1, &ping_kv, &[0x00]].concat(),
        ),
        (
            "map32-claims-4-billion-entries",
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "str32-claims-4-gib",
            [
                &[0x82][..],
                &req_r1,
                &mp("type"),
                &[0xdb, 0xff, 0xff, 0xff, 0xff],
                b"ping",
            ]
            .concat(),
        ),
        (
            "type-not-utf8",
            [&[0x82][..], &req_r1, &mp("type"), &[0xa2, 0xff, 0xfe]].concat(),
        ),
        (
            "nested-too-deep",
            [
                &[0x83][..],
                &req_r1,
                &ping_kv,
                &mp("x"),
                &[0x91; 16],
                &[0x00],
            ]
            .concat(),
        ),
        ("unknown-type", mp(&json!({"type": "bet", "req": -8}))),
        ("req-bool", mp(&json!({"type": "ping", "req": true}))),
        ("missing-type", mp(&json!({"req": 5, "auction": "A1"}))),
        ("amount-negative-fixint", bid_with_amount(&[0xff])),
        (
            "amount-float32",
            bid_with_amount(&[0xca, 0x3f, 0xc0, 0x00, 0x00]),
        ),
        ("amount-bin", bid_with_amount(&[0xc4, 0x01, 0x05])),
        ("amount-ext", bid_with_amount(&[0xd4, 0x01, 0x05])),
        (
            "max-string",
            mp(&json!({"type": "bid", "auction": "A17", "amount": 5, "max": "6", "bid_id": "b"})),
        ),
    ];
    let json = json
        .into_iter()
        .map(|(n, f)| (format!("json/{n}"), Format::Json, f.into_bytes()));
    let msgpack = msgpack
        .into_iter()
        .map(|(n, f)| (format!("msgpack/{n}"), Format::MsgPack, f));
    json.chain(msgpack).collect()
}

// =======================================================================================
// Facts: what the tests read out of the script and the fixtures, one line each.
// =======================================================================================

/// A command's variant, spelled out so that a new variant fails to compile here until
/// the batch covers it.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Configure(_) => "Configure",
        Command::Auction(AuctionCommand::RegisterSeller { .. }) => "RegisterSeller",
        Command::Auction(AuctionCommand::RegisterDealer { .. }) => "RegisterDealer",
        Command::Auction(AuctionCommand::RegisterService { .. }) => "RegisterService",
        Command::Auction(AuctionCommand::SetDeposit { .. }) => "SetDeposit",
        Command::Auction(AuctionCommand::SetDealerStatus { .. }) => "SetDealerStatus",
        Command::Auction(AuctionCommand::ListCar { .. }) => "ListCar",
        Command::Auction(AuctionCommand::PlaceBid { .. }) => "PlaceBid",
        Command::Auction(AuctionCommand::CancelLot { .. }) => "CancelLot",
        Command::Auction(AuctionCommand::Decide { .. }) => "Decide",
        Command::Auction(AuctionCommand::Settle { .. }) => "Settle",
        Command::Auction(AuctionCommand::Tick) => "Tick",
        Command::Auction(AuctionCommand::Resume) => "Resume",
        Command::Auction(AuctionCommand::SetDealerLinks { .. }) => "SetDealerLinks",
        Command::Auction(AuctionCommand::SetCreditLimit { .. }) => "SetCreditLimit",
        Command::Auction(AuctionCommand::Finance { .. }) => "Finance",
        Command::Auction(AuctionCommand::Repay { .. }) => "Repay",
        Command::Auction(AuctionCommand::TransferOut { .. }) => "TransferOut",
        Command::Auction(AuctionCommand::TransferIn { .. }) => "TransferIn",
        Command::Alliance(a) => match a {
            AllianceCommand::HandOff(_) => "Alliance::HandOff",
            AllianceCommand::Retail { .. } => "Alliance::Retail",
            AllianceCommand::Return { .. } => "Alliance::Return",
            AllianceCommand::Refund { .. } => "Alliance::Refund",
            AllianceCommand::Dispose { .. } => "Alliance::Dispose",
            AllianceCommand::OpenComplaint { .. } => "Alliance::OpenComplaint",
            AllianceCommand::ResolveComplaint { .. } => "Alliance::ResolveComplaint",
            AllianceCommand::Rate { .. } => "Alliance::Rate",
            AllianceCommand::NoteRemoteWarning { .. } => "Alliance::NoteRemoteWarning",
            AllianceCommand::HandOffFrom { .. } => "Alliance::HandOffFrom",
            AllianceCommand::NoteRemoteLoan { .. } => "Alliance::NoteRemoteLoan",
        },
    }
}

const EVERY_COMMAND: [&str; 30] = [
    "Configure",
    "RegisterSeller",
    "RegisterDealer",
    "RegisterService",
    "SetDeposit",
    "SetDealerStatus",
    "ListCar",
    "PlaceBid",
    "CancelLot",
    "Decide",
    "Settle",
    "Tick",
    "Resume",
    "SetDealerLinks",
    "SetCreditLimit",
    "Finance",
    "Repay",
    "TransferOut",
    "TransferIn",
    "Alliance::HandOff",
    "Alliance::Retail",
    "Alliance::Return",
    "Alliance::Refund",
    "Alliance::Dispose",
    "Alliance::OpenComplaint",
    "Alliance::ResolveComplaint",
    "Alliance::Rate",
    "Alliance::NoteRemoteWarning",
    "Alliance::HandOffFrom",
    "Alliance::NoteRemoteLoan",
];

/// The batch's shape and its outcomes, one line each.
fn batch_facts(batch: &Batch) -> Vec<String> {
    let mut facts = vec![format!(
        "entries {}..={} ({}), from T0+{} to T0+{}",
        batch.first_seq(),
        batch.last_seq(),
        batch.entries.len(),
        batch.entries.first().map_or(0, |e| e.now_ms - T0),
        batch.entries.last().map_or(0, |e| e.now_ms - T0),
    )];
    facts.extend(batch.outcomes.iter().map(|o| {
        format!(
            "outcome seq {}: {} {} price={:?} dealer={:?} seller={}",
            o.seq,
            o.lot,
            o.outcome.as_str(),
            o.price,
            o.dealer.map(|d| d.to_string()),
            o.seller
        )
    }));
    facts
}

/// What each story entry did that was not a plain success: bid outcomes and refusals.
fn story_facts(applied: &[(u64, Vec<Event>)]) -> Vec<String> {
    let mut facts = Vec::new();
    for (seq, events) in applied {
        for e in events {
            let fact = match e {
                Event::Auction(AuctionEvent::Bid {
                    lot,
                    dealer,
                    outcome: BidOutcome::Rejected(r),
                    duplicate,
                    ..
                }) => {
                    format!(
                        "{lot} {dealer} rejected {} duplicate={duplicate}",
                        r.reason()
                    )
                }
                Event::Auction(AuctionEvent::Bid {
                    lot,
                    dealer,
                    outcome: BidOutcome::Accepted { price, leading, .. },
                    duplicate,
                    ..
                }) => {
                    format!("{lot} {dealer} accepted price={price} leading={leading} duplicate={duplicate}")
                }
                Event::Auction(AuctionEvent::Refused(r)) => format!("refused {r:?}"),
                Event::Auction(AuctionEvent::LoanOverdue { loan, dealer }) => {
                    format!("{loan} {dealer} overdue")
                }
                Event::Auction(AuctionEvent::LoanRepaid { loan, dealer, lot }) => {
                    format!("{loan} {dealer} repaid for {lot}")
                }
                Event::Auction(AuctionEvent::Transfer {
                    record,
                    duplicate,
                    deposit,
                }) => format!(
                    "transfer {} {} {} {} {} {}: {} duplicate={duplicate} deposit={deposit}",
                    record.direction.as_str(),
                    record.id,
                    record.dealer,
                    match record.direction {
                        TransferDirection::Out => "to",
                        TransferDirection::In => "from",
                    },
                    record.peer,
                    record.amount,
                    match record.outcome {
                        TransferOutcome::Accepted => "accepted".to_string(),
                        TransferOutcome::Refused(TransferRefusal::ExceedsFree { free }) =>
                            format!("transfer_exceeds_free free={free}"),
                        TransferOutcome::Refused(r) => r.reason().to_string(),
                    },
                ),

                Event::Alliance(AllianceEvent::Refused(r)) => {
                    format!("alliance refused {}", r.code())
                }
                Event::Alliance(AllianceEvent::HandedOff {
                    auction,
                    item,
                    duplicate,
                }) => {
                    format!("{auction} handed off as {item} duplicate={duplicate}")
                }
                Event::Alliance(AllianceEvent::ItemFrom {
                    item,
                    market,
                    auction,
                    vehicle,
                }) => format!(
                    "{item} from {market} {auction} ({} {} {})",
                    vehicle.make, vehicle.model, vehicle.year
                ),
                Event::Alliance(AllianceEvent::Expelled { dealer, warning }) => {
                    format!("{dealer} expelled by {warning}")
                }
                Event::Alliance(AllianceEvent::RemoteWarningNoted { dealer, warning }) => {
                    format!(
                        "{dealer} noted {} {} corrected={}",
                        warning.market,
                        warning.warning,
                        warning.corrected()
                    )
                }
                Event::Alliance(AllianceEvent::RemoteLoanNoted {
                    market,
                    auction,
                    loan,
                    dealer,
                    repaid,
                }) => format!("{market} {auction} {loan} {dealer} noted repaid={repaid}"),
                Event::Alliance(AllianceEvent::RetailRefused {
                    item,
                    dealer,
                    reasons,
                    warning,
                }) => format!(
                    "{item} {dealer} retail refused {:?} warning={:?}",
                    reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    warning.map(|w| w.to_string())
                ),
                Event::Auction(AuctionEvent::LinksChanged {
                    dealer,
                    linked_sellers,
                    leading,
                }) => format!(
                    "{dealer} linked to {:?} leading {:?}",
                    linked_sellers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                    leading.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
                _ => continue,
            };
            facts.push(format!("seq {seq}: {fact}"));
        }
    }
    facts
}

/// The events the entry `seq` produced (none for an entry not applied).
fn events_at(applied: &[(u64, Vec<Event>)], seq: u64) -> Vec<Event> {
    applied
        .iter()
        .find(|(s, _)| *s == seq)
        .map(|(_, e)| e.clone())
        .unwrap_or_default()
}

/// The book's state, one line per object.
fn book_facts(book: &Market) -> Vec<String> {
    let mut facts = vec![format!(
        "last_seq={} last_now=T0+{}",
        book.last_seq(),
        book.last_now() - T0
    )];
    for lot in book.book().lots() {
        facts.push(format!(
            "{} {} price={:?} bids={} lead={:?} settled={} vin_ok={}",
            lot.id,
            lot.status.as_str(),
            lot.price,
            lot.bids,
            lot.lead.map(|l| format!("{} max {}", l.dealer, l.max)),
            lot.settled,
            check_vin(&lot.listing.vehicle.vin).is_ok(),
        ));
    }
    for d in book.book().dealers() {
        let credit = match d.credit {
            c if c.is_empty() => String::new(),
            c => format!(" credit limit={} drawn={}", c.limit, c.drawn),
        };
        facts.push(format!(
            "{} {:?} deposit={} exposure={} receipts={} linked={:?}{credit}",
            d.id,
            d.status,
            d.deposit,
            d.exposure,
            d.receipts.len(),
            d.linked_sellers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        ));
    }
    for l in book.book().loans() {
        facts.push(format!(
            "{} {} {} principal={} due=T0+{} repaid={:?} overdue={}",
            l.id,
            l.lot,
            l.dealer,
            l.principal,
            l.due_at - T0,
            l.repaid_at.map(|t| t - T0),
            l.overdue
        ));
    }
    for s in book.book().sellers() {
        facts.push(format!("{} {}", s.id, s.name));
    }
    for s in book.book().services() {
        facts.push(format!("{} {}", s.id, s.name));
    }
    let alliance = book.alliance();
    for i in alliance.items() {
        let disposal = i
            .disposal
            .as_ref()
            .map(|d| format!(" disposal={} at T0+{}", d.channel.as_str(), d.at - T0))
            .unwrap_or_default();
        let origin = alliance
            .origin(i.id)
            .map(|(market, _)| format!(" from {market}"))
            .unwrap_or_default();
        facts.push(format!(
            "{} {} {} {} certified={} reasons={:?} rated={}{disposal}{origin}",
            i.id,
            i.auction,
            i.dealer,
            i.status.as_str(),
            i.certified,
            i.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            i.rated,
        ));
    }
    for c in alliance.complaints() {
        facts.push(format!(
            "{} {} {} warning={:?}",
            c.id,
            c.dealer,
            c.status.as_str(),
            c.warning.map(|w| w.to_string())
        ));
    }
    for w in (1..).map_while(|n| alliance.warning(WarningId(n))) {
        facts.push(format!(
            "{} {} {} corrected={}",
            w.id,
            w.dealer,
            w.cause.as_str(),
            w.corrected()
        ));
    }
    for d in book.book().dealers() {
        for w in alliance.remote_warnings(d.id) {
            facts.push(format!(
                "{} remote {} {} issued=T0+{} corrected={:?}",
                d.id,
                w.market,
                w.warning,
                w.issued_at - T0,
                w.corrected_at.map(|t| t - T0)
            ));
        }
    }
    for (market, auction, l) in alliance.remote_loans() {
        facts.push(format!(
            "remote loan {market} {auction} {} {} repaid={}",
            l.loan, l.dealer, l.repaid
        ));
    }
    for d in book.book().dealers() {
        let s = alliance.standing(d.id, d.status);
        if s.ratings > 0 || s.violations > 0 || !s.remote_warnings.is_empty() {
            let refused = match s.refused_retail {
                0 => String::new(),
                n => format!(" refused_retail={n}"),
            };
            facts.push(format!(
                "{} standing score={:?} ratings={} violations={} uncorrected={}{refused}",
                d.id,
                s.score(),
                s.ratings,
                s.violations,
                s.uncorrected()
            ));
        }
    }
    facts
}

// =======================================================================================
// Golden files
// =======================================================================================

/// The rule every failure repeats.
const RULE: &str = "A diff in these files is a contract change: it needs a protocol version or a \
                    migration, never a bless to make a refactor pass. (To record an intended \
                    change: GAVEL_BLESS=1 cargo test --test golden, and say why in the commit.)";

/// Bytes per line of a hex blob file.
const BLOB_LINE_BYTES: usize = 32;

fn blessing() -> bool {
    std::env::var("GAVEL_BLESS").is_ok_and(|v| v == "1")
}

fn golden_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(file)
}

fn write_golden(file: &str, text: &str, what: &str) {
    let path = golden_path(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create tests/golden");
    }
    std::fs::write(&path, text).expect("write a golden file");
    // Straight to the process's stderr: the test harness captures `eprintln!`, and a
    // bless must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "GAVEL_BLESS=1: wrote tests/golden/{file} ({what}) from the current code"
    );
}

fn read_golden(file: &str) -> String {
    let path = golden_path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Golden files are written with GAVEL_BLESS=1 cargo test --test golden",
            path.display()
        )
    })
}

/// Reads a table file: one `name<TAB>value` per line, each line ending in `\n`, names
/// unique and non-empty. Nothing else is accepted.
fn parse_table(file: &str, text: &str) -> Vec<(String, String)> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "tests/golden/{file}: the last line has no newline"
    );
    let mut seen = BTreeSet::new();
    text.split_terminator('\n')
        .enumerate()
        .map(|(i, line)| {
            let (name, value) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("tests/golden/{file}:{}: no TAB after the name", i + 1));
            assert!(
                !name.is_empty() && !line.contains('\r'),
                "tests/golden/{file}:{}: empty name or a CR",
                i + 1
            );
            assert!(
                seen.insert(name.to_owned()),
                "tests/golden/{file}:{}: `{name}` twice",
                i + 1
            );
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The stored table, by name. When blessing, `rows` instead: they are what this run
/// writes, and another test may not have written the file yet.
fn stored_table(file: &str, rows: &[(String, String)]) -> BTreeMap<String, String> {
    if blessing() {
        return rows.iter().cloned().collect();
    }
    parse_table(file, &read_golden(file)).into_iter().collect()
}

/// Where two strings first differ, in characters.
fn first_difference(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Compares each table with its file (or writes them, when blessing); fails once, naming
/// every entry that differs in any of them.
fn check_tables(tables: &[(&str, &Rows)]) {
    let reports: Vec<String> = tables
        .iter()
        .filter_map(|(file, rows)| table_report(file, rows))
        .collect();
    assert!(reports.is_empty(), "{}\n\n{RULE}", reports.join("\n\n"));
}

/// What differs between `actual` and the table file (`None`: nothing; and when blessing,
/// after writing the file).
fn table_report(file: &str, actual: &[(String, String)]) -> Option<String> {
    let mut names = BTreeSet::new();
    for (name, value) in actual {
        assert!(
            !name.is_empty() && !name.contains(['\t', '\n', '\r']),
            "a golden name must be one line without TAB: {name:?}"
        );
        assert!(
            !value.contains(['\n', '\r']),
            "`{name}`: a golden value must be one line: {value:?}"
        );
        assert!(names.insert(name), "`{name}` appears twice in {file}");
    }
    let text: String = actual.iter().map(|(n, v)| format!("{n}\t{v}\n")).collect();
    if blessing() {
        write_golden(file, &text, &format!("{} entries", actual.len()));
        return None;
    }
    let expected = parse_table(file, &read_golden(file));
    let expected_map: BTreeMap<&str, &str> = expected
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let actual_map: BTreeMap<&str, &str> = actual
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let hex = file.ends_with(".hex");
    let mut problems = Vec::new();
    for (name, want) in &expected {
        match actual_map.get(name.as_str()) {
            None => problems.push(format!(
                "- `{name}`: in the golden file, no longer produced"
            )),
            Some(got) if got != want => {
                let at = first_difference(want, got);
                let at = if hex {
                    format!("byte {}", at / 2)
                } else {
                    format!("character {at}")
                };
                problems.push(format!(
                    "- `{name}` differs (first at {at}):\n    expected: {want}\n    actual:   {got}"
                ));
            }
            Some(_) => {}
        }
    }
    for (name, got) in actual {
        if !expected_map.contains_key(name.as_str()) {
            problems.push(format!(
                "- `{name}`: produced, not in the golden file:\n    actual:   {got}"
            ));
        }
    }
    if problems.is_empty() && text != read_golden(file) {
        problems.push("- the entries are the same but in another order".into());
    }
    (!problems.is_empty()).then(|| {
        format!(
            "tests/golden/{file} does not match the code ({} of {} entries):\n{}",
            problems.len(),
            expected.len(),
            problems.join("\n")
        )
    })
}

/// The hex of a blob file: lowercase, [`BLOB_LINE_BYTES`] bytes a line, the last line
/// shorter or equal, every line ending in `\n`.
fn blob_text(bytes: &[u8]) -> String {
    bytes
        .chunks(BLOB_LINE_BYTES)
        .map(|line| format!("{}\n", hex::encode(line)))
        .collect()
}

/// Reads a blob file written by [`blob_text`]; nothing else is accepted.
fn parse_blob(file: &str, text: &str) -> Vec<u8> {
    assert!(
        text.ends_with('\n'),
        "tests/golden/{file}: the last line has no newline"
    );
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let mut bytes = Vec::with_capacity(lines.len() * BLOB_LINE_BYTES);
    for (i, line) in lines.iter().enumerate() {
        let full = line.len() == 2 * BLOB_LINE_BYTES;
        let last_ok = i + 1 == lines.len() && !line.is_empty() && line.len() % 2 == 0;
        assert!(
            (full || last_ok) && line.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "tests/golden/{file}:{}: not a line of {BLOB_LINE_BYTES} bytes in lowercase hex",
            i + 1
        );
        bytes.extend(hex::decode(line).expect("checked hex"));
    }
    bytes
}

/// The stored blob. When blessing, `actual` instead (see [`stored_table`]).
fn stored_blob(file: &str, actual: &[u8]) -> Vec<u8> {
    if blessing() {
        return actual.to_vec();
    }
    parse_blob(file, &read_golden(file))
}

/// Compares `actual` with the blob file (or writes it, when blessing); fails with the
/// first difference and the bytes around it.
fn check_blob(file: &str, actual: &[u8]) {
    if blessing() {
        write_golden(file, &blob_text(actual), &format!("{} bytes", actual.len()));
        return;
    }
    let expected = parse_blob(file, &read_golden(file));
    if expected == actual {
        return;
    }
    let at = expected
        .iter()
        .zip(actual)
        .take_while(|(a, b)| a == b)
        .count();
    let window = |b: &[u8]| {
        let from = at.saturating_sub(16);
        hex::encode(&b[from.min(b.len())..(at + 16).min(b.len())])
    };
    panic!(
        "tests/golden/{file} does not match the code: {} bytes expected, {} produced, first \
         difference at byte {at} (line {} of the file)\n    expected [{}..]: {}\n    actual   [{}..]: {}\n\n{RULE}",
        expected.len(),
        actual.len(),
        at / BLOB_LINE_BYTES + 1,
        at.saturating_sub(16),
        window(&expected),
        at.saturating_sub(16),
        window(actual),
    );
}

/// The `ws-server` tables: each message as `codec::encode` writes it, JSON as text and
/// MessagePack as hex.
type Rows = Vec<(String, String)>;

fn server_rows(messages: &[(String, ServerMessage)]) -> (Rows, Rows) {
    messages
        .iter()
        .map(|(name, msg)| {
            let json = payload(Format::Json, &codec::encode(Format::Json, msg));
            let json = String::from_utf8(json).expect("JSON frames are UTF-8");
            let msgpack = payload(Format::MsgPack, &codec::encode(Format::MsgPack, msg));
            ((name.clone(), json), (name.clone(), hex_of(&msgpack)))
        })
        .unzip()
}

/// The payload bytes a frame puts on the wire, checking its kind against its format.
fn payload(format: Format, frame: &Frame) -> Vec<u8> {
    match (format, frame) {
        (Format::Json, Frame::Text(t)) => t.as_bytes().to_vec(),
        (Format::MsgPack, Frame::Binary(b)) => b.to_vec(),
        _ => panic!("a {format:?} message must not be a {frame:?}"),
    }
}

/// Bytes as a golden file shows them: JSON as text, MessagePack as hex.
fn shown(format: Format, bytes: &[u8]) -> String {
    match format {
        Format::Json => String::from_utf8_lossy(bytes).into_owned(),
        Format::MsgPack => hex_of(bytes),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn from_hex(name: &str, text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("`{name}`: bad hex in a golden file: {e}"))
}

// =======================================================================================
// Tests
// =======================================================================================

#[test]
fn ws_server_messages_are_pinned_in_both_encodings() {
    let lots = script_views(&script_book());
    let messages = server_messages(&lots);
    let (json_rows, msgpack_rows) = server_rows(&messages);
    check_tables(&[
        ("ws-server.json.txt", &json_rows),
        ("ws-server.msgpack.hex", &msgpack_rows),
    ]);

    let json = stored_table("ws-server.json.txt", &json_rows);
    let msgpack = stored_table("ws-server.msgpack.hex", &msgpack_rows);
    for (name, msg) in &messages {
        // Every other writer of the message writes the stored bytes too: serde_json (which
        // the hand-written JSON of `update` and `bid_result` must match) and rmp_serde.
        let serde_json = serde_json::to_string(msg).expect("serializes");
        assert_eq!(
            serde_json, json[name],
            "`{name}`: serde_json differs from the golden JSON"
        );
        assert_eq!(
            hex_of(&mp(msg)),
            msgpack[name],
            "`{name}`: rmp_serde differs from the golden MessagePack"
        );

        // The stored bytes read back as the same message (what a client's decoder sees),
        // and the two encodings carry the same map.
        let packed = from_hex(name, &msgpack[name]);
        let from_json: ServerMessage =
            serde_json::from_str(&json[name]).expect("golden JSON decodes");
        let from_msgpack: ServerMessage =
            rmp_serde::from_slice(&packed).expect("golden MessagePack decodes");
        assert_eq!(&from_json, msg, "`{name}` (JSON)");
        assert_eq!(&from_msgpack, msg, "`{name}` (MessagePack)");
        let a: Value = serde_json::from_str(&json[name]).expect("JSON");
        let b: Value = rmp_serde::from_slice(&packed).expect("MessagePack");
        assert_eq!(
            a, b,
            "`{name}`: the JSON and the MessagePack say different things"
        );
    }

    // Every message type, reason, status, outcome and error code is in the table.
    let all_json: Vec<Value> = json
        .values()
        .map(|t| serde_json::from_str(t).expect("JSON"))
        .collect();
    let field = |key: &str| -> BTreeSet<String> {
        all_json
            .iter()
            .flat_map(|v| [&v[key], &v["auction"][key]])
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        field("type"),
        set(&[
            "bid_result",
            "closed",
            "complaint",
            "error",
            "outbid",
            "pong",
            "snapshot",
            "unsubscribed",
            "update"
        ])
    );
    assert_eq!(
        field("reason"),
        RejectReason::ALL
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect()
    );
    let statuses = set(&[
        "scheduled",
        "live",
        "pending_seller",
        "sold",
        "no_sale",
        "cancelled",
    ]);
    assert!(
        field("status").is_superset(&statuses),
        "{:?}",
        field("status")
    );
    assert_eq!(
        field("outcome"),
        set(&["sold", "no_sale", "pending_seller"])
    );
    assert_eq!(
        field("code"),
        set(&["bad_message", "unknown_type", "unknown_auction"])
    );
}

#[test]
fn ws_fan_out_frames_are_the_pinned_bytes() {
    let lots = script_views(&script_book());
    let messages = server_messages(&lots);
    let (json_rows, msgpack_rows) = server_rows(&messages);
    let json = stored_table("ws-server.json.txt", &json_rows);
    let msgpack = stored_table("ws-server.msgpack.hex", &msgpack_rows);
    let messages: BTreeMap<String, ServerMessage> = messages.into_iter().collect();
    let mut checked = 0;
    for case in fan_outs() {
        for &(receiver, entry) in &case.receivers {
            let what = format!("{} to {receiver:?} as `{entry}`", case.name);
            assert_eq!(
                case.broadcast.message_for(receiver),
                &messages[entry],
                "{what}"
            );
            for (format, golden) in [
                (Format::Json, &json[entry]),
                (Format::MsgPack, &msgpack[entry]),
            ] {
                let fanned = payload(format, &case.broadcast.frame_for(format, receiver));
                let fanned = shown(format, &fanned);
                assert_eq!(
                    &fanned, golden,
                    "{what} ({format:?}): the fan-out differs from the golden bytes"
                );
                let direct = payload(format, &codec::encode(format, &messages[entry]));
                assert_eq!(
                    fanned,
                    shown(format, &direct),
                    "{what} ({format:?}): the fan-out differs from codec::encode"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12, "every fan-out receiver was checked");
}

#[test]
fn ws_client_messages_decode_from_the_pinned_bytes() {
    let messages = client_messages();
    let json_rows: Vec<(String, String)> = messages
        .iter()
        .map(|(n, m)| (n.clone(), serde_json::to_string(m).expect("serializes")))
        .collect();
    let msgpack_rows: Vec<(String, String)> = messages
        .iter()
        .map(|(n, m)| (n.clone(), hex_of(&mp(m))))
        .collect();
    check_tables(&[
        ("ws-client.json.txt", &json_rows),
        ("ws-client.msgpack.hex", &msgpack_rows),
    ]);

    let json = stored_table("ws-client.json.txt", &json_rows);
    let msgpack = stored_table("ws-client.msgpack.hex", &msgpack_rows);
    for (name, msg) in &messages {
        let from_json = codec::decode(Format::Json, json[name].as_bytes());
        assert_eq!(from_json.as_ref(), Ok(msg), "`{name}` (JSON)");
        let from_msgpack = codec::decode(Format::MsgPack, &from_hex(name, &msgpack[name]));
        assert_eq!(from_msgpack.as_ref(), Ok(msg), "`{name}` (MessagePack)");
    }
    let types: BTreeSet<&str> = messages
        .iter()
        .map(|(_, m)| m.request.type_name())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["bid", "ping", "subscribe", "unsubscribe"])
    );
}

#[test]
fn ws_malformed_frames_get_the_pinned_errors() {
    let mut rows = Vec::new();
    for (name, format, frame) in malformed_frames() {
        let error = codec::decode(format, &frame)
            .expect_err(&format!("`{name}` must not decode"))
            .into_message();
        let ServerMessage::Error(ErrorReply { message, .. }) = &error else {
            panic!("`{name}`: a decode error is an `error` message");
        };
        assert!(!message.is_empty(), "`{name}`: an empty message");
        // The reply in the connection's own encoding says the same.
        let sent = payload(format, &codec::encode(format, &error));
        let back: ServerMessage = match format {
            Format::Json => serde_json::from_slice(&sent).expect("JSON"),
            Format::MsgPack => rmp_serde::from_slice(&sent).expect("MessagePack"),
        };
        assert_eq!(back, error, "`{name}`");
        let shown = match format {
            Format::Json => String::from_utf8(frame).expect("JSON rows are text"),
            Format::MsgPack => hex_of(&frame),
        };
        assert!(
            !shown.contains(['\t', '\n', '\r']),
            "`{name}`: a frame must be one line"
        );
        let reply = payload(Format::Json, &codec::encode(Format::Json, &error));
        let reply = String::from_utf8(reply).expect("JSON");
        rows.push((name, format!("{shown}\t{reply}")));
    }
    check_tables(&[("ws-client-malformed.txt", &rows)]);

    // Every row, as stored, still gets its stored reply.
    let codes: BTreeSet<String> = stored_table("ws-client-malformed.txt", &rows)
        .iter()
        .map(|(name, value)| {
            let (frame, reply) = value.split_once('\t').expect("frame TAB reply");
            let (format, frame) = match name.split_once('/') {
                Some(("json", _)) => (Format::Json, frame.as_bytes().to_vec()),
                Some(("msgpack", _)) => (Format::MsgPack, from_hex(name, frame)),
                _ => panic!("`{name}`: a row is json/… or msgpack/…"),
            };
            let want: ServerMessage = serde_json::from_str(reply).expect("reply JSON");
            let got = codec::decode(format, &frame)
                .expect_err("a malformed frame")
                .into_message();
            assert_eq!(got, want, "`{name}`");
            let ServerMessage::Error(e) = want else {
                panic!("`{name}`: not an error");
            };
            e.code.as_str().to_owned()
        })
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from(["bad_message".into(), "unknown_type".into()])
    );
}

#[test]
fn http_auction_json_is_pinned() {
    let book = script_book();
    let lots = script_views(&book);
    let mut rows = Vec::new();
    for (name, lot, viewer) in http_views() {
        let view = lots_view(&lots, lot, viewer);
        assert_eq!(
            view,
            book_view(&book, lot, viewer),
            "`{name}`: the hub's view and the book's differ"
        );
        // What `view_of` in api/routes.rs serves: the view as a JSON value, then axum's
        // Json writes that value.
        let value = serde_json::to_value(&view).expect("a view serializes");
        rows.push((
            name.to_owned(),
            serde_json::to_string(&value).expect("a value serializes"),
        ));
    }
    check_tables(&[("http-auction.json.txt", &rows)]);
    let stored = stored_table("http-auction.json.txt", &rows);
    let shown = |name: &str, key: &str| {
        let v: Value = serde_json::from_str(&stored[name]).expect("JSON");
        v.get(key).cloned()
    };
    assert_eq!(
        shown("A9-live/its-seller", "reserve"),
        Some(json!(26_000_000))
    );
    assert_eq!(shown("A9-live/another-seller", "reserve"), None);
    assert_eq!(
        shown("A9-live/dealer-leading", "leading"),
        Some(json!(true))
    );
    assert_eq!(
        shown("A9-live/dealer-outbid", "leading"),
        Some(json!(false))
    );
    assert_eq!(
        shown("A11-live-no-price/dealer", "price"),
        Some(Value::Null)
    );
    assert_eq!(shown("A9-live/other", "buy_now"), Some(json!(35_000_000)));
    assert_eq!(
        shown("A1-sold/buyer", "buy_now"),
        None,
        "withdrawn once the reserve is met"
    );
    for (name, _) in &rows {
        for d in 1..=5 {
            let id = format!("\"D{d}\"");
            assert!(!stored[name].contains(&id), "`{name}` names a dealer");
        }
    }
}

/// Checks `batch` against the pinned `file` and returns the fixture, decoded: it must
/// re-encode to its own bytes and be the batch the script builds.
fn pinned_batch(file: &str, batch: &Batch) -> Batch {
    check_blob(file, &batch_bytes(batch));
    let fixture = stored_blob(file, &batch_bytes(batch));
    let decoded = decode_batch(&fixture);
    assert_eq!(
        batch_bytes(&decoded),
        fixture,
        "{file}: the batch does not re-encode to its own bytes"
    );
    assert_eq!(
        &decoded, batch,
        "{file}: the fixture decodes to another batch than the script's"
    );
    decoded
}

#[test]
fn journal_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch.msgpack.hex", &journal_batch());

    // Every command is in the story or, if a later build added it, in a sequel.
    let names: BTreeSet<&str> = decoded
        .entries
        .iter()
        .chain(&sequel())
        .chain(&credit_sequel())
        .chain(&transfer_sequel())
        .chain(&warnings_sequel())
        .chain(&handfrom_sequel())
        .chain(&rloans_sequel())
        .map(|e| command_name(&e.command))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(EVERY_COMMAND),
        "the story and the sequel must hold every command"
    );
    assert_eq!(
        batch_facts(&decoded),
        [
            "entries 1..=77 (77), from T0+0 to T0+9000000",
            "outcome seq 30: A2 sold price=Some(8000000) dealer=Some(\"D2\") seller=S1",
            "outcome seq 46: A12 sold price=Some(4000000) dealer=Some(\"D1\") seller=S1",
            "outcome seq 49: A1 sold price=Some(6000000) dealer=Some(\"D1\") seller=S1",
            "outcome seq 49: A3 pending_seller price=Some(4000000) dealer=Some(\"D1\") seller=S2",
            "outcome seq 49: A4 pending_seller price=Some(3000000) dealer=Some(\"D2\") seller=S2",
            "outcome seq 49: A5 no_sale price=None dealer=None seller=S1",
            "outcome seq 49: A6 pending_seller price=Some(3500000) dealer=Some(\"D1\") seller=S2",
            "outcome seq 50: A3 sold price=Some(4000000) dealer=Some(\"D1\") seller=S2",
            "outcome seq 51: A6 no_sale price=Some(3500000) dealer=Some(\"D1\") seller=S2",
        ]
    );
}

/// A snapshot written before receipts were kept under digests (their `bid_id`s were the
/// keys) still loads: into the same market the script builds, which writes the current
/// form. The old bytes are history, never re-blessed.
#[test]
fn a_snapshot_written_before_receipt_digests_loads_as_the_same_market() {
    let old = parse_blob(
        "snapshot-v1.msgpack.hex",
        &read_golden("snapshot-v1.msgpack.hex"),
    );
    let decoded = decode_snapshot(&old);
    let book = script_book();
    assert_eq!(decoded, book, "the old snapshot loads as another market");
    assert_eq!(
        snapshot_bytes(&decoded),
        snapshot_bytes(&book),
        "the old snapshot, loaded, does not write the current form"
    );
    // Its receipts answer repeats: D1's were adopted under their digests.
    let d1 = decoded.book().dealer(DealerId(1)).expect("D1");
    assert_eq!(d1.receipts.len(), 140);
    assert!(d1.receipts.get(&d1.receipt_digest("bulk-000")).is_some());
}

#[test]
fn snapshot_is_pinned() {
    let book = script_book();
    let bytes = snapshot_bytes(&book);
    check_blob("snapshot.msgpack.hex", &bytes);

    let fixture = stored_blob("snapshot.msgpack.hex", &bytes);
    assert_eq!(
        bytes, fixture,
        "the script's book does not serialize to the fixture"
    );
    let decoded = decode_snapshot(&fixture);
    assert_eq!(
        snapshot_bytes(&decoded),
        fixture,
        "the snapshot does not re-encode to its own bytes"
    );
    assert_eq!(
        decoded, book,
        "the fixture decodes to another book than the script's"
    );
    // A second build has receipt maps with other hash keys: the bytes must not notice.
    assert_eq!(
        snapshot_bytes(&script_book()),
        fixture,
        "snapshot bytes depend on hash keys"
    );

    assert_eq!(
        book_facts(&decoded),
        [
            "last_seq=207 last_now=T0+9101290",
            "A1 sold price=Some(6000000) bids=3 lead=Some(\"D1 max 6500000\") settled=true vin_ok=true",
            "A2 sold price=Some(8000000) bids=1 lead=Some(\"D2 max 8000000\") settled=false vin_ok=true",
            "A3 sold price=Some(4000000) bids=1 lead=Some(\"D1 max 4000000\") settled=false vin_ok=true",
            "A4 pending_seller price=Some(3000000) bids=1 lead=Some(\"D2 max 3000000\") settled=false vin_ok=true",
            "A5 no_sale price=None bids=0 lead=None settled=false vin_ok=true",
            "A6 no_sale price=Some(3500000) bids=1 lead=Some(\"D1 max 3500000\") settled=false vin_ok=true",
            "A7 cancelled price=None bids=0 lead=None settled=false vin_ok=true",
            "A8 cancelled price=Some(2500000) bids=1 lead=Some(\"D2 max 2500000\") settled=false vin_ok=true",
            "A9 live price=Some(21100000) bids=4 lead=Some(\"D2 max 25500000\") settled=false vin_ok=true",
            "A10 scheduled price=None bids=0 lead=None settled=false vin_ok=true",
            "A11 live price=None bids=0 lead=None settled=false vin_ok=true",
            "A12 sold price=Some(4000000) bids=1 lead=Some(\"D1 max 4000000\") settled=false vin_ok=true",
            "D1 Active deposit=50000000 exposure=8000000 receipts=140 linked=[]",
            "D2 Active deposit=20000000 exposure=36500000 receipts=7 linked=[]",
            "D3 Expelled deposit=5000000 exposure=0 receipts=2 linked=[\"S2\"]",
            "D4 Active deposit=200000 exposure=0 receipts=1 linked=[]",
            "D5 Active deposit=10000000 exposure=0 receipts=1 linked=[]",
            "S1 Wang Fang",
            "S2 Zhao Lei",
            "V1 Alliance consumer site",
            "I1 A1 D1 refunded certified=true reasons=[] rated=true",
            "I2 A2 D2 retailed certified=false reasons=[\"title_not_transferable\"] rated=true",
            "I3 A3 D1 returned certified=true reasons=[] rated=false",
            "I4 A12 D1 in_stock certified=true reasons=[] rated=false",
            "C1 D1 resolved warning=None",
            "C2 D3 overdue warning=Some(\"W3\")",
            "C3 D3 overdue warning=Some(\"W4\")",
            "C4 D3 resolved warning=Some(\"W5\")",
            "C5 D2 open warning=None",
            "W1 D2 title_not_transferable corrected=false",
            "W2 D1 hidden_damage corrected=true",
            "W3 D3 overdue_complaint corrected=false",
            "W4 D3 overdue_complaint corrected=false",
            "W5 D3 overdue_complaint corrected=true",
            "D1 standing score=Some(4.5) ratings=1 violations=1 uncorrected=0",
            "D2 standing score=Some(4.5) ratings=1 violations=1 uncorrected=1",
            "D3 standing score=None ratings=0 violations=3 uncorrected=2",
        ]
    );
}

#[test]
fn the_story_does_what_its_comments_say() {
    let (story, _) = script();
    let applied = apply(&mut Market::default(), &story);
    assert_eq!(
        story_facts(&applied),
        [
            "seq 25: A1 D1 accepted price=5000000 leading=true duplicate=false",
            "seq 26: A1 D2 accepted price=5250000 leading=false duplicate=false",
            "seq 27: A1 D2 rejected below_minimum duplicate=false",
            "seq 28: A1 D1 accepted price=5000000 leading=true duplicate=true",
            "seq 29: A1 D1 accepted price=6000000 leading=true duplicate=false",
            "seq 30: A2 D2 accepted price=8000000 leading=true duplicate=false",
            "seq 31: A3 D1 accepted price=4000000 leading=true duplicate=false",
            "seq 32: A3 D3 rejected own_listing duplicate=false",
            "seq 33: A4 D2 accepted price=3000000 leading=true duplicate=false",
            "seq 34: A6 D1 accepted price=3500000 leading=true duplicate=false",
            "seq 35: A8 D2 accepted price=2500000 leading=true duplicate=false",
            "seq 36: A9 D1 accepted price=20000000 leading=true duplicate=false",
            "seq 37: A9 D2 accepted price=20500000 leading=true duplicate=false",
            "seq 38: A9 D1 accepted price=21100000 leading=false duplicate=false",
            "seq 39: A9 D2 accepted price=21100000 leading=true duplicate=false",
            "seq 40: A9 D4 rejected exposure_limit duplicate=false",
            "seq 41: A9 D1 rejected invalid duplicate=false",
            "seq 42: A9 D5 rejected not_eligible duplicate=false",
            "seq 43: A99 D1 rejected unknown_auction duplicate=false",
            "seq 44: A10 D1 rejected not_live duplicate=false",
            "seq 45: A9 D99 rejected not_eligible duplicate=false",
            "seq 46: A12 D1 accepted price=4000000 leading=true duplicate=false",
            "seq 53: A1 handed off as I1 duplicate=false",
            "seq 54: A2 handed off as I2 duplicate=false",
            "seq 55: A3 handed off as I3 duplicate=false",
            "seq 56: A12 handed off as I4 duplicate=false",
            "seq 57: A3 handed off as I3 duplicate=true",
            "seq 58: alliance refused not_sold",
            "seq 71: alliance refused forbidden",
            "seq 73: D3 expelled by W5",
            "seq 75: A9 D3 rejected not_eligible duplicate=false",
        ]
    );
}

/// The file journal stores exactly the pinned bytes: a batch frame's payload is the
/// golden batch, a snapshot file's payload is its seq and the golden snapshot.
#[tokio::test]
async fn the_file_journal_writes_the_pinned_bytes() {
    let batch = journal_batch();
    let bulk = bulk_batch();
    let snapshot = StoredSnapshot {
        seq: bulk.last_seq(),
        bytes: stored_blob("snapshot.msgpack.hex", &snapshot_bytes(&script_book())),
    };
    let golden_batch = stored_blob("journal-batch.msgpack.hex", &batch_bytes(&batch));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut journal = FileJournal::open(dir.path(), FileJournalConfig::default())
        .await
        .expect("opens");
    journal.append(&batch).await.expect("the batch appends");
    journal.append(&bulk).await.expect("the bulk appends");
    journal
        .save_snapshot(&snapshot)
        .await
        .expect("the snapshot saves");
    assert_eq!(
        journal.read_after(0, 10).await.expect("reads back"),
        vec![batch, bulk.clone()]
    );
    assert_eq!(
        journal.load_snapshot().await.expect("loads"),
        Some(snapshot.clone())
    );
    journal.close().await.expect("closes");

    let frame = |payload: &[u8]| {
        let len = u32::try_from(payload.len()).expect("small").to_le_bytes();
        [&len[..], &crc32c::crc32c(payload).to_le_bytes(), payload].concat()
    };
    let segment =
        std::fs::read(dir.path().join(format!("journal-{:020}.seg", 1))).expect("the segment");
    assert_eq!(
        segment,
        [frame(&golden_batch), frame(&batch_bytes(&bulk))].concat()
    );
    let stored = std::fs::read(
        dir.path()
            .join(format!("snapshot-{:020}.bin", snapshot.seq)),
    )
    .expect("the snapshot file");
    assert_eq!(
        stored,
        frame(&[&snapshot.seq.to_le_bytes()[..], &snapshot.bytes].concat())
    );
}

#[test]
fn the_sequel_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-v2.msgpack.hex", &sequel_batch());
    assert_eq!(
        batch_facts(&decoded),
        [
            "entries 208..=220 (13), from T0+36000000 to T0+36011000",
            "outcome seq 210: A13 sold price=Some(1500000) dealer=Some(\"D1\") seller=S2",
        ]
    );
}

#[test]
fn the_sequel_does_what_its_comments_say() {
    let mut book = script_book();
    let applied = apply(&mut book, &sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 210: A13 D1 accepted price=1500000 leading=true duplicate=false",
            "seq 211: A13 handed off as I5 duplicate=false",
            "seq 212: I5 D1 retail refused [\"flood\"] warning=Some(\"W6\")",
            "seq 213: I5 D1 retail refused [\"flood\"] warning=None",
            "seq 216: alliance refused wrong_state",
            "seq 217: alliance refused forbidden",
            "seq 218: D2 linked to [\"S1\"] leading [\"A9\"]",
            "seq 219: A9 D2 rejected own_listing duplicate=false",
            "seq 220: refused UnknownSeller",
        ]
    );
}

/// Checks `book`'s snapshot against the fixture `file` (which must decode to the same book
/// and re-encode to its own bytes); returns the decoded book and its facts.
fn pinned_snapshot(file: &str, book: &Market) -> (Market, Vec<String>) {
    let bytes = snapshot_bytes(book);
    check_blob(file, &bytes);
    let fixture = stored_blob(file, &bytes);
    let decoded = decode_snapshot(&fixture);
    assert_eq!(
        snapshot_bytes(&decoded),
        fixture,
        "{file}: the snapshot does not re-encode to its own bytes"
    );
    assert_eq!(
        &decoded, book,
        "{file}: the fixture decodes to another book"
    );
    let facts = book_facts(&decoded);
    (decoded, facts)
}

/// The facts in `facts` and not in `before`, and those in `before` and no longer in
/// `facts`: what a sequel changed.
fn new_and_gone<'a>(facts: &'a [String], before: &'a [String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let only = |a: &'a [String], b: &[String]| {
        a.iter()
            .filter(|f| !b.contains(f))
            .map(String::as_str)
            .collect()
    };
    (only(facts, before), only(before, facts))
}

/// The facts that start with one of `prefixes`.
fn facts_of<'a>(facts: &'a [String], prefixes: &[&str]) -> Vec<&'a str> {
    facts
        .iter()
        .map(String::as_str)
        .filter(|f| prefixes.iter().any(|p| f.starts_with(p)))
        .collect()
}

#[test]
fn the_sequel_snapshot_is_pinned() {
    let book = sequel_book();
    let (_, facts) = pinned_snapshot("snapshot-v2.msgpack.hex", &book);
    let prefixes = ["last_seq", "A9 ", "A13 ", "D1 ", "D2 ", "I4 ", "I5 ", "W6 "];
    let changed = facts_of(&facts, &prefixes);
    assert_eq!(
        changed,
        [
            "last_seq=220 last_now=T0+36011000",
            "A9 live price=Some(21100000) bids=4 lead=Some(\"D2 max 25500000\") settled=false vin_ok=true",
            "A13 sold price=Some(1500000) bids=1 lead=Some(\"D1 max 1500000\") settled=false vin_ok=true",
            "D1 Active deposit=50000000 exposure=9500000 receipts=141 linked=[]",
            "D2 Active deposit=20000000 exposure=36500000 receipts=8 linked=[\"S1\"]",
            "I4 A12 D1 disposed certified=true reasons=[] rated=false disposal=wholesale at T0+36007000",
            "I5 A13 D1 disposed certified=false reasons=[\"flood\"] rated=false disposal=scrap at T0+36006000",
            "W6 D1 zero_tolerance_retail corrected=true",
            "D1 standing score=Some(4.5) ratings=1 violations=2 uncorrected=0 refused_retail=2",
            "D2 standing score=Some(4.5) ratings=1 violations=1 uncorrected=1",
        ]
    );
}

#[test]
fn the_third_act_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-v3.msgpack.hex", &third_act_batch());
    assert_eq!(
        batch_facts(&decoded),
        ["entries 221..=233 (13), from T0+39600000 to T0+43201000"]
    );
}

#[test]
fn the_credit_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-credit.msgpack.hex", &credit_batch());
    assert_eq!(
        batch_facts(&decoded),
        [
            "entries 221..=235 (15), from T0+39600000 to T0+50403000",
            "outcome seq 224: A14 sold price=Some(1200000) dealer=Some(\"D1\") seller=S2",
            "outcome seq 226: A15 sold price=Some(1200000) dealer=Some(\"D1\") seller=S2",
        ]
    );
}

#[test]
fn the_third_act_does_what_its_comments_say() {
    let mut book = sequel_book();
    let applied = apply(&mut book, &third_act());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 223: A14 D1 accepted price=2000000 leading=false duplicate=false",
            "seq 224: A14 D5 accepted price=2000000 leading=false duplicate=false",
            "seq 225: A14 D2 rejected not_in_good_standing duplicate=false",
            "seq 226: A14 D1 rejected prebid_lowered duplicate=false",
            "seq 227: A14 D5 rejected not_live duplicate=false",
            "seq 228: A14 D5 accepted price=2000000 leading=false duplicate=false",
            "seq 229: A14 D4 rejected exposure_limit duplicate=false",
            "seq 231: A15 D5 accepted price=2000000 leading=false duplicate=false",
            "seq 233: refused NotAllowed",
        ]
    );
    let outbid: Vec<String> = applied
        .iter()
        .flat_map(|(_, events)| events)
        .filter_map(|e| match e {
            Event::Auction(AuctionEvent::Outbid {
                lot, dealer, price, ..
            }) => Some(format!("{lot} {dealer} outbid at {price}")),
            _ => None,
        })
        .collect();
    assert_eq!(outbid, ["A14 D5 outbid at 2600000"]);
}

#[test]
fn the_third_act_snapshot_is_pinned() {
    let book = third_act_book();
    let (decoded, facts) = pinned_snapshot("snapshot-v3.msgpack.hex", &book);
    let changed = facts_of(&facts, &["last_seq", "A14 ", "A15 ", "D1 ", "D5 "]);
    assert_eq!(
        changed,
        [
            "last_seq=233 last_now=T0+43201000",
            "A14 live price=Some(2600000) bids=2 lead=Some(\"D1 max 2600000\") settled=false vin_ok=true",
            "A15 scheduled price=None bids=0 lead=None settled=false vin_ok=true",
            "D1 Active deposit=50000000 exposure=12100000 receipts=143 linked=[]",
            "D5 Active deposit=10000000 exposure=2100000 receipts=5 linked=[]",
            "D1 standing score=Some(4.5) ratings=1 violations=2 uncorrected=0 refused_retail=2",
        ]
    );
    let a15 = decoded.book().lot(LotId(15)).expect("A15");
    assert_eq!(
        a15.prebids
            .iter()
            .map(|p| (p.dealer, p.max, p.seq))
            .collect::<Vec<_>>(),
        [(DealerId(5), 2_100_000, 231)]
    );
}

#[test]
fn the_credit_sequel_does_what_its_comments_say() {
    let mut book = sequel_book();
    let applied = apply(&mut book, &credit_sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 224: A14 D1 accepted price=1200000 leading=true duplicate=false",
            "seq 226: A15 D1 accepted price=1200000 leading=true duplicate=false",
            "seq 229: refused WrongState",
            "seq 230: A14 handed off as I6 duplicate=false",
            "seq 232: L1 D1 overdue",
            "seq 232: L1 D1 repaid for A14",
            "seq 234: refused UnknownDealer",
            "seq 235: refused UnknownLoan",
        ]
    );
    // The warnings, as each step issued or corrected them.
    let warnings: Vec<String> = applied
        .iter()
        .flat_map(|(seq, events)| {
            events.iter().filter_map(move |e| match e {
                Event::Alliance(AllianceEvent::WarningChanged(w)) => Some(format!(
                    "seq {seq}: {} {} corrected={}",
                    w.id,
                    w.cause.as_str(),
                    w.corrected()
                )),
                _ => None,
            })
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "seq 231: W7 sold_out_of_trust corrected=false",
            "seq 232: W8 late_repayment corrected=false",
            "seq 232: W7 sold_out_of_trust corrected=true",
            "seq 232: W8 late_repayment corrected=true",
        ]
    );
}

#[test]
fn the_credit_snapshot_is_pinned() {
    let (decoded, facts) = pinned_snapshot("snapshot-credit.msgpack.hex", &credit_book());
    assert_eq!(decoded.rules(), credit_rules());
    let changed = facts_of(
        &facts,
        &[
            "last_seq", "A14 ", "A15 ", "D1 ", "L1 ", "L2 ", "I6 ", "W7 ", "W8 ",
        ],
    );
    assert_eq!(
        changed,
        [
            "last_seq=235 last_now=T0+50403000",
            "A14 sold price=Some(1200000) bids=1 lead=Some(\"D1 max 1200000\") settled=true vin_ok=true",
            "A15 sold price=Some(1200000) bids=1 lead=Some(\"D1 max 1200000\") settled=true vin_ok=true",
            "D1 Active deposit=50000000 exposure=9500000 receipts=143 linked=[] credit limit=1000000 drawn=1200000",
            "L1 A14 D1 principal=1200000 due=T0+46806000 repaid=Some(50400000) overdue=true",
            "L2 A15 D1 principal=1200000 due=T0+46807000 repaid=None overdue=false",
            "I6 A14 D1 retailed certified=true reasons=[] rated=false",
            "W7 D1 sold_out_of_trust corrected=true",
            "W8 D1 late_repayment corrected=true",
            "D1 standing score=Some(4.5) ratings=1 violations=4 uncorrected=0 refused_retail=2",
        ]
    );
    // The rest of the book is the sequel's, unchanged.
    let before = book_facts(&sequel_book());
    for fact in facts.iter().filter(|f| !changed.contains(&f.as_str())) {
        assert!(
            before.contains(fact),
            "changed by the credit sequel: {fact}"
        );
    }
}

#[test]
fn the_transfer_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-transfers.msgpack.hex", &transfer_batch());
    assert_eq!(
        batch_facts(&decoded),
        ["entries 236..=241 (6), from T0+54000000 to T0+54005000"]
    );
}

#[test]
fn the_transfer_sequel_does_what_its_comments_say() {
    let mut book = credit_book();
    let applied = apply(&mut book, &transfer_sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 236: transfer out T1 D1 to chengdu 20000000: accepted duplicate=false deposit=30000000",
            "seq 237: transfer out T1 D1 to chengdu 20000000: accepted duplicate=true deposit=30000000",
            "seq 238: transfer out T2 D1 to chengdu 30000000: transfer_exceeds_free free=29050000 duplicate=false deposit=30000000",
            "seq 239: transfer in T3 D5 from chengdu 5000000: accepted duplicate=false deposit=15000000",
            "seq 240: transfer in T3 D5 from chengdu 5000000: accepted duplicate=true deposit=15000000",
            "seq 241: transfer out T4 D9 to chengdu 1000000: unknown_dealer duplicate=false deposit=0",
        ]
    );
}

#[test]
fn the_transfer_snapshot_is_pinned() {
    let (decoded, facts) = pinned_snapshot("snapshot-transfers.msgpack.hex", &transfer_book());
    let changed = facts_of(&facts, &["last_seq", "D1 ", "D5 "]);
    assert_eq!(
        changed,
        [
            "last_seq=241 last_now=T0+54005000",
            "D1 Active deposit=30000000 exposure=9500000 receipts=143 linked=[] credit limit=1000000 drawn=1200000",
            "D5 Active deposit=15000000 exposure=0 receipts=1 linked=[]",
            "D1 standing score=Some(4.5) ratings=1 violations=4 uncorrected=0 refused_retail=2",
        ]
    );
    // The rest of the book is the credit sequel's, unchanged.
    let before = book_facts(&credit_book());
    for fact in facts.iter().filter(|f| !changed.contains(&f.as_str())) {
        assert!(
            before.contains(fact),
            "changed by the transfer sequel: {fact}"
        );
    }
    // Its transfers are remembered, so a repeat is answered as first decided.
    let kept: Vec<String> = decoded
        .book()
        .transfers()
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {:?}",
                t.direction.as_str(),
                t.id,
                t.amount,
                t.outcome
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            "out T1 20000000 Accepted",
            "out T2 30000000 Refused(ExceedsFree { free: 29050000 })",
            "out T4 1000000 Refused(UnknownDealer)",
            "in T3 5000000 Accepted",
        ]
    );
}

#[test]
fn the_warnings_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-warnings.msgpack.hex", &warnings_batch());
    assert_eq!(
        batch_facts(&decoded),
        ["entries 242..=250 (9), from T0+57600000 to T0+64807000"]
    );
}

#[test]
fn the_warnings_sequel_does_what_its_comments_say() {
    let mut book = transfer_book();
    let applied = apply(&mut book, &warnings_sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 242: D5 noted beijing W3 corrected=false",
            "seq 244: D5 noted chengdu W1 corrected=false",
            "seq 245: D5 noted chengdu W1 corrected=true",
            "seq 246: D5 noted xian W2 corrected=false",
            "seq 247: alliance refused invalid",
            "seq 248: alliance refused unknown_dealer",
            "seq 250: L2 D1 overdue",
            "seq 250: D5 expelled by W11",
        ]
    );
    // The repeated note changed nothing and said nothing.
    assert_eq!(
        applied
            .iter()
            .find(|(seq, _)| *seq == 243)
            .map(|(_, e)| e.len()),
        Some(0)
    );
}

#[test]
fn the_warnings_snapshot_is_pinned() {
    let (_, facts) = pinned_snapshot("snapshot-warnings.msgpack.hex", &warnings_book());
    // What the warnings sequel changed, against the transfer sequel's book: every other
    // fact is the same.
    let before = book_facts(&transfer_book());
    let (new, gone) = new_and_gone(&facts, &before);
    assert_eq!(
        new,
        [
            "last_seq=250 last_now=T0+64807000",
            "D5 Expelled deposit=15000000 exposure=0 receipts=1 linked=[]",
            "L2 A15 D1 principal=1200000 due=T0+46807000 repaid=None overdue=true",
            "C5 D2 overdue warning=Some(\"W10\")",
            "C6 D5 overdue warning=Some(\"W11\")",
            "W9 D1 late_repayment corrected=false",
            "W10 D2 overdue_complaint corrected=false",
            "W11 D5 overdue_complaint corrected=false",
            "D5 remote beijing W3 issued=T0+54000003 corrected=None",
            "D5 remote chengdu W1 issued=T0+54000001 corrected=Some(57602500)",
            "D5 remote xian W2 issued=T0+54000002 corrected=None",
            "D1 standing score=Some(4.5) ratings=1 violations=5 uncorrected=1 refused_retail=2",
            "D2 standing score=Some(4.5) ratings=1 violations=2 uncorrected=2",
            "D5 standing score=None ratings=0 violations=1 uncorrected=3",
        ]
    );
    assert_eq!(
        gone,
        [
            "last_seq=241 last_now=T0+54005000",
            "D5 Active deposit=15000000 exposure=0 receipts=1 linked=[]",
            "L2 A15 D1 principal=1200000 due=T0+46807000 repaid=None overdue=false",
            "C5 D2 open warning=None",
            "D1 standing score=Some(4.5) ratings=1 violations=4 uncorrected=0 refused_retail=2",
            "D2 standing score=Some(4.5) ratings=1 violations=1 uncorrected=1",
        ]
    );
}

#[test]
fn the_handfrom_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-handfrom.msgpack.hex", &handfrom_batch());
    assert_eq!(
        batch_facts(&decoded),
        ["entries 251..=258 (8), from T0+68400000 to T0+68407000"]
    );
}

#[test]
fn the_handfrom_sequel_does_what_its_comments_say() {
    let mut book = warnings_book();
    let applied = apply(&mut book, &handfrom_sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 251: A15 handed off as I7 duplicate=false",
            "seq 251: I7 from beijing A15 (Volkswagen Sagitar 2021)",
            "seq 252: A15 handed off as I7 duplicate=true",
            "seq 253: A15 handed off as I8 duplicate=false",
            "seq 253: I8 from chengdu A15 (Volkswagen Sagitar 2021)",
            "seq 254: A2 handed off as I9 duplicate=false",
            "seq 254: I9 from xian A2 (Volkswagen Sagitar 2021)",
            "seq 255: alliance refused invalid",
            "seq 256: alliance refused unknown_dealer",
            "seq 257: alliance refused invalid",
        ]
    );
    // The repeat said only that; the retail sale of I7 went through and warned no one,
    // though this book's A15 has L2 open.
    let events = |seq| events_at(&applied, seq);
    assert_eq!(events(252).len(), 1);
    let retail = events(258);
    assert!(
        matches!(&retail[..], [Event::Alliance(AllianceEvent::ItemChanged(i))] if i.id == ItemId(7)),
        "{retail:?}"
    );
}

#[test]
fn the_handfrom_snapshot_is_pinned() {
    let (decoded, facts) = pinned_snapshot("snapshot-handfrom.msgpack.hex", &handfrom_book());
    // This book's A2 and A15 keep their own items; the other markets' are filed apart.
    let alliance = decoded.alliance();
    assert_eq!(
        alliance.item_for_auction(LotId(15)).map(|i| i.id),
        None,
        "this book's A15 was never handed off"
    );
    assert_eq!(
        alliance.item_for_auction(LotId(2)).map(|i| i.id),
        Some(ItemId(2))
    );
    assert_eq!(
        alliance.item_from("beijing", LotId(15)).map(|i| i.id),
        Some(ItemId(7))
    );
    // What the hand-off sequel changed, against the warnings sequel's book: every other
    // fact is the same.
    let before = book_facts(&warnings_book());
    let (new, gone) = new_and_gone(&facts, &before);
    assert_eq!(
        new,
        [
            "last_seq=258 last_now=T0+68407000",
            "I7 A15 D1 retailed certified=true reasons=[] rated=false from beijing",
            "I8 A15 D3 in_stock certified=false reasons=[\"fire\"] rated=false from chengdu",
            "I9 A2 D2 in_stock certified=false reasons=[\"inspection_mismatch\"] rated=false from xian",
        ]
    );
    assert_eq!(gone, ["last_seq=250 last_now=T0+64807000"]);
}

#[test]
fn the_rloans_batch_is_pinned() {
    let decoded = pinned_batch("journal-batch-rloans.msgpack.hex", &rloans_batch());
    assert_eq!(
        batch_facts(&decoded),
        ["entries 259..=273 (15), from T0+72000000 to T0+72014000"]
    );
}

#[test]
fn the_rloans_sequel_does_what_its_comments_say() {
    let mut book = handfrom_book();
    let applied = apply(&mut book, &rloans_sequel());
    assert_eq!(
        story_facts(&applied),
        [
            "seq 259: A16 handed off as I10 duplicate=false",
            "seq 259: I10 from beijing A16 (Volkswagen Sagitar 2021)",
            "seq 260: beijing A16 L2 D1 noted repaid=false",
            "seq 262: chengdu A20 L1 D3 noted repaid=false",
            "seq 263: A20 handed off as I11 duplicate=false",
            "seq 263: I11 from chengdu A20 (Volkswagen Sagitar 2021)",
            "seq 264: xian A2 L5 D2 noted repaid=false",
            "seq 265: xian A2 L5 D2 noted repaid=true",
            "seq 266: alliance refused invalid",
            "seq 267: alliance refused unknown_dealer",
            "seq 268: alliance refused record_mismatch",
            "seq 271: L2 D1 repaid for A15",
            "seq 272: beijing A16 L2 D1 noted repaid=true",
        ]
    );
    // The repeated note and the stale one after the repayment changed nothing and said
    // nothing.
    let events = |seq| events_at(&applied, seq);
    let first = rloans_sequel().first().map_or(0, |e| e.seq);
    assert_eq!(events(first + 2).len(), 0);
    assert_eq!(events(first + 14).len(), 0);
    // What each repayment corrected: this book's L2 its lateness (W9) alone, Beijing's L2
    // the sale out of trust of Beijing's car (W12).
    let corrected = |seq| {
        events(seq)
            .iter()
            .filter_map(|e| match e {
                Event::Alliance(AllianceEvent::WarningChanged(w)) if w.corrected() => {
                    Some(format!("{} {} {}", w.id, w.dealer, w.cause.as_str()))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(corrected(first + 12), ["W9 D1 late_repayment"]);
    assert_eq!(corrected(first + 13), ["W12 D1 sold_out_of_trust"]);
}

#[test]
fn the_rloans_snapshot_is_pinned() {
    let (decoded, facts) = pinned_snapshot("snapshot-rloans.msgpack.hex", &rloans_book());
    let alliance = decoded.alliance();
    assert_eq!(
        alliance.item_from("chengdu", LotId(20)).map(|i| i.id),
        Some(ItemId(11)),
        "the car after its loan's note"
    );
    // What the remote loans sequel changed, against the hand-off sequel's book: every
    // other fact is the same.
    let before = book_facts(&handfrom_book());
    let (new, gone) = new_and_gone(&facts, &before);
    assert_eq!(
        new,
        [
            "last_seq=273 last_now=T0+72014000",
            "D1 Active deposit=30000000 exposure=9500000 receipts=143 linked=[] credit limit=1000000 drawn=0",
            "L2 A15 D1 principal=1200000 due=T0+46807000 repaid=Some(72012000) overdue=true",
            "I9 A2 D2 retailed certified=false reasons=[\"inspection_mismatch\"] rated=false from xian",
            "I10 A16 D1 retailed certified=true reasons=[] rated=false from beijing",
            "I11 A20 D3 in_stock certified=true reasons=[] rated=false from chengdu",
            "W9 D1 late_repayment corrected=true",
            "W12 D1 sold_out_of_trust corrected=true",
            "remote loan beijing A16 L2 D1 repaid=true",
            "remote loan chengdu A20 L1 D3 repaid=false",
            "remote loan xian A2 L5 D2 repaid=true",
            "D1 standing score=Some(4.5) ratings=1 violations=6 uncorrected=0 refused_retail=2",
        ]
    );
    assert_eq!(
        gone,
        [
            "last_seq=258 last_now=T0+68407000",
            "D1 Active deposit=30000000 exposure=9500000 receipts=143 linked=[] credit limit=1000000 drawn=1200000",
            "L2 A15 D1 principal=1200000 due=T0+46807000 repaid=None overdue=true",
            "I9 A2 D2 in_stock certified=false reasons=[\"inspection_mismatch\"] rated=false from xian",
            "W9 D1 late_repayment corrected=false",
            "D1 standing score=Some(4.5) ratings=1 violations=5 uncorrected=1 refused_retail=2",
        ]
    );
}
