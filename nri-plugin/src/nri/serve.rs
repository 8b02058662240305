//! The daemon's lifecycle: connect to the runtime's NRI socket, serve the connection, and
//! reconnect with backoff when containerd restarts, until shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::nri::connection::{self, Ended, Handler, Registration};
use crate::ops::metrics::{Sample, SampleValue, Source};

/// Where the runtime's NRI endpoint is.
#[derive(Debug)]
pub enum Endpoint {
    /// Connect to this socket (and reconnect when it goes away).
    Socket(PathBuf),
    /// The runtime launched us and handed over a connected socket (pre-installed plugin).
    /// When it closes, the daemon exits: the runtime starts a new instance.
    Inherited(std::os::unix::net::UnixStream),
}

/// Connection settings.
#[derive(Debug)]
pub struct ServeConfig {
    /// The runtime's NRI endpoint.
    pub endpoint: Endpoint,
    /// How nodeguard registers.
    pub registration: Registration,
    /// How long the runtime may take to accept the registration.
    pub registration_timeout: Duration,
    /// First delay before reconnecting; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest delay between reconnection attempts.
    pub max_backoff: Duration,
}

/// What the daemon shows of its connection (for readiness and metrics).
#[derive(Debug, Default)]
pub struct ConnectionState {
    registered: AtomicBool,
    registrations: AtomicU64,
}

impl ConnectionState {
    /// Whether nodeguard is registered with the runtime right now.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::SeqCst)
    }

    /// How many times nodeguard has registered since it started.
    pub fn registrations(&self) -> u64 {
        self.registrations.load(Ordering::SeqCst)
    }
}

impl Source for ConnectionState {
    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample {
            name: "nri_connected",
            help: "1 while nodeguard is registered with the runtime over NRI",
            value: SampleValue::Gauge(i64::from(self.is_registered())),
        });
        out.push(Sample {
            name: "nri_registrations",
            help: "Registrations with the runtime since nodeguard started (one more after each reconnection)",
            value: SampleValue::Counter(self.registrations()),
        });
    }
}

/// Serves the runtime until `shutdown` is cancelled (or, for an inherited connection, until it
/// closes). Each connection gets a fresh handler (the `Plugin` service) from `make_service`.
pub async fn run<H, F>(
    config: ServeConfig,
    make_service: F,
    state: Arc<ConnectionState>,
    shutdown: CancellationToken,
) where
    H: Handler,
    F: Fn() -> Arc<H>,
{
    let mut backoff = config.initial_backoff;
    let path = match config.endpoint {
        Endpoint::Inherited(stream) => {
            if let Err(e) = stream.set_nonblocking(true) {
                error!(error = %e, "cannot use the inherited NRI socket");
                return;
            }
            match tokio::net::UnixStream::from_std(stream) {
                Ok(stream) => {
                    let end = serve_one(
                        stream,
                        &config.registration,
                        config.registration_timeout,
                        make_service(),
                        &state,
                        &shutdown,
                    )
                    .await;
                    info!(?end, "the runtime's connection ended; exiting");
                }
                Err(e) => error!(error = %e, "cannot use the inherited NRI socket"),
            }
            return;
        }
        Endpoint::Socket(path) => path,
    };
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match tokio::net::UnixStream::connect(&path).await {
            Ok(stream) => {
                info!(socket = %path.display(), "connected to the runtime");
                let before = state.registrations();
                let end = serve_one(
                    stream,
                    &config.registration,
                    config.registration_timeout,
                    make_service(),
                    &state,
                    &shutdown,
                )
                .await;
                if end == Some(Ended::Shutdown) {
                    return;
                }
                if state.registrations() > before {
                    backoff = config.initial_backoff;
                }
            }
            Err(e) => warn!(socket = %path.display(), error = %e, "cannot connect to the runtime"),
        }
        info!(delay = ?backoff, "reconnecting");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = backoff.saturating_mul(2).min(config.max_backoff);
    }
}

async fn serve_one<H: Handler>(
    stream: tokio::net::UnixStream,
    registration: &Registration,
    registration_timeout: Duration,
    service: Arc<H>,
    state: &Arc<ConnectionState>,
    shutdown: &CancellationToken,
) -> Option<Ended> {
    let registered_state = Arc::clone(state);
    let result = connection::serve(
        stream,
        service,
        registration,
        registration_timeout,
        shutdown.cancelled(),
        move || {
            registered_state.registered.store(true, Ordering::SeqCst);
            registered_state
                .registrations
                .fetch_add(1, Ordering::SeqCst);
        },
    )
    .await;
    state.registered.store(false, Ordering::SeqCst);
    match result {
        Ok(end) => {
            if end == Ended::Closed {
                warn!("the runtime closed the NRI connection");
            }
            Some(end)
        }
        Err(e) => {
            warn!(error = %e, "the NRI connection failed");
            None
        }
    }
}
