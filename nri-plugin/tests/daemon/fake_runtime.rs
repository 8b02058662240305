//! A fake container runtime: containerd's side of an NRI connection, in memory, speaking the
//! real wire format through nodeguard's own sans-I/O codec ([`Demux`], [`Message`],
//! [`Message::encode_mux_frames`]).
//!
//! [`FakeRuntime`] owns one connection (a unix socket accepted by [`RuntimeListener`], or any
//! stream such as one end of `tokio::io::duplex`). A reader task demultiplexes what the plugin
//! sends: `RegisterPlugin` on connection 2 is answered as [`RegisterReply`] says, replies on
//! connection 1 go to the call that waits for them. Calls go out on connection 1 with odd
//! client stream ids, as Go's ttrpc client numbers them, and come back as
//! `Result<Bytes, RpcError>`. Every frame received is logged (connection and payload length)
//! so tests can check how the plugin frames its replies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nodeguard::nri::transport::Demux;
use nodeguard::nri::transport::mux::{
    ConnId, MuxDecoder, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN,
};
use nodeguard::nri::transport::status::{
    Code, RpcError, error_response, ok_response, response_result,
};
use nodeguard::nri::transport::ttrpc::{Message, MessageType, StreamIds, request_envelope};
use nodeguard_proto::nri::v1alpha1::{
    Empty, RegisterPluginRequest, plugin_service, runtime_service,
};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::UnixListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a test waits for anything the plugin should do (generous: only a broken plugin
/// ever takes this long).
pub const PATIENCE: Duration = Duration::from_secs(5);

/// The request timeout containerd puts in its calls (NRI's default, 2 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How the fake answers the plugin's `RegisterPlugin`.
#[derive(Debug, Clone)]
pub enum RegisterReply {
    /// Accept it (an `Empty` reply with status OK).
    Ok,
    /// Refuse it with this message (code Unknown, as Go sends a plain error).
    Error(String),
    /// Do not answer (a test may still answer later with
    /// [`FakeRuntime::answer_registration`]).
    Never,
}

/// How the connection ended, seen from the runtime's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The plugin closed the socket on a message boundary.
    Eof,
    /// The plugin closed it inside a frame or message, or sent bytes that are not NRI.
    Broken(String),
}

type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Called with each reply on connection 1 as it comes off the wire.
type ReplyObserver = Box<dyn Fn(&Message) + Send + Sync>;

struct Shared {
    writer: tokio::sync::Mutex<Option<Writer>>,
    waiting: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
    frames: Mutex<Vec<(ConnId, usize)>>,
    received: Mutex<Vec<(ConnId, Message)>>,
    observer: Mutex<Option<ReplyObserver>>,
    register_reply: RegisterReply,
    registration: watch::Sender<Option<(u32, RegisterPluginRequest)>>,
    closed: watch::Sender<Option<Closed>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    async fn write(&self, bytes: &[u8]) {
        let mut writer = self.writer.lock().await;
        let writer = writer
            .as_mut()
            .expect("the fake runtime closed its connection");
        // A plugin that dropped the connection makes writes fail; the tests notice through
        // the missing reply and `closed()`, so the error itself is not interesting here.
        if writer.write_all(bytes).await.is_ok() {
            let _ = writer.flush().await;
        }
    }

    async fn send(&self, conn: ConnId, message: &Message) {
        let mut out = BytesMut::new();
        message
            .encode_mux_frames(conn, &mut out)
            .expect("encode a message");
        self.write(&out).await;
    }

    async fn answer_registration(&self, stream_id: u32, result: Result<(), RpcError>) {
        let response = match result {
            Ok(()) => ok_response(Empty::default().encode_to_vec()),
            Err(err) => error_response(&err),
        };
        self.send(
            RUNTIME_SERVICE_CONN,
            &Message::response(stream_id, &response),
        )
        .await;
    }

    /// Plays the runtime's `Runtime` service on connection 2.
    async fn serve_runtime_call(&self, message: &Message) {
        let request = match message.decode_request() {
            Ok(request) => request,
            Err(e) => {
                let err = RpcError::new(Code::INVALID_ARGUMENT, e.to_string());
                let reply = Message::response(message.stream_id, &error_response(&err));
                self.send(RUNTIME_SERVICE_CONN, &reply).await;
                return;
            }
        };
        if request.service != runtime_service::NAME
            || request.method != runtime_service::REGISTER_PLUGIN
        {
            let err = RpcError::unimplemented(&request.service, &request.method);
            let reply = Message::response(message.stream_id, &error_response(&err));
            self.send(RUNTIME_SERVICE_CONN, &reply).await;
            return;
        }
        let register = RegisterPluginRequest::decode(request.payload)
            .expect("RegisterPlugin carries a RegisterPluginRequest");
        self.registration
            .send_replace(Some((message.stream_id, register)));
        match &self.register_reply {
            RegisterReply::Ok => self.answer_registration(message.stream_id, Ok(())).await,
            RegisterReply::Error(text) => {
                let err = RpcError::new(Code::UNKNOWN, text.clone());
                self.answer_registration(message.stream_id, Err(err)).await;
            }
            RegisterReply::Never => {}
        }
    }

