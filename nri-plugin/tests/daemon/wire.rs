//! Wire robustness: frames that do not align with messages, frames for connections nobody
//! knows, replies cut into frames Go's reader accepts, malformed and oversized messages that
//! leave the connection up, and garbage that ends it (after which the daemon reconnects).

use std::time::Duration;

use bytes::BytesMut;
use nodeguard::nri::connection::ConnectionError;
use nodeguard::nri::service::EVENTS;
use nodeguard::nri::transport::demux::DemuxError;
use nodeguard::nri::transport::io::IoError;
use nodeguard::nri::transport::mux::{
    MuxError, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN, encode_frame, frame_header,
};
use nodeguard::nri::transport::status::Code;
use nodeguard::nri::transport::ttrpc::{
    Header, MAX_MESSAGE_LEN, MAX_SEND_FRAME_LEN, Message, MessageType, request_envelope,
};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use prost::Message as _;

use super::fake_runtime::{Closed, FakeRuntime, PATIENCE, RegisterReply};
use super::harness::{
    Daemon, Plugin, configure, container, container_without_limits, host_pid_pod, wait_until,
};

/// A Configure call as the bytes of connection 1's stream (no mux framing).
fn configure_stream_bytes(runtime: &FakeRuntime) -> (BytesMut, super::fake_runtime::PendingReply) {
    let (message, reply) =
        runtime.prepare(method::NAME, method::CONFIGURE, configure().encode_to_vec());
    let mut stream = BytesMut::new();
    message.encode(&mut stream).unwrap();
    (stream, reply)
}

fn events_of(payload: bytes::Bytes) -> i32 {
    nri::ConfigureResponse::decode(payload).unwrap().events
}

#[tokio::test]
async fn request_split_into_one_byte_frames() {
    let (daemon, runtime) = Daemon::connected().await;
    let (stream, reply) = configure_stream_bytes(&runtime);
    let mut wire = BytesMut::new();
    for byte in stream.iter() {
        encode_frame(PLUGIN_SERVICE_CONN, &[*byte], &mut wire).unwrap();
    }
    // Also in many writes, so the plugin sees partial frames too.
    for piece in wire.chunks(7) {
        runtime.send_raw(piece).await;
    }
    assert_eq!(events_of(reply.result().await.unwrap()), EVENTS);
    daemon.stop().await;
}

#[tokio::test]
async fn two_requests_in_one_frame() {
    let (daemon, runtime) = Daemon::connected().await;
    let (mut stream, configured) = configure_stream_bytes(&runtime);
    let (create, created) = runtime.prepare(
        method::NAME,
        method::CREATE_CONTAINER,
        nri::CreateContainerRequest {
            pod: Some(host_pid_pod()),
            container: Some(container("c1")),
        }
        .encode_to_vec(),
    );
    create.encode(&mut stream).unwrap();
    let mut wire = BytesMut::new();
    encode_frame(PLUGIN_SERVICE_CONN, &stream, &mut wire).unwrap();
    runtime.send_raw(&wire).await;

    assert_ne!(configured.stream_id(), created.stream_id());
    let err = created.result().await.unwrap_err();
    assert!(err.message.contains("hostNamespaces"), "{}", err.message);
    assert_eq!(events_of(configured.result().await.unwrap()), EVENTS);
    daemon.stop().await;
}

#[tokio::test]
async fn frames_for_unknown_connections_are_ignored() {
    let (daemon, runtime) = Daemon::connected().await;
    let (stream, reply) = configure_stream_bytes(&runtime);
    let mut wire = BytesMut::new();
    // A complete, valid request addressed to connections that do not exist...
    for conn in [0, 3, 7, u32::MAX] {
        encode_frame(conn, &stream, &mut wire).unwrap();
        encode_frame(conn, b"\xff\xff\xff\xff garbage", &mut wire).unwrap();
        encode_frame(conn, b"", &mut wire).unwrap();
    }
    // ...and the same request, cut in two, around more of them on connection 1.
    let (head, tail) = stream.split_at(5);
    encode_frame(PLUGIN_SERVICE_CONN, head, &mut wire).unwrap();
    encode_frame(9, b"between the halves", &mut wire).unwrap();
    encode_frame(PLUGIN_SERVICE_CONN, tail, &mut wire).unwrap();
    runtime.send_raw(&wire).await;

    let stream_id = reply.stream_id();
    assert_eq!(events_of(reply.result().await.unwrap()), EVENTS);
    // One more round trip, so any reply to the ignored copies would have arrived by now.
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    let replies: Vec<u32> = runtime
        .received()
        .iter()
        .filter(|(conn, _)| *conn == PLUGIN_SERVICE_CONN)
        .map(|(_, m)| m.stream_id)
        .collect();
    assert_eq!(
        replies.iter().filter(|id| **id == stream_id).count(),
        1,
        "answered once: {replies:?}"
    );
    assert!(
        runtime
            .frames()
            .iter()
            .all(|(conn, _)| *conn == PLUGIN_SERVICE_CONN || *conn == RUNTIME_SERVICE_CONN),
        "the plugin writes only to connections 1 and 2"
    );
    assert!(daemon.state.is_registered());
    daemon.stop().await;
}

