//! The HTTP API's pure parts: request validation and bearer tokens.
//!
//! Owns the rules a request must meet before it becomes a command, and how tokens are made
//! and stored. No I/O and no routing here: the server's handlers call these.
//!
//! - [`validate`]: `POST /v1/listings` bodies → a `Listing`, or every bad field at once.
//! - [`token`]: 256-bit bearer tokens and their SHA-256 digests.

pub mod token;
pub mod validate;
