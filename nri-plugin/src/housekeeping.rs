//! The daemon's background duties: the periodic compliance audit, retrying the audit log,
//! keeping the state file current; and what `/readyz` answers.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::compliance::{Auditor, Trigger};
use crate::nri::serve::ConnectionState;
use crate::ops::audit::AuditFile;
use crate::ops::http::Readiness;
use crate::ops::reload::Reloader;
use crate::runtime::containerd::ContainerdApi;

/// How often the daemon retries the audit log's backlog and brings the state file up to
/// date; the compliance audit's interval is counted in these steps.
pub const TICK: Duration = Duration::from_secs(5);

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
