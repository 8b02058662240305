//! Integration tests of the `nodeguard` library and binary (one test binary, modules inside).

mod audit_log;
mod check_cli;
mod daemon;
mod fuzz_corpus;
mod hostile_input;
mod layers;
mod pss_conformance;
