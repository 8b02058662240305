//! Test support for the end-to-end suite: a real containerd (1.7 or 2.1) with NRI, started
//! per test from the testbed that `scripts/testbed/setup.sh` prepares, and a CRI client that
//! plays the kubelet.
//!
//! ```no_run
//! use nodeguard_integration::{Containerd, ContainerdVersion, ContainerSpec, PodSpec, images};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let containerd = Containerd::start(ContainerdVersion::V1_7).await?;
//! let cri = containerd.cri().await?;
//! let pod = cri.run_pod(&PodSpec::new("web", "default").label("app", "web")).await?;
//! let spec = ContainerSpec::new("main", images::BUSYBOX).sleep_forever().limits(250, 64 << 20);
//! match cri.create_container(&pod, &spec).await {
//!     Ok(id) => cri.start_container(&id).await?,
//!     Err(refusal) => println!("refused: {}", refusal.message),
//! }
//! // Dropping `containerd` removes pods, processes, mounts, cgroups and folders.
//! # Ok(())
//! # }
//! ```
//!
//! Tests need root and a prepared testbed; without one, [`Containerd::start`] fails with a
//! message saying to run `scripts/testbed/setup.sh`. Each instance has its own folder and
//! cgroup root, so tests may run in parallel.

pub mod cleanup;
mod config;
mod containerd;
mod cri;
pub mod daemonset;
pub mod http;
mod kubelet;
pub mod nodeguard;
mod testbed;

pub use config::NriConfig;
pub use containerd::{Containerd, ContainerdBuilder};
pub use cri::{CriClient, CriError, ExecOutput, Pod};
pub use k8s_cri::v1 as cri_api;
pub use kubelet::{ContainerSpec, HostMount, PodSpec, Profile, QosClass, SLEEP_FOREVER};
pub use nodeguard::{Nodeguard, NodeguardBuilder};
pub use testbed::{ContainerdVersion, TESTBED_ENV, Testbed, images};
