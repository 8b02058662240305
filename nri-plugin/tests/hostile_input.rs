//! Hostile input to the binary, run as a user (or an attacker with write access to a
//! ConfigMap) would: YAML that expands far beyond its size, and files beyond the size caps.
//! The commands run under an address-space limit (`prlimit --as`), so a reader that expands
//! what it reads is killed instead of passing; each must end with a located error instead.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The address space the short commands may use: far less than the 200-500 MB the alias bombs
/// below took before their expansion was bounded.
const MEMORY_LIMIT: u64 = 192 << 20;

/// `nodeguard args...` under `limit` bytes of address space.
fn limited(limit: u64, args: &[&str]) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--as={limit}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_nodeguard"))
        .args(args)
        // glibc reserves 64 MiB of address space per malloc arena and thread; two are plenty.
        .env("MALLOC_ARENA_MAX", "2")
        .env_remove("NRI_PLUGIN_SOCKET");
    command
}

fn run_limited(limit: u64, args: &[&str]) -> Output {
    limited(limit, args)
        .output()
        .expect("run nodeguard under prlimit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const POLICY_HEAD: &str =
    "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata:\n  name: bomb\n";

/// A 1 MiB annotation copied by `copies` aliases (line 6 holds the anchor).
fn long_scalar_bomb(copies: usize) -> String {
    let mut text = format!(
        "{POLICY_HEAD}  annotations:\n    big: &big '{}'\n",
        "x".repeat(1 << 20)
    );
    for i in 0..copies {
        text.push_str(&format!("    c{i}: *big\n"));
    }
    text.push_str("spec:\n  rules:\n    privileged: {}\n");
    text
}

/// Billion laughs: ten levels of ten aliases each to the level below (10^10 nodes).
fn nested_bomb() -> String {
    let mut text = format!(
        "{POLICY_HEAD}spec:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    );
    for level in 1..10 {
        let items = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("  l{level}: &l{level} [{items}]\n"));
    }
    text
}

/// Nearly a million references to one small anchored mapping, in a file under 4 MiB.
fn many_references_bomb() -> String {
    format!(
        "{POLICY_HEAD}spec:\n  v: &v {{a: b}}\n  refs: [{}]\n",
        vec!["*v"; 900_000].join(",")
    )
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[test]
fn policy_validate_rejects_alias_bombs_at_the_alias_under_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, line, message) in [
        (
            "long-scalar-100.yaml",
            long_scalar_bomb(100),
            52,
            "expands to more than 48 MiB",
        ),
        (
            "long-scalar-1000.yaml",
            long_scalar_bomb(1_000),
            52,
            "expands to more than 48 MiB",
        ),
        (
            "nested.yaml",
            nested_bomb(),
            11,
            "expands to more than 48 MiB",
        ),
        (
            "many-references.yaml",
            many_references_bomb(),
            7,
            "expands to more than 48 MiB",
        ),
    ] {
        let file = write(dir.path(), name, &content);
        let out = run_limited(MEMORY_LIMIT, &["policy", "validate", &file]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{file}:{line}:")) && err.contains(message),
            "{name}: the error names the file, the line of the alias and the bound:\n{err}"
        );
    }
}

#[test]
fn policy_files_over_the_size_cap_are_rejected_before_they_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let policy = format!("{POLICY_HEAD}spec:\n  rules:\n    privileged: {{}}\n");
    // A comment makes it 5 MiB: over the 4 MiB default.
    let large = write(
        dir.path(),
        "large.yaml",
        &format!("{policy}# {}\n", "x".repeat(5 << 20)),
    );
    let out = run_limited(MEMORY_LIMIT, &["policy", "validate", &large]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{large}: larger than 4 MiB, the most the policy files may hold together (--max-policy-size)"
        )),
        "{err}"
    );
    // The bound is configurable, for validate, check and serve alike.
    let small = write(dir.path(), "small.yaml", &policy);
    let out = run_limited(
        MEMORY_LIMIT,
        &["policy", "validate", "--max-policy-size", "64", &small],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("larger than 64 bytes"));
    let out = run_limited(
        MEMORY_LIMIT,
        &["policy", "validate", "--max-policy-size", "8MiB", &large],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let manifest = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n",
    );
    let out = run_limited(
        MEMORY_LIMIT,
        &[
            "check",
            "--policy",
            &small,
            "--max-policy-size",
            "64",
            &manifest,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--max-policy-size"));
}

#[test]
fn check_reports_a_bomb_document_as_an_input_error_and_judges_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\ndata:\n  big: &big '{}'\n  copies: [{}]\n",
        "x".repeat(1 << 20),
        vec!["*big"; 1_000].join(", ")
    );
    let privileged = "apiVersion: v1\nkind: Pod\nmetadata: {name: priv, namespace: apps}\nspec:\n  containers:\n  - name: a\n    image: registry.corp/a:1\n    securityContext: {privileged: true}\n";
    let file = write(
        dir.path(),
        "manifests.yaml",
        &format!("{bomb}---\n{privileged}"),
    );
    // Documents are read one at a time: the limit of one is what check needs, about 256 MiB.
    let out = run_limited(512 << 20, &["check", "--profile", "baseline", &file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("{file}: line 6:"))
            && stdout.contains("expands to more than 256 MiB"),
        "{stdout}"
    );
    assert!(
        stdout.contains("apps/priv"),
        "the next document is judged: {stdout}"
    );
    assert!(stdout.contains("privileged"), "{stdout}");
    // A smaller bound per document, as a CI job with little memory would set it.
    let out = run_limited(
        MEMORY_LIMIT,
        &[
            "check",
            "--profile",
            "baseline",
            "--max-document-size",
            "1MiB",
            &file,
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("expands to more than 1 MiB"), "{stdout}");
}

