//! `rules.hostNamespaces`, `rules.hostPorts`, `rules.hostPath` and `rules.devices`: what of
//! the host a container may reach.

use policy_core::view::{Device, HostNamespaces, Mount, MountSource, Volume, VolumeType};
use policy_core::{ContainerView, Verdict, evaluate};

use crate::util::{
    assert_clean, assert_denied, assert_undecided, compliant, messages, rules, undecided, with,
};

#[test]
fn host_namespaces_deny_each_shared_namespace() {
    let p = rules("hostNamespaces: {}\n");
    assert_clean(&p, &compliant());
    for (set, message) in [
        (
            HostNamespaces {
                network: Some(true),
                ..HostNamespaces::NONE
            },
            "pod shares the host's network namespace (hostNetwork)",
        ),
        (
            HostNamespaces {
                pid: Some(true),
                ..HostNamespaces::NONE
            },
            "pod shares the host's PID namespace (hostPID)",
        ),
        (
            HostNamespaces {
                ipc: Some(true),
                ..HostNamespaces::NONE
            },
            "pod shares the host's IPC namespace (hostIPC)",
        ),
    ] {
        assert_denied(
            &p,
            &with(|v| v.host_namespaces = set),
            "hostNamespaces",
            message,
        );
    }
}

#[test]
fn host_namespaces_allowed_are_not_judged() {
    let p = rules("hostNamespaces: {allowed: [network, ipc]}\n");
    let all = HostNamespaces {
        pid: Some(true),
        ipc: Some(true),
        network: Some(true),
    };
    assert_denied(
        &p,
        &with(|v| v.host_namespaces = all),
        "hostNamespaces",
        "pod shares the host's PID namespace (hostPID)",
    );
    // An allowed namespace may even be unknown.
    let unknown_network = HostNamespaces {
        network: None,
        ..HostNamespaces::NONE
    };
    assert_clean(&p, &with(|v| v.host_namespaces = unknown_network));
}

#[test]
fn host_namespaces_are_undecided_when_unknown() {
    let p = rules("hostNamespaces: {}\n");
    assert_undecided(
        &p,
        &with(|v| {
            v.host_namespaces = HostNamespaces {
                pid: None,
                ..HostNamespaces::NONE
            }
        }),
        &[("hostNamespaces", "hostNamespaces")],
    );
    // A known shared namespace is a violation even when another is unknown.
    let d = evaluate(
        &p,
        &with(|v| {
            v.host_namespaces = HostNamespaces {
                network: Some(true),
                pid: None,
                ipc: Some(false),
            }
        }),
    );
    assert_eq!(
        messages(&d),
        [(
            "hostNamespaces",
            "pod shares the host's network namespace (hostNetwork)"
        )]
    );
    assert_eq!(undecided(&d), [("hostNamespaces", "hostNamespaces")]);
    assert_eq!(d.verdict(), Verdict::Deny);
}

#[test]
fn host_ports_accept_listed_ports_and_inclusive_ranges() {
    let p = rules("hostPorts: {allowed: [8080, \"9000-9100\", \" 443 \"]}\n");
    for ports in [vec![], vec![0], vec![8080, 9000, 9100, 443], vec![9050]] {
        assert_clean(&p, &with(|v| v.host_ports = Some(ports.clone())));
    }
    assert_denied(
        &p,
        &with(|v| v.host_ports = Some(vec![8080, 9101])),
        "hostPorts",
        "container binds host port 9101, outside the allowed 8080, 9000-9100, 443",
    );
    let d = evaluate(&p, &with(|v| v.host_ports = Some(vec![8999, 80])));
    assert_eq!(
        messages(&d),
        [
            (
                "hostPorts",
                "container binds host port 8999, outside the allowed 8080, 9000-9100, 443"
            ),
            (
                "hostPorts",
                "container binds host port 80, outside the allowed 8080, 9000-9100, 443"
            ),
        ]
    );
}

#[test]
fn host_ports_allow_none_by_default() {
    let p = rules("hostPorts: {}\n");
    assert_clean(&p, &compliant());
    assert_denied(
        &p,
        &with(|v| v.host_ports = Some(vec![80])),
        "hostPorts",
        "container binds host port 80 (no host ports are allowed)",
    );
    assert_undecided(
        &p,
        &with(|v| v.host_ports = None),
        &[("hostPorts", "hostPorts")],
    );
}

const HOST_PATHS: &str = "hostPath:
  allowed:
    - pathPrefix: /var/log
    - pathPrefix: /etc/corp/
      readOnly: true
";

fn mount(source: &str, destination: &str, read_only: bool) -> Mount {
    Mount {
        destination: destination.into(),
        source: MountSource::HostPath(source.into()),
        read_only,
    }
}

fn mounts(list: Vec<Mount>) -> ContainerView {
    with(|v| v.mounts = Some(list))
}

#[test]
fn host_path_prefixes_match_whole_path_components() {
    let p = rules(HOST_PATHS);
    for source in [
        "/var/log",
        "/var/log/",
        "/var/log/pods/x",
        "/etc/corp",
        "/etc/corp/a.yaml",
    ] {
        assert_clean(&p, &mounts(vec![mount(source, "/data", true)]));
    }
    for source in [
        "/var/logs",
        "/var/lo",
        "/var",
        "/etc/corporate/a",
        "/",
        "/etc",
    ] {
        assert_denied(
            &p,
            &mounts(vec![mount(source, "/data", true)]),
            "hostPath",
            &format!("host path {source} is mounted at /data but is not allowed"),
        );
    }
}

