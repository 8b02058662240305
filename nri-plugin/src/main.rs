//! The `nodeguard` binary: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use nodeguard::cli::check::{self, Format};
use nodeguard::compliance::{Auditor, ComplianceConfig, Trigger};
use nodeguard::enforce::{Enforcer, UndecidedAtStart};
use nodeguard::nri::connection::Registration;
use nodeguard::nri::serve::{ConnectionState, Endpoint, ServeConfig};
use nodeguard::nri::service::PluginService;
use nodeguard::ops::audit::{AuditFile, AuditSink, Discard, Rotation};
use nodeguard::ops::metrics::{self, Metrics};
use nodeguard::ops::policy_files::{self, PolicyPath};
use nodeguard::ops::reload::PolicyHandle;
use nodeguard::ops::reload::{self, Reloader};
use nodeguard::ops::telemetry::{self, LogFormat};
use nodeguard::runtime::containerd::Containerd;
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
    /// Print the latest compliance report (what `nodeguard serve` found running).
    ///
    /// Exit status: 0 nothing fails, 1 a container fails a rule, 2 no readable report.
    Report(ReportArgs),
    /// Run as a containerd NRI plugin, refusing containers that break the policy.
    ///
    /// Exit status 2 when flags or the policy are invalid (checked before any socket is
    /// touched).
    Serve(Box<ServeArgs>),
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
    /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
    /// rejected and the last good policy stays in force.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    max_policy_size: u64,
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
    /// Rotate the audit log when it would grow past this size (`100MiB`, `1GB`; 0: never).
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    audit_log_max_size: u64,
    /// Rotated audit log files kept (`audit.jsonl.1` ... `.N`).
    #[arg(long, default_value_t = 5)]
    audit_log_max_files: usize,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. `0.0.0.0:9400`).
    #[arg(long, env = "NODEGUARD_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Write the compliance report (PolicyReport, JSON) here; empty: do not write one.
    #[arg(long, env = "NODEGUARD_REPORT", default_value = DEFAULT_REPORT)]
    report_file: PathBuf,
    /// Keep the ids of the running containers here, to name after a restart those that
    /// started while nodeguard was away; empty: do not keep them.
    #[arg(long, env = "NODEGUARD_STATE", default_value = DEFAULT_STATE)]
    state_file: PathBuf,
    /// Re-audit running containers this often (`10m`, `1h`; 0: only at registration and
    /// policy reloads).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    audit_interval: Duration,
    /// Re-read the policy this often (also on SIGHUP).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    reload_interval: Duration,
    /// Time a container stopped by `remediate: stop` has between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    remediation_grace: Duration,
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

/// Where `serve` writes the compliance report and `report` reads it.
const DEFAULT_REPORT: &str = "/var/lib/nodeguard/report.json";
/// Where `serve` keeps the ids of the containers it knows to run.
const DEFAULT_STATE: &str = "/var/lib/nodeguard/containers.json";

fn parse_size(text: &str) -> Result<u64, String> {
    nodeguard::ops::size::parse_size(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The report file `nodeguard serve` writes.
    #[arg(long, env = "NODEGUARD_REPORT", default_value = DEFAULT_REPORT)]
    file: PathBuf,
    /// Output format: a table of what needs attention, or the PolicyReport JSON.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// Show passing results too.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Policy file, or directory of policy files.
    #[arg(long, conflicts_with = "profile", required_unless_present = "profile")]
    policy: Option<PathBuf>,
    /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
    /// rejected and the last good policy stays in force.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    max_policy_size: u64,
    /// A Pod Security Standards level instead of a policy file.
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The most one manifest document may expand to (`256MiB`); a larger one is an input
    /// error, and the next document is read.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    max_document_size: u64,
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
        /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
        /// rejected and the last good policy stays in force.
        #[arg(long, default_value = "4MiB", value_parser = parse_size)]
        max_policy_size: u64,
    },
}

