//! The durable form of the market: how a [`Command`] is written in the journal, how the
//! [`Rules`] are written inside `Configure`, and how a [`Market`] is written as a
//! snapshot.
//!
//! Journals and snapshots outlive the code that wrote them, so these shapes do not follow
//! the types' layout. They are the shapes earlier builds wrote when the market was a single
//! book holding the alliance, and they stay byte for byte the same (the golden test
//! `tests/golden.rs` pins them):
//!
//! - a command is one enum named by its variant: `Configure`, each auction command by its
//!   own name (`PlaceBid`, `Tick`, …), or `Alliance`; MessagePack writes the name, not an
//!   index, so the auction's commands can sit in their own enum and still be written flat;
//! - the rules are one struct: the auction's fields in order, then `alliance`;
//! - a snapshot is one struct: `rules`, `last_seq`, `last_now`, `pruned_at`, `lots`,
//!   `dealers`, `sellers`, `services`, `alliance`, `loans` once there is one, and
//!   `transfers` once there is one (with `loans` then written even when empty, since the
//!   snapshot is positional).
//!
//! Fields added later are read with a default when absent, so older journals and snapshots
//! still load.

use super::{Command, Market, Rules};
use crate::alliance::{Alliance, AllianceRules};
use crate::auction::{
    self, Book, BookParts, Dealer, Increments, Loan, Lot, Seller, Service, Transfers,
};
use crate::vocab::FIRST_RULES_VERSION;
use serde::de::{self, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Every command's name, in the order of the single enum the journal was first written
/// with (a journal that names commands by index, which none does, would use this order).
const COMMANDS: &[&str] = &[
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
    "Alliance",
    "SetDealerLinks",
    "SetCreditLimit",
    "Finance",
    "Repay",
    "TransferOut",
    "TransferIn",
];

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Configure(rules) => s.serialize_newtype_variant("Command", 0, "Configure", rules),
            // The auction's own derive writes `{name: fields}` under the same names.
            Self::Auction(command) => command.serialize(s),
            Self::Alliance(command) => {
                s.serialize_newtype_variant("Command", 13, "Alliance", command)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_enum("Command", COMMANDS, CommandVisitor)
    }
}

struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Command, A::Error> {
        let (name, variant): (Name, _) = data.variant()?;
        match name.0 {
            "Configure" => variant.newtype_variant().map(Command::Configure),
            "Alliance" => variant.newtype_variant().map(Command::Alliance),
            // The name is read already; the auction's derive reads it again from here.
            name => auction::Command::deserialize(Named { name, variant }).map(Command::Auction),
        }
    }
}

/// A command's name, as one of [`COMMANDS`] (by name, or by index in that list).
struct Name(&'static str);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = Name;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command's name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                COMMANDS
                    .iter()
                    .find(|&&n| n == v)
                    .map(|&n| Name(n))
                    .ok_or_else(|| E::unknown_variant(v, COMMANDS))
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Name, E> {
                let v = std::str::from_utf8(v).map_err(|_| E::custom("command name not UTF-8"))?;
                self.visit_str(v)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Name, E> {
                usize::try_from(v)
                    .ok()
                    .and_then(|i| COMMANDS.get(i))
                    .map(|&n| Name(n))
                    .ok_or_else(|| E::custom(format!("no command number {v}")))
            }
        }

        d.deserialize_identifier(NameVisitor)
    }
}

/// An enum whose variant name was read already: hands the name and the rest of the input
/// to a derived `Deserialize`, as if it were reading the enum from the start.
struct Named<V> {
    name: &'static str,
    variant: V,
}

impl<'de, A: VariantAccess<'de>> Deserializer<'de> for Named<A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de, A: VariantAccess<'de>> EnumAccess<'de> for Named<A> {
    type Error = A::Error;
    type Variant = A;

    fn variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, A), A::Error> {
        let name = seed.deserialize(self.name.into_deserializer())?;
        Ok((name, self.variant))
    }
}

/// The rules as one struct: the auction's fields, then the alliance's windows.
struct RulesShape<'a>(&'a auction::Rules, &'a AllianceRules);

