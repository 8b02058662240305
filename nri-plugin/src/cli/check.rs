//! `nodeguard check`: judge Kubernetes manifests and OCI runtime specs as the node would.
//!
//! Inputs are files or directories (searched recursively for `.yaml`, `.yml` and `.json`).
//! YAML and JSON files may hold any number of Kubernetes objects (`List`s included); pods and
//! workload templates are judged (a kind nodeguard does not know by name is judged when its
//! shape shows a pod template), other objects are listed as skipped with the reason. A
//! document with an `ociVersion` is an OCI runtime spec (`config.json`), whatever the file is
//! called, and is judged as one container. A document that is neither (no `kind`, no
//! `ociVersion`) is an input error, as is a spec or manifest with a field of the wrong shape.

use std::path::{Path, PathBuf};

use policy_core::yaml::{Documents, Limits, Location};
use policy_core::{ContainerView, Decision, Policy, Verdict, evaluate};
use serde_json::Value;

use super::findings::{Finding, Format, InputError, ObjectResult, Report, Skipped, Summary};
use super::output;
use crate::ops::policy_files::{PolicyPath, Profile};
use crate::ops::size;
use nodeguard_views::manifest::{ManifestError, PodManifest};
use nodeguard_views::oci::RuntimeSpec;

/// How inputs are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace of objects that name none (`-n`, as `kubectl -n` and `helm template -n`
    /// mean it); `default` when unset.
    pub namespace: Option<String>,
    /// The most one YAML document may expand to, in bytes (aliases counted at the size of
    /// what they repeat). Documents are read one at a time, so a file may hold any number.
    pub max_document_size: usize,
    /// Judging nothing at all is an input error (exit status 2), not a pass.
    pub fail_if_empty: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            max_document_size: Limits::MANIFEST.max_document_bytes,
            fail_if_empty: false,
        }
    }
}

/// The name standard input goes by in results.
pub const STDIN: &str = "<stdin>";

/// Judges every input against the policy; `-` is standard input.
pub fn check_paths(policy: &Policy, paths: &[PathBuf], options: &Options) -> Report {
    let mut report = Report::default();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        // `-`: what a pipe brings (`helm template ... | nodeguard check -`).
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes) {
                Ok(_) => check_bytes(policy, STDIN, &bytes, options, &mut report),
                Err(e) => report.errors.push(InputError {
                    file: STDIN.to_string(),
                    line: None,
                    message: e.to_string(),
                }),
            }
            continue;
        }
        // A path given twice (or two names of one file) is judged once.
        if std::fs::canonicalize(path).is_ok_and(|c| seen.contains(&c)) {
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = collect_files(path, &mut seen, &mut files) {
            report.errors.push(InputError {
                file: path.display().to_string(),
                line: None,
                message: e.to_string(),
            });
            continue;
        }
        if files.is_empty() {
            report.errors.push(InputError {
                file: path.display().to_string(),
                line: None,
                message: "no .yaml, .yml or .json files found".to_string(),
            });
        }
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => check_bytes(
                    policy,
                    &file.display().to_string(),
                    &bytes,
                    options,
                    &mut report,
                ),
                Err(e) => report.errors.push(InputError {
                    file: file.display().to_string(),
                    line: None,
                    message: e.to_string(),
                }),
            }
        }
    }
    if options.fail_if_empty && report.results.is_empty() {
        report.errors.push(InputError {
            file: "-".to_string(),
            line: None,
            message: format!(
                "nothing was judged ({} object{} skipped), and --fail-if-empty is set",
                report.skipped.len(),
                if report.skipped.len() == 1 { "" } else { "s" }
            ),
        });
    }
    report.summary = Summary::of(&report);
    report
}

/// The files a path names: itself, or the `.yaml`, `.yml` and `.json` files under a directory,
/// sorted. Hidden entries are skipped (a mounted ConfigMap's `..data` links would show every
/// file three times), and no directory or file is visited twice, whatever symlinks say (a
/// loop would otherwise repeat a file without end).
fn collect_files(
    path: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let canonical = std::fs::canonicalize(path)?;
    if !seen.insert(canonical.clone()) {
        return Ok(());
    }
    if !canonical.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        let manifest = matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if entry.is_dir() || manifest {
            collect_files(&entry, seen, out)?;
        }
    }
    Ok(())
}

