//! nodeguard's fuzz checks: what each fuzz target asserts about one input.
//!
//! The targets in `fuzz_targets/` are one-line wrappers around these functions, and the
//! corpus-replay tests (`nri-plugin/tests/fuzz_corpus.rs`, `policy-core/tests/fuzz_corpus.rs`)
//! include the same modules by path, so CI checks every committed corpus file on stable without
//! libFuzzer. See `docs/fuzzing.md`.

pub mod chunks;
pub mod documents;
pub mod nri;
pub mod specs;
pub mod transport;
