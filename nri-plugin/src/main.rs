//! The `nodeguard` binary: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use nodeguard::audit::{AuditFile, AuditSink, Discard};
use nodeguard::check::{self, Format};
use nodeguard::connection::Registration;
use nodeguard::containerd::Containerd;
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::plugin::PluginService;
use nodeguard::policy_files;
use nodeguard::serve::{ConnectionState, Endpoint, ServeConfig};
use nodeguard::telemetry::{self, LogFormat};
use policy_core::{Effect, Policy, PssLevel};
use tokio_util::sync::CancellationToken;

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
    /// Run as a containerd NRI plugin, refusing containers that break the policy.
    ///
    /// Exit status 2 when flags or the policy are invalid (checked before any socket is
    /// touched).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Policy file, or directory of policy files (a mounted ConfigMap).
    #[arg(
        long,
        env = "NODEGUARD_POLICY",
        default_value = "/etc/nodeguard/policy"
    )]
    policy: PathBuf,
    /// The runtime's NRI socket.
    #[arg(long, default_value = "/var/run/nri/nri.sock")]
    nri_socket: PathBuf,
    /// containerd's gRPC socket (read at container start for the full OCI spec).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// Name nodeguard registers under.
    #[arg(long, env = "NRI_PLUGIN_NAME", default_value = "nodeguard")]
    plugin_name: String,
    /// Two-digit index nodeguard registers with; lower indices are called first.
    #[arg(long, env = "NRI_PLUGIN_IDX", default_value = "10")]
    plugin_index: String,
    /// Append one JSON line per decision to this file.
    #[arg(long, env = "NODEGUARD_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Node name written in audit records (default: $NODE_NAME, else the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// What to do at container start when an enforced rule still cannot decide.
    #[arg(long, value_enum, default_value_t = UndecidedAtStart::Deny)]
    undecided_at_start: UndecidedAtStart,
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
    // Launched by containerd as a pre-installed plugin (no arguments, an inherited socket):
    // serve, configured by the environment.
    let cli = if std::env::args_os().len() == 1
        && std::env::var_os(nodeguard::inherited::SOCKET_ENV).is_some()
    {
        Cli::parse_from(["nodeguard", "serve"])
    } else {
        Cli::parse()
    };
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Policy(PolicyCommand::Validate { paths }) => run_validate(&paths),
        Command::Serve(args) => match run_serve(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("nodeguard: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Validates every flag and the policy, then serves until SIGTERM or SIGINT.
fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    if args.plugin_index.len() != 2 || !args.plugin_index.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(format!(
            "--plugin-index must be exactly two digits, not {:?}",
            args.plugin_index
        ));
    }
    if args.plugin_name.is_empty() || args.plugin_name.contains(['/', ' ']) {
        problems.push(format!(
            "--plugin-name {:?} is not a valid plugin name",
            args.plugin_name
        ));
    }
    let policy = match policy_files::load(&args.policy) {
        Ok(policy) => Some(policy),
        Err(e) => {
            problems.push(format!("--policy: {e}"));
            None
        }
    };
    let audit: Option<Arc<dyn AuditSink>> = match &args.audit_log {
        Some(path) => match AuditFile::open(path) {
            Ok(file) => Some(Arc::new(file)),
            Err(e) => {
                problems.push(format!("--audit-log {}: {e}", path.display()));
                None
            }
        },
        None => Some(Arc::new(Discard)),
    };
    // containerd launched us and handed over a connected socket, or we connect to its socket.
    let endpoint = match std::env::var(nodeguard::inherited::SOCKET_ENV) {
        Ok(value) => match nodeguard::inherited::take(&value) {
            Ok(stream) => Some(Endpoint::Inherited(stream)),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Err(_) => Some(Endpoint::Socket(args.nri_socket.clone())),
    };
    let (Some(policy), Some(audit), Some(endpoint), true) =
        (policy, audit, endpoint, problems.is_empty())
    else {
        anyhow::bail!("invalid configuration:\n  {}", problems.join("\n  "));
    };
    telemetry::init(args.log_format);
    let node = args
        .node_name
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let containerd = Containerd::new(&args.containerd_socket, Duration::from_secs(1))
            .context("invalid containerd socket")?;
        tracing::info!(
            policies = policy.names().collect::<Vec<_>>().join(","),
            checks = policy.check_count(),
            "policy loaded"
        );
        let enforcer = Arc::new(Enforcer::new(
            Arc::new(ArcSwap::from_pointee(policy)),
            containerd,
            audit,
            node,
            args.undecided_at_start,
        ));
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
            signals.cancel();
        });
        let config = ServeConfig {
            endpoint,
            registration: Registration {
                name: args.plugin_name,
                index: args.plugin_index,
            },
            registration_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        };
        let state = Arc::new(ConnectionState::default());
        nodeguard::serve::run(
            config,
            || Arc::new(PluginService::new(Arc::clone(&enforcer))),
            state,
            shutdown,
        )
        .await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
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
