//! `nodeguard check --profile` agrees with Pod Security Admission on every fixture in
//! `testdata/pss` (see its README): files under `<level>/pass` pass, files under
//! `<level>/fail` fail, and they fail for the control their first line names.

use std::path::{Path, PathBuf};

use nodeguard::cli::check::{Options, check_paths};
use nodeguard::cli::findings::Report;
use policy_core::{Effect, Policy, PssLevel, Verdict};

fn fixtures(level: &str, outcome: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/pss")
        .join(level)
        .join(outcome);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// The control a fixture's first line names, as PSA calls it.
fn expected_control(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("# control: ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{}: first line names no control", file.display()))
        .trim()
        .to_string()
}

/// Our rule id for a PSA check name.
fn rule_id(psa_check: &str) -> &'static str {
    match psa_check {
        "allowPrivilegeEscalation" => "pss.restricted.privilegeEscalation",
        "appArmorProfile" => "pss.baseline.appArmor",
        "capabilities_baseline" => "pss.baseline.capabilities",
        "capabilities_restricted" => "pss.restricted.capabilities",
        "hostNamespaces" => "pss.baseline.hostNamespaces",
        "hostPathVolumes" => "pss.baseline.hostPathVolumes",
        "hostPorts" => "pss.baseline.hostPorts",
        "hostProbesAndHostLifecycle" => "pss.baseline.probeHosts",
        "privileged" => "pss.baseline.privileged",
        "procMount" => "pss.baseline.procMount",
        "procMount_restricted" => "pss.restricted.procMount",
        "restrictedVolumes" => "pss.restricted.volumeTypes",
        "runAsNonRoot" => "pss.restricted.runAsNonRoot",
        "runAsUser" => "pss.restricted.runAsUser",
        "seLinuxOptions" => "pss.baseline.seLinux",
        "seccompProfile_baseline" => "pss.baseline.seccomp",
        "seccompProfile_restricted" => "pss.restricted.seccomp",
        "sysctls" => "pss.baseline.sysctls",
        "windowsHostProcess" => "pss.baseline.hostProcess",
        other => panic!("fixture names an unknown PSA check {other:?}"),
    }
}

fn judge(level: PssLevel, file: &Path) -> Report {
    let policy = Policy::pod_security(level, Effect::Enforce);
    let report = check_paths(&policy, &[file.to_path_buf()], &Options::default());
    assert!(
        report.errors.is_empty(),
        "{}: {:?}",
        file.display(),
        report.errors
    );
    assert_eq!(
        report.results.len(),
        1,
        "{}: one pod per fixture",
        file.display()
    );
    report
}

fn conforms(level: PssLevel, name: &str) {
    let mut wrong = Vec::new();
    for file in fixtures(name, "pass") {
        let report = judge(level, &file);
        let r = &report.results[0];
        if r.verdict != Verdict::Allow {
            wrong.push(format!(
                "{} should pass: {:?}",
                file.display(),
                r.violations
            ));
        }
    }
    for file in fixtures(name, "fail") {
        let report = judge(level, &file);
        let r = &report.results[0];
        let want = rule_id(&expected_control(&file));
        if r.verdict != Verdict::Deny {
            wrong.push(format!("{} should fail {want}", file.display()));
        } else if !r.violations.iter().any(|v| v.rule == want) {
            let got: Vec<&str> = r.violations.iter().map(|v| v.rule).collect();
            wrong.push(format!(
                "{} fails, but not for {want}: {got:?}",
                file.display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn baseline_profile_agrees_with_pod_security_admission() {
    conforms(PssLevel::Baseline, "baseline");
}

#[test]
fn restricted_profile_agrees_with_pod_security_admission() {
    conforms(PssLevel::Restricted, "restricted");
}

#[test]
fn restricted_fails_everything_baseline_fails() {
    for file in fixtures("baseline", "fail") {
        let report = judge(PssLevel::Restricted, &file);
        assert_eq!(
            report.results[0].verdict,
            Verdict::Deny,
            "{}",
            file.display()
        );
    }
}
