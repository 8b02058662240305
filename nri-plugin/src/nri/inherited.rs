//! The connection containerd hands to a plugin it launches itself (a pre-installed plugin in
//! `/opt/nri/plugins`): an already connected socket inherited as a file descriptor whose number
//! is in `NRI_PLUGIN_SOCKET`.
//!
//! This is the crate's one use of `unsafe` (ADR 0009): turning a descriptor number into an
//! owned socket has no safe API in std or in the crates we use.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable holding the inherited socket's descriptor number.
pub const SOCKET_ENV: &str = "NRI_PLUGIN_SOCKET";
/// The variable holding the plugin name containerd launched us under.
pub const NAME_ENV: &str = "NRI_PLUGIN_NAME";
/// The variable holding the plugin index containerd launched us under.
pub const INDEX_ENV: &str = "NRI_PLUGIN_IDX";

/// Why the inherited socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    /// `NRI_PLUGIN_SOCKET` is not a descriptor number.
    #[error("{SOCKET_ENV}={0:?} is not a file descriptor number")]
    NotANumber(String),
    /// The descriptor is not an open socket of this process.
    #[error("{SOCKET_ENV}={0}: descriptor {0} is not an open socket")]
    NotASocket(RawFd),
    /// The socket was taken already.
    #[error("the inherited NRI socket was taken already")]
    Taken,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the socket named by `NRI_PLUGIN_SOCKET`'s value. At most once per
/// process.
///
/// # Errors
/// When the value is not a number, the descriptor is not an open socket, or it was taken.
pub fn take(value: &str) -> Result<UnixStream, InheritedError> {
    let fd: RawFd = value
        .trim()
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| InheritedError::NotANumber(value.to_string()))?;
    // The kernel names an open socket descriptor `socket:[inode]`.
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map_err(|_| InheritedError::NotASocket(fd))?;
    if !target.to_string_lossy().starts_with("socket:") {
        return Err(InheritedError::NotASocket(fd));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(InheritedError::Taken);
    }
    // SAFETY: `fd` is open (it is listed in /proc/self/fd as a socket), it was inherited from
    // the runtime for us alone, and `TAKEN` makes this the only place that ever owns it, so
    // no other `OwnedFd` closes it.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(UnixStream::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_inherited_socket() {
        assert!(matches!(take("x"), Err(InheritedError::NotANumber(_))));
        assert!(matches!(take("1"), Err(InheritedError::NotANumber(_))));
        assert!(matches!(
            take("4095"),
            Err(InheritedError::NotASocket(4095))
        ));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        assert!(matches!(
            take(&fd.to_string()),
            Err(InheritedError::NotASocket(_))
        ));
    }
}
