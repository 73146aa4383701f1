//! # cryptic-call: the command-line client, as a library
//!
//! ```text
//!  mic -> Opus -> [ media: RTP -> SRTP ] -> ICE socket -> peer      (media)
//!  client <- WebSocket/mTLS -> signaling server                      (call set-up)
//! ```
//!
//! * [`session`]: **the call**, sans-IO: the call machine, ICE, DTLS bound
//!   to the end-to-end fingerprint, SRTP media, the choice between the ICE
//!   pair and the server relay, the SAS, outcomes, glare;
//! * [`call`]: the driver that runs a session on a UDP socket, the
//!   signaling connection and the audio devices;
//! * [`dtls`]: DTLS behind a sans-IO trait, and the adapter that runs the
//!   `dtls` crate's handshake behind it;
//! * [`media`]: the sans-IO media session (RTP/RTCP over SRTP, padding to
//!   fixed sizes, RTT and loss from RTCP);
//! * [`demo`]: the self-contained demo call;
//! * [`shell`]: the interactive mode;
//! * [`history`]: the call history in SQLite;
//! * [`screen`] and [`term`]: what the user reads (status line, prompt)
//!   and the shell's line editor;
//! * [`config`]: the profile directory and its `config.toml`;
//! * [`link`]: the signaling connection kept up during a call (backoff,
//!   several server addresses);
//! * [`devices`]: the device table and the check before ringing;
//! * [`logging`]: `-v`, the log file, the server's log format.

pub mod call;
pub mod config;
pub mod demo;
pub mod devices;
pub mod dtls;
pub mod error;
pub mod history;
pub mod link;
pub mod logging;
pub mod media;
pub mod screen;
pub mod session;
pub mod shell;
pub mod term;
mod voice;

pub use error::Error;
