//! Generates the Rust code for `nri/`, `ttrpc/`, `google/rpc/` and `containerd/` with prost.
//!
//! The `.proto` files are parsed by `protox`, a protobuf compiler written in Rust, so building
//! needs no system `protoc`. Besides prost's messages we generate, per service, a module of
//! string constants naming the service and its methods (what a ttrpc `Request` carries).

use std::fmt::Write as _;
use std::path::PathBuf;

/// The files we compile, relative to this crate's root (which is also the include path).
const PROTOS: &[&str] = &[
    "nri/api.proto",
    "ttrpc/ttrpc.proto",
    "google/rpc/status.proto",
    "containerd/services.proto",
    "containerd/types/task.proto",
    "containerd/tasks.proto",
    "containerd/types/descriptor.proto",
    "containerd/images.proto",
    "containerd/namespaces.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    for dir in ["nri", "ttrpc", "google", "containerd"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [&root])?;

    prost_build::Config::new()
        // `google.protobuf.Any` (in google.rpc.Status) is generated here instead of taken from
        // prost-types, which spares this crate a dependency.
        .compile_well_known_types()
        // The envelopes' payloads are sliced out of the received buffer without copying.
        .bytes([".ttrpc.Request.payload", ".ttrpc.Response.payload"])
        // Large sub-messages that no view reads, boxed so that an absent one costs a pointer
        // instead of hundreds of bytes in every container and pod nodeguard keeps (ADR 0026).
        .boxed(".nri.pkg.api.v1alpha1.Container.hooks")
        .boxed(".nri.pkg.api.v1alpha1.LinuxContainer.seccomp_policy")
        .boxed(".nri.pkg.api.v1alpha1.LinuxPodSandbox.pod_overhead")
        .boxed(".nri.pkg.api.v1alpha1.LinuxPodSandbox.pod_resources")
        .boxed(".nri.pkg.api.v1alpha1.LinuxPodSandbox.resources")
        .service_generator(Box::new(ServiceNames))
        .compile_fds(descriptors)?;
    Ok(())
}

/// Emits `pub mod <service>_service { pub const NAME; pub const <METHOD>; pub const METHODS; }`.
struct ServiceNames;

impl prost_build::ServiceGenerator for ServiceNames {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let full_name = format!("{}.{}", service.package, service.proto_name);
        let module = format!("{}_service", snake_case(&service.proto_name));
        // `write!` into a String cannot fail.
        let _ = writeln!(
            buf,
            "/// Names of the `{full_name}` service and its methods, as a `ttrpc.Request` \
             (or a gRPC path) carries them."
        );
        let _ = writeln!(buf, "pub mod {module} {{");
        let _ = writeln!(
            buf,
            "    /// The fully qualified service name (`ttrpc.Request.service`)."
        );
        let _ = writeln!(buf, "    pub const NAME: &str = \"{full_name}\";");
        for method in &service.methods {
            let _ = writeln!(
                buf,
                "    /// Method `{}` (`{}` -> `{}`).",
                method.proto_name,
                short_type(&method.input_proto_type),
                short_type(&method.output_proto_type),
            );
            let _ = writeln!(
                buf,
                "    pub const {}: &str = \"{}\";",
                method.name.to_uppercase(),
                method.proto_name
            );
        }
        let _ = writeln!(
            buf,
            "    /// Every method name of the service, in declaration order."
        );
        let _ = write!(buf, "    pub const METHODS: &[&str] = &[");
        for method in &service.methods {
            let _ = write!(buf, "{}, ", method.name.to_uppercase());
        }
        let _ = writeln!(buf, "];");
        let _ = writeln!(buf, "}}");
    }
}

/// `RegisterPlugin` -> `register_plugin`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `.nri.pkg.api.v1alpha1.Empty` -> `Empty`.
fn short_type(proto_type: &str) -> &str {
    proto_type.rsplit('.').next().unwrap_or(proto_type)
}
