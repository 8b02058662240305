//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/`: the repository's
//! own fixtures (policies, manifests, the OCI spec) and hand-built mux, ttrpc and NRI byte
//! streams. Run from `fuzz/` with `cargo run --bin seeds`, then fuzz and `cargo fuzz cmin`
//! (see docs/fuzzing.md). Seeds are named `seed-<what>`; files already there are kept.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use nodeguard::nri::transport::mux::{self, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use nodeguard::nri::transport::status;
use nodeguard::nri::transport::ttrpc::{self, Message, MessageType, flags};
use nodeguard_fuzz::nri::SPEC_ID;
use nodeguard_proto::nri::v1alpha1::{self as nri, Event, plugin_service as method};
use prost::Message as _;

/// The repository root (this crate is `fuzz/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`.
fn fixtures(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            fixtures(&path, suffixes, out);
        } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
            out.push(path);
        }
    }
}

/// Copies fixtures, named after their path in the repository.
fn copy_fixtures(target: &str, dirs: &[&str], suffixes: &[&str]) {
    let mut files = Vec::new();
    for dir in dirs {
        fixtures(&root().join(dir), suffixes, &mut files);
    }
    for file in files {
        let name = file
            .strip_prefix(root())
            .expect("under the root")
            .to_string_lossy()
            .replace('/', "_");
        write(target, &name, &fs::read(&file).expect("fixture"));
    }
}

/// A stream-decoder input: `[control][n][lengths][stream]` (see `nodeguard_fuzz::chunks`).
fn stream_input(control: u8, lengths: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut out = vec![control, u8::try_from(lengths.len()).expect("few lengths")];
    out.extend_from_slice(lengths);
    out.extend_from_slice(stream);
    out
}

