//! Identifiers of lots, dealers, sellers and service principals, and the macro every kind
//! of id is made with (the alliance makes its own: items, complaints, warnings).
//!
//! Inside the domain an id is a small integer handed out in order (so ids are
//! deterministic under replay and index straight into a `Vec`). On the wire an id is an
//! opaque string: a one-letter kind prefix and the number (`A17`, `D3`, `S5`, `V1`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defines an id type: a `u32` newtype with a one-letter wire prefix, `Display` and a
/// strict `FromStr` (one spelling per id).
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The wire prefix of this kind of id.
            pub const PREFIX: char = $prefix;

            /// Position in a table of this kind (ids start at 1).
            #[allow(dead_code)] // not every kind indexes a table
            pub(crate) fn index(self) -> usize {
                (self.0 as usize).wrapping_sub(1)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = $crate::vocab::ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s
                    .strip_prefix($prefix)
                    .ok_or($crate::vocab::ParseIdError)?;
                // Reject signs, leading zeros and empty digits so each id has one spelling.
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || (digits.len() > 1 && digits.starts_with('0'))
                {
                    return Err($crate::vocab::ParseIdError);
                }
                match digits.parse::<u32>() {
                    Ok(0) | Err(_) => Err($crate::vocab::ParseIdError),
                    Ok(n) => Ok(Self(n)),
                }
            }
        }
    };
}
pub(crate) use id_type;

id_type!(
    /// An auction (one car's lot).
    LotId,
    'A'
);
id_type!(
    /// A dealer of the alliance: a bidder.
    DealerId,
    'D'
);
id_type!(
    /// A private seller.
    SellerId,
    'S'
);
id_type!(
    /// A service principal (the alliance's consumer site).
    ServiceId,
    'V'
);
id_type!(
    /// A loan drawn on a dealer's credit line to pay for one won car.
    LoanId,
    'L'
);

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct ParseIdError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_spellings() {
        assert_eq!(LotId(17).to_string(), "A17");
        assert_eq!("A17".parse::<LotId>(), Ok(LotId(17)));
        for bad in [
            "",
            "A",
            "17",
            "D17",
            "A017",
            "A0",
            "A-1",
            "A+1",
            "A99999999999",
            "A1x",
        ] {
            assert!(bad.parse::<LotId>().is_err(), "{bad:?} parsed");
        }
        assert_eq!("D3".parse::<DealerId>(), Ok(DealerId(3)));
        assert_eq!("S5".parse::<SellerId>(), Ok(SellerId(5)));
        assert_eq!("V1".parse::<ServiceId>(), Ok(ServiceId(1)));
        assert_eq!("L2".parse::<LoanId>(), Ok(LoanId(2)));
    }
}
