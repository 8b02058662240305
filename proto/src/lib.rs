//! Generated protobuf code for the wire protocols nodeguard speaks.
//!
//! The `.proto` files next to this crate's `Cargo.toml` are our own, written to be wire-compatible
//! with upstream (see the header of each file for the exact upstream version):
//!
//! - [`nri::v1alpha1`]: the subset of NRI's `nri.pkg.api.v1alpha1` API nodeguard uses
//!   (containerd/nri v0.12.2), plus [`nri::v1alpha1::plugin_service`] and
//!   [`nri::v1alpha1::runtime_service`], the service and method names;
//! - [`ttrpc`]: the ttrpc `Request`/`Response` envelopes (containerd/ttrpc v1.2.x);
//! - [`google::rpc`]: `google.rpc.Status`, the error carried by a ttrpc `Response`;
//! - [`google::protobuf`]: `google.protobuf.Any` and `Empty`;
//! - [`containerd`]: the few containerd gRPC services nodeguard calls (containers `Get` and `List`,
//!   images `Get` and `List`, namespaces `List`, tasks `Kill` and `List`), containerd v1.7 / v2.x.
//!
//! `build.rs` generates the code with `protox` and `prost-build`; nothing here is hand-written
//! logic. Every type derives [`prost::Message`], so use `prost::Message::encode_to_vec` and
//! `prost::Message::decode`.
//!
//! ```
//! use nodeguard_proto::nri::v1alpha1::RegisterPluginRequest;
//! use prost::Message as _;
//!
//! let request = RegisterPluginRequest {
//!     plugin_name: "nodeguard".into(),
//!     plugin_idx: "10".into(),
//!     ..Default::default()
//! };
//! let bytes = request.encode_to_vec();
//! assert_eq!(RegisterPluginRequest::decode(bytes.as_slice()).unwrap(), request);
//! ```

// The one lint exception for generated code lives here, on the modules that `include!` prost's
// output: prost documents a message or field only when the .proto file has a comment for it, and
// we do not repeat the obvious (`string id = 1;`) in the .proto files.

/// NRI, the Node Resource Interface of containerd and CRI-O.
pub mod nri {
    /// The containerd/nri release our `.proto` files match, sent as
    /// `RegisterPluginRequest.NRI_version` (NRI v0.12+ runtimes log it at registration).
    pub const NRI_VERSION: &str = "v0.12.2";

    /// Package `nri.pkg.api.v1alpha1`: the `Runtime` and `Plugin` services and their messages.
    #[allow(missing_docs)]
    pub mod v1alpha1 {
        include!(concat!(env!("OUT_DIR"), "/nri.pkg.api.v1alpha1.rs"));
    }
}

/// Package `ttrpc`: the envelope of every ttrpc call and reply.
#[allow(missing_docs)]
pub mod ttrpc {
    include!(concat!(env!("OUT_DIR"), "/ttrpc.rs"));
}

/// containerd's gRPC API, as far as nodeguard calls it.
pub mod containerd {
    /// containerd's services.
    pub mod services {
        /// Package `containerd.services.containers.v1`: container records.
        pub mod containers {
            /// Version 1.
            #[allow(missing_docs)]
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/containerd.services.containers.v1.rs"
                ));
            }
        }
        /// Package `containerd.services.images.v1`: image records (names and their content).
        pub mod images {
            /// Version 1.
            #[allow(missing_docs)]
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/containerd.services.images.v1.rs"
                ));
            }
        }
        /// Package `containerd.services.namespaces.v1`: containerd's namespaces.
        pub mod namespaces {
            /// Version 1.
            #[allow(missing_docs)]
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/containerd.services.namespaces.v1.rs"
                ));
            }
        }
        /// Package `containerd.services.tasks.v1`: running tasks.
        pub mod tasks {
            /// Version 1.
            #[allow(missing_docs)]
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/containerd.services.tasks.v1.rs"));
            }
        }
    }
    /// Package `containerd.types`: the content descriptor.
    #[allow(missing_docs)]
    pub mod types {
        include!(concat!(env!("OUT_DIR"), "/containerd.types.rs"));
    }
    /// Package `containerd.v1.types`: types the services share.
    pub mod v1 {
        /// The task types (`Process`, `Status`).
        #[allow(missing_docs)]
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/containerd.v1.types.rs"));
        }
    }
}

/// Google's common protobuf packages, as far as ttrpc needs them.
pub mod google {
    /// Package `google.rpc`: the `Status` error model.
    #[allow(missing_docs)]
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }

    /// Package `google.protobuf`: the well-known type `Any` (generated here, not taken from
    /// prost-types).
    #[allow(missing_docs)]
    pub mod protobuf {
        include!(concat!(env!("OUT_DIR"), "/google.protobuf.rs"));
    }
}

#[cfg(test)]
mod tests;
