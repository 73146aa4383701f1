//! Placeholder until its issue lands: criterion needs a main.
fn main() {}
