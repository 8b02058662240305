//! Fuzz target `yaml_limits`: see [`nodeguard_fuzz::documents::yaml_limits`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodeguard_fuzz::documents::yaml_limits(data));
