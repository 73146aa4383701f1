//! # cryptic-call: the command-line client, as a library
//!
//! ```text
//!  mic -> Opus -> [ media: RTP -> SRTP ] -> ICE socket -> peer      (media)
//!  client <- WebSocket/mTLS -> signaling server                      (call set-up)
//! ```
//!
//! * [`call`]: one call end to end for one user (signaling with sealed
//!   payloads, ICE, DTLS bound to the end-to-end fingerprint, SRTP media
//!   with Opus and the jitter buffer, the server-relay fallback);
//! * [`media`]: the sans-IO media session (RTP/RTCP over SRTP, padding to
//!   fixed sizes, RTT and loss from RTCP);
//! * [`demo`]: the self-contained demo call;
//! * [`shell`]: the interactive mode;
//! * [`history`]: the call history in SQLite.

pub mod call;
pub mod demo;
pub mod history;
pub mod media;
pub mod shell;
