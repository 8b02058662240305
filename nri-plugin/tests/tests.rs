//! Integration tests of the `nodeguard` library and binary (one test binary, modules inside).

mod audit_log;
mod check_cli;
mod daemon;
mod fuzz_corpus;
mod hostile_input;
mod instance_lock;
mod layers;
mod pss_conformance;
