//! `nodeguard serve`: the daemon put together. The one module that names every other.
//!
//! [`DaemonConfig::validate`] checks every flag and the policy before any socket is touched and
//! reports every problem at once; [`run`] wires the enforcer, the auditor, the reloader, the
//! HTTP endpoint and the periodic duties around the NRI connection, and serves until
//! [`Control::shutdown`]. I/O that tests replace comes in as arguments: the runtime's endpoint,
//! containerd's API, and the control signals (`main` forwards SIGTERM and SIGHUP to them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use policy_core::Policy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::cluster::events::EventPublisher;
use crate::cluster::reports::{ReportFormat, ReportPublisher};
use crate::cluster::{ClusterMode, ClusterPolicy, Connection};
use crate::compliance::report::DEFAULT_REPORT;
use crate::compliance::{Auditor, ComplianceConfig, DEFAULT_STATE, Trigger};
use crate::enforce::{Enforcer, UndecidedAtStart};
use crate::nri::connection::Registration;
use crate::nri::serve::{ConnectionState, Endpoint, ServeConfig};
use crate::nri::service::PluginService;
use crate::ops::audit::{AuditFile, AuditSink, Discard, Rotation};
use crate::ops::events::EventRecorder;
use crate::ops::http::Readiness;
use crate::ops::metrics::{self, Metrics};
use crate::ops::policy_files::{PolicyPath, Profile, Sources};
use crate::ops::reload::{self, Loaded, MoreSources, PolicyHandle, Reloader};
use crate::ops::size;
use crate::ops::telemetry::LogFormat;
use crate::runtime::containerd::ContainerdApi;

/// Where `serve` reads its policy unless told otherwise (the DaemonSet's ConfigMap mount).
pub const DEFAULT_POLICY: &str = "/etc/nodeguard/policy";

/// How often the daemon retries the audit log's backlog and brings the state file up to
/// date; the compliance audit's interval is counted in these steps.
pub const TICK: Duration = Duration::from_secs(5);

/// A path flag that may be empty (`--report-file ''`: none), which clap's path parser refuses.
fn path_or_empty() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// The flags of `nodeguard serve`, as given.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeFlags {
    /// Policy file, or directory of policy files (a mounted ConfigMap); repeatable, all read
    /// as one policy. Default: /etc/nodeguard/policy, unless --profile is given alone.
    #[arg(long, env = "NODEGUARD_POLICY")]
    pub policy: Vec<PathBuf>,
    /// A Pod Security Standards level enforced beside the policy files (or alone): `baseline`
    /// or `restricted`, optionally with the version of the standard (`restricted:v1.35`;
    /// default `latest`).
    #[arg(long, value_name = "LEVEL[:VERSION]")]
    pub profile: Option<Profile>,
    /// The most the policy files may hold together (`4MiB`, `512KiB`); a change over it is
    /// rejected and the last good policy stays in force.
    #[arg(long, default_value = "4MiB", value_parser = size::parse_size)]
    pub max_policy_size: u64,
    /// What the node would not enforce (a Gatekeeper kind nodeguard does not implement, a
    /// parameter that needs the API server) makes the policy invalid: at start, an error;
    /// at a reload, a rejected change.
    #[arg(long)]
    pub strict: bool,
    /// The runtime's NRI socket.
    #[arg(long, default_value = "/var/run/nri/nri.sock")]
    pub nri_socket: PathBuf,
    /// containerd's gRPC socket (read at container start for the full OCI spec).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// Name nodeguard registers under.
    #[arg(long, env = "NRI_PLUGIN_NAME", default_value = "nodeguard")]
    pub plugin_name: String,
    /// Two-digit index nodeguard registers with; lower indices are called first.
    #[arg(long, env = "NRI_PLUGIN_IDX", default_value = "10")]
    pub plugin_index: String,
    /// Append one JSON line per decision to this file.
    #[arg(long, env = "NODEGUARD_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log when it would grow past this size (`100MiB`, `1GB`; 0: never).
    #[arg(long, default_value = "100MiB", value_parser = size::parse_size)]
    pub audit_log_max_size: u64,
    /// Rotated audit log files kept (`audit.jsonl.1` ... `.N`).
    #[arg(long, default_value_t = 5)]
    pub audit_log_max_files: usize,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. `0.0.0.0:9400`).
    #[arg(long, env = "NODEGUARD_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Write the compliance report (PolicyReport, JSON) here; empty: do not write one.
    #[arg(long, env = "NODEGUARD_REPORT", default_value = DEFAULT_REPORT, value_parser = path_or_empty())]
    pub report_file: PathBuf,
    /// Keep the ids of the running containers here, to name after a restart those that
    /// started while nodeguard was away; empty: do not keep them.
    #[arg(long, env = "NODEGUARD_STATE", default_value = DEFAULT_STATE, value_parser = path_or_empty())]
    pub state_file: PathBuf,
    /// Re-audit running containers this often (`10m`, `1h`; 0: only at registration and
    /// policy reloads).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub audit_interval: Duration,
    /// Re-read the policy this often (also on SIGHUP).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// Time a container stopped by `remediate: stop` has between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub remediation_grace: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Node name written in audit records (default: $NODE_NAME, else the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// What to do at container start when an enforced rule still cannot decide.
    #[arg(long, value_enum, default_value_t = UndecidedAtStart::Deny)]
    pub undecided_at_start: UndecidedAtStart,
    /// Follow the API server's policy too: NodePolicy objects and the Gatekeeper (or Azure
    /// Policy) constraints, merged with the policy files. Credentials: the pod's service
    /// account, or --kubeconfig. Enforcement never waits for the API server.
    #[arg(long, env = "NODEGUARD_CLUSTER")]
    pub cluster: bool,
    /// With --cluster: a kubeconfig file instead of the pod's service account.
    #[arg(long, env = "KUBECONFIG", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// With --cluster: keep the API server's policy here, enforced at the next start until
    /// the API server answers; empty: keep nothing.
    #[arg(long, default_value = DEFAULT_CLUSTER_CACHE, value_parser = path_or_empty())]
    pub cluster_policy_cache: PathBuf,
    /// With --cluster: write each compliance audit's reports to the API server as
    /// `policyreport` (wgpolicyk8s.io/v1alpha2) or `openreports` (openreports.io/v1alpha1)
    /// objects, one per namespace per node; `none`: do not.
    #[arg(long, value_enum, default_value_t = ClusterReports::Policyreport)]
    pub cluster_reports: ClusterReports,
}