    fn close(&self, how: Closed) {
        self.closed.send_if_modified(|closed| {
            if closed.is_none() {
                *closed = Some(how);
                true
            } else {
                false
            }
        });
        // Calls still waiting fail now rather than at their timeout.
        lock(&self.waiting).clear();
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: R, shared: Arc<Shared>) {
    let mut demux = Demux::nri();
    // A second decoder over the same bytes, only to log the frames as they were cut.
    let mut tap = MuxDecoder::with_max_payload(u32::MAX);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => {
                let how = match demux.finish() {
                    Ok(()) => Closed::Eof,
                    Err(e) => Closed::Broken(e.to_string()),
                };
                shared.close(how);
                return;
            }
            Ok(n) => n,
            Err(e) => {
                shared.close(Closed::Broken(e.to_string()));
                return;
            }
        };
        tap.push(&chunk[..n]);
        while let Ok(Some(frame)) = tap.next_frame() {
            lock(&shared.frames).push((frame.conn_id, frame.payload.len()));
        }
        demux.push(&chunk[..n]);
        loop {
            let (conn, message) = match demux.next_message() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    shared.close(Closed::Broken(e.to_string()));
                    return;
                }
            };
            lock(&shared.received).push((conn, message.clone()));
            match (conn, message.message_type) {
                (RUNTIME_SERVICE_CONN, MessageType::Request) => {
                    shared.serve_runtime_call(&message).await;
                }
                (PLUGIN_SERVICE_CONN, MessageType::Response) => {
                    if let Some(observe) = lock(&shared.observer).as_ref() {
                        observe(&message);
                    }
                    if let Some(waiter) = lock(&shared.waiting).remove(&message.stream_id) {
                        let _ = waiter.send(message);
                    }
                }
                _ => {}
            }
        }
    }
}

/// A reply the fake is waiting for.
#[derive(Debug)]
pub struct PendingReply {
    stream_id: u32,
    rx: oneshot::Receiver<Message>,
}

impl PendingReply {
    /// The stream id the reply must carry.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The raw reply message. Panics if none comes within [`PATIENCE`] or the connection ends.
    pub async fn message(self) -> Message {
        let stream_id = self.stream_id;
        match tokio::time::timeout(PATIENCE, self.rx).await {
            Ok(Ok(message)) => message,
            Ok(Err(_)) => panic!("the connection ended before stream {stream_id} was answered"),
            Err(_) => panic!("no reply on stream {stream_id} within {PATIENCE:?}"),
        }
    }

    /// The reply decoded as Go's ttrpc client decodes it: the payload, or the status error.
    pub async fn result(self) -> Result<Bytes, RpcError> {
        let stream_id = self.stream_id;
        let message = self.message().await;
        assert_eq!(message.stream_id, stream_id);
        assert_eq!(message.message_type, MessageType::Response);
        assert_eq!(message.flags, 0, "unary replies carry no flags");
        let response = message.decode_response().expect("a ttrpc.Response");
        response_result(response)
    }
}

