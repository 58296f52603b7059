//! The `argon` binary: argument parsing and wiring, nothing else.
fn main() {}
