//! `nodeguard report`: what the last compliance audit found running.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::compliance::report::{self, DEFAULT_REPORT, Filter, PolicyReport};

use super::output::{emit, unusable};

/// The arguments of `nodeguard report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The report file `nodeguard serve` writes (the same flag as serve's; `--file` too).
    #[arg(long = "report-file", alias = "file", env = "NODEGUARD_REPORT", default_value = DEFAULT_REPORT)]
    pub file: PathBuf,
    /// Output format: text (a table of what needs attention; `table` too), or the
    /// PolicyReport JSON.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Only this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Show passing results too.
    #[arg(long)]
    pub all: bool,
    /// The whole cluster instead of this node's file: the PolicyReports every node's
    /// `serve --cluster` wrote, read from the API server (kubeconfig: --kubeconfig, $KUBECONFIG
    /// or ~/.kube/config, or the pod's service account).
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the kubeconfig file.
    #[arg(long, env = "KUBECONFIG", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// What needs attention, as a table (the name every command uses for its text output).
    #[value(alias = "table")]
    Text,
    /// The PolicyReport JSON.
    Json,
}

/// Prints the report. Exit status: 0 nothing fails, 1 a container fails a rule, 2 no readable
/// report.
pub fn run(args: &ReportArgs) -> ExitCode {
    if args.cluster {
        return run_cluster(args);
    }
    let file = match report::read(&args.file) {
        Ok(file) => file,
        Err(e) => return unusable(e),
    };
    let filter = Filter {
        namespace: args.namespace.clone(),
        all: args.all,
    };
    match args.format {
        ReportFormat::Text => emit(&report::render_table(&file, &filter)),
        ReportFormat::Json => match serde_json::to_string_pretty(&filter.apply(&file)) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(e) => return unusable(e),
        },
    }
    let scoped = Filter {
        namespace: args.namespace.clone(),
        all: true,
    }
    .apply(&file);
    ExitCode::from(u8::from(report::total(&scoped).fail > 0))
}

/// The PolicyReports nodeguard wrote (labelled with a node), of every namespace, and the
/// ClusterPolicyReports of the containers made outside Kubernetes.
///
/// # Errors
/// The API server's.
pub async fn fetch_cluster(client: kube::Client) -> Result<Vec<PolicyReport>, kube::Error> {
    use kube::api::{Api, ApiResource, DynamicObject, ListParams};
    let mut out = Vec::new();
    for (kind, plural) in [
        ("PolicyReport", "policyreports"),
        ("ClusterPolicyReport", "clusterpolicyreports"),
    ] {
        let resource = ApiResource {
            group: "wgpolicyk8s.io".into(),
            version: "v1alpha2".into(),
            api_version: report::API_VERSION.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let listed = api
            .list(&ListParams::default().labels("nodeguard.io/node"))
            .await?;
        for object in listed.items {
            let mut value = serde_json::to_value(object).unwrap_or_default();
            value["apiVersion"] = report::API_VERSION.into();
            value["kind"] = kind.into();
            if let Ok(report) = serde_json::from_value::<PolicyReport>(value) {
                out.push(report);
            }
        }
    }
    Ok(out)
}

fn run_cluster(args: &ReportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return unusable(e),
    };
    let fetched = runtime.block_on(async {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|e| e.to_string())?
            }
            None => kube::Config::infer().await.map_err(|e| e.to_string())?,
        };
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        fetch_cluster(client).await.map_err(|e| e.to_string())
    });
    let reports = match fetched {
        Ok(reports) => reports,
        Err(e) => return unusable(format!("cannot read the cluster's reports: {e}")),
    };
    let filter = Filter {
        namespace: args.namespace.clone(),
        all: args.all,
    };
    match args.format {
        ReportFormat::Text => emit(&report::render_cluster(&reports, &filter)),
        ReportFormat::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => emit(&format!("{json}\n")),
            Err(e) => return unusable(e),
        },
    }
    let failing = reports.iter().any(|r| {
        filter
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == r.metadata.namespace)
            && r.results
                .iter()
                .any(|res| res.result == report::Outcome::Fail)
    });
    ExitCode::from(u8::from(failing))
}
