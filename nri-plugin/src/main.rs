//! The `nodeguard` binary.

fn main() {}
