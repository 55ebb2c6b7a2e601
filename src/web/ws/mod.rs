//! The live wall's WebSocket (`GET /ws`, protocol in docs/PROTOCOL.md): `protocol` (messages
//! and their checks), `session` (one connection's logic, sans I/O), `adapt` (the adaptation
//! policy), `activity` (which activity events a connection gets), `audio` (a client's audio
//! of a camera), `replay` (cameras played back from the replay ring), `upgrade` (the upgrade and the socket loop). Reads the hub; never writes to
//! it.

pub mod activity;
pub mod adapt;
pub mod audio;
pub mod meter;
pub mod protocol;
mod replay;
pub mod session;
mod sub;
pub mod upgrade;
pub mod video;
