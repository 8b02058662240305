//! One `nodeguard serve` per node: a lock on the folder of its state files.
//!
//! Two instances on one node (two pods of a botched rollout, a pod beside the pre-installed
//! plugin) would both register as the same NRI plugin, so containerd would call both, and
//! would write the same audit log, report and state file. `serve` takes an exclusive
//! `flock(2)` on `.nodeguard.lock` in the state folder (`/var/lib/nodeguard` by default) before
//! touching any socket, and holds it until it exits; the kernel releases it when the process
//! dies, however it dies. A second instance finds it held and refuses to start, naming the
//! holder. The lock works across containers: both pods mount the same host folder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The lock file's name in the state folder.
pub const LOCK_FILE: &str = ".nodeguard.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The folder or the file cannot be created or opened, or locking failed for another
    /// reason than a holder.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds it.
    #[error(
        "another nodeguard is running on this node: it holds {path} ({holder}). Two instances \
         would both register with containerd as the same NRI plugin and write the same audit \
         log, report and state files; stop the other one first (another pod of the DaemonSet, \
         or the pre-installed plugin in /opt/nri/plugins)"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote in it.
        holder: String,
    },
}

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct InstanceLock {
    path: PathBuf,
    _file: File,
}

impl InstanceLock {
    /// Takes the lock in `dir` (created if missing) without waiting, and writes `holder` (who
    /// this instance is, for the message another instance prints) into the file.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds it, [`LockError::Io`] otherwise.
    pub fn acquire(dir: &Path, holder: &str) -> Result<InstanceLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "no details written".to_string(),
                    text => text.to_string(),
                };
                return Err(LockError::Held { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the next one's message; not needed for the lock itself.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{holder}"));
        Ok(InstanceLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How an instance names itself in the lock file: its pid, and its pod when the DaemonSet
/// gives it one (`POD_NAMESPACE`, `POD_NAME`).
pub fn holder_description(pod: Option<&(String, String)>) -> String {
    let pid = std::process::id();
    match pod {
        Some((namespace, name)) => format!("pid {pid} in pod {namespace}/{name}"),
        None => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_and_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = InstanceLock::acquire(&state, "pid 1 in pod nodeguard-system/nodeguard-a")
            .expect("the first takes the lock");
        assert_eq!(first.path(), state.join(LOCK_FILE));
        let err = InstanceLock::acquire(&state, "pid 2").expect_err("the second is refused");
        let message = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(
            message.contains("another nodeguard is running on this node")
                && message.contains("pid 1 in pod nodeguard-system/nodeguard-a"),
            "{message}"
        );
        drop(first);
        let again = InstanceLock::acquire(&state, "pid 3").expect("free once released");
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(text, "pid 3\n", "the holder's line replaces the last one");
    }

    #[test]
    fn the_holder_names_its_pod() {
        let pod = ("nodeguard-system".to_string(), "nodeguard-x1".to_string());
        assert!(holder_description(Some(&pod)).ends_with("in pod nodeguard-system/nodeguard-x1"));
        assert!(holder_description(None).starts_with("pid "));
    }
}
