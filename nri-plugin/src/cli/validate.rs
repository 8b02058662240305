//! `nodeguard policy validate`: every mistake of a policy, with file, line and field.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::ops::policy_files;
use crate::ops::size;

/// The arguments of `nodeguard policy validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Policy files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
    /// rejected and the last good policy stays in force.
    #[arg(long, default_value = "4MiB", value_parser = size::parse_size)]
    pub max_policy_size: u64,
    /// Notes (what the node will not enforce: a Gatekeeper kind nodeguard does not implement,
    /// a parameter that needs the API server) are errors.
    #[arg(long)]
    pub strict: bool,
    /// Output format: lines for people, or one JSON document for tools.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

/// How `policy validate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    /// `path: valid (...)`, or every mistake as `file:line:column: field: message`.
    Text,
    /// `{"paths": [{"path", "valid", "policies", "checks", "errors", "notes"}]}`, each error
    /// and note with `file`, `line`, `column`, `field` and `message`.
    Json,
}

fn problem(e: &policy_core::PolicyError) -> serde_json::Value {
    serde_json::json!({
        "file": e.source_name,
        "line": e.location.line,
        "column": e.location.column,
        "field": e.path,
        "message": e.message,
    })
}

/// The JSON form of one path's result.
fn json_result(
    path: &std::path::Path,
    loaded: &Result<policy_core::Policy, policy_files::LoadError>,
    strict: bool,
) -> serde_json::Value {
    match loaded {
        Ok(policy) => serde_json::json!({
            "path": path.display().to_string(),
            "valid": !strict || policy.notes().is_empty(),
            "policies": policy.names().collect::<Vec<_>>(),
            "checks": policy.check_count(),
            "errors": [],
            "notes": policy.notes().iter().map(problem).collect::<Vec<_>>(),
        }),
        Err(policy_files::LoadError::Invalid(errors)) => serde_json::json!({
            "path": path.display().to_string(),
            "valid": false,
            "errors": errors.0.iter().map(problem).collect::<Vec<_>>(),
            "notes": [],
        }),
        Err(other) => serde_json::json!({
            "path": path.display().to_string(),
            "valid": false,
            "errors": [{"file": path.display().to_string(), "message": other.to_string()}],
            "notes": [],
        }),
    }
}

/// Validates each path on its own, printing notes as `note:` lines. Exit status: 0 valid, 2
/// invalid or unreadable (or, with `--strict`, noted).
pub fn run(args: &ValidateArgs) -> ExitCode {
    if args.format == ValidateFormat::Json {
        let results: Vec<serde_json::Value> = args
            .paths
            .iter()
            .map(|path| {
                json_result(
                    path,
                    &policy_files::load(path, args.max_policy_size),
                    args.strict,
                )
            })
            .collect();
        let failed = results.iter().any(|r| r["valid"] == false);
        let mut text = serde_json::to_string_pretty(&serde_json::json!({"paths": results}))
            .unwrap_or_default();
        text.push('\n');
        super::output::emit(&text);
        return ExitCode::from(if failed { 2 } else { 0 });
    }
    let mut failed = false;
    for path in &args.paths {
        match policy_files::load(path, args.max_policy_size) {
            Ok(policy) if args.strict && !policy.notes().is_empty() => {
                failed = true;
                let n = policy.notes().len();
                eprintln!(
                    "{}: {n} note{} (--strict makes them errors)",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                );
                for note in policy.notes() {
                    eprintln!("  {note}");
                }
            }
            Ok(policy) => {
                for note in policy.notes() {
                    eprintln!("note: {note}");
                }
                println!(
                    "{}: valid ({} polic{}: {}; {} checks)",
                    path.display(),
                    policy.names().count(),
                    if policy.names().count() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    policy.names().collect::<Vec<_>>().join(", "),
                    policy.check_count()
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", path.display());
            }
        }
    }
    ExitCode::from(if failed { 2 } else { 0 })
}
