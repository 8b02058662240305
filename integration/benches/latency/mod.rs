//! Support for the `create_latency` bench: plugins run as child processes, a tap on the NRI
//! socket that times every call, and the figures.

pub mod plugin;
pub mod stats;
pub mod tap;
