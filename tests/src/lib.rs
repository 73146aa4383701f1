//! End-to-end tests of Cryptic Call across crates, with real peers.
//!
//! One file per scenario under `tests/`, named for the behaviour it checks.
//! This library holds nothing yet; shared helpers land here when scenarios
//! need them.
