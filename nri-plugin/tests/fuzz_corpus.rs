//! Replays the committed fuzz corpora of the nodeguard targets (`fuzz/corpus/<target>/`) and
//! the inputs of past fuzz findings (`fuzz/regressions/<target>/`) through the fuzz targets'
//! own checks, which are included here from `fuzz/src/` by path. CI thus runs every committed
//! input on stable, without cargo-fuzz or libFuzzer (see docs/fuzzing.md).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/chunks.rs"]
mod chunks;
#[path = "../../fuzz/src/nri.rs"]
mod nri;
#[path = "../../fuzz/src/specs.rs"]
mod specs;
#[path = "../../fuzz/src/transport.rs"]
mod transport;

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

/// Runs `check` on every committed input of `target`, naming the input that fails.
fn replay(target: &str, check: impl Fn(&[u8])) {
    for path in inputs(target) {
        let bytes = std::fs::read(&path).expect("corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
            eprintln!("fuzz target {target} fails on {}", path.display());
            resume_unwind(panic);
        }
    }
}

#[test]
fn mux_frames_corpus() {
    replay("mux_frames", transport::mux_frames);
}

#[test]
fn ttrpc_stream_corpus() {
    replay("ttrpc_stream", transport::ttrpc_stream);
}

#[test]
fn nri_requests_corpus() {
    let harness = nri::Harness::new();
    replay("nri_requests", |data| harness.nri_requests(data));
}

#[test]
fn oci_spec_corpus() {
    let policy = specs::restricted();
    replay("oci_spec", |data| specs::oci_spec(&policy, data));
}

#[test]
fn manifest_corpus() {
    let policy = specs::restricted();
    replay("manifest", |data| specs::manifest(&policy, data));
}

/// Regression: CPU shares or a CFS quota near `u64::MAX` overflowed `* 1000` on the way to
/// millicores: a panic with overflow checks, a wrapped (too small) CPU figure without, so a
/// huge limit could pass `resources.maxLimits`. Now exact, saturating at `u64::MAX`.
#[test]
fn cpu_shares_and_quota_overflow() {
    use nodeguard_views::kubelet::{quota_to_millicores, shares_to_millicores};
    use nodeguard_views::oci::RuntimeSpec;
    use policy_core::quantity::Millicores;

    assert_eq!(
        shares_to_millicores(u64::MAX),
        Some(Millicores(18_014_398_509_481_984_000))
    );
    assert_eq!(
        quota_to_millicores(Some(i64::MAX), None),
        Some(Millicores(92_233_720_368_547_759))
    );
    assert_eq!(
        quota_to_millicores(Some(i64::MAX), Some(1)),
        Some(Millicores(u64::MAX))
    );

    let spec = include_bytes!("../../fuzz/regressions/oci_spec/cpu-shares-and-quota-overflow.json");
    let spec_read = RuntimeSpec::from_json(spec).unwrap();
    let resources = policy_core::ContainerView::try_from(&spec_read)
        .expect("a runtime spec")
        .resources;
    let resources = resources.expect("a spec's resources are known");
    assert_eq!(resources.cpu_limit, Some(Millicores(u64::MAX)));
    specs::oci_spec(&specs::restricted(), spec);

    nri::Harness::new().nri_requests(include_bytes!(
        "../../fuzz/regressions/nri_requests/cpu-shares-and-quota-overflow"
    ));
}
