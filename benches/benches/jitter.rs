//! Placeholder until the jitter buffer lands: criterion needs a main.
fn main() {}
