//! The daemon against a fake containerd speaking NRI's real wire format, all in memory.
//!
//! [`fake_runtime::FakeRuntime`] plays the runtime over a unix socket (or a duplex pipe):
//! it answers `RegisterPlugin`, calls the plugin's methods with ttrpc stream ids 1, 3, 5, ...
//! and decodes the replies as Go's client does. [`harness`] runs `serve::run` against it with
//! an in-memory spec source and audit sink.

mod fake_api;
mod fake_runtime;
mod harness;

mod cluster;
mod cluster_reports;
mod compliance;
mod create;
mod faults;
mod hot_swap;
mod housekeeping;
mod image_identity;
mod lifecycle;
mod load;
mod methods;
mod outside;
mod read_ahead;
mod registration;
mod run;
mod runtime_versions;
mod sandbox;
mod start;
mod sub_paths;
mod sync;
mod validation;
mod wire;
