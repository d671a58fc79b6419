//! gavel-fuzz: a fuzz harness for gavel's decoders that runs on the stable toolchain.
//!
//! Every decoder that reads bytes from outside is a target (`targets`): the WebSocket
//! requests in JSON and MessagePack, the HTTP bodies and query strings through the
//! handlers' checks, the file journal's segments and snapshots through recovery, and the
//! Redis journal's entries and snapshots as recovery decodes them. A campaign
//! (`campaign`) runs generated and mutated inputs (`mutate`, driven by `rng`, seeded from
//! the golden fixtures by `seeds`) one at a time, each under `catch_unwind`, with a time
//! bound and a bound on the live memory it may add (measured by `alloc`).
//!
//! No coverage feedback (that needs nightly's sanitizer coverage): depth comes from the
//! seeds, dictionaries taken from them, structure-aware generation, and fix-ups that let
//! mutated bytes through checksums.

pub mod alloc;
pub mod campaign;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;
