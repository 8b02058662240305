//! Reading policy documents from disk: one file, or a directory such as a mounted ConfigMap.

use std::path::{Path, PathBuf};

use policy_core::{Policy, PolicyErrors};

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A directory holds no policy file.
    #[error("{0}: no .yaml or .yml policy file found")]
    Empty(PathBuf),
    /// The documents are invalid.
    #[error(transparent)]
    Invalid(#[from] PolicyErrors),
}

/// The policy files a path names: the file itself, or the `.yaml`/`.yml` files directly in a
/// directory, sorted, skipping hidden entries (a ConfigMap volume's `..data` links).
///
/// # Errors
/// When the path or a file cannot be read.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let p = entry.path();
        if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Empty(path.to_path_buf()));
    }
    Ok(files)
}

/// The policy files found at a path and their text, in load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub Vec<(PathBuf, String)>);

/// Reads every policy file found at `path` (see [`policy_files`]).
///
/// # Errors
/// When the path or a file cannot be read.
pub fn read(path: &Path) -> Result<Sources, LoadError> {
    let files = policy_files(path)?;
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
            path: file.clone(),
            source,
        })?;
        texts.push((file, text));
    }
    Ok(Sources(texts))
}

impl Sources {
    /// Compiles the documents into one policy.
    ///
    /// # Errors
    /// Every mistake in the documents, with file, line and field.
    pub fn compile(&self) -> Result<Policy, PolicyErrors> {
        let names: Vec<String> = self
            .0
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        Policy::parse_many(
            names
                .iter()
                .zip(&self.0)
                .map(|(n, (_, t))| (n.as_str(), t.as_str())),
        )
    }
}

/// Loads and compiles every policy document found at `path`.
///
/// # Errors
/// Unreadable files, or every mistake in the documents.
pub fn load(path: &Path) -> Result<Policy, LoadError> {
    Ok(read(path)?.compile()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {name: NAME}\nspec: {rules: {privileged: {}}}\n";

    #[test]
    fn reads_a_configmap_style_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), POLICY.replace("NAME", "a")).unwrap();
        std::fs::write(dir.path().join("b.yml"), POLICY.replace("NAME", "b")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::create_dir(dir.path().join("..2026_11_24")).unwrap();
        let policy = load(dir.path()).unwrap();
        assert_eq!(policy.names().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn reports_errors_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, POLICY.replace("privileged: {}", "privilegd: {}")).unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(err.contains("bad.yaml:4:"), "{err}");
        assert!(err.contains("unknown rule \"privilegd\""), "{err}");
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(LoadError::Empty(_))));
    }
}
