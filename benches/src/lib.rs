//! Criterion benchmarks of Cryptic Call, run with `cargo bench -p cryptic-benches`.
//!
//! Every group measures our code beside its reference in the same run
//! (libsrtp and the raw AEAD for the SRTP engine, a fixed-delay buffer for
//! the jitter buffer), so that the figure to read is a ratio, not a time.
//! This library is empty; the benchmarks live in `benches/`.
