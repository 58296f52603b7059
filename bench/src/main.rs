//! Argon benchmarks (scenarios are added by the event bus issue onwards).
fn main() {}