#[test]
fn host_path_read_only_prefixes_deny_writable_mounts() {
    let p = rules(HOST_PATHS);
    assert_clean(&p, &mounts(vec![mount("/var/log/app", "/logs", false)]));
    assert_denied(
        &p,
        &mounts(vec![mount("/etc/corp/app.yaml", "/config", false)]),
        "hostPath",
        "host path /etc/corp/app.yaml is mounted at /config writable; it must be read-only",
    );
}

#[test]
fn host_path_ignores_kubelet_volumes_and_runtime_mounts() {
    let p = rules("hostPath: {}\n");
    let list = vec![
        Mount {
            destination: "/etc/hosts".into(),
            source: MountSource::Runtime,
            read_only: false,
        },
        Mount {
            destination: "/var/run/secrets/token".into(),
            source: MountSource::KubeletVolume {
                kind: VolumeType::Secret,
                name: "token".into(),
            },
            read_only: true,
        },
    ];
    assert_clean(&p, &mounts(list));
    assert_denied(
        &p,
        &mounts(vec![mount("/", "/host", true)]),
        "hostPath",
        "host path / is mounted at /host but is not allowed",
    );
}

#[test]
fn host_path_root_prefix_allows_everything() {
    let p = rules("hostPath: {allowed: [{pathPrefix: /}]}\n");
    assert_clean(&p, &mounts(vec![mount("/etc/shadow", "/x", false)]));
}

#[test]
fn host_path_judges_hostpath_volumes_that_are_not_mounted() {
    let p = rules(HOST_PATHS);
    let view = with(|v| {
        v.volumes = Some(vec![
            Volume {
                name: "logs".into(),
                kind: VolumeType::HostPath,
                host_path: Some("/var/log".into()),
                driver: None,
            },
            Volume {
                name: "data".into(),
                kind: VolumeType::HostPath,
                host_path: Some("/data".into()),
                driver: None,
            },
            Volume {
                name: "root".into(),
                kind: VolumeType::HostPath,
                host_path: Some("/".into()),
                driver: None,
            },
        ]);
        // `/` is mounted (and judged as a mount); `/data` is not mounted.
        v.mounts = Some(vec![mount("/", "/host", true)]);
    });
    let d = evaluate(&p, &view);
    assert_eq!(
        messages(&d),
        [
            (
                "hostPath",
                "host path / is mounted at /host but is not allowed"
            ),
            (
                "hostPath",
                r#"volume "data" uses host path /data, which is not allowed"#
            ),
        ]
    );
    // Volumes alone are enough to decide.
    let volumes_only = with(|v| {
        v.mounts = None;
        v.volumes = Some(vec![Volume {
            name: "data".into(),
            kind: VolumeType::HostPath,
            host_path: Some("/data".into()),
            driver: None,
        }]);
    });
    assert_denied(
        &p,
        &volumes_only,
        "hostPath",
        r#"volume "data" uses host path /data, which is not allowed"#,
    );
}

#[test]
fn host_path_is_undecided_when_neither_mounts_nor_volumes_are_known() {
    assert_undecided(
        &rules(HOST_PATHS),
        &with(|v| {
            v.mounts = None;
            v.volumes = None;
        }),
        &[("hostPath", "mounts")],
    );
}

#[test]
fn regression_host_path_dot_dot_cannot_climb_out_of_an_allowed_prefix() {
    let p = rules(HOST_PATHS);
    for source in [
        "/var/log/../../etc/shadow",
        "/var/log/..",
        "/etc/corp/../../root",
    ] {
        assert_denied(
            &p,
            &mounts(vec![mount(source, "/data", true)]),
            "hostPath",
            &format!("host path {source} is mounted at /data but is not allowed"),
        );
    }
    // A `..` inside a name is no path component.
    assert_clean(&p, &mounts(vec![mount("/var/log/a..b", "/data", true)]));
}

#[test]
fn devices_allow_listed_globs_only() {
    let p = rules("devices: {allowed: ['/dev/nvidia*', /dev/fuse]}\n");
    let devices = |paths: &[&str]| {
        with(|v| {
            v.devices = Some(
                paths
                    .iter()
                    .map(|p| Device {
                        path: (*p).to_string(),
                    })
                    .collect(),
            );
        })
    };
    assert_clean(
        &p,
        &devices(&["/dev/nvidia0", "/dev/nvidiactl", "/dev/fuse"]),
    );
    assert_denied(
        &p,
        &devices(&["/dev/nvidia0", "/dev/sda"]),
        "devices",
        "container is given host device /dev/sda",
    );
    // Globs match whole paths.
    assert_denied(
        &p,
        &devices(&["/dev/fuse0"]),
        "devices",
        "container is given host device /dev/fuse0",
    );
    // With no allowed list, no device is allowed.
    assert_denied(
        &rules("devices: {}\n"),
        &devices(&["/dev/fuse"]),
        "devices",
        "container is given host device /dev/fuse",
    );
    assert_undecided(&p, &with(|v| v.devices = None), &[("devices", "devices")]);
}
