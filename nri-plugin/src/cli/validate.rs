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
}

/// Validates each path on its own, printing notes as `note:` lines. Exit status: 0 valid, 2
/// invalid or unreadable (or, with `--strict`, noted).
pub fn run(args: &ValidateArgs) -> ExitCode {
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
