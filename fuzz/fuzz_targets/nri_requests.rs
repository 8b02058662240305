//! Fuzz target `nri_requests`: see [`nodeguard_fuzz::nri::Harness::nri_requests`].
#![no_main]

use std::sync::LazyLock;

use nodeguard_fuzz::nri::Harness;

static HARNESS: LazyLock<Harness> = LazyLock::new(Harness::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| HARNESS.nri_requests(data));
