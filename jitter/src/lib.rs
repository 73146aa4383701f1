//! # cryptic-jitter: smoothing network delay before the decoder
//!
//! ```text
//!  ICE socket -> SRTP unprotect -> [ JitterBuffer ] -> Opus decode / PLC / FEC -> speaker
//! ```
//!
//! [`JitterBuffer`], a sans-IO state machine that never reads the clock.
//!   RTP packets go in with their arrival time ([`JitterBuffer::handle_packet`]);
//!   once per frame period [`JitterBuffer::poll`] hands back exactly one
//!   [`Playout`]: the next frame's payload, a concealment decision (with the
//!   following packet's payload when Opus in-band FEC can rebuild the missing
//!   frame), or silence. Its target delay follows the measured delay variation
//!   (a high quantile of recent transit times plus a margin, leaving out the
//!   packets that a wait for a stalled one already covers), grows at once
//!   when late losses come faster than that quantile allows, and shrinks
//!   slowly, by dropping or inserting frames in silence or by asking the
//!   audio side to time-stretch. (The hand-off of decoded PCM to the sound
//!   card's callback lives at the device edge, in `cryptic-audio`.)
//!
//! [`reference::FixedDelay`] is the classic fixed-delay buffer we measure
//! ourselves against, in the simulation tests and the benchmarks.

mod buffer;
mod config;
mod error;
mod estimate;
pub mod reference;
mod seq;

pub use buffer::{Arrival, Conceal, Frame, JitterBuffer, Packet, Playout, Silence, Stats, Stretch};
pub use config::Config;
pub use error::Error;

#[doc(hidden)]
pub mod fuzzing;
