//! Who a token is: principals, hashed bearer tokens, authentication.
//!
//! Owns the map from a token's digest to the account it belongs to, kept current from the
//! engine's durable publication (an account can authenticate once its registration is
//! durable, and only then), plus the operator's token from configuration. Every edge that
//! takes a token (HTTP, the WebSocket upgrade) asks [`Directory::authenticate`].
//!
//! Must not: keep a token itself (only digests; see [`token`]), decide what a principal
//! may do (the API and the rules do), or depend on a layer above the engine.
//!
//! - [`token`]: 256-bit bearer tokens and their SHA-256 digests.

pub mod token;

use crate::auction::{Command as AuctionCommand, Event as AuctionEvent, TokenHash};
use crate::market::{Command, Event, Market};

use crate::engine::Publisher;
use crate::store::Entry;
use crate::vocab::{DealerId, SellerId, ServiceId};
use dashmap::DashMap;
use std::sync::Arc;

/// Who a bearer token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator.
    Admin,
    /// A dealer: the only principal that may bid.
    Dealer(DealerId),
    /// A private seller.
    Seller(SellerId),
    /// A service principal (the alliance's consumer site).
    Service(ServiceId),
}

impl std::fmt::Display for Principal {
    /// For logs: the account id (`D3`, `S5`, `V1`) or `admin`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Dealer(d) => d.fmt(f),
            Self::Seller(s) => s.fmt(f),
            Self::Service(v) => v.fmt(f),
        }
    }
}

impl Principal {
    /// The dealer behind the principal, if it is one.
    pub fn dealer(self) -> Option<DealerId> {
        match self {
            Self::Dealer(d) => Some(d),
            _ => None,
        }
    }
}

/// Token digest → principal, for every account in the book and the configured operator.
pub struct Directory {
    /// Every durable account. Admin is not here: its token comes from configuration, not
    /// from the journal.
    principals: DashMap<TokenHash, Principal>,
    admin: Option<TokenHash>,
}

impl Directory {
    /// An empty directory (filled by the engine's first `reset`); `admin` is the digest
    /// of the configured operator token, if one is configured.
    pub fn new(admin: Option<TokenHash>) -> Arc<Self> {
        Arc::new(Self {
            principals: DashMap::new(),
            admin,
        })
    }

    /// The principal a presented token belongs to (surrounding white space ignored).
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.principal(&token::hash_token(token.trim()))
    }

    /// The principal a token digest belongs to.
    pub fn principal(&self, digest: &TokenHash) -> Option<Principal> {
        if self.admin.as_ref() == Some(digest) {
            return Some(Principal::Admin);
        }
        self.principals.get(digest).map(|p| *p)
    }

    fn register_from(&self, entry: &Entry, principal: Principal) {
        let Command::Auction(
            AuctionCommand::RegisterSeller { token_hash, .. }
            | AuctionCommand::RegisterDealer { token_hash, .. }
            | AuctionCommand::RegisterService { token_hash, .. },
        ) = &entry.command
        else {
            return;
        };
        let hash = *token_hash;
        self.principals.insert(hash, principal);
    }
}

/// The bearer token of a request (`Authorization: Bearer T`), if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Keeps a [`Directory`] current from the engine's durable publication.
pub struct DirectoryPublisher(pub Arc<Directory>);

impl Publisher for DirectoryPublisher {
    fn reset(&mut self, market: &Market) {
        let book = market.book();
        let d = &self.0;
        d.principals.clear();
        for s in book.sellers() {
            d.principals.insert(s.token_hash, Principal::Seller(s.id));
        }
        for x in book.dealers() {
            d.principals.insert(x.token_hash, Principal::Dealer(x.id));
        }
        for v in book.services() {
            d.principals.insert(v.token_hash, Principal::Service(v.id));
        }
    }

    fn publish(&mut self, entry: &Entry, events: &[Event]) {
        for event in events {
            let principal = match *event {
                Event::Auction(AuctionEvent::SellerRegistered { seller }) => {
                    Principal::Seller(seller)
                }
                Event::Auction(AuctionEvent::DealerRegistered { dealer }) => {
                    Principal::Dealer(dealer)
                }
                Event::Auction(AuctionEvent::ServiceRegistered { service }) => {
                    Principal::Service(service)
                }
                _ => continue,
            };
            self.0.register_from(entry, principal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, command: Command) -> Entry {
        Entry {
            seq,
            now_ms: 1,
            command,
        }
    }

    #[test]
    fn a_token_authenticates_once_its_account_is_published_and_the_admin_from_config() {
        let (admin, admin_hash) = token::new_token();
        let (seller, seller_hash) = token::new_token();
        let dir = Directory::new(Some(admin_hash));
        let mut publisher = DirectoryPublisher(dir.clone());
        publisher.reset(&Market::default());
        assert_eq!(dir.authenticate(&admin), Some(Principal::Admin));
        assert_eq!(
            dir.authenticate(&format!(" {admin}\n")),
            Some(Principal::Admin)
        );
        assert_eq!(dir.authenticate(&seller), None);
        let register = Command::Auction(AuctionCommand::RegisterSeller {
            name: "s".into(),
            token_hash: seller_hash,
        });
        publisher.publish(
            &entry(1, register),
            &[Event::Auction(AuctionEvent::SellerRegistered {
                seller: SellerId(1),
            })],
        );
        assert_eq!(
            dir.authenticate(&seller),
            Some(Principal::Seller(SellerId(1)))
        );
        assert_eq!(dir.authenticate(""), None);
        assert_eq!(dir.authenticate("not a token"), None);
    }

    #[test]
    fn without_a_configured_admin_no_token_is_admin() {
        let dir = Directory::new(None);
        assert_eq!(dir.authenticate(""), None);
        assert_eq!(dir.principal(&token::hash_token("")), None);
    }
}