impl Serialize for RulesShape<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Self(a, alliance) = self;
        // Rules of the first version are written without it, byte for byte as before
        // versions existed; a later version adds it as a thirteenth field. The loan term
        // is written (a fourteenth, after the version) only when it is not the default,
        // so rules written before credit lines existed keep their bytes.
        let credit = a.credit_due_ms != auction::default_credit_due_ms();
        let versioned = a.version != FIRST_RULES_VERSION || credit;
        let fields = 12 + usize::from(versioned) + usize::from(credit);
        let mut r = s.serialize_struct("Rules", fields)?;
        r.serialize_field("default_duration_ms", &a.default_duration_ms)?;
        r.serialize_field("min_duration_ms", &a.min_duration_ms)?;
        r.serialize_field("max_duration_ms", &a.max_duration_ms)?;
        r.serialize_field("extend_window_ms", &a.extend_window_ms)?;
        r.serialize_field("extend_by_ms", &a.extend_by_ms)?;
        r.serialize_field("max_extensions", &a.max_extensions)?;
        r.serialize_field("decision_window_ms", &a.decision_window_ms)?;
        r.serialize_field("leverage", &a.leverage)?;
        r.serialize_field("increments", &a.increments)?;
        r.serialize_field("outage_grace_ms", &a.outage_grace_ms)?;
        r.serialize_field("bid_id_retention_ms", &a.bid_id_retention_ms)?;
        r.serialize_field("alliance", alliance)?;
        if versioned {
            r.serialize_field("version", &a.version)?;
        }
        if credit {
            r.serialize_field("credit_due_ms", &a.credit_due_ms)?;
        }
        r.end()
    }
}

/// The rules as read: the same fields as [`RulesShape`] writes.
#[derive(Deserialize)]
struct RulesRecord {
    default_duration_ms: u64,
    min_duration_ms: u64,
    max_duration_ms: u64,
    extend_window_ms: u64,
    extend_by_ms: u64,
    max_extensions: u32,
    decision_window_ms: u64,
    leverage: u64,
    increments: Increments,
    outage_grace_ms: u64,
    /// Absent from rules journaled before `bid_id`s were forgotten.
    #[serde(default = "auction::default_bid_id_retention_ms")]
    bid_id_retention_ms: u64,
    /// Absent from rules journaled before the alliance existed.
    #[serde(default)]
    alliance: AllianceRules,
    /// Absent from rules of the first version (see `vocab::RULES_VERSION`).
    #[serde(default = "auction::first_version")]
    version: u32,
    /// Absent while the loan term is its default (and before credit lines existed).
    #[serde(default = "auction::default_credit_due_ms")]
    credit_due_ms: u64,
}

impl Serialize for Rules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RulesShape(&self.auction, &self.alliance).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RulesRecord::deserialize(d)?;
        Ok(Self {
            auction: auction::Rules {
                default_duration_ms: r.default_duration_ms,
                min_duration_ms: r.min_duration_ms,
                max_duration_ms: r.max_duration_ms,
                extend_window_ms: r.extend_window_ms,
                extend_by_ms: r.extend_by_ms,
                max_extensions: r.max_extensions,
                decision_window_ms: r.decision_window_ms,
                leverage: r.leverage,
                increments: r.increments,
                outage_grace_ms: r.outage_grace_ms,
                bid_id_retention_ms: r.bid_id_retention_ms,
                version: r.version,
                credit_due_ms: r.credit_due_ms,
            },
            alliance: AllianceRules {
                version: r.version,
                ..r.alliance
            },
        })
    }
}

