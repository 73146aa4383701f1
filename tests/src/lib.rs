//! End-to-end tests of Cryptic Call across crates, with real peers, and the
//! helpers every crate's tests share (dev-only).
//!
//! One file per scenario under `tests/`, named for the behaviour it checks.
//!
//! # Tests that need a tool or a privilege
//!
//! A test that cannot run here (no `openssl`, no network namespaces, no
//! PulseAudio...) calls [`skip`] with the reason and returns. Under
//! `CRYPTIC_REQUIRE_ENV=1` (CI sets it) [`skip`] fails the test instead, so a
//! missing install step can never turn into a green run that tested nothing.

use std::fmt::Display;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "CRYPTIC_REQUIRE_ENV";

/// Whether every tool and privilege a test needs must be present.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Says why a test cannot run here: prints `SKIP: reason`, or under
/// `CRYPTIC_REQUIRE_ENV=1` panics with it.
///
/// # Panics
///
/// Under `CRYPTIC_REQUIRE_ENV=1`, always: that is its purpose.
pub fn skip(reason: impl Display) {
    assert!(
        !required(),
        "{REQUIRE_ENV}=1 but this test cannot run here: {reason}"
    );
    eprintln!("SKIP: {reason}");
}

/// A fresh temporary directory named after `tag`, removed when dropped.
///
/// # Panics
///
/// When the system's temporary directory is not writable.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cryptic-{tag}-"))
        .tempdir()
        .expect("a writable temporary directory")
}
