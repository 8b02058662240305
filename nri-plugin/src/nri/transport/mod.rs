//! The bytes between nodeguard and the container runtime: NRI's connection multiplexer and ttrpc.
//!
//! An NRI plugin talks to the runtime over one socket that carries several logical connections:
//! the [`mux`] layer wraps every write in a frame naming its connection
//! (`[u32 BE conn id][u32 BE length][payload]`). Connection [`mux::PLUGIN_SERVICE_CONN`] carries
//! the runtime's calls to our `Plugin` service, connection [`mux::RUNTIME_SERVICE_CONN`] our calls
//! to the runtime's `Runtime` service. Each logical connection is a byte stream of [`ttrpc`]
//! messages (`[u32 BE length][u32 BE stream id][u8 type][u8 flags]` + payload), and message
//! boundaries need not coincide with frame boundaries.
//!
//! Everything but [`io`] is sans-I/O: byte slices go in, frames and messages come out, so the
//! connection layer, the fake runtime of the tests and fuzz targets all share the same parsers.
//!
//! - [`mux`]: frame decoder and encoder;
//! - [`ttrpc`]: message reassembler, encoder (split into frames Go's reader accepts), envelopes;
//! - [`demux`]: both layers together: socket bytes in, `(conn id, message)` out;
//! - [`status`]: gRPC status codes and the error a ttrpc `Response` carries;
//! - [`io`]: thin tokio glue reading messages from and writing messages to a socket.

pub mod demux;
pub mod io;
pub mod mux;
pub mod status;
pub mod ttrpc;

pub use demux::{Demux, DemuxError};
pub use mux::{ConnId, Frame, MuxDecoder, MuxError, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
pub use status::{Code, RpcError};
pub use ttrpc::{Message, MessageType, Reassembler, StreamIds, TtrpcError};
