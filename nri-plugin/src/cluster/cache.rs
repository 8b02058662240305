//! The API server's policy kept on the node's disk (`/var/lib/nodeguard/cluster-policy.json`),
//! so that a node that restarts while the API server is unreachable enforces the same policy
//! from its first container.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::documents::{Accepted, ClusterDocuments, ObjectKey};
use crate::compliance::report::write_atomically;

/// The file name, in the state folder.
pub const FILE_NAME: &str = "cluster-policy.json";

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// The format's version: 1.
    version: u32,
    /// Every accepted object.
    objects: Vec<CachedObject>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedObject {
    #[serde(flatten)]
    key: ObjectKey,
    #[serde(flatten)]
    accepted: Accepted,
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a cache of this format.
    #[error("{path}: not a nodeguard cluster policy cache: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// The file the namespaces' labels are kept in, beside the policy's cache.
pub const LABELS_FILE_NAME: &str = "namespace-labels.json";

/// The namespaces' labels, as kept on disk.
pub type Labels = std::collections::HashMap<String, std::collections::BTreeMap<String, String>>;

/// Writes the namespaces' `labels` to `path`, atomically.
///
/// # Errors
/// When the file cannot be written.
pub fn save_labels(path: &Path, labels: &Labels) -> Result<(), CacheError> {
    let bytes = serde_json::to_vec(labels).expect("labels serialize");
    write_atomically(path, &bytes).map_err(|source| CacheError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The namespaces' labels kept at `path`; `None` when there are none (or they cannot be read:
/// then they come from the API server, as without a file).
pub fn load_labels(path: &Path) -> Option<Labels> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `documents` to `path`, atomically.
///
/// # Errors
/// When the file cannot be written.
pub fn save(path: &Path, documents: &ClusterDocuments) -> Result<(), CacheError> {
    let file = CacheFile {
        version: 1,
        objects: documents
            .to_cache()
            .into_iter()
            .map(|(key, accepted)| CachedObject { key, accepted })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).expect("the cache serializes");
    write_atomically(path, &bytes).map_err(|source| CacheError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads the documents kept at `path`, each validated again: the documents, and why any was
/// left out. `Ok` with nothing when there is no file yet.
///
/// # Errors
/// When the file exists but cannot be read or is not a cache.
pub fn load(path: &Path, strict: bool) -> Result<(ClusterDocuments, Vec<String>), CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((ClusterDocuments::new(strict), Vec::new()));
        }
        Err(source) => {
            return Err(CacheError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let file: CacheFile = serde_json::from_slice(&bytes).map_err(|source| CacheError::Format {
        path: path.display().to_string(),
        source,
    })?;
    Ok(ClusterDocuments::from_cache(
        file.objects
            .into_iter()
            .map(|o| (o.key, o.accepted))
            .collect(),
        strict,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_is_saved_is_loaded_again_and_no_file_is_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let (empty, bad) = load(&path, false).unwrap();
        assert!(empty.accepted().is_empty() && bad.is_empty());
        let mut docs = ClusterDocuments::default();
        docs.apply(&json!({
            "apiVersion": "nodeguard.io/v1alpha1", "kind": "NodePolicy",
            "metadata": {"name": "p", "generation": 2}, "spec": {"rules": {"privileged": {}}}
        }));
        save(&path, &docs).unwrap();
        let (read, bad) = load(&path, false).unwrap();
        assert!(bad.is_empty());
        assert_eq!(read, docs);
    }

    #[test]
    fn labels_kept_are_read_again_and_damaged_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LABELS_FILE_NAME);
        assert!(load_labels(&path).is_none());
        let labels: Labels = [(
            "prod".to_string(),
            [("env".to_string(), "prod".to_string())].into(),
        )]
        .into();
        save_labels(&path, &labels).unwrap();
        assert_eq!(load_labels(&path), Some(labels));
        std::fs::write(&path, b"[").unwrap();
        assert!(load_labels(&path).is_none());
    }

    #[test]
    fn a_damaged_cache_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{\"version\": 1, \"objects\": 7}").unwrap();
        let err = load(&path, false).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: not a nodeguard cluster policy cache",
                path.display()
            )),
            "{err}"
        );
    }
}
