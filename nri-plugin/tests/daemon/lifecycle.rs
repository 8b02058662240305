//! The daemon's lifecycle: reconnecting and re-registering when the runtime goes away, giving
//! up on an unanswered registration, shutting down promptly, and readiness.

use std::sync::Arc;
use std::time::Duration;

use nodeguard::nri::connection::{self, ConnectionError, Ended};
use nodeguard::nri::serve::{ConnectionState, Endpoint, ServeConfig};
use nodeguard::nri::transport::demux::DemuxError;
use nodeguard::nri::transport::io::IoError;
use nodeguard::nri::transport::mux::{MuxError, RUNTIME_SERVICE_CONN, frame_header};
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};
use tokio_util::sync::CancellationToken;

use super::fake_runtime::{Closed, FakeRuntime, PATIENCE, RegisterReply};
use super::harness::{Daemon, Plugin, configure, handshake, registration, wait_until};

/// Longer than any test may take: a test passing with it shows the wait was cut short.
const FOREVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn runtime_restart_makes_the_daemon_reconnect_and_register_again() {
    let (daemon, runtime) = Daemon::connected().await;
    assert_eq!(daemon.state.registrations(), 1);
    let state = Arc::clone(&daemon.state);

    let mut runtime = runtime;
    for round in 2..=3 {
        runtime.close().await;
        wait_until("not registered", || !state.is_registered()).await;
        runtime = daemon.listener.accept(RegisterReply::Ok).await;
        assert_eq!(runtime.registration().await.plugin_idx, "10");
        handshake(&runtime).await;
        wait_until("registered", || state.is_registered()).await;
        assert_eq!(state.registrations(), round);
    }
    daemon.stop().await;
}

