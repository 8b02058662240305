//! One NRI connection: register with the runtime, then serve its calls until it goes away.
//!
//! The socket carries two logical connections (see [`crate::nri::transport`]): containerd calls
//! our `Plugin` service on connection 1, and we call its `Runtime` service (only
//! `RegisterPlugin`) on connection 2. A reader task demultiplexes, each call is served on its
//! own task, and a single writer task owns the write half so replies never interleave.
//!
//! A handler may leave work for after its reply ([`Answer::then`]): the writer runs it once the
//! reply is written to the socket, so that nothing it starts (a task, a call to containerd)
//! competes with the reply for the worker thread or wakes another one before the reply is out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodeguard_proto::nri::NRI_VERSION;
use nodeguard_proto::nri::v1alpha1::{RegisterPluginRequest, runtime_service};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::enforce::AfterReply;
use crate::nri::transport::demux::DemuxError;
use crate::nri::transport::io::{IoError, MessageReader, write_message};
use crate::nri::transport::mux::{ConnId, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use crate::nri::transport::status::{Code, RpcError, error_response, ok_response, response_result};
use crate::nri::transport::ttrpc::{Message, MessageType, StreamIds, TtrpcError, request_envelope};

/// What answers the runtime's calls on connection 1: the `Plugin` service, or a test's stand-in.
/// The connection knows nothing else of what is behind it.
pub trait Handler: Send + Sync + 'static {
    /// Answers one call: the encoded reply (or an error sent back as its status), and what to
    /// run once that reply is written.
    fn call(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
    ) -> impl std::future::Future<Output = Answer> + Send;
}

/// A [`Handler`]'s answer to one call.
pub struct Answer {
    /// The encoded reply, or the error sent back as its status.
    pub reply: Result<Vec<u8>, RpcError>,
    /// Run by the writer once it has written the reply to the socket, or failed to.
    pub then: Option<AfterReply>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("reply", &self.reply)
            .field("then", &self.then.as_ref().map(|_| "after the reply"))
            .finish()
    }
}

/// One message for the writer task, and what to run once it is written.
struct Outgoing {
    conn: ConnId,
    message: Message,
    then: Option<AfterReply>,
}

impl Outgoing {
    fn new(conn: ConnId, message: Message) -> Self {
        Outgoing {
            conn,
            message,
            then: None,
        }
    }
}

/// How nodeguard introduces itself to the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Plugin name.
    pub name: String,
    /// Plugin index: exactly two digits; lower indices are called first.
    pub index: String,
}

/// Why a connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading or writing the socket failed, or the runtime sent bytes that are not NRI.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The runtime refused the registration.
    #[error("the runtime refused registration: {0}")]
    Refused(RpcError),
    /// The runtime did not answer the registration in time.
    #[error("the runtime did not answer the registration within {0:?}")]
    RegistrationTimeout(Duration),
    /// The connection closed before the registration was answered.
    #[error("the connection closed during registration")]
    ClosedDuringRegistration,
}

/// How a connection ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The runtime closed it.
    Closed,
    /// Our shutdown was asked for.
    Shutdown,
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Message>>>>;

/// Registers and serves one connection until it closes or `shutdown` completes. `registered`
/// is called once the runtime accepted the registration.
///
/// # Errors
/// A broken socket, a protocol violation by the runtime, or a refused registration.
pub async fn serve<H, T>(
    stream: T,
    service: Arc<H>,
    registration: &Registration,
    registration_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
    registered: impl FnOnce(),
) -> Result<Ended, ConnectionError>
where
    H: Handler,
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Outgoing>(64);
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let written = write_message(&mut write_half, out.conn, &out.message).await;
            // What the call left for after its reply is due even when the reply could not be
            // written: the audit after `Synchronize` (the inventory is already the new one),
            // a read-ahead.
            if let Some(then) = out.then {
                then();
            }
            written?;
        }
        Ok::<_, IoError>(())
    });
    let pending: Pending = Arc::default();
    let reader = tokio::spawn(read_loop(
        MessageReader::new(read_half),
        service,
        tx.clone(),
        Arc::clone(&pending),
    ));
    let outcome = async {
        register(&tx, &pending, registration, registration_timeout).await?;
        registered();
        Ok::<_, ConnectionError>(())
    };
    tokio::pin!(shutdown);
    let mut reader = reader;
    let result = tokio::select! {
        // A reply routed just before the reader ended still counts.
        biased;
        r = outcome => match r {
            Ok(()) => tokio::select! {
                r = &mut reader => reader_result(r),
                () = &mut shutdown => Ok(Ended::Shutdown),
            },
            Err(e) => Err(e),
        },
        // Once the reader is gone nobody can answer the registration: fail now, not at the
        // registration timeout.
        r = &mut reader => Err(match reader_result(r) {
            Ok(_) => ConnectionError::ClosedDuringRegistration,
            Err(e) => e,
        }),
        () = &mut shutdown => Ok(Ended::Shutdown),
    };
    reader.abort();
    drop(tx);
    writer.abort();
    result
}