fn pod(id: &str) -> nri::PodSandbox {
    let ns = |t: &str| nri::LinuxNamespace {
        r#type: t.into(),
        path: String::new(),
    };
    nri::PodSandbox {
        id: id.into(),
        name: "web-0".into(),
        uid: "0b7f5a9e".into(),
        namespace: "shop".into(),
        labels: [("team".to_string(), "storefront".to_string())].into(),
        linux: Some(nri::LinuxPodSandbox {
            namespaces: vec![ns("pid"), ns("ipc"), ns("network")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(id: &str, image: &str, privileged_shape: bool) -> nri::Container {
    nri::Container {
        id: id.into(),
        pod_sandbox_id: "sb1".into(),
        name: "app".into(),
        annotations: [
            (
                "io.kubernetes.cri.image-name".to_string(),
                image.to_string(),
            ),
            (
                "io.kubernetes.cri.container-type".to_string(),
                "container".to_string(),
            ),
            (
                "io.kubernetes.cri.sandbox-uid".to_string(),
                "0b7f5a9e".to_string(),
            ),
        ]
        .into(),
        mounts: vec![
            nri::Mount {
                destination: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                r#type: "bind".into(),
                source: "/var/lib/kubelet/pods/0b7f5a9e/volumes/kubernetes.io~projected/token"
                    .into(),
                options: vec!["rbind".into(), "ro".into()],
            },
            nri::Mount {
                destination: "/host".into(),
                r#type: "bind".into(),
                source: if privileged_shape { "/" } else { "/var/log" }.into(),
                options: vec!["rbind".into()],
            },
        ],
        linux: Some(nri::LinuxContainer {
            resources: Some(resources()),
            sysctl: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            devices: if privileged_shape {
                vec![nri::LinuxDevice {
                    path: "/dev/mem".into(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            ..Default::default()
        }),
        user: Some(nri::User {
            uid: if privileged_shape { 0 } else { 1000 },
            gid: 1000,
            additional_gids: vec![5],
        }),
        ..Default::default()
    }
}

fn resources() -> nri::LinuxResources {
    nri::LinuxResources {
        cpu: Some(nri::LinuxCpu {
            shares: Some(nri::OptionalUInt64 { value: 512 }),
            quota: Some(nri::OptionalInt64 { value: 50_000 }),
            period: Some(nri::OptionalUInt64 { value: 100_000 }),
            ..Default::default()
        }),
        memory: Some(nri::LinuxMemory {
            limit: Some(nri::OptionalInt64 { value: 256 << 20 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// NRI request payloads, by what they hold.
fn nri_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let good = || container("c1", "registry.corp/shop/web@sha256:0123", false);
    let bad = || container(SPEC_ID, "docker.io/library/nginx:latest", true);
    vec![
        (
            "configure",
            nri::ConfigureRequest {
                config: String::new(),
                runtime_name: "containerd".into(),
                runtime_version: "2.1.0".into(),
                registration_timeout: 5_000,
                request_timeout: 2_000,
                nri_version: "v0.12.2".into(),
            }
            .encode_to_vec(),
        ),
        (
            "synchronize",
            nri::SynchronizeRequest {
                pods: vec![pod("sb1"), pod(SPEC_ID)],
                containers: vec![good(), bad()],
                more: false,
            }
            .encode_to_vec(),
        ),
        (
            "create-compliant",
            nri::CreateContainerRequest {
                pod: Some(pod("sb1")),
                container: Some(good()),
            }
            .encode_to_vec(),
        ),
        (
            "create-noncompliant",
            nri::CreateContainerRequest {
                pod: Some(pod("sb1")),
                container: Some(bad()),
            }
            .encode_to_vec(),
        ),
        (
            "start-with-spec",
            nri::StartContainerRequest {
                pod: Some(pod(SPEC_ID)),
                container: Some(bad()),
            }
            .encode_to_vec(),
        ),
        (
            "state-change-start",
            nri::StateChangeEvent {
                event: Event::StartContainer as i32,
                pod: Some(pod("sb1")),
                container: Some(good()),
            }
            .encode_to_vec(),
        ),
        (
            // Boundary values: u64::MAX shares and i64::MAX quota once wrapped (docs/fuzzing.md).
            "create-cpu-extremes",
            nri::CreateContainerRequest {
                pod: Some(pod("sb1")),
                container: Some(nri::Container {
                    linux: Some(nri::LinuxContainer {
                        resources: Some(nri::LinuxResources {
                            cpu: Some(nri::LinuxCpu {
                                shares: Some(nri::OptionalUInt64 { value: u64::MAX }),
                                quota: Some(nri::OptionalInt64 { value: i64::MAX }),
                                period: Some(nri::OptionalUInt64 { value: 1 }),
                                ..Default::default()
                            }),
                            memory: Some(nri::LinuxMemory {
                                limit: Some(nri::OptionalInt64 { value: i64::MAX }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..good()
                }),
            }
            .encode_to_vec(),
        ),
        (
            "update",
            nri::UpdateContainerRequest {
                pod: Some(pod("sb1")),
                container: Some(good()),
                linux_resources: Some(nri::LinuxResources {
                    memory: Some(nri::LinuxMemory {
                        limit: Some(nri::OptionalInt64 { value: 64 << 30 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
        ),
    ]
}

/// ttrpc messages as they travel: requests from containerd, replies from us.
fn ttrpc_messages() -> Vec<Message> {
    let mut messages = Vec::new();
    for (i, (name, payload)) in nri_payloads().into_iter().enumerate() {
        let method = match name {
            "configure" => method::CONFIGURE,
            "synchronize" => method::SYNCHRONIZE,
            "start-with-spec" => method::START_CONTAINER,
            "state-change-start" => method::STATE_CHANGE,
            "update" => method::UPDATE_CONTAINER,
            _ => method::CREATE_CONTAINER,
        };
        let request = ttrpc::request_envelope(method::NAME, method, payload, None);
        let stream_id = 2 * u32::try_from(i).expect("few") + 1;
        messages.push(Message::request(stream_id, &request));
    }
    messages.push(Message::response(
        1,
        &status::ok_response(nri::ConfigureResponse { events: 0x31 }.encode_to_vec()),
    ));
    messages.push(Message::response(
        3,
        &status::error_response(&status::RpcError::new(
            status::Code::PERMISSION_DENIED,
            "nodeguard: refused",
        )),
    ));
    messages.push(Message::new(
        5,
        MessageType::Data,
        flags::REMOTE_CLOSED | flags::NO_DATA,
        Vec::new(),
    ));
    messages
}

fn transport_seeds() {
    let messages = ttrpc_messages();

    // Mux frames holding whole and split ttrpc messages on both connections, plus frames for
    // connection 0 and an unknown one.
    let mut framed = BytesMut::new();
    for (i, message) in messages.iter().enumerate() {
        let conn = if i % 2 == 0 {
            PLUGIN_SERVICE_CONN
        } else {
            RUNTIME_SERVICE_CONN
        };
        message.encode_mux_frames(conn, &mut framed).unwrap();
    }
    let big = Message::new(7, MessageType::Response, 0, vec![0xab; 9000]);
    big.encode_mux_frames(RUNTIME_SERVICE_CONN, &mut framed)
        .unwrap();
    mux::encode_frame(0, b"", &mut framed).unwrap();
    mux::encode_frame(9, b"for nobody", &mut framed).unwrap();

    // Contiguous ttrpc messages, as one logical connection's stream.
    let mut contiguous = BytesMut::new();
    for message in &messages {
        message.encode(&mut contiguous).unwrap();
    }
    // An oversized header (limit 4 MiB) followed by a message.
    let mut oversized = BytesMut::new();
    oversized.extend_from_slice(
        &ttrpc::Header {
            length: 20,
            stream_id: 9,
            message_type: MessageType::Request,
            flags: 0,
        }
        .encode(),
    );
    oversized.extend_from_slice(&[0xaa; 20]);
    messages[0].encode(&mut oversized).unwrap();

    for (target, control) in [("mux_frames", 5u8), ("ttrpc_stream", 5u8)] {
        write(target, "framed", &stream_input(control, &[], &framed));
        write(
            target,
            "framed-chunked",
            &stream_input(control, &[1, 7, 0, 200], &framed),
        );
        write(
            target,
            "contiguous",
            &stream_input(control, &[13], &contiguous),
        );
        write(target, "small-limit", &stream_input(2, &[3, 0], &oversized));
        write(
            target,
            "truncated",
            &stream_input(control, &[], &framed[..framed.len() - 3]),
        );
        write(
            target,
            "huge-length",
            &stream_input(control, &[2], &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 1]),
        );
    }

    // Round-trip descriptors: [stream id][type][flags][len u16 LE][seed].
    let mut descriptors = Vec::new();
    for (stream_id, kind, flag, len, seed) in [
        (1u32, 1u8, 0u8, 5_000u16, &b"request"[..]),
        (2, 2, 0, 4_086, b"x"),
        (3, 3, 1, 0, b""),
        (4, 9, 7, 65_535, b"0123456789"),
    ] {
        descriptors.extend_from_slice(&stream_id.to_be_bytes());
        descriptors.extend_from_slice(&[kind, flag]);
        descriptors.extend_from_slice(&len.to_le_bytes());
        descriptors.extend_from_slice(seed);
    }
    write(
        "ttrpc_stream",
        "round-trip",
        &stream_input(0x85, &[64, 1, 255], &descriptors),
    );
}

/// Variations of the OCI fixture that reach the other branches of `to_view`.
fn oci_variants() {
    let text = fs::read(root().join("nri-plugin/testdata/oci/config.json")).expect("fixture");
    let base: serde_json::Value = serde_json::from_slice(&text).expect("JSON");
    let mut privileged = base.clone();
    privileged["linux"]["maskedPaths"] = serde_json::json!([]);
    privileged["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
    privileged["linux"]["devices"] = serde_json::json!([{"path": "/dev/mem"}]);
    privileged["linux"]["sysctl"] = serde_json::json!({"kernel.msgmax": "65536"});
    privileged["mounts"] = serde_json::json!([
        {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]},
        {"destination": "/data", "type": "bind",
         "source": "/var/lib/kubelet/pods/0b7f/volumes/kubernetes.io~configmap/cfg",
         "options": ["rbind", "ro"]},
        {"destination": "/sub", "type": "bind",
         "source": "/var/lib/kubelet/pods/0b7f/volume-subpaths/cfg/app/0"},
        {"destination": "/etc/hostname", "type": "bind",
         "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/sb1/hostname"}
    ]);
    privileged["annotations"]["io.kubernetes.cri.sandbox-uid"] = "0b7f".into();
    privileged["annotations"]["io.kubernetes.cri.sandbox-id"] = "sb1".into();
    privileged["annotations"]["io.kubernetes.cri.container-ports"] =
        r#"[{"container_port":80,"host_port":8080,"protocol":"TCP"}]"#.into();
    let mut confined = base;
    confined["process"]["user"] =
        serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
    confined["process"]["capabilities"] = serde_json::json!({"bounding": [], "effective": []});
    confined["process"]["noNewPrivileges"] = true.into();
    confined["process"]["apparmorProfile"] = "cri-containerd.apparmor.d".into();
    confined["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2".into();
    confined["root"]["readonly"] = true.into();
    confined["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"});
    confined["linux"]["readonlyPaths"] = serde_json::json!(["/proc/bus"]);
    // Boundary values: u64::MAX shares and i64::MAX quota once wrapped (docs/fuzzing.md).
    let extremes = serde_json::json!({
        "ociVersion": "1.1.0",
        "linux": {"resources": {
            "cpu": {"shares": u64::MAX, "quota": i64::MAX, "period": 1},
            "memory": {"limit": i64::MAX}
        }}
    });
    for (name, value) in [
        ("privileged", privileged),
        ("confined", confined),
        ("cpu-extremes", extremes),
    ] {
        write(
            "oci_spec",
            name,
            &serde_json::to_vec_pretty(&value).expect("JSON"),
        );
    }
}

/// Alias bombs and other inputs that expand far beyond their size, each behind control bytes
/// that choose small and large limits (see `nodeguard_fuzz::documents::fuzz_limits`).
fn yaml_limit_seeds() {
    let long_scalar = format!(
        "a: &big '{}'\nb: [{}]\n",
        "x".repeat(300),
        vec!["*big"; 20].join(", ")
    );
    let mut laughs = String::from("l0: &l0 [lol, lol, lol, lol, lol]\n");
    for level in 1..6 {
        let prev = format!("*l{}", level - 1);
        laughs.push_str(&format!("l{level}: &l{level} [{}]\n", vec![prev; 5].join(", ")));
    }
    let many_refs = format!("v: &v 1\nrefs: [{}]\n", vec!["*v"; 200].join(", "));
    let mut long_paths = String::new();
    for depth in 0..6 {
        long_paths.push_str(&format!("{}{}{depth}:\n", "  ".repeat(depth), "k".repeat(60)));
    }
    long_paths.push_str(&format!("{}- 1\n", "  ".repeat(6)).repeat(20));
    let mapping_alias = "base: &base {a: 1, b: [x, y], c: {d: e}}\ncopy1: *base\ncopy2: *base\n";
    let documents = format!("{long_scalar}---\nnext: 1\n---\n{many_refs}---\nlast: [1, 2]\n");
    let float_keys = "{1e300: a, 0x1F: b, 1.5: c, true: d, null: e}\n";
    for (name, text) in [
        ("long-scalar", long_scalar.as_str()),
        ("laughs", laughs.as_str()),
        ("many-refs", many_refs.as_str()),
        ("long-paths", long_paths.as_str()),
        ("mapping-alias", mapping_alias),
        ("documents", documents.as_str()),
        ("float-keys", float_keys),
    ] {
        // Small limits (4 nodes, 512 bytes), middling (1,000 nodes, 64 KiB, total 2x), and
        // large with a deep stack (100,000 nodes, 1 MiB, stream unbounded).
        for control in [0x00_u8, 0x1a, 0x7f] {
            let mut input = vec![control];
            input.extend_from_slice(text.as_bytes());
            write("yaml_limits", &format!("{name}-{control:02x}"), &input);
        }
    }
}

fn main() {
    transport_seeds();
    yaml_limit_seeds();
    for (name, payload) in nri_payloads() {
        write("nri_requests", name, &payload);
    }
    copy_fixtures(
        "policy_yaml",
        &[
            "nri-plugin/testdata/policies",
            "policy-core/testdata",
            "docs/examples",
        ],
        &[".yaml"],
    );
    copy_fixtures("oci_spec", &["nri-plugin/testdata/oci"], &[".json"]);
    oci_variants();
    copy_fixtures(
        "manifest",
        &["nri-plugin/testdata/manifests", "nri-plugin/testdata/pss"],
        &[".yaml", ".yaml.broken"],
    );
    println!(
        "seeds written under {}",
        root().join("fuzz/corpus").display()
    );
}