/// containerd's end of one NRI connection.
pub struct FakeRuntime {
    shared: Arc<Shared>,
    ids: Mutex<StreamIds>,
    reader: JoinHandle<()>,
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl FakeRuntime {
    /// Plays the runtime on `stream`, answering the plugin's registration as `register` says.
    pub fn new<T>(stream: T, register: RegisterReply) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half): (_, WriteHalf<T>) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(Some(Box::pin(write_half))),
            waiting: Mutex::default(),
            frames: Mutex::default(),
            received: Mutex::default(),
            observer: Mutex::default(),
            register_reply: register,
            registration: watch::Sender::new(None),
            closed: watch::Sender::new(None),
        });
        let reader = tokio::spawn(read_loop(read_half, Arc::clone(&shared)));
        FakeRuntime {
            shared,
            ids: Mutex::new(StreamIds::new()),
            reader,
        }
    }

    /// The plugin's `RegisterPlugin` request, once it arrived (panics after [`PATIENCE`]).
    pub async fn registration(&self) -> RegisterPluginRequest {
        let mut rx = self.shared.registration.subscribe();
        let got = tokio::time::timeout(PATIENCE, rx.wait_for(Option::is_some))
            .await
            .expect("the plugin registers in time")
            .expect("registration state kept");
        got.as_ref().map(|(_, r)| r.clone()).expect("present")
    }

    /// Answers the registration now (for [`RegisterReply::Never`]).
    pub async fn answer_registration(&self, result: Result<(), RpcError>) {
        let stream_id = self
            .shared
            .registration
            .borrow()
            .as_ref()
            .map(|(id, _)| *id)
            .expect("the plugin has registered");
        self.shared.answer_registration(stream_id, result).await;
    }

    /// Allocates the next client stream id (1, 3, 5, ...) and waits for its reply.
    pub fn expect_reply(&self) -> PendingReply {
        let stream_id = lock(&self.ids).next_id().expect("stream ids left");
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(stream_id, tx);
        PendingReply { stream_id, rx }
    }

    /// A call of `service`/`method` ready to send, and the reply to wait for. The test sends
    /// it as it likes (see [`FakeRuntime::send`] and [`FakeRuntime::send_raw`]).
    pub fn prepare(
        &self,
        service: &str,
        method: &str,
        payload: impl Into<Bytes>,
    ) -> (Message, PendingReply) {
        let pending = self.expect_reply();
        let envelope = request_envelope(service, method, payload, Some(REQUEST_TIMEOUT));
        (Message::request(pending.stream_id, &envelope), pending)
    }

    /// Sends `message` on connection 1, framed as Go's NRI mux frames it.
    pub async fn send(&self, message: &Message) {
        self.shared.send(PLUGIN_SERVICE_CONN, message).await;
    }

    /// Writes `bytes` to the socket as they are (frames built by the test).
    pub async fn send_raw(&self, bytes: &[u8]) {
        self.shared.write(bytes).await;
    }

    /// Calls `service`/`method` with an encoded payload and waits for the reply.
    pub async fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: impl Into<Bytes>,
    ) -> Result<Bytes, RpcError> {
        let (message, reply) = self.prepare(service, method, payload);
        self.send(&message).await;
        reply.result().await
    }

    /// Calls `method` of NRI's `Plugin` service and waits for the reply.
    pub async fn call(
        &self,
        method: &str,
        request: &impl prost::Message,
    ) -> Result<Bytes, RpcError> {
        self.call_raw(plugin_service::NAME, method, request.encode_to_vec())
            .await
    }

    /// Calls `method`, expects success and decodes the reply as `R`.
    pub async fn call_ok<R: prost::Message + Default>(
        &self,
        method: &str,
        request: &impl prost::Message,
    ) -> R {
        let payload = self
            .call(method, request)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"));
        R::decode(payload).unwrap_or_else(|e| panic!("{method} reply does not decode: {e}"))
    }

    /// Calls `observer` with every reply on connection 1 the moment it is decoded, before the
    /// call waiting for it resumes: what it sees is what existed when the reply arrived.
    pub fn observe_replies(&self, observer: impl Fn(&Message) + Send + Sync + 'static) {
        *lock(&self.shared.observer) = Some(Box::new(observer));
    }

    /// Every frame received so far: connection and payload length, in arrival order.
    pub fn frames(&self) -> Vec<(ConnId, usize)> {
        lock(&self.shared.frames).clone()
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> Vec<(ConnId, Message)> {
        lock(&self.shared.received).clone()
    }

    /// How the connection ended, once it has (panics after [`PATIENCE`]).
    pub async fn closed(&self) -> Closed {
        let mut rx = self.shared.closed.subscribe();
        let closed = tokio::time::timeout(PATIENCE, rx.wait_for(Option::is_some))
            .await
            .expect("the plugin closes the connection in time")
            .expect("close state kept");
        closed.clone().expect("present")
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.borrow().is_some()
    }

    /// Closes the connection, as containerd does when it stops or restarts: both halves of
    /// the socket are dropped before this returns.
    pub async fn close(mut self) {
        self.reader.abort();
        let _ = (&mut self.reader).await;
        self.shared.writer.lock().await.take();
    }
}

/// containerd's NRI socket: a unix listener in a temporary directory.
pub struct RuntimeListener {
    listener: UnixListener,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl RuntimeListener {
    /// Listens on `nri.sock` in a fresh temporary directory.
    pub fn bind() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("nri.sock");
        let listener = UnixListener::bind(&path).expect("bind the NRI socket");
        RuntimeListener {
            listener,
            path,
            _dir: dir,
        }
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the plugin's next connection (panics after [`PATIENCE`]).
    pub async fn accept(&self, register: RegisterReply) -> FakeRuntime {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("the plugin connects in time")
            .expect("accept");
        FakeRuntime::new(stream, register)
    }
}
