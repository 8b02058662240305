//! Fuzz target `policy_yaml`: see [`nodeguard_fuzz::documents::policy_yaml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodeguard_fuzz::documents::policy_yaml(data));
