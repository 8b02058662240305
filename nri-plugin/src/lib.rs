//! nodeguard: the NRI plugin daemon and command-line tool.
pub mod transport;
