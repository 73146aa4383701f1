//! # cryptic-call: the command-line client
//!
//! ```text
//!  mic -> Opus -> RTP -> SRTP -> ICE socket -> peer      (media)
//!  client <- WebSocket/mTLS -> signaling server          (call set-up)
//! ```
//!
//! **Not implemented yet.** The client, its `demo`, `call`, `listen` and
//! `server` commands are the subject of the last issue; until it lands this
//! binary only says so and exits with an error.

fn main() -> std::process::ExitCode {
    eprintln!(
        "cryptic-call: the calling client is not built yet (see README.md, \"Status\"); \
         nothing to run"
    );
    std::process::ExitCode::FAILURE
}
