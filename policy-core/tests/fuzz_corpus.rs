//! Replays the committed fuzz corpus of the `policy_yaml` target (`fuzz/corpus/policy_yaml/`)
//! and the inputs of past findings (`fuzz/regressions/policy_yaml/`) through the target's own
//! check, included here from `fuzz/src/documents.rs` by path, so CI runs every committed input
//! on stable without cargo-fuzz (see docs/fuzzing.md).

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

#[test]
fn policy_yaml_corpus() {
    for path in inputs("policy_yaml") {
        let bytes = std::fs::read(&path).expect("corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| documents::policy_yaml(&bytes))) {
            eprintln!("fuzz target policy_yaml fails on {}", path.display());
            resume_unwind(panic);
        }
    }
}