#[tokio::test]
async fn large_replies_are_cut_into_frames_go_can_read() {
    let (daemon, runtime) = Daemon::connected().await;
    let frames_before = runtime.frames().len();
    let name = "a".repeat(5000);
    let mut c = container_without_limits("c1");
    c.name.clone_from(&name);
    c.annotations.insert(
        nodeguard_views::kubelet::IMAGE_ANNOTATION.into(),
        format!("docker.io/library/{}:latest", "x".repeat(5000)),
    );
    let err = runtime
        .call(
            method::CREATE_CONTAINER,
            &nri::CreateContainerRequest {
                pod: Some(host_pid_pod()),
                container: Some(c),
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.message.len() > 3 * MAX_SEND_FRAME_LEN,
        "{}",
        err.message.len()
    );
    assert!(err.message.contains(&name), "complete: the name is there");
    for rule in [
        "images.allowed",
        "images.tag",
        "resources.limits",
        "hostNamespaces",
    ] {
        assert!(err.message.contains(rule), "complete: {rule} is there");
    }

    let frames = runtime.frames();
    let reply_frames: Vec<usize> = frames[frames_before..]
        .iter()
        .filter(|(conn, _)| *conn == PLUGIN_SERVICE_CONN)
        .map(|(_, len)| *len)
        .collect();
    assert!(
        reply_frames.len() >= 4,
        "the reply is cut into frames: {reply_frames:?}"
    );
    assert_eq!(
        reply_frames[0], MAX_SEND_FRAME_LEN,
        "header and 4086 payload bytes first"
    );
    let largest = frames.iter().map(|(_, len)| *len).max().unwrap();
    assert!(
        largest <= 4096,
        "no frame the plugin sent exceeds 4096 bytes: {largest}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_and_the_connection_stays_up() {
    let (daemon, runtime) = Daemon::connected().await;

    // Not a ttrpc.Request at all.
    let reply = runtime.expect_reply();
    let garbage = Message::new(
        reply.stream_id(),
        MessageType::Request,
        0,
        &b"\xff\xff\xff"[..],
    );
    runtime.send(&garbage).await;
    let err = reply.result().await.unwrap_err();
    assert_eq!(err.code, Code::INVALID_ARGUMENT, "{err}");

    // A good envelope around a truncated CreateContainerRequest (field 1 declares 5 bytes).
    let err = runtime
        .call_raw(method::NAME, method::CREATE_CONTAINER, &b"\x0a\x05\x01"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::INVALID_ARGUMENT, "{err}");
    assert!(err.message.contains("malformed"), "{}", err.message);

    // The connection serves on.
    let configured: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    assert_eq!(configured.events, EVENTS);
    assert!(!runtime.is_closed());
    assert!(daemon.state.is_registered());
    assert_eq!(daemon.state.registrations(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn oversized_message_is_resource_exhausted_and_the_connection_stays_up() {
    let (daemon, runtime) = Daemon::connected().await;
    let reply = runtime.expect_reply();
    let declared = MAX_MESSAGE_LEN + 1;
    let header = Header {
        length: declared,
        stream_id: reply.stream_id(),
        message_type: MessageType::Request,
        flags: 0,
    };
    let mut wire = BytesMut::new();
    encode_frame(PLUGIN_SERVICE_CONN, &header.encode(), &mut wire).unwrap();
    // The whole declared payload follows, as a Go client would write it: in 1 MiB frames.
    let body = vec![0x5au8; declared as usize];
    for chunk in body.chunks(1 << 20) {
        encode_frame(PLUGIN_SERVICE_CONN, chunk, &mut wire).unwrap();
    }
    runtime.send_raw(&wire).await;
    let err = reply.result().await.unwrap_err();
    assert_eq!(err.code, Code::RESOURCE_EXHAUSTED, "{err}");

    // The stream stays in step: the next call is read and answered.
    let configured: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    assert_eq!(configured.events, EVENTS);
    assert!(!runtime.is_closed());
    assert!(daemon.state.is_registered());
    daemon.stop().await;
}

#[tokio::test]
async fn huge_mux_frame_drops_the_connection_and_the_daemon_reconnects() {
    let (daemon, runtime) = Daemon::connected().await;
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&frame_header(PLUGIN_SERVICE_CONN, u32::MAX));
    wire.extend_from_slice(&[0xee; 64]);
    runtime.send_raw(&wire).await;

    assert_eq!(runtime.closed().await, Closed::Eof, "the plugin hung up");
    let state = daemon.state.clone();
    wait_until("not registered", || !state.is_registered()).await;

    let again = daemon.listener.accept(RegisterReply::Ok).await;
    assert_eq!(again.registration().await.plugin_name, "nodeguard");
    wait_until("registered again", || state.is_registered()).await;
    assert_eq!(daemon.state.registrations(), 2);
    let configured: nri::ConfigureResponse = again.call_ok(method::CONFIGURE, &configure()).await;
    assert_eq!(configured.events, EVENTS);
    assert!(!daemon.is_finished());
    daemon.stop().await;
}

#[tokio::test]
async fn huge_mux_frame_ends_the_connection_with_a_mux_error() {
    let plugin = Plugin::new();
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let runtime = FakeRuntime::new(theirs, RegisterReply::Ok);
    let served = plugin.serve_on(ours);
    runtime.registration().await;
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;

    let mut wire = BytesMut::new();
    wire.extend_from_slice(&frame_header(7, u32::MAX - 1));
    runtime.send_raw(&wire).await;
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("the connection ends")
        .expect("no panic");
    match result {
        Err(ConnectionError::Io(IoError::Demux(DemuxError::Mux(MuxError::FrameTooLarge {
            conn_id: 7,
            declared,
            ..
        })))) => assert_eq!(declared, u32::MAX - 1),
        other => panic!("expected a mux error, got {other:?}"),
    }
    assert_eq!(runtime.closed().await, Closed::Eof);
}

#[tokio::test]
async fn a_request_for_the_runtime_service_connection_is_ignored() {
    // Connection 2 carries our calls; a request arriving there is not ours to serve.
    let (daemon, runtime) = Daemon::connected().await;
    let envelope = request_envelope(
        method::NAME,
        method::CONFIGURE,
        configure().encode_to_vec(),
        Some(Duration::from_secs(2)),
    );
    let mut wire = BytesMut::new();
    Message::request(101, &envelope)
        .encode_mux_frames(RUNTIME_SERVICE_CONN, &mut wire)
        .unwrap();
    runtime.send_raw(&wire).await;
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    assert!(
        runtime.received().iter().all(|(_, m)| m.stream_id != 101),
        "not answered"
    );
    assert!(daemon.state.is_registered());
    daemon.stop().await;
}

#[tokio::test]
async fn concurrent_large_replies_are_not_interleaved() {
    let (daemon, runtime) = Daemon::connected().await;
    let mut wire = BytesMut::new();
    let mut pending = Vec::new();
    for i in 0..24 {
        let name = format!("{i:02}-{}", "n".repeat(6000));
        let mut c = container_without_limits(&format!("c{i}"));
        c.name.clone_from(&name);
        let (message, reply) = runtime.prepare(
            method::NAME,
            method::CREATE_CONTAINER,
            nri::CreateContainerRequest {
                pod: Some(host_pid_pod()),
                container: Some(c),
            }
            .encode_to_vec(),
        );
        message
            .encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire)
            .unwrap();
        pending.push((name, reply));
    }
    // All at once: the plugin serves them concurrently and its replies share the socket.
    runtime.send_raw(&wire).await;
    for (name, reply) in pending {
        let err = reply.result().await.unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("nodeguard: refused container {name:?} in pod")),
            "each reply belongs to its own call"
        );
    }
    let largest = runtime.frames().iter().map(|(_, len)| *len).max().unwrap();
    assert!(largest <= MAX_SEND_FRAME_LEN, "{largest}");
    assert!(!runtime.is_closed());
    daemon.stop().await;
}