/// `--cluster-reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterReports {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport.
    Policyreport,
    /// `openreports.io/v1alpha1` Report and ClusterReport.
    Openreports,
    /// No reports in the API server.
    None,
}

/// Where `serve --cluster` keeps the API server's policy.
pub const DEFAULT_CLUSTER_CACHE: &str = "/var/lib/nodeguard/cluster-policy.json";

/// Everything `serve` needs, validated: the policy compiled, files opened, the listener bound.
#[derive(Debug)]
pub struct DaemonConfig {
    /// Where the policy is read from (and re-read).
    pub policy_path: PolicyPath,
    /// The policy files as read at start.
    pub sources: Sources,
    /// The policy compiled from them.
    pub policy: Policy,
    /// The audit log, when one was asked for.
    pub audit_file: Option<Arc<AuditFile>>,
    /// The bound listener of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_listener: Option<std::net::TcpListener>,
    /// containerd's gRPC socket.
    pub containerd_socket: PathBuf,
    /// How nodeguard registers with the runtime.
    pub registration: Registration,
    /// Reports, the state file and remediation.
    pub compliance: ComplianceConfig,
    /// The node name written in audit records and reports.
    pub node: String,
    /// How often the running containers are re-audited (0: never periodically).
    pub audit_interval: Duration,
    /// How often the policy files are re-read.
    pub reload_interval: Duration,
    /// What an enforced rule that cannot decide at start does.
    pub undecided_at_start: UndecidedAtStart,
    /// The log format.
    pub log_format: LogFormat,
    /// The cluster-connected mode, when asked for.
    pub cluster: Option<ClusterMode>,
}