fn reader_result(
    joined: Result<Result<(), IoError>, tokio::task::JoinError>,
) -> Result<Ended, ConnectionError> {
    match joined {
        Ok(Ok(())) => Ok(Ended::Closed),
        Ok(Err(e)) => Err(ConnectionError::Io(e)),
        Err(e) => Err(ConnectionError::Io(IoError::Io(std::io::Error::other(e)))),
    }
}

async fn register(
    tx: &mpsc::Sender<Outgoing>,
    pending: &Pending,
    registration: &Registration,
    timeout: Duration,
) -> Result<(), ConnectionError> {
    let mut ids = StreamIds::new();
    let stream_id = ids.next_id().map_err(IoError::Encode)?;
    let (reply_tx, reply_rx) = oneshot::channel();
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(stream_id, reply_tx);
    let request = RegisterPluginRequest {
        plugin_name: registration.name.clone(),
        plugin_idx: registration.index.clone(),
        nri_version: NRI_VERSION.to_owned(),
    };
    let envelope = request_envelope(
        runtime_service::NAME,
        runtime_service::REGISTER_PLUGIN,
        request.encode_to_vec(),
        Some(timeout),
    );
    tx.send(Outgoing::new(
        RUNTIME_SERVICE_CONN,
        Message::request(stream_id, &envelope),
    ))
    .await
    .map_err(|_| ConnectionError::ClosedDuringRegistration)?;
    let reply = tokio::time::timeout(timeout, reply_rx)
        .await
        .map_err(|_| ConnectionError::RegistrationTimeout(timeout))?
        .map_err(|_| ConnectionError::ClosedDuringRegistration)?;
    let response = reply.decode_response().map_err(IoError::Encode)?;
    response_result(response).map_err(ConnectionError::Refused)?;
    info!(name = %registration.name, index = %registration.index, "registered with the runtime");
    Ok(())
}

/// Reads messages until the socket closes; serves calls and routes replies.
async fn read_loop<H, R>(
    mut reader: MessageReader<R>,
    service: Arc<H>,
    tx: mpsc::Sender<Outgoing>,
    pending: Pending,
) -> Result<(), IoError>
where
    H: Handler,
    R: AsyncRead + Unpin,
{
    loop {
        let (conn, message) = match reader.next_message().await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(()),
            Err(IoError::Demux(DemuxError::Ttrpc {
                conn_id,
                source:
                    TtrpcError::MessageTooLarge {
                        stream_id,
                        declared,
                        limit,
                    },
            })) => {
                // The connection survives an oversized message: say so on its stream, as
                // ttrpc servers do, and go on.
                warn!(
                    conn_id,
                    stream_id, declared, limit, "dropped an oversized message"
                );
                if conn_id == PLUGIN_SERVICE_CONN {
                    let err = RpcError::new(
                        Code::RESOURCE_EXHAUSTED,
                        format!("message of {declared} bytes exceeds the limit of {limit}"),
                    );
                    let reply = Message::response(stream_id, &error_response(&err));
                    let _ = tx.send(Outgoing::new(conn_id, reply)).await;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        match (conn, message.message_type) {
            (PLUGIN_SERVICE_CONN, MessageType::Request) => {
                let service = Arc::clone(&service);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let stream_id = message.stream_id;
                    let (response, then) = match message.decode_request() {
                        Ok(request) => {
                            debug!(method = %request.method, stream_id, "call");
                            let answer = service
                                .call(&request.service, &request.method, &request.payload)
                                .await;
                            let response = match answer.reply {
                                Ok(payload) => ok_response(payload),
                                Err(err) => error_response(&err),
                            };
                            (response, answer.then)
                        }
                        Err(e) => (
                            error_response(&RpcError::new(
                                Code::INVALID_ARGUMENT,
                                format!("malformed ttrpc request: {e}"),
                            )),
                            None,
                        ),
                    };
                    let _ = tx
                        .send(Outgoing {
                            conn: PLUGIN_SERVICE_CONN,
                            message: Message::response(stream_id, &response),
                            then,
                        })
                        .await;
                });
            }
            (RUNTIME_SERVICE_CONN, MessageType::Response) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&message.stream_id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(message);
                    }
                    None => debug!(stream_id = message.stream_id, "reply to no call of ours"),
                }
            }
            (conn, kind) => debug!(conn, ?kind, "ignored message"),
        }
    }
}