#[tokio::test]
async fn unanswered_registration_times_out_and_is_retried() {
    let daemon = Daemon::start_with(Plugin::new(), Duration::from_millis(200));
    let silent = daemon.listener.accept(RegisterReply::Never).await;
    silent.registration().await;
    assert_eq!(
        silent.closed().await,
        Closed::Eof,
        "given up after the timeout"
    );
    assert!(!daemon.state.is_registered());
    assert_eq!(daemon.state.registrations(), 0);

    let answering = daemon.listener.accept(RegisterReply::Ok).await;
    answering.registration().await;
    let state = Arc::clone(&daemon.state);
    wait_until("registered", || state.is_registered()).await;
    assert_eq!(state.registrations(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn unanswered_registration_ends_the_connection_with_a_timeout_error() {
    let plugin = Plugin::new();
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let runtime = FakeRuntime::new(theirs, RegisterReply::Never);
    let timeout = Duration::from_millis(100);
    let service = plugin.service();
    let served = tokio::spawn(async move {
        connection::serve(
            ours,
            service,
            &registration(),
            timeout,
            std::future::pending(),
            || panic!("not registered"),
        )
        .await
    });
    runtime.registration().await;
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("ends")
        .expect("no panic");
    assert!(
        matches!(result, Err(ConnectionError::RegistrationTimeout(t)) if t == timeout),
        "{result:?}"
    );
}

#[tokio::test]
async fn connection_closed_during_registration_fails_without_waiting_for_the_timeout() {
    let plugin = Plugin::new();
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let runtime = FakeRuntime::new(theirs, RegisterReply::Never);
    let service = plugin.service();
    let served = tokio::spawn(async move {
        connection::serve(
            ours,
            service,
            &registration(),
            FOREVER,
            std::future::pending(),
            || panic!("not registered"),
        )
        .await
    });
    runtime.registration().await;
    runtime.close().await;
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("the closed connection is noticed at once, not after the registration timeout")
        .expect("no panic");
    assert!(
        matches!(result, Err(ConnectionError::ClosedDuringRegistration)),
        "{result:?}"
    );
}

#[tokio::test]
async fn garbage_during_registration_fails_with_the_mux_error_without_waiting() {
    let plugin = Plugin::new();
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let runtime = FakeRuntime::new(theirs, RegisterReply::Never);
    let service = plugin.service();
    let served = tokio::spawn(async move {
        connection::serve(
            ours,
            service,
            &registration(),
            FOREVER,
            std::future::pending(),
            || panic!("not registered"),
        )
        .await
    });
    runtime.registration().await;
    runtime
        .send_raw(&frame_header(RUNTIME_SERVICE_CONN, u32::MAX))
        .await;
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("the broken stream is noticed at once, not after the registration timeout")
        .expect("no panic");
    assert!(
        matches!(
            result,
            Err(ConnectionError::Io(IoError::Demux(DemuxError::Mux(
                MuxError::FrameTooLarge { .. }
            ))))
        ),
        "{result:?}"
    );
    assert_eq!(runtime.closed().await, Closed::Eof);
}

#[tokio::test]
async fn registration_and_close_reported_by_the_connection() {
    let plugin = Plugin::new();
    let (theirs, ours) = tokio::io::duplex(64 * 1024);
    let runtime = FakeRuntime::new(theirs, RegisterReply::Ok);
    let registered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&registered);
    let service = plugin.service();
    let served = tokio::spawn(async move {
        connection::serve(
            ours,
            service,
            &registration(),
            PATIENCE,
            std::future::pending(),
            move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
        )
        .await
    });
    runtime.registration().await;
    handshake(&runtime).await;
    wait_until("registered", || {
        registered.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    runtime.close().await;
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("ends")
        .expect("no panic");
    assert!(matches!(result, Ok(Ended::Closed)), "{result:?}");
    assert_eq!(registered.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_ends_a_registered_connection_promptly() {
    let (daemon, runtime) = Daemon::connected().await;
    let state = Arc::clone(&daemon.state);
    daemon.stop().await;
    assert!(!state.is_registered());
    assert_eq!(runtime.closed().await, Closed::Eof);
}

#[tokio::test]
async fn shutdown_during_an_unanswered_registration_is_prompt() {
    let daemon = Daemon::start_with(Plugin::new(), FOREVER);
    let runtime = daemon.listener.accept(RegisterReply::Never).await;
    runtime.registration().await;
    daemon.stop().await;
    assert_eq!(runtime.closed().await, Closed::Eof);
}

#[tokio::test]
async fn shutdown_interrupts_the_reconnection_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        endpoint: Endpoint::Socket(dir.path().join("no-runtime-here.sock")),
        registration: registration(),
        registration_timeout: PATIENCE,
        initial_backoff: FOREVER,
        max_backoff: FOREVER,
    };
    let plugin = Plugin::new();
    let state = Arc::new(ConnectionState::default());
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(nodeguard::nri::serve::run(
        config,
        move || plugin.service(),
        Arc::clone(&state),
        shutdown.clone(),
    ));
    // On this single-threaded runtime the daemon runs as soon as the test yields: connecting
    // to a missing socket fails at once, and it is in its (hour-long) backoff before the test
    // resumes. Only the cancellation can end that wait within PATIENCE.
    tokio::task::yield_now().await;
    assert!(!run.is_finished());
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("serve::run returns promptly")
        .expect("no panic");
    assert_eq!(state.registrations(), 0);
}

#[tokio::test]
async fn readiness_is_true_only_while_registered() {
    let daemon = Daemon::start(Plugin::new());
    let state = Arc::clone(&daemon.state);
    assert!(!state.is_registered(), "not before connecting");

    let runtime = daemon.listener.accept(RegisterReply::Never).await;
    runtime.registration().await;
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    assert!(!state.is_registered(), "not before the runtime accepted");

    runtime.answer_registration(Ok(())).await;
    wait_until("registered", || state.is_registered()).await;

    runtime.close().await;
    wait_until("not registered", || !state.is_registered()).await;

    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    wait_until("registered again", || state.is_registered()).await;
    assert_eq!(state.registrations(), 2);

    daemon.stop().await;
    assert!(!state.is_registered(), "not after shutdown");
}

#[tokio::test]
async fn inherited_connection_ends_the_daemon_when_the_runtime_closes_it() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let runtime = FakeRuntime::new(
        tokio::net::UnixStream::from_std(theirs).unwrap(),
        RegisterReply::Ok,
    );
    let config = ServeConfig {
        endpoint: Endpoint::Inherited(ours),
        registration: registration(),
        registration_timeout: PATIENCE,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    let plugin = Plugin::new();
    let state = Arc::new(ConnectionState::default());
    let run = tokio::spawn(nodeguard::nri::serve::run(
        config,
        move || plugin.service(),
        Arc::clone(&state),
        CancellationToken::new(),
    ));
    runtime.registration().await;
    handshake(&runtime).await;
    wait_until("registered", || state.is_registered()).await;
    runtime.close().await;
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the daemon exits with its inherited connection")
        .expect("no panic");
    assert!(!state.is_registered());
    assert_eq!(state.registrations(), 1);
}
