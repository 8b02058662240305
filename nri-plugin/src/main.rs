//! The `nodeguard` binary: parses arguments and hands over to the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use nodeguard::cli::check::CheckArgs;
use nodeguard::cli::report::ReportArgs;
use nodeguard::cli::validate::ValidateArgs;
use nodeguard::daemon::{self, Control, DaemonConfig, ServeFlags};
use nodeguard::ops::instance_lock::{self, InstanceLock};
use nodeguard::ops::telemetry;
use nodeguard::runtime::containerd::Containerd;

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
    /// Print a shell completion script (`nodeguard completion bash > /etc/bash_completion.d/nodeguard`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run as a containerd NRI plugin, refusing containers that break the policy.
    ///
    /// Exit status 2 when flags or the policy are invalid (checked before any socket is
    /// touched).
    Serve(Box<ServeFlags>),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check policy files; report every mistake with file, line and field.
    ///
    /// Exit status: 0 valid, 2 invalid or unreadable.
    Validate(ValidateArgs),
    /// Print the NodePolicy documents closest to Gatekeeper and Azure Policy constraints,
    /// each under a comment naming its constraint and what differs.
    ///
    /// Exit status: 0 converted, 2 invalid or unreadable input.
    Convert(nodeguard::cli::convert::ConvertArgs),
    /// Print the NodePolicy CustomResourceDefinition (`kubectl apply -f -`), its schema
    /// generated from the policy loader's types.
    Crd,
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
        Command::Check(args) => nodeguard::cli::check::run(&args),
        Command::Policy(PolicyCommand::Validate(args)) => nodeguard::cli::validate::run(&args),
        Command::Policy(PolicyCommand::Convert(args)) => nodeguard::cli::convert::run(&args),
        Command::Policy(PolicyCommand::Crd) => {
            print!("{}", nodeguard::cluster::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Report(args) => nodeguard::cli::report::run(&args),
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "nodeguard", &mut script);
            nodeguard::cli::output::emit(&String::from_utf8_lossy(&script));
            ExitCode::SUCCESS
        }
        Command::Serve(flags) => match serve(*flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nodeguard: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Validates every flag and the policy, then serves until SIGTERM or SIGINT.
fn serve(flags: ServeFlags) -> anyhow::Result<()> {
    let (config, endpoint) = DaemonConfig::validate(
        flags,
        |name| std::env::var(name).ok(),
        || {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        },
    )
    .map_err(|problems| anyhow::anyhow!("invalid configuration:\n  {}", problems.join("\n  ")))?;
    // One instance per node (ops::instance_lock), checked before any socket is touched.
    let _lock = config
        .state_dir()
        .map(|dir| {
            let holder = instance_lock::holder_description(config.compliance.own_pod.as_ref());
            InstanceLock::acquire(dir, &holder)
        })
        .transpose()
        .context("refusing to start")?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let containerd = Containerd::new(&config.containerd_socket, Duration::from_secs(1))
            .context("invalid containerd socket")?;
        let control = Control::default();
        control
            .forward_signals()
            .context("cannot handle SIGTERM, SIGINT and SIGHUP")?;
        daemon::run(config, endpoint, containerd, control).await;
        Ok(())
    })
}
