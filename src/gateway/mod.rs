//! The live gateway: WebSocket sessions, fan-out, and the wire protocol.

pub mod outbound;
