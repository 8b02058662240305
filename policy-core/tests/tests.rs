//! policy-core's integration tests: one binary, one module per area.
//!
//! `rules` covers each rule of `spec.rules`; `effects` the effects and verdicts; `scope` which
//! containers a document applies to; `presets` the Pod Security Standards, `pss_versions` the
//! differences between their versions; `errors` the loader's error reports; `properties` the
//! evaluator's invariants. Fixtures live in `policy-core/testdata/`.

mod azure;
mod constraints;
mod effects;
mod errors;
mod fuzz_corpus;
mod image_identity;
mod library_kinds;
mod presets;
mod properties;
mod pss_versions;
mod rules;
mod scope;
mod util;
