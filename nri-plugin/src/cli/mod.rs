//! The commands that do not run as the daemon: they judge files and read reports, never a
//! live runtime.
//!
//! - [`check`]: manifests and OCI specs judged as the node would, into [`findings`], which
//!   [`output`] prints as text, JSON, SARIF or JUnit;
//! - [`validate`]: `nodeguard policy validate`;
//! - [`convert`]: `nodeguard policy convert`;
//! - [`report`]: `nodeguard report`, the last compliance report.

pub mod check;
pub mod convert;
pub mod findings;
pub mod output;
pub mod report;
pub mod validate;
