//! The `nodeguard check` and `nodeguard policy validate` commands, run as a user runs them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path)
}

fn nodeguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(args)
        .output()
        .expect("run nodeguard")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(p: &str) -> String {
    testdata(p).display().to_string()
}

#[test]
fn compliant_manifests_exit_zero() {
    let out = nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        &path("manifests/compliant.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("PASS"), "{}", stdout(&out));
}

#[test]
fn enforced_violations_exit_one_and_name_every_rule() {
    let out = nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        &path("manifests/noncompliant.yaml"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        r#"image "docker.io/evil/miner:latest" does not match any allowed pattern (^registry\.corp/.+) [corp-baseline images.allowed]"#,
        r#"uses forbidden tag "latest""#,
        "container is privileged [corp-baseline privileged]",
        "pod shares the host's PID namespace (hostPID) [corp-baseline hostNamespaces]",
        "container has no CPU or memory limit [corp-baseline resources.limits]",
        "audit container \"app\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The Service is read, not judged, and says so.
    assert!(
        text.contains(
            "Service not-a-pod (a Service holds no pod (no spec.template with containers))"
        ),
        "services are skipped by name:\n{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("not-a-pod")),
        "{text}"
    );
}

#[test]
fn warn_and_audit_effects_do_not_fail() {
    let out = nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        &path("manifests/unlabelled.yaml"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("WARN"), "{text}");
    assert!(
        text.contains(r#"warn container "app": pod has no label "team""#),
        "{text}"
    );
}

#[test]
fn json_output_lists_results_and_violations() {
    let out = nodeguard(&[
        "check",
        "--profile",
        "baseline",
        "--format",
        "json",
        &path("manifests"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{report:#}");
    let miner = results.iter().find(|r| r["name"] == "miner").unwrap();
    assert_eq!(miner["verdict"], "deny");
    let rules: Vec<&str> = miner["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["pss.baseline.hostNamespaces", "pss.baseline.privileged"]
    );
}

#[test]
fn oci_runtime_specs_are_judged_as_the_node_sees_them() {
    let out = nodeguard(&["check", "--profile", "restricted", &path("oci/config.json")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("OCIRuntimeSpec shop/web-0/app"), "{text}");
    assert!(text.contains("container runs as root (UID 0)"), "{text}");
    assert!(text.contains("SYS_ADMIN"), "{text}");
    assert!(
        text.contains("undecided container \"app\": unknown: probeHosts"),
        "probes are not in a runtime spec:\n{text}"
    );
}

#[test]
fn unusable_input_exits_two_with_the_file_and_line() {
    let out = nodeguard(&[
        "check",
        "--profile",
        "baseline",
        &path("manifests/invalid.yaml.broken"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("invalid.yaml.broken: line"), "{text}");
    let missing = nodeguard(&["check", "--profile", "baseline", "/nonexistent/x.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stdout(&missing).contains("/nonexistent/x.yaml"));
}

#[test]
fn an_invalid_policy_is_reported_whole_before_anything_is_checked() {
    let out = nodeguard(&[
        "check",
        "--policy",
        &path("policies/broken.yaml"),
        &path("manifests/compliant.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "nothing checked with a bad policy");
    assert!(stderr(&out).contains("broken.yaml"), "{}", stderr(&out));
}

#[test]
fn policy_validate_reports_every_mistake_with_its_line() {
    let out = nodeguard(&["policy", "validate", &path("policies/broken.yaml")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for expected in [
        "broken.yaml:6:3: spec.effect: unknown variant `enforced`",
        "broken.yaml:9:17: spec.rules.images.allowed[0]: invalid regex \"^registry\\\\.corp/(\": unclosed group",
        "broken.yaml:10:7: spec.rules.images.alowed: unknown field `alowed`",
        "broken.yaml:12:17: spec.rules.hostPorts.allowed[0]: range \"9000-8000\" runs backwards",
        "broken.yaml:14:19: spec.rules.resources.maxLimits.memory: invalid quantity \"lots\": no digits",
        "broken.yaml:15:5: spec.rules.privilegd: unknown rule \"privilegd\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let ok = nodeguard(&["policy", "validate", &path("policies/corp.yaml")]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("2 policies: corp-baseline, restricted-audit"));
}

#[test]
fn usage_errors_exit_two() {
    let out = nodeguard(&["check", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--policy"), "{}", stderr(&out));
}

#[test]
fn serve_reports_every_bad_flag_and_exits_two_before_touching_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nri.sock");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args([
            "serve",
            "--policy",
            &path("policies/broken.yaml"),
            "--plugin-index",
            "7",
            "--audit-log",
            "/nonexistent-dir/audit.jsonl",
            "--metrics-addr",
            &taken_addr,
            "--report-file",
        ])
        .arg(not_a_dir.join("report.json"))
        .arg("--nri-socket")
        .arg(&socket)
        .env_remove("NRI_PLUGIN_SOCKET")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for expected in [
        "--plugin-index must be exactly two digits, not \"7\"",
        "--policy: 6 errors in policy",
        "broken.yaml:15:5: spec.rules.privilegd",
        "--audit-log /nonexistent-dir/audit.jsonl",
        &format!("--metrics-addr {taken_addr}: "),
        "--report-file: ",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!socket.exists(), "no socket was created");
}

#[test]
fn serve_refuses_an_inherited_socket_that_is_not_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(["serve", "--policy", &path("policies/corp.yaml")])
        .env("NRI_PLUGIN_SOCKET", "77")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("NRI_PLUGIN_SOCKET=77: descriptor 77 is not an open socket"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn report_prints_the_latest_compliance_report_and_fails_when_a_container_does() {
    use nodeguard::compliance::report::{
        ContainerFindings, Outcome, ReportContext, write_findings,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let findings = |ns: &str, id: &str, outcome: Outcome| ContainerFindings {
        namespace: ns.into(),
        pod: format!("pod-{id}"),
        pod_uid: String::new(),
        container: "app".into(),
        container_id: id.into(),
        image: None,
        results: vec![(
            "corp".into(),
            "privileged",
            outcome,
            policy_core::Effect::Enforce,
            if outcome == Outcome::Fail {
                "container is privileged".into()
            } else {
                String::new()
            },
        )],
        started_while_away: false,
        remediation: None,
        non_kubernetes: None,
    };
    let context = ReportContext {
        node: "n1",
        generated: std::time::SystemTime::now(),
        trigger: "periodic",
        policy_generation: 1,
        policy_sources: "",
    };
    let containers = [
        findings("prod", "a", Outcome::Fail),
        findings("dev", "b", Outcome::Pass),
    ];
    write_findings(&file, &context, &containers).unwrap();
    let file_arg = file.to_str().unwrap();
    let table = nodeguard(&["report", "--file", file_arg]);
    assert_eq!(table.status.code(), Some(1), "a container fails");
    let out = stdout(&table);
    // One name per concept across commands: serve's --report-file, and text as check says it.
    for same in [
        nodeguard(&["report", "--report-file", file_arg]),
        nodeguard(&["report", "--report-file", file_arg, "--format", "text"]),
        nodeguard(&["report", "--report-file", file_arg, "--format", "table"]),
    ] {
        assert_eq!(stdout(&same), out);
    }
    assert!(out.contains("pass 1  fail 1"), "{out}");
    assert!(
        out.contains(
            "prod       pod-a  app        FAIL    corp    privileged  container is privileged"
        ),
        "{out}"
    );
    let dev = nodeguard(&["report", "--file", file_arg, "-n", "dev", "--all"]);
    assert_eq!(dev.status.code(), Some(0), "nothing fails in dev");
    assert!(stdout(&dev).contains("PASS"), "{}", stdout(&dev));
    let json = nodeguard(&["report", "--file", file_arg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][1]["kind"], "PolicyReport");
    assert_eq!(v["items"][1]["results"][0]["result"], "fail");
    let missing = nodeguard(&["report", "--file", "/nonexistent/report.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read the report /nonexistent/report.json"));
}

#[test]
fn directories_are_walked_once_without_hidden_entries_or_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pod = std::fs::read_to_string(testdata("manifests/noncompliant.yaml")).unwrap();
    // A ConfigMap volume's shape: the file through `..data`, a timestamped folder, and a link.
    let stamped = root.join("..2026_12_01_00_00_00.1");
    std::fs::create_dir(&stamped).unwrap();
    std::fs::write(stamped.join("pods.yaml"), &pod).unwrap();
    std::os::unix::fs::symlink(&stamped, root.join("..data")).unwrap();
    std::os::unix::fs::symlink(root.join("..data/pods.yaml"), root.join("pods.yaml")).unwrap();
    // A loop back to the top, and a second name for the same file.
    std::os::unix::fs::symlink(root, root.join("loop")).unwrap();
    std::os::unix::fs::symlink(root.join("pods.yaml"), root.join("again.yaml")).unwrap();
    let root_arg = root.display().to_string();
    let out = nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        "--format",
        "json",
        &root_arg,
        &root_arg,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    let once = serde_json::from_slice::<serde_json::Value>(
        &nodeguard(&[
            "check",
            "--policy",
            &path("policies/corp.yaml"),
            "--format",
            "json",
            &path("manifests/noncompliant.yaml"),
        ])
        .stdout,
    )
    .unwrap()["results"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(files.len(), once, "each object judged once: {files:?}");
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn every_container_breaking_a_rule_is_named_in_text_and_json() {
    let manifest = path("check/three-privileged.yaml");
    let text = stdout(&nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        &manifest,
    ]));
    assert!(
        text.contains(
            "enforce containers \"a\", \"b\", \"init\": container is privileged [corp-baseline privileged]"
        ),
        "{text}"
    );
    let json = nodeguard(&[
        "check",
        "--policy",
        &path("policies/corp.yaml"),
        "--format",
        "json",
        &manifest,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let privileged = report["results"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "privileged")
        .unwrap();
    assert_eq!(
        privileged["containers"],
        serde_json::json!(["a", "b", "init"])
    );

    // An init container failing controls its app container passes is named for each.
    let text = stdout(&nodeguard(&[
        "check",
        "--profile",
        "restricted",
        &path("check/restricted-init.yaml"),
    ]));
    for control in [
        "privilegeEscalation",
        "runAsNonRoot",
        "seccomp",
        "capabilities",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains("enforce container \"init\": ")
                    && l.ends_with(&format!("pss.restricted.{control}]"))),
            "{control}: {text}"
        );
    }
    assert!(!text.contains("container \"app\""), "{text}");
}

#[test]
fn nothing_passes_unchecked() {
    let baseline = |file: &str, extra: &[&str]| {
        let file = path(file);
        let mut args = vec!["check", "--profile", "baseline"];
        args.extend_from_slice(extra);
        args.push(&file);
        nodeguard(&args)
    };
    // Kinds nodeguard does not know by name are judged by their pod template.
    for (file, object) in [
        ("check/rollout.yaml", "Rollout shop/canary"),
        ("check/knative.yaml", "Service shop/hello"),
    ] {
        let out = baseline(file, &[]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("FAIL      {}: {object}", path(file))),
            "{text}"
        );
        assert!(text.contains("pss.baseline.privileged"), "{text}");
    }
    // An object with no pod is listed as skipped by name; a document without kind cannot be
    // judged: an input error.
    let out = baseline("check/widget.yaml", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("SKIPPED   ") && text.contains("Widget gizmo (a Widget holds no pod"),
        "{text}"
    );
    assert!(text.contains("line 6: a document without kind"), "{text}");
    // A config.json with one field of the wrong type: an input error naming the field.
    let out = baseline("check/bad-config.json", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("OCI runtime spec: process.user.uid: invalid type: string \"zero\""),
        "{text}"
    );
    // An OCI spec is one by its content, under any file name.
    let out = baseline("check/spec-as.yaml", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("OCIRuntimeSpec shop/web-0/app"), "{text}");
    // Judging nothing: a loud warning, or with --fail-if-empty an error.
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services.yaml");
    std::fs::write(
        &services,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let services = services.display().to_string();
    let out = nodeguard(&["check", "--profile", "baseline", &services]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("warning: nothing was judged"),
        "{}",
        stdout(&out)
    );
    let out = nodeguard(&[
        "check",
        "--profile",
        "baseline",
        "--fail-if-empty",
        &services,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("nothing was judged (1 object skipped), and --fail-if-empty is set"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn helm_output_without_namespaces_takes_the_namespace_flag_and_out_of_scope_is_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: teams}\nspec:\n  scope: {namespaces: ['team-*']}\n  rules: {privileged: {}}\n",
    )
    .unwrap();
    // What `helm template` prints: no namespace in the objects.
    let chart = dir.path().join("chart.yaml");
    std::fs::write(
        &chart,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: app, image: registry.corp/web:1, securityContext: {privileged: true}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: pinned, namespace: other}\nspec:\n  containers: [{name: app, image: registry.corp/web:1, securityContext: {privileged: true}}]\n",
    )
    .unwrap();
    let (policy, chart) = (policy.display().to_string(), chart.display().to_string());
    let out = nodeguard(&["check", "--policy", &policy, &chart]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("NOPOLICY  ")
            && text.contains("Deployment default/web (no policy applies: outside the scope"),
        "{text}"
    );
    assert!(!text.contains("PASS"), "{text}");
    assert!(
        text.contains("2 checked: 0 passed, 0 failed, 0 undecided, 2 outside every policy"),
        "{text}"
    );
    for flag in ["--namespace", "-n"] {
        let out = nodeguard(&["check", "--policy", &policy, flag, "team-a", &chart]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("FAIL      ") && text.contains("Deployment team-a/web"),
            "{text}"
        );
        // An object that names its namespace keeps it, as with kubectl -n.
        assert!(
            text.contains("Pod other/pinned (no policy applies"),
            "{text}"
        );
    }
    let json = nodeguard(&["check", "--policy", &policy, "--format", "json", &chart]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["results"][0]["policy_applies"], false);
}

#[test]
fn a_runtime_spec_does_not_tell_pod_labels_so_label_rules_stay_undecided() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("labels.yaml");
    std::fs::write(
        &policy,
        "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: labels}\nspec:\n  rules:\n    requiredLabels: {labels: [{key: team}]}\n",
    )
    .unwrap();
    let out = nodeguard(&[
        "check",
        "--policy",
        &policy.display().to_string(),
        &path("oci/config.json"),
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("UNDECIDED"), "{text}");
    assert!(
        text.contains("unknown: pod.labels [labels requiredLabels]"),
        "{text}"
    );
    assert!(!text.contains("pod has no label"), "{text}");
}

/// `nodeguard args...` with `input` on standard input.
fn nodeguard_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn check_fits_a_ci_pipeline_stdin_sarif_junit_and_a_json_summary() {
    let policy = path("policies/corp.yaml");
    let manifests = std::fs::read(testdata("manifests/noncompliant.yaml")).unwrap();
    // `helm template ... | nodeguard check -`
    let out = nodeguard_with_stdin(&["check", "--policy", &policy, "-"], &manifests);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("FAIL      <stdin>: Pod default/miner"),
        "{text}"
    );

    // JSON: a summary, and where each object starts.
    let out = nodeguard_with_stdin(
        &["check", "--policy", &policy, "--format", "json", "-"],
        &manifests,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["summary"],
        serde_json::json!({"checked": 1, "passed": 0, "failed": 1, "undecided": 0,
            "outside_every_policy": 0, "skipped": 1, "input_errors": 0})
    );
    let miner = &report["results"][0];
    let line = miner["line"].as_u64().unwrap() as usize;
    let source = String::from_utf8(manifests.clone()).unwrap();
    assert!(
        source
            .lines()
            .nth(line - 1)
            .unwrap()
            .starts_with("apiVersion"),
        "line {line} starts the object"
    );
    assert_eq!(miner["column"], 1);

    // SARIF 2.1.0: a result per finding, levels by effect, located at the object.
    let out = nodeguard(&[
        "check",
        "--policy",
        &policy,
        "--format",
        "sarif",
        &path("manifests/noncompliant.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "nodeguard");
    let results = run["results"].as_array().unwrap();
    let privileged = results
        .iter()
        .find(|r| r["ruleId"] == "privileged")
        .unwrap();
    assert_eq!(privileged["level"], "error");
    let region = &privileged["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"].as_u64().unwrap() as usize, line);
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "requiredLabels" && r["level"] == "warning")
    );
    let rule_ids: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(rule_ids.contains(&"privileged"), "{rule_ids:?}");

    // JUnit: a failing test case for the refused pod, a skipped one for the Service.
    let out = nodeguard(&[
        "check",
        "--policy",
        &policy,
        "--format",
        "junit",
        &path("manifests"),
    ]);
    let xml = stdout(&out);
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"),
        "{xml}"
    );
    assert!(
        xml.contains("tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"Pod default/miner\">\n      <failure message="),
        "{xml}"
    );
    assert!(
        xml.contains("<skipped message=\"a Service holds no pod"),
        "{xml}"
    );
    assert!(
        xml.contains("the host&apos;s PID namespace"),
        "escaped: {xml}"
    );
}

fn core_testdata(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-core/testdata")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn gatekeeper_constraints_are_policy_for_check_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nginx-disallowed}\nspec:\n  containers:\n    - name: nginx\n      image: nginx\n      securityContext: {privileged: true}\n",
    )
    .unwrap();
    let library = core_testdata("gatekeeper/library.yaml");
    let out = nodeguard(&["check", "--policy", &library, &pod.display().to_string()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(
        r#"container <nginx> has an invalid image repo <nginx>, allowed repos are ["openpolicyagent/"] [K8sAllowedRepos/repo-is-openpolicyagent K8sAllowedRepos]"#
    ), "{text}");
    assert!(
        text.contains(
            "[K8sPSPPrivilegedContainer/psp-privileged-container K8sPSPPrivilegedContainer]"
        ),
        "{text}"
    );

    // What the node cannot enforce is said, and --strict makes it an error.
    let unenforceable = core_testdata("gatekeeper/unenforceable.yaml");
    let out = nodeguard(&["policy", "validate", &unenforceable]);
    assert_eq!(out.status.code(), Some(0));
    let notes = stderr(&out);
    assert_eq!(
        notes.lines().filter(|l| l.starts_with("note: ")).count(),
        5,
        "{notes}"
    );
    // A namespaceSelector is matched on the node (with the API server's labels): no note.
    assert!(!notes.contains("namespaceSelector"), "{notes}");
    let out = nodeguard(&["policy", "validate", "--strict", &unenforceable]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("5 notes (--strict makes them errors)"),
        "{}",
        stderr(&out)
    );
    let out = nodeguard(&["policy", "validate", "--strict", &library]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // `check` says what it does not judge, and --strict makes that unusable input.
    let pod = pod.display().to_string();
    let out = nodeguard(&["check", "--policy", &unenforceable, &pod]);
    assert!(
        stderr(&out).contains("note: not judged: ")
            && stderr(&out).contains("K8sAzureV2ContainerEnforceProbes"),
        "{}",
        stderr(&out)
    );
    let out = nodeguard(&["check", "--strict", "--policy", &unenforceable, &pod]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "unenforceable.yaml:3:1: kind: K8sAzureV2ContainerEnforceProbes cannot be enforced on a node"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn policy_md_shows_what_policy_validate_prints() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md"),
    )
    .unwrap();
    let start = docs
        .find("```\nbroken.yaml:")
        .expect("the example in docs/policy.md")
        + 4;
    let end = start + docs[start..].find("```").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(["policy", "validate", "broken.yaml"])
        .current_dir(testdata("policies"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        &docs[start..end],
        "docs/policy.md's example is stale"
    );
}

#[test]
fn policy_validate_speaks_json_for_tools() {
    let broken = path("policies/broken.yaml");
    let corp = path("policies/corp.yaml");
    let out = nodeguard(&["policy", "validate", "--format", "json", &corp, &broken]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths = report["paths"].as_array().unwrap();
    assert_eq!(paths[0]["valid"], true);
    assert!(paths[0]["checks"].as_u64().unwrap() > 0);
    assert_eq!(paths[1]["valid"], false);
    let errors = paths[1]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 6);
    assert_eq!(
        (
            errors[0]["line"].as_u64(),
            errors[0]["column"].as_u64(),
            errors[0]["field"].as_str()
        ),
        (Some(6), Some(3), Some("spec.effect"))
    );
}

#[test]
fn policies_combine_repeated_policy_flags_and_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let doc = |name: &str, rules: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {{name: {name}}}\nspec: {{rules: {{{rules}}}}}\n"),
        )
        .unwrap();
        file.display().to_string()
    };
    let (tags, digests) = (
        doc("tags", "images: {forbiddenTags: [latest]}"),
        doc("privileged", "privileged: {}"),
    );
    let out = nodeguard(&[
        "check",
        "--policy",
        &tags,
        "--policy",
        &digests,
        "--profile",
        "restricted",
        &path("manifests/noncompliant.yaml"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for from in [
        "[tags images.tag]",
        "[privileged privileged]",
        "[pss-restricted pss.restricted.seccomp]",
    ] {
        assert!(text.contains(from), "{from}: {text}");
    }
}

#[test]
fn shell_completion_scripts_name_every_command() {
    for (shell, marker) in [
        ("bash", "_nodeguard()"),
        ("zsh", "#compdef nodeguard"),
        ("fish", "complete -c nodeguard"),
    ] {
        let out = nodeguard(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["check", "serve", "report", "validate", "fail-if-empty"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
}

#[test]
fn a_large_kubectl_dump_is_judged_pod_by_pod() {
    // `kubectl get pods -A -o yaml`: one List, items before kind. Each pod fits the bound on
    // one document; the whole list is far over it.
    let mut dump = String::from("apiVersion: v1\nitems:\n");
    for i in 0..300 {
        dump.push_str(&format!(
            "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: p{i}, namespace: ns{}, labels: {{app: a{i}}}}}\n  spec:\n    containers:\n    - name: app\n      image: registry.corp/app:{i}\n      securityContext: {{privileged: {}}}\n",
            i % 7,
            i % 2 == 0
        ));
    }
    dump.push_str("kind: List\nmetadata: {resourceVersion: \"\"}\n");
    let out = nodeguard_with_stdin(
        &[
            "check",
            "--profile",
            "baseline",
            "--max-document-size",
            "64KiB",
            "--format",
            "json",
            "-",
        ],
        dump.as_bytes(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["checked"], 300, "{}", report["errors"]);
    assert_eq!(report["summary"]["failed"], 150);
    assert_eq!(report["summary"]["input_errors"], 0);
    // Each pod's own line.
    let p7 = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "p7")
        .unwrap();
    let line = p7["line"].as_u64().unwrap() as usize;
    assert_eq!(dump.lines().nth(line - 1).unwrap(), "- apiVersion: v1");
    assert!(dump.lines().nth(line + 1).unwrap().contains("name: p7"));
}

#[test]
fn policy_convert_prints_node_policies_that_load() {
    let library = core_testdata("gatekeeper/library.yaml");
    let unenforceable = core_testdata("gatekeeper/unenforceable.yaml");
    let out = nodeguard(&["policy", "convert", &library, &unenforceable]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("# From K8sAllowedRepos/repo-is-openpolicyagent (")
            && text.contains(
                "# Not converted: K8sAzureV2ContainerEnforceProbes cannot be enforced on a node"
            ),
        "{text}"
    );
    // What it prints is a policy `policy validate` accepts.
    let dir = tempfile::tempdir().unwrap();
    let converted = dir.path().join("converted.yaml");
    std::fs::write(&converted, &text).unwrap();
    let out = nodeguard(&[
        "policy",
        "validate",
        "--strict",
        converted.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("valid (5 policies"),
        "{}",
        stdout(&out)
    );
    // Nothing to convert, or a broken file: exit 2 with the reason.
    let node_policy = path("policies/corp.yaml");
    let out = nodeguard(&["policy", "convert", &node_policy]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no Gatekeeper constraint to convert"));
    let broken = path("policies/broken.yaml");
    let out = nodeguard(&["policy", "convert", &broken]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("broken.yaml:"), "{}", stderr(&out));
}

#[test]
fn check_profile_takes_the_version_of_the_standard() {
    // A probe aimed at another host: a control from v1.34 on. A pod with its own user
    // namespace running as root: allowed at restricted from v1.35 (and not before).
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: shop}
spec:
  containers:
    - name: app
      image: registry.corp/app:1
      livenessProbe:
        httpGet: {host: db.internal, port: 8080, path: /healthz}
",
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    let out = nodeguard(&["check", "--profile", "baseline:v1.33", &manifest]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("PASS"), "{}", stdout(&out));
    for profile in ["baseline:v1.34", "baseline:latest", "baseline"] {
        let out = nodeguard(&["check", "--profile", profile, &manifest]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{profile}: {text}");
        assert!(
            text.contains(
                "probes or lifecycle handlers target other hosts (db.internal) \
                 [pss-baseline pss.baseline.probeHosts]"
            ),
            "{profile}: {text}"
        );
    }
    let userns = dir.path().join("userns.yaml");
    std::fs::write(
        &userns,
        "apiVersion: v1
kind: Pod
metadata: {name: userns, namespace: shop}
spec:
  hostUsers: false
  securityContext: {runAsUser: 0, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: app
      image: registry.corp/app:1
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
",
    )
    .unwrap();
    let userns = userns.display().to_string();
    let out = nodeguard(&["check", "--profile", "restricted:v1.34", &userns]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("pss.restricted.runAsUser"), "{text}");
    assert!(text.contains("pss.restricted.runAsNonRoot"), "{text}");
    let out = nodeguard(&["check", "--profile", "restricted:v1.35", &userns]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A malformed version is a usage error naming what to write.
    let out = nodeguard(&["check", "--profile", "baseline:1.33", &manifest]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#""1.33" is not a Kubernetes version; write v1.33 or latest"#),
        "{}",
        stderr(&out)
    );
    // `serve` reads the flag alike, before touching any socket.
    let out = Command::new(env!("CARGO_BIN_EXE_nodeguard"))
        .args(["serve", "--profile", "restricted:v1.18", "--nri-socket"])
        .arg(dir.path().join("nri.sock"))
        .env_remove("NRI_PLUGIN_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("v1.18 is older than nodeguard judges; write v1.19 or later"),
        "{}",
        stderr(&out)
    );
}
