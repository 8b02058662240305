//! nodeguard's policy engine.
