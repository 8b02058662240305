//! Reading policy documents from disk: one file, or a directory such as a mounted ConfigMap.
//!
//! What is read is bounded: the files of a policy path may hold [`DEFAULT_MAX_SIZE`] together
//! (`--max-policy-size`), and reading stops one byte past the bound, so an oversized or endless
//! file never reaches memory. What their YAML may expand to is bounded by
//! [`policy_core::yaml::Limits::POLICY`].

use std::io::Read as _;
use std::path::{Path, PathBuf};

use policy_core::pss::{PssVersion, VersionError};
use policy_core::{Policy, PolicyErrors, PssLevel};

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
    /// The policy files are larger than the bound.
    #[error(
        "{path}: larger than {}, the most the policy files may hold together (--max-policy-size)",
        crate::ops::size::format_size(*limit)
    )]
    TooLarge {
        /// The file whose reading crossed the bound.
        path: PathBuf,
        /// The bound, in bytes.
        limit: u64,
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

/// The most the policy files of one path may hold together unless configured otherwise: far
/// beyond any real policy (a ConfigMap holds at most 1 MiB), small enough for a node agent.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 20;

/// Reads every policy file found at `path` (see [`policy_files`]), `max_size` bytes at most
/// in all.
///
/// # Errors
/// When the path or a file cannot be read, is not UTF-8, or the files hold more than
/// `max_size` bytes.
pub fn read(path: &Path, max_size: u64) -> Result<Sources, LoadError> {
    let files = policy_files(path)?;
    let mut texts = Vec::with_capacity(files.len());
    let mut left = max_size;
    for file in files {
        let read_err = |source| LoadError::Read {
            path: file.clone(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(&file)
            .and_then(|f| f.take(left.saturating_add(1)).read_to_end(&mut bytes))
            .map_err(read_err)?;
        let len = bytes.len() as u64;
        if len > left {
            return Err(LoadError::TooLarge {
                path: file,
                limit: max_size,
            });
        }
        left -= len;
        let text = String::from_utf8(bytes).map_err(|e| {
            read_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            ))
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

/// A Pod Security Standards level given on the command line (`--profile LEVEL[:VERSION]`):
/// `baseline`, `restricted:v1.35`, `baseline:latest`. Without a version, the latest.
///
/// ```
/// use nodeguard::ops::policy_files::Profile;
/// use policy_core::{PssLevel, pss::PssVersion};
/// let p: Profile = "baseline:v1.35".parse().unwrap();
/// assert_eq!((p.level, p.version), (PssLevel::Baseline, PssVersion::V1(35)));
/// assert_eq!(p.to_string(), "baseline:v1.35");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The level.
    pub level: PssLevel,
    /// The version of the standard (default: latest).
    pub version: PssVersion,
}

/// Why a `--profile` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The level is not `baseline` nor `restricted`.
    #[error(
        "unknown level {0:?}; expected baseline or restricted, optionally with a version (baseline:v1.35)"
    )]
    Level(String),
    /// The version after the colon is not one.
    #[error("{0}")]
    Version(#[from] VersionError),
}

impl std::str::FromStr for Profile {
    type Err = ProfileError;

    fn from_str(text: &str) -> Result<Profile, ProfileError> {
        let (level, version) = match text.split_once(':') {
            Some((level, version)) => (level, Some(version)),
            None => (text, None),
        };
        let level = match level {
            "baseline" => PssLevel::Baseline,
            "restricted" => PssLevel::Restricted,
            other => return Err(ProfileError::Level(other.to_string())),
        };
        let version = match version {
            Some(v) => v.parse()?,
            None => PssVersion::Latest,
        };
        Ok(Profile { level, version })
    }
}

impl std::fmt::Display for Profile {
    /// `baseline` for the latest version when none was given, `baseline:v1.35` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.level.as_str())?;
        if self.version != PssVersion::Latest {
            write!(f, ":{}", self.version)?;
        }
        Ok(())
    }
}

impl Profile {
    /// The policy document the profile stands for: one named `pss-<level>` holding only
    /// `podSecurity: {level, version}` with effect `enforce`.
    fn document(self) -> String {
        format!(
            "apiVersion: nodeguard.io/v1alpha1\nkind: NodePolicy\nmetadata: {{name: pss-{level}}}\nspec:\n  effect: enforce\n  podSecurity: {{level: {level}, version: {version}}}\n",
            level = self.level.as_str(),
            version = self.version,
        )
    }
}

/// Where policies are read from, and the most that may be read there: files and directories
/// (`--policy`, repeatable), and a Pod Security Standards level (`--profile`), read together as
/// one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPath {
    /// Policy files, or directories of them.
    pub paths: Vec<PathBuf>,
    /// A Pod Security Standards level (and version) enforced beside them.
    pub profile: Option<Profile>,
    /// The most the files may hold together, in bytes.
    pub max_size: u64,
    /// Whether what the node would not enforce (a policy's notes) makes the policy invalid.
    pub strict: bool,
}

