//! # cryptic-ice: finding a path between two peers
//!
//! ```text
//!  SRTP / DTLS datagrams
//!          |
//!  [ ICE agent ]  <- this crate: STUN checks, TURN relay, RFC 7983 demux
//!          |
//!     UDP socket  -> peer (direct, server-reflexive or TURN relayed)
//! ```
//!
//! **Not implemented yet.** This crate is a placeholder laid down with the
//! workspace; the ICE agent (RFC 8445), its STUN usage (RFC 8489) and the TURN
//! client (RFC 8656) are the subject of a later issue. It exports nothing.
