//! # cryptic-call: the command-line client, as a library
//!
//! ```text
//!  mic -> Opus -> [ media: RTP -> SRTP ] -> ICE socket -> peer      (media)
//!  client <- WebSocket/mTLS -> signaling server                      (call set-up)
//! ```
//!
//! Today this holds [`media`], the sans-IO media session of a call (RTP and
//! RTCP over SRTP with the adaptive jitter buffer), and [`history`], the
//! call history in SQLite. The CLI, its demo and
//! the glue to ICE, signaling and audio are the subject of the client issue
//! and are not built yet.

pub mod call;
pub mod demo;
pub mod history;
pub mod media;