impl DaemonConfig {
    /// Checks every flag and the policy, opening and binding what they name, and reports every
    /// problem at once. Nothing here touches the runtime's sockets. `env` reads the process
    /// environment (`NODE_NAME`, `POD_NAMESPACE`, `POD_NAME`, and `NRI_PLUGIN_SOCKET` for an
    /// inherited connection); `hostname` is the fallback node name.
    ///
    /// # Errors
    /// Every problem found, one line each, naming its flag.
    pub fn validate(
        flags: ServeFlags,
        env: impl Fn(&str) -> Option<String>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<(DaemonConfig, Endpoint), Vec<String>> {
        let mut problems = Vec::new();
        if flags.plugin_index.len() != 2 || !flags.plugin_index.bytes().all(|b| b.is_ascii_digit())
        {
            problems.push(format!(
                "--plugin-index must be exactly two digits, not {:?}",
                flags.plugin_index
            ));
        }
        if flags.plugin_name.is_empty() || flags.plugin_name.contains(['/', ' ']) {
            problems.push(format!(
                "--plugin-name {:?} is not a valid plugin name",
                flags.plugin_name
            ));
        }
        if flags.reload_interval.is_zero() {
            problems.push("--reload-interval must be more than 0".to_string());
        }
        let paths = if flags.policy.is_empty() && flags.profile.is_none() {
            vec![PathBuf::from(DEFAULT_POLICY)]
        } else {
            flags.policy.clone()
        };
        let policy_path = PolicyPath {
            paths,
            profile: flags.profile,
            max_size: flags.max_policy_size,
            strict: flags.strict,
        };
        let cluster = flags.cluster.then(|| {
            let connection = match &flags.kubeconfig {
                Some(path) => kube::config::Kubeconfig::read_from(path)
                    .map(|k| Connection::Kubeconfig(Box::new(k)))
                    .map_err(|e| problems.push(format!("--kubeconfig {}: {e}", path.display()))),
                None => kube::Config::incluster()
                    .map(|c| Connection::Config(Box::new(c)))
                    .map_err(|e| {
                        problems.push(format!(
                            "--cluster: no service account of a pod here ({e}); give --kubeconfig"
                        ));
                    }),
            };
            let cache = (!flags.cluster_policy_cache.as_os_str().is_empty())
                .then(|| flags.cluster_policy_cache.clone());
            let changed = Arc::new(Notify::new());
            // The namespaces' labels kept beside the policy's cache.
            let labels_path = cache
                .as_deref()
                .and_then(std::path::Path::parent)
                .map(|dir| dir.join(crate::cluster::cache::LABELS_FILE_NAME));
            let kept_labels = crate::ops::namespaces::NamespaceLabels::default();
            if let Some(all) = labels_path
                .as_deref()
                .and_then(crate::cluster::cache::load_labels)
            {
                kept_labels.replace_all(all);
            }
            let (reports, latest) = ReportPublisher::new();
            let (events, event_queue) = EventPublisher::new();
            let events = Arc::new(events);
            let format = match flags.cluster_reports {
                ClusterReports::Policyreport => Some(ReportFormat::Policyreport),
                ClusterReports::Openreports => Some(ReportFormat::Openreports),
                ClusterReports::None => None,
            };
            connection.ok().map(|connection| ClusterMode {
                policy: Arc::new(
                    ClusterPolicy::from_cache(cache, Arc::clone(&changed), flags.strict)
                        .with_events(Arc::clone(&events) as Arc<dyn EventRecorder>),
                ),
                changed,
                connection,
                namespaces: Arc::new(kept_labels),
                namespaces_kept: labels_path,
                reports: Arc::new(reports),
                report_writing: format.map(|f| (latest, f)),
                node: String::new(),
                events,
                event_queue,
            })
        });
        let cluster = cluster.flatten();
        let more = cluster
            .as_ref()
            .map(|c| Arc::clone(&c.policy) as Arc<dyn MoreSources>);
        let policy = match policy_path.read() {
            Ok(files) => {
                match reload::merged(&policy_path, files, more.as_ref().map(|m| m.documents()))
                    .and_then(|(sources, _)| Ok((policy_path.compile(&sources)?, sources)))
                {
                    Ok((policy, sources)) => Some((sources, policy)),
                    Err(e) => {
                        problems.push(format!("--policy: {e}"));
                        None
                    }
                }
            }
            Err(e) => {
                problems.push(format!("--policy: {e}"));
                None
            }
        };
        let audit_file = flags.audit_log.as_ref().and_then(|path| {
            let rotation = Rotation {
                max_bytes: flags.audit_log_max_size,
                max_files: flags.audit_log_max_files,
            };
            AuditFile::open(path, rotation)
                .map(Arc::new)
                .map_err(|e| problems.push(format!("--audit-log {}: {e}", path.display())))
                .ok()
        });
        let report_file = (!flags.report_file.as_os_str().is_empty()).then_some(flags.report_file);
        let state_file = (!flags.state_file.as_os_str().is_empty()).then_some(flags.state_file);
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
        let metrics_listener = flags.metrics_addr.and_then(|addr| {
            std::net::TcpListener::bind(addr)
                .map_err(|e| problems.push(format!("--metrics-addr {addr}: {e}")))
                .ok()
        });
        // containerd launched us and handed over a connected socket, or we connect to its socket.
        let endpoint = match env(crate::nri::inherited::SOCKET_ENV) {
            Some(value) => crate::nri::inherited::take(&value)
                .map(Endpoint::Inherited)
                .map_err(|e| problems.push(e.to_string()))
                .ok(),
            None => Some(Endpoint::Socket(flags.nri_socket)),
        };
        let (Some((sources, policy)), Some(endpoint), true) =
            (policy, endpoint, problems.is_empty())
        else {
            return Err(problems);
        };
        let node = flags
            .node_name
            .or_else(|| env("NODE_NAME"))
            .or_else(hostname)
            .unwrap_or_default();
        let mut cluster = cluster;
        if let Some(cluster) = cluster.as_mut() {
            cluster.node.clone_from(&node);
        }
        let own_pod = match (env("POD_NAMESPACE"), env("POD_NAME")) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => Some((ns, name)),
            _ => None,
        };
        let config = DaemonConfig {
            policy_path,
            sources,
            policy,
            audit_file,
            metrics_listener,
            containerd_socket: flags.containerd_socket,
            registration: Registration {
                name: flags.plugin_name,
                index: flags.plugin_index,
            },
            compliance: ComplianceConfig {
                report_path: report_file,
                remediation_grace: flags.remediation_grace,
                own_pod,
                state_path: state_file,
                report_sink: cluster
                    .as_ref()
                    .filter(|c| c.report_writing.is_some())
                    .map(|c| {
                        Arc::clone(&c.reports) as Arc<dyn crate::compliance::report::ReportSink>
                    }),
            },
            node,
            audit_interval: flags.audit_interval,
            reload_interval: flags.reload_interval,
            undecided_at_start: flags.undecided_at_start,
            log_format: flags.log_format,
            cluster,
        };
        Ok((config, endpoint))
    }

