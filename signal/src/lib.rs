//! # cryptic-signal: setting up calls without trusting the server
//!
//! ```text
//!  client A --WebSocket/mTLS--> [ signaling server ] --WebSocket/mTLS--> client B
//!            sealed invite / answer / candidates (end-to-end encrypted)
//! ```
//!
//! **Not implemented yet.** This crate is a placeholder laid down with the
//! workspace; the wire protocol, the sealed payloads, the call state machine
//! and the server are the subject of a later issue. It exports nothing.
