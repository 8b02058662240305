//! Fuzz target `ttrpc_stream`: see [`nodeguard_fuzz::transport::ttrpc_stream`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodeguard_fuzz::transport::ttrpc_stream(data));
