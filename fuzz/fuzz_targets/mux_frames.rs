//! Fuzz target `mux_frames`: see [`nodeguard_fuzz::transport::mux_frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodeguard_fuzz::transport::mux_frames(data));
