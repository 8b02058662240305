//! The cluster-connected mode put together: how the API server is reached, and the watchers
//! that follow its policy objects.

use std::sync::Arc;

use tokio::sync::Notify;
use tracing::error;

use super::events::EventPublisher;
use super::reports::{ReportFormat, ReportPublisher, ReportWriter};
use super::shared::ClusterPolicy;
use crate::compliance::report::ReportFile;

/// The least time between two rounds of report writes.
pub const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
use super::watch;
use crate::ops::namespaces::NamespaceLabels;

/// How nodeguard reaches the API server.
pub enum Connection {
    /// The pod's service account (in-cluster).
    Config(Box<kube::Config>),
    /// A kubeconfig file (`--kubeconfig`).
    Kubeconfig(Box<kube::config::Kubeconfig>),
    /// A client made elsewhere (tests: an in-memory API server).
    Client(kube::Client),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::Config(_) => "Connection::Config",
            Connection::Kubeconfig(_) => "Connection::Kubeconfig",
            Connection::Client(_) => "Connection::Client",
        })
    }
}

impl Connection {
    /// The client.
    ///
    /// # Errors
    /// When the configuration cannot give one (a kubeconfig's credentials, TLS settings).
    pub async fn client(self) -> Result<kube::Client, kube::Error> {
        let config = match self {
            Connection::Client(client) => return Ok(client),
            Connection::Config(config) => *config,
            Connection::Kubeconfig(kubeconfig) => {
                kube::Config::from_custom_kubeconfig(*kubeconfig, &Default::default())
                    .await
                    .map_err(kube::Error::InferKubeconfig)?
            }
        };
        kube::Client::try_from(config)
    }
}

/// The cluster-connected mode, configured.
#[derive(Debug)]
pub struct ClusterMode {
    /// The API server's documents (read from the cache at start).
    pub policy: Arc<ClusterPolicy>,
    /// Notified when they change.
    pub changed: Arc<Notify>,
    /// How to reach the API server.
    pub connection: Connection,
    /// The namespaces' labels, followed for `namespaceSelector`s.
    pub namespaces: Arc<NamespaceLabels>,
    /// Where the namespaces' labels are kept on disk (none: not kept).
    pub namespaces_kept: Option<std::path::PathBuf>,
    /// Where the compliance audits hand their reports.
    pub reports: Arc<ReportPublisher>,
    /// The reports handed over, and how they are written (none: not written).
    pub report_writing: Option<(
        tokio::sync::watch::Receiver<Option<Arc<ReportFile>>>,
        ReportFormat,
    )>,
    /// This node's name.
    pub node: String,
    /// Where the Events are queued, and the queue (sent once connected).
    pub events: Arc<EventPublisher>,
    /// The queue of Events to send.
    pub event_queue: tokio::sync::mpsc::Receiver<crate::ops::events::ObjectEvent>,
}

impl ClusterMode {
    /// Follows the API server's policy objects until `shutdown`, waking `reload` at every
    /// change. The watchers retry with backoff while the API server is away; the cached
    /// documents stay in force meanwhile (a configuration that cannot give a client at all is
    /// logged and not retried).
    pub async fn run(self, reload: Arc<Notify>, shutdown: tokio_util::sync::CancellationToken) {
        let changed = Arc::clone(&self.changed);
        let forward = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = forward.cancelled() => return,
                    () = changed.notified() => reload.notify_one(),
                }
            }
        });
        let client = match self.connection.client().await {
            Ok(client) => client,
            Err(e) => {
                error!(error = %e, "cannot make a Kubernetes client: the API server's policy is not followed");
                return;
            }
        };
        tokio::spawn(super::events::send(
            client.clone(),
            self.node.clone(),
            self.event_queue,
            shutdown.clone(),
        ));
        if let Some((latest, format)) = self.report_writing {
            let writer = ReportWriter::new(client.clone(), self.node, format, REPORT_INTERVAL);
            tokio::spawn(writer.run(latest, shutdown.clone()));
        }
        tokio::spawn(watch::follow_namespaces(
            client.clone(),
            self.namespaces,
            self.namespaces_kept,
            shutdown.clone(),
        ));
        watch::run(client, self.policy, watch::DISCOVERY_INTERVAL, shutdown).await;
    }
}
