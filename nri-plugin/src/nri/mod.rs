//! The NRI side: the bytes on the socket, the connection, and the service that answers
//! containerd.
//!
//! - [`transport`]: NRI's multiplexer and ttrpc, sans-I/O;
//! - [`connection`]: one connection: register, then serve calls until it goes away;
//! - [`serve`]: the endpoint (a socket or an inherited descriptor) and reconnection;
//! - [`inherited`]: the descriptor containerd hands a pre-installed plugin;
//! - [`service`]: the `Plugin` service, the one place here that knows enforcement.

pub mod connection;
pub mod inherited;
pub mod serve;
pub mod service;
pub mod transport;
pub mod version;
