//! The HTTP API: routes and request validation.
//!
//! Owns the rules a request must meet before it becomes a command, the HTTP handlers, and
//! how errors are shaped. Who a token is comes from `crate::directory`; what is read comes
//! from `crate::views`; every change goes through the engine.
//!
//! - [`validate`]: `POST /v1/listings` bodies → a `Listing`, or every bad field at once.
//! - [`routes`]: the HTTP handlers (sellers, dealers, admin, health, metrics).
//! - [`alliance`]: the alliance's HTTP handlers (inventory, returns, complaints, ratings,
//!   standing).
//! - [`audit`]: the admin's audit reads over the journal (`/v1/audit/…`).
//! - [`reads`]: the reads the web console needs (time, me, dealers, catalogue, complaints).
//! - [`credit`]: the dealer credit line (limits, financing, repayment, the line's read).
//! - [`market`]: market data for members (prices by car and city, a model's history).
//! - [`transfers`]: the admin's half of a transfer of a dealer's deposit between markets.
//! - `fuzzing` (hidden): bodies and query strings through the handlers' own checks, for
//!   the fuzz harness (`fuzz/`).

pub mod alliance;
pub mod audit;
pub mod credit;
#[doc(hidden)]
pub mod fuzzing;
pub mod market;
pub mod reads;
pub mod routes;
pub mod transfers;
pub mod validate;
