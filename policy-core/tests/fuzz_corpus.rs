//! Replays the committed fuzz corpora of the `policy_yaml` and `yaml_limits` targets
//! (`fuzz/corpus/<target>/`) and the inputs of past findings (`fuzz/regressions/<target>/`)
//! through the targets' own checks, included here from `fuzz/src/documents.rs` by path, so CI
//! runs every committed input on stable without cargo-fuzz (see docs/fuzzing.md).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/documents.rs"]
mod documents;

/// The committed inputs of `target`, corpus and regressions, in name order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("corpus entry").path()));
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no committed inputs for fuzz target {target}"
    );
    files
}

/// Runs every committed input of `target` through `check`, naming the input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    for path in inputs(target) {
        let bytes = std::fs::read(&path).expect("corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            eprintln!("fuzz target {target} fails on {}", path.display());
            resume_unwind(panic);
        }
    }
}

#[test]
fn policy_yaml_corpus() {
    replay("policy_yaml", documents::policy_yaml);
}

#[test]
fn yaml_limits_corpus() {
    replay("yaml_limits", documents::yaml_limits);
}
