//! Synchronize split in parts (NRI v0.7+): every part but the last answered with `more`, no
//! updates anywhere, and the containers of all parts audited afterwards.

use nodeguard_proto::nri::v1alpha1::{self as nri, plugin_service as method};

use super::fake_runtime::RegisterReply;
use super::harness::{
    Daemon, IMAGE, Plugin, configure, container, container_with_image, pod, privileged_spec,
    wait_until,
};

#[tokio::test]
async fn split_synchronize_answers_more_then_audits_every_part() {
    let daemon = Daemon::start(Plugin::new());
    let plugin = &daemon.plugin;
    plugin.specs.insert("c-priv", &privileged_spec());
    // c-ok and c-latest have no spec in containerd: judged on what NRI tells.
    let runtime = daemon.listener.accept(RegisterReply::Ok).await;
    runtime.registration().await;
    let _: nri::ConfigureResponse = runtime.call_ok(method::CONFIGURE, &configure()).await;

    let parts = [
        nri::SynchronizeRequest {
            pods: vec![pod()],
            containers: vec![container("c-ok")],
            more: true,
        },
        nri::SynchronizeRequest {
            pods: vec![],
            containers: vec![container_with_image(
                "c-latest",
                "registry.corp/shop/web:latest",
            )],
            more: true,
        },
        nri::SynchronizeRequest {
            pods: vec![],
            containers: vec![container("c-priv")],
            more: false,
        },
    ];
    let mut replies = Vec::new();
    for part in &parts {
        let reply: nri::SynchronizeResponse = runtime.call_ok(method::SYNCHRONIZE, part).await;
        replies.push(reply);
    }
    assert_eq!(
        replies,
        vec![
            nri::SynchronizeResponse {
                update: vec![],
                more: true
            },
            nri::SynchronizeResponse {
                update: vec![],
                more: true
            },
            nri::SynchronizeResponse {
                update: vec![],
                more: false
            },
        ]
    );

    wait_until("three sync records", || plugin.records("sync").len() == 3).await;
    let records = plugin.records("sync");
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r["container"]["id"] == id)
            .unwrap_or_else(|| panic!("a sync record for {id}: {records:#?}"))
            .clone()
    };
    let ok = by_id("c-ok");
    assert_eq!(ok["pod"]["namespace"], "default");
    assert_eq!(ok["pod"]["name"], "web");
    assert_eq!(ok["image"], IMAGE);
    assert_ne!(ok["outcome"], "refused", "sync never refuses");

    let latest = by_id("c-latest");
    assert_ne!(latest["outcome"], "refused", "sync never refuses");
    assert!(
        latest.to_string().contains("forbidden tag"),
        "the record names the violation: {latest}"
    );

    let privileged = by_id("c-priv");
    assert_ne!(privileged["outcome"], "refused", "sync never refuses");
    assert!(
        privileged.to_string().contains("container is privileged"),
        "judged on the spec from containerd: {privileged}"
    );
    assert!(
        plugin.records("create").is_empty() && plugin.records("start").is_empty(),
        "sync records only"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_new_connection_starts_a_fresh_synchronize() {
    // A part left over from a connection that died must not leak into the next one.
    let daemon = Daemon::start(Plugin::new());
    let first = daemon.listener.accept(RegisterReply::Ok).await;
    first.registration().await;
    let reply: nri::SynchronizeResponse = first
        .call_ok(
            method::SYNCHRONIZE,
            &nri::SynchronizeRequest {
                pods: vec![pod()],
                containers: vec![container("stale")],
                more: true,
            },
        )
        .await;
    assert!(reply.more);
    first.close().await;

    let second = daemon.listener.accept(RegisterReply::Ok).await;
    second.registration().await;
    let reply: nri::SynchronizeResponse = second
        .call_ok(
            method::SYNCHRONIZE,
            &nri::SynchronizeRequest {
                pods: vec![pod()],
                containers: vec![container("fresh")],
                more: false,
            },
        )
        .await;
    assert!(!reply.more);
    let plugin = &daemon.plugin;
    wait_until("one sync record", || !plugin.records("sync").is_empty()).await;
    let ids: Vec<_> = plugin
        .records("sync")
        .iter()
        .map(|r| r["container"]["id"].clone())
        .collect();
    assert_eq!(ids, vec!["fresh"]);
    daemon.stop().await;
}