impl PolicyPath {
    /// `path`, read within [`DEFAULT_MAX_SIZE`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PolicyPath {
            paths: vec![path.into()],
            profile: None,
            max_size: DEFAULT_MAX_SIZE,
            strict: false,
        }
    }

    /// Reads the policy files of every path (see [`read`]), `max_size` bytes in all, and the
    /// profile's document.
    ///
    /// # Errors
    /// As [`read`].
    pub fn read(&self) -> Result<Sources, LoadError> {
        let mut all = Vec::new();
        let mut left = self.max_size;
        for path in &self.paths {
            let Sources(texts) = read(path, left).map_err(|e| match e {
                LoadError::TooLarge { path, .. } => LoadError::TooLarge {
                    path,
                    limit: self.max_size,
                },
                other => other,
            })?;
            left -= texts.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
            all.extend(texts);
        }
        if let Some(profile) = self.profile {
            all.push((
                PathBuf::from(format!("--profile {profile}")),
                profile.document(),
            ));
        }
        Ok(Sources(all))
    }

    /// Loads and compiles the policy.
    ///
    /// # Errors
    /// As [`load`].
    pub fn load(&self) -> Result<Policy, LoadError> {
        Ok(self.compile(&self.read()?)?)
    }

    /// Compiles `sources`, read from these paths; with [`PolicyPath::strict`], notes are errors.
    ///
    /// # Errors
    /// Every mistake in the sources (and, strict, every note).
    pub fn compile(&self, sources: &Sources) -> Result<Policy, PolicyErrors> {
        let policy = sources.compile()?;
        if self.strict {
            policy.into_strict()
        } else {
            Ok(policy)
        }
    }

    /// The paths, for messages: `a.yaml, dir/` (and the profile).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        if let Some(profile) = self.profile {
            parts.push(format!("--profile {profile}"));
        }
        parts.join(", ")
    }
}

/// Loads and compiles every policy document found at `path` (`max_size` bytes at most).
///
/// # Errors
/// Unreadable or oversized files, or every mistake in the documents.
pub fn load(path: &Path, max_size: u64) -> Result<Policy, LoadError> {
    Ok(read(path, max_size)?.compile()?)
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
        let policy = load(dir.path(), DEFAULT_MAX_SIZE).unwrap();
        assert_eq!(policy.names().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn reports_errors_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, POLICY.replace("privileged: {}", "privilegd: {}")).unwrap();
        let err = load(&file, DEFAULT_MAX_SIZE).unwrap_err().to_string();
        assert!(err.contains("bad.yaml:4:"), "{err}");
        assert!(err.contains("unknown rule \"privilegd\""), "{err}");
    }

    #[test]
    fn files_over_the_size_bound_are_rejected_without_being_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), POLICY.replace("NAME", "a")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), POLICY.replace("NAME", "b")).unwrap();
        let one = POLICY.replace("NAME", "a").len() as u64;
        // Each file fits, both together do not.
        let err = load(dir.path(), one + 10).unwrap_err();
        assert!(matches!(&err, LoadError::TooLarge { path, .. } if path.ends_with("b.yaml")));
        assert!(err.to_string().contains("--max-policy-size"), "{err}");
        assert!(load(dir.path(), 2 * one + 10).is_ok());
        // An endless file (a FIFO with a writer that never stops would do the same) is cut at
        // the bound: /dev/zero is read 1 KiB and a byte, not forever.
        let err = load(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(
            matches!(err, LoadError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bin.yaml");
        std::fs::write(&file, b"kind: \xff\n").unwrap();
        let err = load(&file, DEFAULT_MAX_SIZE).unwrap_err().to_string();
        assert!(
            err.contains("bin.yaml") && err.contains("not UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn a_profile_is_a_level_and_an_optional_version() {
        let parse = |text: &str| text.parse::<Profile>();
        assert_eq!(
            parse("baseline:v1.35"),
            Ok(Profile {
                level: PssLevel::Baseline,
                version: PssVersion::V1(35)
            })
        );
        assert_eq!(
            parse("restricted"),
            Ok(Profile {
                level: PssLevel::Restricted,
                version: PssVersion::Latest
            })
        );
        assert_eq!(
            parse("restricted:latest").map(|p| p.version),
            Ok(PssVersion::Latest)
        );
        // A version newer than nodeguard knows is the latest, as Pod Security Admission reads it.
        assert_eq!(
            parse("baseline:v1.99").unwrap().version.minor(),
            PssVersion::NEWEST
        );
        for (bad, message) in [
            (
                "baseline:1.35",
                r#""1.35" is not a Kubernetes version; write v1.35 or latest"#,
            ),
            (
                "baseline:",
                r#""" is not a Kubernetes version; write v1.<minor> (such as v1.37) or latest"#,
            ),
            (
                "baseline:v1.18",
                "v1.18 is older than nodeguard judges; write v1.19 or later, or latest",
            ),
            (
                "privileged:v1.35",
                r#"unknown level "privileged"; expected baseline or restricted"#,
            ),
            ("Baseline", r#"unknown level "Baseline""#),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.starts_with(message), "{bad}: {err}");
        }
        // The profile's document holds the version, and its place names the flag as given.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, POLICY.replace("NAME", "a")).unwrap();
        let mut path = PolicyPath::new(&file);
        path.profile = Some(parse("baseline:v1.33").unwrap());
        let Sources(sources) = path.read().unwrap();
        let (name, text) = sources.last().unwrap();
        assert_eq!(name, &PathBuf::from("--profile baseline:v1.33"));
        assert!(
            text.contains("podSecurity: {level: baseline, version: v1.33}"),
            "{text}"
        );
        assert_eq!(
            path.describe(),
            format!("{}, --profile baseline:v1.33", file.display())
        );
        let policy = path.load().unwrap();
        assert!(policy.check_ids().all(|id| id != "pss.baseline.probeHosts"));
        path.profile = Some(parse("baseline").unwrap());
        assert!(policy.check_count() < path.load().unwrap().check_count());
    }

    #[test]
    fn an_empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(dir.path(), DEFAULT_MAX_SIZE),
            Err(LoadError::Empty(_))
        ));
    }
}
