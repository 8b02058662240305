//! The `nodeguard` binary: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nodeguard::check::{self, Format};
use nodeguard::policy_files;
use policy_core::{Effect, Policy, PssLevel};

/// nodeguard: container policy enforced on the node, as a containerd NRI plugin.
#[derive(Debug, Parser)]
#[command(name = "nodeguard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Judge Kubernetes manifests and OCI runtime specs as the node would.
    ///
    /// Exit status: 0 all compliant, 1 an enforced rule is violated, 2 unusable input.
    Check(CheckArgs),
    /// Work with policy documents.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Policy file, or directory of policy files.
    #[arg(long, conflicts_with = "profile", required_unless_present = "profile")]
    policy: Option<PathBuf>,
    /// A Pod Security Standards level instead of a policy file.
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Manifests (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ...),
    /// OCI `config.json` files, or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Profile {
    Baseline,
    Restricted,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check policy files; report every mistake with file, line and field.
    ///
    /// Exit status: 0 valid, 2 invalid or unreadable.
    Validate {
        /// Policy files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Policy(PolicyCommand::Validate { paths }) => run_validate(&paths),
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    let policy = match (args.profile, &args.policy) {
        (Some(Profile::Baseline), _) => Policy::pod_security(PssLevel::Baseline, Effect::Enforce),
        (Some(Profile::Restricted), _) => {
            Policy::pod_security(PssLevel::Restricted, Effect::Enforce)
        }
        (None, Some(path)) => match policy_files::load(path) {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("nodeguard: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => unreachable!("clap requires --policy or --profile"),
    };
    let report = check::check_paths(&policy, &args.paths);
    print!("{}", check::render(&report, args.format));
    ExitCode::from(report.exit_code())
}

fn run_validate(paths: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in paths {
        match policy_files::load(path) {
            Ok(policy) => println!(
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
            ),
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", path.display());
            }
        }
    }
    ExitCode::from(if failed { 2 } else { 0 })
}