/// Judges the objects in one file's contents.
pub fn check_bytes(
    policy: &Policy,
    file: &str,
    bytes: &[u8],
    options: &Options,
    report: &mut Report,
) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        report.errors.push(InputError {
            file: file.to_string(),
            line: None,
            message: "not UTF-8 text".to_string(),
        });
        return;
    };
    let limits = Limits::MANIFEST.with_document_bytes(options.max_document_size);
    let error = |report: &mut Report, line: usize, message: String| {
        report.errors.push(InputError {
            file: file.to_string(),
            line: Some(line),
            message: format!("line {line}: {message}"),
        });
    };
    // One document at a time: a large dump never holds more than one expanded document.
    for doc in Documents::new(text, limits) {
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                error(
                    report,
                    e.location.line,
                    format!("invalid YAML: {}", e.message),
                );
                continue;
            }
        };
        let start = doc.locations.start().line;
        // An OCI runtime spec, by what it says, whatever the file is called.
        if RuntimeSpec::is_spec_document(&doc.value) {
            match RuntimeSpec::from_value(&doc.value)
                .map_err(|e| (doc.locations.nearest(&e.path).line, e.to_string()))
                .and_then(|spec| ContainerView::try_from(&spec).map_err(|e| (start, e.to_string())))
            {
                Ok(view) => {
                    report
                        .results
                        .push(judge_spec(policy, file, doc.locations.start(), &view))
                }
                Err((line, message)) => error(report, line, format!("OCI runtime spec: {message}")),
            }
            continue;
        }
        let kind = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() {
            error(
                report,
                start,
                "a document without kind: neither a Kubernetes object nor an OCI runtime spec \
                 (ociVersion)"
                    .to_string(),
            );
            continue;
        }
        let items: Vec<(String, &Value)> = match doc.value.get("items").and_then(Value::as_array) {
            Some(items) if kind.ends_with("List") => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("items[{i}]."), item))
                .collect(),
            _ => vec![(String::new(), &doc.value)],
        };
        for (prefix, item) in items {
            match PodManifest::try_from(item) {
                Ok(mut pod) => {
                    if let Some(namespace) = &options.namespace {
                        pod.default_namespace(namespace);
                    }
                    let at = doc.locations.nearest(prefix.trim_end_matches('.'));
                    report.results.push(judge_pod(policy, file, at, &pod));
                }
                Err(ManifestError::NotAPod { kind }) if kind.is_empty() => {
                    let line = doc.locations.nearest(&prefix).line;
                    error(report, line, "an object without kind".to_string());
                }
                Err(ManifestError::NotAPod { kind }) => report.skipped.push(Skipped {
                    file: file.to_string(),
                    name: item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .to_string(),
                    reason: format!("a {kind} holds no pod (no spec.template with containers)"),
                    kind,
                }),
                Err(ManifestError::Invalid(e)) => {
                    let path = format!("{prefix}{}", e.path);
                    let location = doc.locations.nearest(&path);
                    error(report, location.line, format!("{}: {}", e.path, e.message));
                }
            }
        }
    }
}

/// Judges the container an OCI runtime spec describes.
fn judge_spec(policy: &Policy, file: &str, at: Location, view: &ContainerView) -> ObjectResult {
    let decision = evaluate(policy, view);
    ObjectResult {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        kind: "OCIRuntimeSpec".to_string(),
        namespace: view.pod.namespace.clone(),
        name: if view.pod.name.is_empty() {
            view.name.clone()
        } else {
            format!("{}/{}", view.pod.name, view.name)
        },
        verdict: decision.verdict(),
        policy_applies: policy_core::applicable_checks(policy, view)
            .next()
            .is_some(),
        violations: findings(&view.name, &decision, false),
        undecided: findings(&view.name, &decision, true),
    }
}

fn findings(container: &str, decision: &Decision, undecided: bool) -> Vec<Finding> {
    if undecided {
        decision
            .lacking()
            .map(|u| Finding {
                containers: vec![container.to_string()],
                policy: u.policy.to_string(),
                rule: u.rule,
                effect: u.effect,
                message: format!("unknown: {}", u.missing),
            })
            .collect()
    } else {
        decision
            .violations
            .iter()
            .map(|v| Finding {
                containers: vec![container.to_string()],
                policy: v.policy.to_string(),
                rule: v.rule,
                effect: v.effect,
                message: v.message.clone(),
            })
            .collect()
    }
}

