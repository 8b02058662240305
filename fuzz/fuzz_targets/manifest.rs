//! Fuzz target `manifest`: see [`nodeguard_fuzz::specs::manifest`].
#![no_main]

use std::sync::LazyLock;

use policy_core::Policy;

static RESTRICTED: LazyLock<Policy> = LazyLock::new(nodeguard_fuzz::specs::restricted);

libfuzzer_sys::fuzz_target!(|data: &[u8]| nodeguard_fuzz::specs::manifest(&RESTRICTED, data));
