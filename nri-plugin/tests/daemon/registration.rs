//! Registration: RegisterPlugin first, on connection 2; the Configure reply; Configure served
//! while the registration is still unanswered, as containerd sends it.

use nodeguard::nri::service::EVENTS;
use nodeguard::nri::transport::mux::{PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use nodeguard::nri::transport::ttrpc::MessageType;
use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method, runtime_service};

use super::fake_runtime::RegisterReply;
use super::harness::{Daemon, Plugin, configure, handshake, wait_until};

#[tokio::test]
async fn register_plugin_goes_first_on_connection_2() {
    let daemon = Daemon::start(Plugin::new());
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;

    let request = runtime.registration().await;
    assert_eq!(request.plugin_name, "nodeguard");
    assert_eq!(request.plugin_idx, "10");
    assert_eq!(
        request.nri_version, "v0.12.2",
        "NRI v0.12 runtimes log the version a plugin was built with"
    );

    let received = runtime.received();
    let (conn, first) = &received[0];
    assert_eq!(
        *conn, RUNTIME_SERVICE_CONN,
        "the first message is on connection 2"
    );
    assert_eq!(first.message_type, MessageType::Request);
    assert_eq!(first.stream_id, 1, "the plugin's first client stream");
    assert_eq!(first.flags, 0);
    let envelope = first.decode_request().unwrap();
    assert_eq!(envelope.service, runtime_service::NAME);
    assert_eq!(envelope.method, runtime_service::REGISTER_PLUGIN);
    assert!(envelope.timeout_nano > 0, "the call carries its deadline");
    assert_eq!(
        runtime.frames()[0].0,
        RUNTIME_SERVICE_CONN,
        "the first frame on the wire is for connection 2"
    );

    handshake(&runtime).await;
    let state = daemon.state.clone();
    wait_until("registered", || state.is_registered()).await;
    assert_eq!(daemon.state.registrations(), 1);
    assert!(
        runtime
            .received()
            .iter()
            .all(|(conn, m)| *conn == PLUGIN_SERVICE_CONN || m.stream_id == 1),
        "nothing else on connection 2"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn configure_subscribes_only_to_what_it_judges() {
    let (daemon, runtime) = Daemon::connected().await;
    let reply: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    // A pod before its containers, and create, start, update: judged. Not stop, remove
    // container or remove pod (0x200, 0x400, 0x4): each would be a synchronous call of
    // containerd's for every container, for an inventory that containerd's task list keeps
    // instead.
    assert_eq!(reply.events, 0x1 | 0x8 | 0x20 | 0x80);
    assert_eq!(reply.events, EVENTS);
    assert_ne!(reply.events, 0, "0 would subscribe to every event");
    for bit in 0..32 {
        let mask = 1i32 << bit;
        if reply.events & mask != 0 {
            assert!(
                mask < 0x800,
                "bit {mask:#x} is unknown to containerd <= 2.1"
            );
        }
    }
    daemon.stop().await;
}

#[tokio::test]
async fn configure_is_served_before_the_registration_is_answered() {
    let daemon = Daemon::start(Plugin::new());
    let runtime = daemon.listener.accept(RegisterReply::Never).await;
    runtime.registration().await;

    // containerd configures from another goroutine while its RegisterPlugin reply is still
    // on its way.
    let reply: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;
    assert_eq!(reply.events, EVENTS);
    let synced: nri::SynchronizeResponse = runtime
        .call_ok(method::SYNCHRONIZE, &nri::SynchronizeRequest::default())
        .await;
    assert!(!synced.more);
    assert!(
        !daemon.state.is_registered(),
        "not registered before the reply"
    );
    assert_eq!(daemon.state.registrations(), 0);

    runtime.answer_registration(Ok(())).await;
    let state = daemon.state.clone();
    wait_until("registered", || state.is_registered()).await;
    assert_eq!(daemon.state.registrations(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn refused_registration_is_retried_on_a_new_connection() {
    let daemon = Daemon::start(Plugin::new());
    let first = daemon
        .listener
        .accept(RegisterReply::Error(
            "plugin nodeguard already registered".into(),
        ))
        .await;
    first.registration().await;
    first.closed().await;
    assert!(!daemon.state.is_registered());

    let second = daemon.listener.accept(RegisterReply::Ok).await;
    let request = second.registration().await;
    assert_eq!(request.plugin_name, "nodeguard");
    let state = daemon.state.clone();
    wait_until("registered", || state.is_registered()).await;
    assert_eq!(daemon.state.registrations(), 1, "the refusal did not count");
    daemon.stop().await;
}
