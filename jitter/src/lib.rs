//! # cryptic-jitter: smoothing network delay before the decoder
//!
//! ```text
//!  SRTP unprotect -> [ jitter buffer ] -> Opus decode / PLC / FEC -> ringbuf -> speaker
//! ```
//!
//! **Not implemented yet.** This crate is a placeholder laid down with the
//! workspace; the adaptive jitter buffer is the subject of a later issue. It
//! exports nothing.
