//! # cryptic-audio: from the microphone to Opus and back to the speaker
//!
//! ```text
//!  mic -> cpal -> PCM 48 kHz -> [ Opus encode ] -> RTP payload
//!  RTP payload -> [ Opus decode / PLC / FEC ] -> PCM -> cpal -> speaker
//! ```
//!
//! **Not implemented yet.** This crate is a placeholder laid down with the
//! workspace; Opus, cpal devices and the headless file/tone/null sources and
//! sinks are the subject of a later issue. It exports nothing.