impl Serialize for Market {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = &self.book;
        // Loans come after the alliance, and only once there is one, so a market without
        // credit is written as before credit lines existed; transfers after the loans,
        // likewise. The snapshot is positional, so transfers need the loans' place
        // written before them, empty or not.
        let transfers = !b.transfers().is_empty();
        let loans = transfers || !b.loans().is_empty();
        let fields = 9 + usize::from(loans) + usize::from(transfers);
        let mut m = s.serialize_struct("Book", fields)?;
        m.serialize_field("rules", &RulesShape(b.rules(), &self.alliance_rules))?;
        m.serialize_field("last_seq", &b.last_seq())?;
        m.serialize_field("last_now", &b.last_now())?;
        m.serialize_field("pruned_at", &b.pruned_at())?;
        m.serialize_field("lots", b.lots())?;
        m.serialize_field("dealers", b.dealers())?;
        m.serialize_field("sellers", b.sellers())?;
        m.serialize_field("services", b.services())?;
        m.serialize_field("alliance", &self.alliance)?;
        if loans {
            m.serialize_field("loans", b.loans())?;
        }
        if transfers {
            m.serialize_field("transfers", b.transfers())?;
        }
        m.end()
    }
}

/// A snapshot as read: the same fields as `Market`'s `Serialize` writes.
#[derive(Deserialize)]
struct MarketRecord {
    rules: Rules,
    last_seq: u64,
    last_now: u64,
    /// Absent from snapshots written before receipts were pruned.
    #[serde(default)]
    pruned_at: u64,
    lots: Vec<Lot>,
    dealers: Vec<Dealer>,
    sellers: Vec<Seller>,
    services: Vec<Service>,
    /// Absent from snapshots written before the alliance existed.
    #[serde(default)]
    alliance: Alliance,
    /// Absent from snapshots written before credit lines existed, or without a loan.
    #[serde(default)]
    loans: Vec<Loan>,
    /// Absent from snapshots written before transfers existed, or without one.
    #[serde(default)]
    transfers: Transfers,
}