/// Judges every container of a pod; the pod's verdict is the worst of its containers'. A
/// finding several containers share (the same rule and message) is reported once, naming
/// them all, as Pod Security Admission does (`containers "a", "b", "init"`).
pub fn judge_pod(policy: &Policy, file: &str, at: Location, pod: &PodManifest) -> ObjectResult {
    let mut violations: Vec<Finding> = Vec::new();
    let mut undecided: Vec<Finding> = Vec::new();
    let mut verdict = Verdict::Allow;
    let mut policy_applies = false;
    for view in &pod.containers {
        policy_applies |= policy_core::applicable_checks(policy, view)
            .next()
            .is_some();
        let decision = evaluate(policy, view);
        verdict = match (verdict, decision.verdict()) {
            (Verdict::Deny, _) | (_, Verdict::Deny) => Verdict::Deny,
            (Verdict::Undecided, _) | (_, Verdict::Undecided) => Verdict::Undecided,
            _ => Verdict::Allow,
        };
        for (list, found) in [
            (&mut violations, findings(&view.name, &decision, false)),
            (&mut undecided, findings(&view.name, &decision, true)),
        ] {
            for f in found {
                match list
                    .iter_mut()
                    .find(|g| g.rule == f.rule && g.policy == f.policy && g.message == f.message)
                {
                    Some(same) => {
                        for c in f.containers {
                            if !same.containers.contains(&c) {
                                same.containers.push(c);
                            }
                        }
                        same.containers.sort();
                    }
                    None => list.push(f),
                }
            }
        }
    }
    ObjectResult {
        file: file.to_string(),
        line: at.line,
        column: at.column,
        kind: pod.kind.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        verdict,
        policy_applies,
        violations,
        undecided,
    }
}

/// The arguments of `nodeguard check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Policy file, or directory of policy files; repeatable, all read as one policy.
    #[arg(long, required_unless_present = "profile")]
    pub policy: Vec<PathBuf>,
    /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
    /// rejected and the last good policy stays in force.
    #[arg(long, default_value = "4MiB", value_parser = size::parse_size)]
    pub max_policy_size: u64,
    /// What the node would not judge (a Gatekeeper kind nodeguard does not implement, a
    /// parameter that needs the API server) is an error (exit 2), not a note.
    #[arg(long)]
    pub strict: bool,
    /// A Pod Security Standards level, alone or beside the policy files: `baseline` or
    /// `restricted`, optionally with the version of the standard (`baseline:v1.35`; default
    /// `latest`), as Pod Security Admission's `enforce-version`.
    #[arg(long, value_name = "LEVEL[:VERSION]")]
    pub profile: Option<Profile>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The most one manifest document may expand to (`256MiB`); a larger one is an input
    /// error, and the next document is read.
    #[arg(long, default_value = "256MiB", value_parser = size::parse_size)]
    pub max_document_size: u64,
    /// The namespace of objects that name none (as `kubectl -n` and `helm template -n` mean
    /// it; default: `default`).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Judging nothing (no pod, workload template or OCI spec in the input) is an input error
    /// (exit status 2) rather than a pass with a warning.
    #[arg(long)]
    pub fail_if_empty: bool,
    /// Manifests (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ...),
    /// OCI `config.json` files, or directories of them; `-` reads standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs `nodeguard check`. Exit status: 0 all compliant, 1 an enforced rule is violated, 2
/// unusable input.
pub fn run(args: &CheckArgs) -> std::process::ExitCode {
    let source = PolicyPath {
        paths: args.policy.clone(),
        profile: args.profile,
        max_size: args.max_policy_size,
        strict: args.strict,
    };
    let policy = match source.load() {
        Ok(policy) => policy,
        Err(e) => return output::unusable(e),
    };
    for note in policy.notes() {
        eprintln!("note: not judged: {note}");
    }
    let options = Options {
        namespace: args.namespace.clone(),
        max_document_size: usize::try_from(args.max_document_size).unwrap_or(usize::MAX),
        fail_if_empty: args.fail_if_empty,
    };
    let report = check_paths(&policy, &args.paths, &options);
    output::emit(&output::render(&report, args.format));
    std::process::ExitCode::from(report.exit_code())
}