/// Reads `child`'s standard error until a line contains `needle` (or `timeout` passes),
/// returning everything read.
fn read_until(lines: &mut impl Iterator<Item = String>, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    for line in lines.by_ref() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) || Instant::now() > deadline {
            break;
        }
    }
    seen
}

/// A child process killed and reaped when dropped, whatever the test's outcome.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_keeps_the_last_good_policy_when_a_bomb_replaces_it_under_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!("{POLICY_HEAD}spec:\n  rules:\n    privileged: {{}}\n");
    let policy = write(dir.path(), "policy.yaml", &good);
    let socket = dir.path().join("nri.sock").display().to_string();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    let report = dir.path().join("report.json").display().to_string();
    let state = dir.path().join("state.json").display().to_string();
    // The DaemonSet's memory limit is 128 MiB; nodeguard runs a few threads, whose stacks and
    // malloc arenas take address space but not memory, hence a larger address-space limit.
    let mut child = Killed(
        limited(
            256 << 20,
            &[
                "serve",
                "--policy",
                &policy,
                "--nri-socket",
                &socket,
                "--containerd-socket",
                &containerd,
                "--report-file",
                &report,
                "--state-file",
                &state,
                "--reload-interval",
                "100ms",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let log = read_until(&mut lines, "policy loaded", Duration::from_secs(10));
    assert!(log.contains("policy loaded"), "{log}");
    for (what, content) in [
        ("long scalar", long_scalar_bomb(1_000)),
        ("nested", nested_bomb()),
        ("many references", many_references_bomb()),
        ("oversized", format!("{good}# {}\n", "x".repeat(5 << 20))),
    ] {
        write(dir.path(), "policy.yaml", &content);
        let log = read_until(
            &mut lines,
            "policy change rejected",
            Duration::from_secs(10),
        );
        let rest = read_until(&mut lines, "policy.yaml", Duration::from_secs(2));
        let log = format!("{log}{rest}");
        assert!(
            log.contains("the last good policy stays in force") && log.contains("policy.yaml"),
            "{what}: {log}"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "{what}: nodeguard died"
        );
    }
    // Still alive and still reading: a good change is taken.
    write(
        dir.path(),
        "policy.yaml",
        &good.replace("name: bomb", "name: better"),
    );
    let log = read_until(&mut lines, "policy reloaded", Duration::from_secs(10));
    assert!(
        log.contains("policy reloaded generation=2 policies=\"better\""),
        "{log}"
    );
}
