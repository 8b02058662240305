//! The HTTP endpoint on `--metrics-addr`: `/metrics` (Prometheus, OpenMetrics text),
//! `/healthz` (the process answers) and `/readyz` (registered with the runtime, a policy in
//! force).
//!
//! Routing is a pure function ([`respond`]) so it is tested without sockets; [`serve`] puts it
//! on hyper.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ops::metrics::{self, Metrics};

/// Whether the daemon can do its job right now.
pub trait Readiness: Send + Sync + 'static {
    /// `Ok(detail)` when ready, `Err(reason)` when not.
    ///
    /// # Errors
    /// Why the daemon is not ready.
    fn ready(&self) -> Result<String, String>;
}

/// The answer to one request: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    Answer {
        status,
        content_type: TEXT,
        body: body.into(),
    }
}

/// Routes one request.
pub fn respond(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    readiness: &dyn Readiness,
) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match path {
        "/metrics" => Answer {
            status: StatusCode::OK,
            content_type: metrics::CONTENT_TYPE,
            body: metrics.encode(),
        },
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match readiness.ready() {
            Ok(detail) => text(StatusCode::OK, format!("ready: {detail}\n")),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        ),
    }
}

/// Serves [`respond`] on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<dyn Readiness>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: cannot accept a connection");
                    // Out of descriptors and the like: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let metrics = Arc::clone(&metrics);
        let readiness = Arc::clone(&readiness);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = respond(req.method(), req.uri().path(), &metrics, &*readiness);
                let body = if req.method() == Method::HEAD {
                    Bytes::new()
                } else {
                    Bytes::from(answer.body)
                };
                let response = Response::builder()
                    .status(answer.status)
                    .header(header::CONTENT_TYPE, answer.content_type)
                    .body(Full::new(body))
                    .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => if let Err(e) = result {
                    debug!(%peer, error = %e, "metrics endpoint: connection failed");
                },
                () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<String, String>);

    impl Readiness for Fixed {
        fn ready(&self) -> Result<String, String> {
            self.0.clone()
        }
    }

    #[test]
    fn readyz_follows_readiness() {
        let m = Metrics::default();
        let ready = respond(&Method::GET, "/readyz", &m, &Fixed(Ok("registered".into())));
        assert_eq!(ready.status, StatusCode::OK);
        assert_eq!(ready.body, "ready: registered\n");
        let not = respond(
            &Method::GET,
            "/readyz",
            &m,
            &Fixed(Err("not registered with the runtime".into())),
        );
        assert_eq!(not.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(not.body, "not ready: not registered with the runtime\n");
        // Liveness does not depend on readiness.
        let live = respond(&Method::GET, "/healthz", &m, &Fixed(Err("x".into())));
        assert_eq!(live.status, StatusCode::OK);
    }

    #[test]
    fn metrics_are_openmetrics_and_other_paths_and_methods_are_refused() {
        let m = Metrics::default();
        let ok = Fixed(Ok(String::new()));
        let metrics = respond(&Method::GET, "/metrics", &m, &ok);
        assert_eq!(metrics.status, StatusCode::OK);
        assert_eq!(metrics.content_type, metrics::CONTENT_TYPE);
        assert!(
            metrics
                .body
                .contains("# TYPE nodeguard_spec_read_failures counter"),
            "{}",
            metrics.body
        );
        assert_eq!(
            respond(&Method::GET, "/", &m, &ok).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", &m, &ok).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
