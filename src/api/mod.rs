//! The HTTP API: routes, request validation and bearer tokens.
//!
//! Owns the rules a request must meet before it becomes a command, and how tokens are made
//! and stored. No I/O and no routing here: the server's handlers call these.
//!
//! - [`validate`]: `POST /v1/listings` bodies → a `Listing`, or every bad field at once.
//! - [`token`]: 256-bit bearer tokens and their SHA-256 digests.
//! - [`routes`]: the HTTP handlers (sellers, dealers, admin, health, metrics).
//! - [`alliance`]: the alliance's HTTP handlers (inventory, returns, complaints, ratings,
//!   standing).

pub mod alliance;
pub mod routes;
pub mod token;
pub mod validate;
