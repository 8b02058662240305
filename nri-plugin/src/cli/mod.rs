//! The commands that do not run as the daemon: they judge files and read reports, never a
//! live runtime.
//!
//! - [`check`]: manifests and OCI specs judged as the node would (its SARIF and JUnit output
//!   in `formats`);
//! - [`validate`]: `nodeguard policy validate`;
//! - [`report`]: `nodeguard report`, the last compliance report.

pub mod check;
mod formats;
pub mod report;
pub mod validate;

use std::process::ExitCode;

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Exit status 2 with `message` on standard error: unusable input.
fn unusable(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("nodeguard: {message}");
    ExitCode::from(2)
}
