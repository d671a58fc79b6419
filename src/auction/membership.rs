//! Who may pre-bid: the book asks, the market answers from the alliance.
//!
//! The book knows a dealer's status, not its alliance record, so the condition of a
//! member's benefits (good standing) comes in as an argument of the step, like time and
//! order: the market passes the alliance's answer, and the book stays free of it.

use super::book::Dealer;

/// Whether a dealer is in the alliance's good standing, as of the step being applied.
pub trait Membership {
    /// The dealer's standing now.
    fn in_good_standing(&self, dealer: &Dealer) -> bool;
}

/// The book alone (its own tests, a market without an alliance record for the dealer):
/// an active dealer is in good standing, as the alliance says of a member it has no
/// record of.
pub struct ActiveIsMember;

impl Membership for ActiveIsMember {
    fn in_good_standing(&self, dealer: &Dealer) -> bool {
        dealer.status == crate::vocab::DealerStatus::Active
    }
}