fn main() -> ExitCode {
    // Launched by containerd as a pre-installed plugin (no arguments, an inherited socket):
    // serve, configured by the environment.
    let cli = if std::env::args_os().len() == 1
        && std::env::var_os(nodeguard::nri::inherited::SOCKET_ENV).is_some()
    {
        Cli::parse_from(["nodeguard", "serve"])
    } else {
        Cli::parse()
    };
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Policy(PolicyCommand::Validate {
            paths,
            max_policy_size,
        }) => run_validate(&paths, max_policy_size),
        Command::Report(args) => run_report(&args),
        Command::Serve(args) => match run_serve(*args) {
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
    if args.reload_interval.is_zero() {
        problems.push("--reload-interval must be more than 0".to_string());
    }
    let policy_path = PolicyPath {
        path: args.policy.clone(),
        max_size: args.max_policy_size,
    };
    let sources = match policy_path.read() {
        Ok(sources) => match sources.compile() {
            Ok(policy) => Some((sources, policy)),
            Err(e) => {
                problems.push(format!("--policy: {e}"));
                None
            }
        },
        Err(e) => {
            problems.push(format!("--policy: {e}"));
            None
        }
    };
    let audit_file = match &args.audit_log {
        Some(path) => {
            let rotation = Rotation {
                max_bytes: args.audit_log_max_size,
                max_files: args.audit_log_max_files,
            };
            match AuditFile::open(path, rotation) {
                Ok(file) => Some(Arc::new(file)),
                Err(e) => {
                    problems.push(format!("--audit-log {}: {e}", path.display()));
                    None
                }
            }
        }
        None => None,
    };
    let report_file = (!args.report_file.as_os_str().is_empty()).then(|| args.report_file.clone());
    let state_file = (!args.state_file.as_os_str().is_empty()).then(|| args.state_file.clone());
    for (flag, file) in [
        ("--report-file", &report_file),
        ("--state-file", &state_file),
    ] {
        if let Some(dir) = file.as_deref().and_then(std::path::Path::parent)
            && !dir.as_os_str().is_empty()
            && dir.exists()
            && !dir.is_dir()
        {
            problems.push(format!("{flag}: {} is not a directory", dir.display()));
        }
    }
    let metrics_listener = match args.metrics_addr {
        Some(addr) => match std::net::TcpListener::bind(addr) {
            Ok(listener) => Some(listener),
            Err(e) => {
                problems.push(format!("--metrics-addr {addr}: {e}"));
                None
            }
        },
        None => None,
    };
    // containerd launched us and handed over a connected socket, or we connect to its socket.
    let endpoint = match std::env::var(nodeguard::nri::inherited::SOCKET_ENV) {
        Ok(value) => match nodeguard::nri::inherited::take(&value) {
            Ok(stream) => Some(Endpoint::Inherited(stream)),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Err(_) => Some(Endpoint::Socket(args.nri_socket.clone())),
    };
    let (Some((sources, policy)), Some(endpoint), true) = (sources, endpoint, problems.is_empty())
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
    let own_pod = match (std::env::var("POD_NAMESPACE"), std::env::var("POD_NAME")) {
        (Ok(ns), Ok(name)) if !ns.is_empty() && !name.is_empty() => Some((ns, name)),
        _ => None,
    };
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
        let state = Arc::new(ConnectionState::default());
        let mut sources_for_metrics: Vec<Arc<dyn metrics::Source>> =
            vec![Arc::clone(&state) as Arc<dyn metrics::Source>];
        if let Some(file) = &audit_file {
            sources_for_metrics.push(Arc::clone(file) as Arc<dyn metrics::Source>);
        }
        let metrics = Arc::new(Metrics::new(sources_for_metrics));
        let policy: PolicyHandle = Arc::new(ArcSwap::from_pointee(policy));
        let reloader = Arc::new(Reloader::new(
            policy_path,
            Arc::clone(&policy),
            sources,
            Arc::clone(&metrics),
        ));
        let audit: Arc<dyn AuditSink> = match &audit_file {
            Some(file) => Arc::clone(file) as Arc<dyn AuditSink>,
            None => Arc::new(Discard),
        };
        let enforcer = Arc::new(
            Enforcer::new(policy, containerd, audit, node, args.undecided_at_start)
                .with_metrics(Arc::clone(&metrics))
                .with_generation(reloader.generation_handle()),
        );
        let auditor = Arc::new(Auditor::new(
            enforcer,
            ComplianceConfig {
                report_path: report_file,
                remediation_grace: args.remediation_grace,
                own_pod,
                state_path: state_file,
            },
        ));
        let shutdown = CancellationToken::new();
        let reload_now = Arc::new(tokio::sync::Notify::new());
        spawn_signal_handlers(shutdown.clone(), Arc::clone(&reload_now))?;
        if let Some(listener) = metrics_listener {
            listener
                .set_nonblocking(true)
                .context("metrics listener")?;
            let listener =
                tokio::net::TcpListener::from_std(listener).context("metrics listener")?;
            tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics, /healthz, /readyz");
            let readiness = Arc::new(nodeguard::housekeeping::DaemonReadiness {
                state: Arc::clone(&state),
                reloader: Arc::clone(&reloader),
            });
            tokio::spawn(nodeguard::ops::http::serve(
                listener,
                Arc::clone(&metrics),
                readiness,
                shutdown.clone(),
            ));
        }
        {
            let auditor = Arc::clone(&auditor);
            let state = Arc::clone(&state);
            tokio::spawn(reload::watch(
                Arc::clone(&reloader),
                args.reload_interval,
                reload_now,
                shutdown.clone(),
                move |_| {
                    if state.is_registered() {
                        let auditor = Arc::clone(&auditor);
                        tokio::spawn(async move {
                            auditor.compliance_audit(Trigger::PolicyReload).await;
                        });
                    }
                },
            ));
        }
        tokio::spawn(nodeguard::housekeeping::periodic(
            Arc::clone(&auditor),
            Arc::clone(&state),
            audit_file.clone(),
            nodeguard::housekeeping::TICK,
            args.audit_interval,
            shutdown.clone(),
        ));
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
        nodeguard::nri::serve::run(
            config,
            || Arc::new(PluginService::new(Arc::clone(&auditor))),
            state,
            shutdown,
        )
        .await;
        auditor.persist_state().await;
        if let Some(file) = &audit_file
            && let Err(e) = file.sync()
        {
            tracing::error!(error = %e, "cannot flush the audit log at shutdown");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT shut down; SIGHUP re-reads the policy.
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    reload: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = hup.recv() => reload.notify_one(),
            }
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    Ok(())
}

fn run_report(args: &ReportArgs) -> ExitCode {
    let report = match nodeguard::compliance::report::read(&args.file) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("nodeguard: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = nodeguard::compliance::report::Filter {
        namespace: args.namespace.clone(),
        all: args.all,
    };
    match args.format {
        ReportFormat::Table => emit(&nodeguard::compliance::report::render_table(
            &report, &filter,
        )),
        ReportFormat::Json => match serde_json::to_string_pretty(&filter.apply(&report)) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(e) => {
                eprintln!("nodeguard: {e}");
                return ExitCode::from(2);
            }
        },
    }
    let scoped = nodeguard::compliance::report::Filter {
        namespace: args.namespace.clone(),
        all: true,
    }
    .apply(&report);
    ExitCode::from(u8::from(
        nodeguard::compliance::report::total(&scoped).fail > 0,
    ))
}

fn run_check(args: CheckArgs) -> ExitCode {
    let policy = match (args.profile, &args.policy) {
        (Some(Profile::Baseline), _) => Policy::pod_security(PssLevel::Baseline, Effect::Enforce),
        (Some(Profile::Restricted), _) => {
            Policy::pod_security(PssLevel::Restricted, Effect::Enforce)
        }
        (None, Some(path)) => match policy_files::load(path, args.max_policy_size) {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("nodeguard: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => unreachable!("clap requires --policy or --profile"),
    };
    let options = check::Options {
        max_document_size: usize::try_from(args.max_document_size).unwrap_or(usize::MAX),
    };
    let report = check::check_paths(&policy, &args.paths, &options);
    emit(&check::render(&report, args.format));
    ExitCode::from(report.exit_code())
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn run_validate(paths: &[PathBuf], max_policy_size: u64) -> ExitCode {
    let mut failed = false;
    for path in paths {
        match policy_files::load(path, max_policy_size) {
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