impl<'de> Deserialize<'de> for Market {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = MarketRecord::deserialize(d)?;
        Ok(Self {
            book: Book::from(BookParts {
                rules: m.rules.auction,
                last_seq: m.last_seq,
                last_now: m.last_now,
                pruned_at: m.pruned_at,
                lots: m.lots,
                dealers: m.dealers,
                sellers: m.sellers,
                services: m.services,
                loans: m.loans,
                transfers: m.transfers,
            }),
            alliance: m.alliance,
            alliance_rules: m.rules.alliance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alliance::AllianceCommand;
    use crate::vocab::{DealerId, LotId};

    fn round_trip(c: &Command) -> Command {
        let named = rmp_serde::to_vec_named(c).expect("encodes");
        let back: Command = rmp_serde::from_slice(&named).expect("decodes");
        let positional = rmp_serde::to_vec(c).expect("encodes");
        let again: Command = rmp_serde::from_slice(&positional).expect("decodes");
        assert_eq!(back, again);
        back
    }

    #[test]
    fn a_command_is_written_flat_by_its_own_name_and_read_back() {
        let bid = Command::Auction(auction::Command::PlaceBid {
            dealer: DealerId(3),
            lot: LotId(7),
            amount: 100,
            max: None,
            bid_id: "b".into(),
        });
        let bytes = rmp_serde::to_vec_named(&bid).expect("encodes");
        // {"PlaceBid": {...}}: a map of one entry keyed by the variant's name.
        assert_eq!(&bytes[..10], b"\x81\xa8PlaceBid");
        assert_eq!(round_trip(&bid), bid);
        let tick = Command::Auction(auction::Command::Tick);
        assert_eq!(
            rmp_serde::to_vec_named(&tick).expect("encodes"),
            b"\xa4Tick"
        );
        assert_eq!(round_trip(&tick), tick);
        for c in [
            Command::Configure(Box::default()),
            Command::Auction(auction::Command::Resume),
            Command::Alliance(AllianceCommand::Refund {
                item: crate::alliance::ItemId(2),
            }),
        ] {
            assert_eq!(round_trip(&c), c);
        }
        let json = serde_json::to_string(&bid).expect("json");
        assert!(json.starts_with("{\"PlaceBid\":{"), "{json}");
        assert_eq!(
            serde_json::from_str::<Command>(&json).expect("json back"),
            bid
        );
    }

    #[test]
    fn a_hand_off_from_another_market_is_journaled_by_name_and_read_back() {
        let inspection = crate::alliance::tests::clean();
        let c = Command::Alliance(AllianceCommand::HandOffFrom {
            market: "beijing".into(),
            record: Box::new(crate::alliance::HandOffRecord {
                auction: LotId(3),
                vin: crate::alliance::tests::VIN.into(),
                seller: crate::vocab::SellerId(1),
                dealer: DealerId(2),
                price: 5_000_000,
                inspection_sha256: crate::alliance::inspection_sha256(&inspection),
                inspection,
            }),
            vehicle: Box::new(crate::alliance::tests::car()),
        });
        let named = rmp_serde::to_vec_named(&c).expect("encodes");
        // {"Alliance": {"HandOffFrom": {...}}}
        assert!(named.starts_with(b"\x81\xa8Alliance\x81\xabHandOffFrom"));
        assert_eq!(round_trip(&c), c);
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(
            serde_json::from_str::<Command>(&json).expect("json back"),
            c
        );
    }

    #[test]
    fn rules_of_the_first_version_are_written_as_before_versions_and_later_ones_with_it() {
        let first = Rules::first();
        let named = rmp_serde::to_vec_named(&first).expect("encodes");
        assert!(
            !named.windows(7).any(|w| w == b"version"),
            "v1 writes no version"
        );
        let back: Rules = rmp_serde::from_slice(&named).expect("decodes");
        assert_eq!(back, first);
        assert_eq!(back.alliance.version, FIRST_RULES_VERSION);
        let current = Rules::default();
        assert_eq!(current.auction.version, crate::vocab::RULES_VERSION);
        for bytes in [
            rmp_serde::to_vec_named(&current).expect("encodes"),
            rmp_serde::to_vec(&current).expect("encodes"),
        ] {
            let back: Rules = rmp_serde::from_slice(&bytes).expect("decodes");
            assert_eq!(back, current);
            assert_eq!(back.alliance.version, crate::vocab::RULES_VERSION);
        }
    }

    #[test]
    fn a_command_named_by_its_old_index_or_an_unknown_name() {
        // Index 11 of the single enum the journal was first written with is `Tick`.
        let by_index: Command = rmp_serde::from_slice(b"\x0b").expect("an index decodes");
        assert_eq!(by_index, Command::Auction(auction::Command::Tick));
        let unknown = rmp_serde::from_slice::<Command>(b"\xa4Nope").unwrap_err();
        assert!(unknown.to_string().contains("Nope"), "{unknown}");
    }

    #[test]
    fn transfers_are_written_by_name_and_kept_in_the_snapshot_after_the_loans() {
        let out = Command::Auction(auction::Command::TransferOut {
            transfer: "t-1".into(),
            dealer: DealerId(1),
            to: "chengdu".into(),
            amount: 5,
        });
        let bytes = rmp_serde::to_vec_named(&out).expect("encodes");
        assert_eq!(&bytes[..13], b"\x81\xabTransferOut");
        assert_eq!(round_trip(&out), out);
        let r#in = Command::Auction(auction::Command::TransferIn {
            transfer: "t-1".into(),
            dealer: DealerId(1),
            from: "beijing".into(),
            amount: 5,
        });
        assert_eq!(round_trip(&r#in), r#in);

        // A market with a transfer and no loan: the snapshot is positional, so the loans'
        // place is written (empty) before the transfers.
        let mut market = Market::default();
        market.apply(
            1,
            0,
            Command::Auction(auction::Command::RegisterDealer {
                name: "d".into(),
                deposit: 100,
                linked_sellers: Vec::new(),
                token_hash: [0; 32],
            }),
        );
        market.apply(2, 0, r#in);
        assert_eq!(market.book().transfers().len(), 1);
        let mut bytes = Vec::new();
        rmp_serde::encode::write(&mut bytes, &market).expect("encodes");
        assert_eq!(bytes[0], 0x90 + 11, "eleven fields: loans, then transfers");
        let back: Market = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, market);
        assert_eq!(
            back.book().dealer(DealerId(1)).map(|d| d.deposit),
            Some(105)
        );
        // Without a transfer (or a loan) it is written as before either existed.
        let mut bytes = Vec::new();
        rmp_serde::encode::write(&mut bytes, &Market::default()).expect("encodes");
        assert_eq!(bytes[0], 0x90 + 9);
    }
}