    /// The folder of the files nodeguard keeps across restarts (the state file's, else the
    /// report's), where `serve` takes its [`InstanceLock`](crate::ops::instance_lock::InstanceLock);
    /// `None` when it keeps neither.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        let compliance = &self.compliance;
        compliance
            .state_path
            .as_deref()
            .or(compliance.report_path.as_deref())
            .map(|file| file.parent().unwrap_or(std::path::Path::new(".")))
            .map(|dir| {
                if dir.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    dir
                }
            })
    }
}

/// What stops the daemon and what makes it re-read its policy at once.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Cancelled to shut down (SIGTERM, SIGINT).
    pub shutdown: CancellationToken,
    /// Notified to re-read the policy now (SIGHUP).
    pub reload: Arc<Notify>,
}

impl Control {
    /// Forwards SIGTERM and SIGINT to [`Control::shutdown`] and SIGHUP to [`Control::reload`].
    ///
    /// # Errors
    /// When a signal handler cannot be installed.
    pub fn forward_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (shutdown, reload) = (self.shutdown.clone(), Arc::clone(&self.reload));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => reload.notify_one(),
                }
            }
            info!("shutting down");
            shutdown.cancel();
        });
        Ok(())
    }
}

/// Serves until `control.shutdown`: registers with the runtime at `endpoint` (reconnecting
/// when it goes away), judges what it asks, audits what runs, reloads the policy, answers
/// `/metrics` and `/readyz`; at shutdown, writes the state file and flushes the audit log.
pub async fn run<S: ContainerdApi + 'static>(
    config: DaemonConfig,
    endpoint: Endpoint,
    containerd: S,
    control: Control,
) {
    info!(
        policies = config.policy.names().collect::<Vec<_>>().join(","),
        checks = config.policy.check_count(),
        "policy loaded"
    );
    for note in config.policy.notes() {
        tracing::warn!("not enforced on this node: {note}");
    }
    let state = Arc::new(ConnectionState::default());
    let mut sources: Vec<Arc<dyn metrics::Source>> =
        vec![Arc::clone(&state) as Arc<dyn metrics::Source>];
    if let Some(file) = &config.audit_file {
        sources.push(Arc::clone(file) as Arc<dyn metrics::Source>);
    }
    if let Some(cluster) = &config.cluster {
        sources.push(Arc::clone(&cluster.policy) as Arc<dyn metrics::Source>);
    }
    let metrics = Arc::new(Metrics::new(sources));
    let policy: PolicyHandle = Loaded::first(config.policy);
    let mut reloader = Reloader::new(
        config.policy_path,
        Arc::clone(&policy),
        config.sources,
        Arc::clone(&metrics),
    );
    if let Some(cluster) = &config.cluster {
        reloader = reloader.with_more_sources(Arc::clone(&cluster.policy) as Arc<dyn MoreSources>);
    }
    let reloader = Arc::new(reloader);
    let namespace_labels = config.cluster.as_ref().map(|c| Arc::clone(&c.namespaces));
    let events = config
        .cluster
        .as_ref()
        .map(|c| Arc::clone(&c.events) as Arc<dyn EventRecorder>);
    if let Some(cluster) = config.cluster {
        tokio::spawn(cluster.run(Arc::clone(&control.reload), control.shutdown.clone()));
    }
    let audit: Arc<dyn AuditSink> = match &config.audit_file {
        Some(file) => Arc::clone(file) as Arc<dyn AuditSink>,
        None => Arc::new(Discard),
    };
    let mut enforcer = Enforcer::new(
        policy,
        containerd,
        audit,
        Arc::clone(&metrics),
        config.node,
        config.undecided_at_start,
    );
    if let Some(labels) = namespace_labels {
        enforcer = enforcer.with_namespace_labels(labels);
    }
    if let Some(events) = events {
        enforcer = enforcer.with_events(events);
    }
    let enforcer = Arc::new(enforcer);
    let auditor = Arc::new(Auditor::new(enforcer, config.compliance));
    let shutdown = control.shutdown;
    if let Some(listener) = config.metrics_listener {
        match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(listener) => {
                info!(addr = ?listener.local_addr().ok(), "serving /metrics, /healthz, /readyz");
                let readiness = Arc::new(DaemonReadiness {
                    state: Arc::clone(&state),
                    reloader: Arc::clone(&reloader),
                });
                tokio::spawn(crate::ops::http::serve(
                    listener,
                    Arc::clone(&metrics),
                    readiness,
                    shutdown.clone(),
                ));
            }
            Err(e) => error!(error = %e, "cannot serve /metrics, /healthz, /readyz"),
        }
    }
    {
        let auditor = Arc::clone(&auditor);
        let state = Arc::clone(&state);
        tokio::spawn(reload::watch(
            Arc::clone(&reloader),
            config.reload_interval,
            control.reload,
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
    tokio::spawn(periodic(
        Arc::clone(&auditor),
        Arc::clone(&state),
        config.audit_file.clone(),
        TICK,
        config.audit_interval,
        shutdown.clone(),
    ));
    let serve = ServeConfig {
        endpoint,
        registration: config.registration,
        registration_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(5),
    };
    crate::nri::serve::run(
        serve,
        || Arc::new(PluginService::new(Arc::clone(&auditor))),
        state,
        shutdown,
    )
    .await;
    auditor.persist_state().await;
    if let Some(file) = &config.audit_file
        && let Err(e) = file.sync()
    {
        error!(error = %e, "cannot flush the audit log at shutdown");
    }
}

/// Until `shutdown`, every `tick` ([`TICK`] in the daemon): retries audit records waiting for
/// the disk and updates the state file; every `interval` (0: never), a compliance audit, while
/// registered (the inventory is current only then).
pub async fn periodic<S: ContainerdApi + 'static>(
    auditor: Arc<Auditor<S>>,
    state: Arc<ConnectionState>,
    audit_file: Option<Arc<AuditFile>>,
    tick: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut since_audit = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(file) = &audit_file {
            let file = Arc::clone(file);
            let _ = tokio::task::spawn_blocking(move || file.retry()).await;
        }
        auditor.persist_state().await;
        since_audit += tick;
        if !interval.is_zero() && since_audit >= interval {
            since_audit = Duration::ZERO;
            if state.is_registered() {
                auditor.compliance_audit(Trigger::Periodic).await;
            }
        }
    }
}

/// Ready while registered with the runtime (a policy is always in force: the daemon does not
/// start without one, and a rejected reload keeps the last good one).
#[derive(Debug)]
pub struct DaemonReadiness {
    /// The NRI connection.
    pub state: Arc<ConnectionState>,
    /// The policy's reloader (generation, last error).
    pub reloader: Arc<Reloader>,
}

impl Readiness for DaemonReadiness {
    fn ready(&self) -> Result<String, String> {
        if !self.state.is_registered() {
            return Err("not registered with the runtime over NRI".to_string());
        }
        let mut detail = format!(
            "registered with the runtime; policy generation {}",
            self.reloader.generation()
        );
        if self.reloader.last_error().is_some() {
            detail.push_str(
                " (the policy files on disk are rejected; the last good policy is in force)",
            );
        }
        Ok(detail)
    }
}
