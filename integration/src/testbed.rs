//! Where `scripts/testbed/setup.sh` put containerd and the image archives.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The `format=` value of `SETUP_OK` this harness understands; matches `TESTBED_FORMAT` in
/// `scripts/testbed/setup.sh`.
const TESTBED_FORMAT: &str = "1";

/// Environment variable that overrides the testbed folder (default: `<workspace>/.testbed`).
pub const TESTBED_ENV: &str = "NODEGUARD_TESTBED";

/// A containerd release line the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerdVersion {
    /// containerd 1.7 (Debian trixie's 1.7.24; NRI v0.6, config version 2).
    V1_7,
    /// containerd 2.1 (Debian unstable's 2.1.9; NRI v0.8, config version 3).
    V2_1,
}

impl ContainerdVersion {
    /// Every version the suite covers, oldest first.
    pub const ALL: [ContainerdVersion; 2] = [ContainerdVersion::V1_7, ContainerdVersion::V2_1];

    /// The `major.minor` the running daemon must report.
    pub fn major_minor(self) -> &'static str {
        match self {
            ContainerdVersion::V1_7 => "1.7",
            ContainerdVersion::V2_1 => "2.1",
        }
    }

    /// The folder under the testbed that holds this version's unpacked package.
    fn dir_name(self) -> &'static str {
        match self {
            ContainerdVersion::V1_7 => "containerd-1.7",
            ContainerdVersion::V2_1 => "containerd-2.1",
        }
    }
}

impl fmt::Display for ContainerdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "containerd {}", self.major_minor())
    }
}

/// A prepared testbed folder.
#[derive(Debug, Clone)]
pub struct Testbed {
    root: PathBuf,
}

impl Testbed {
    /// Finds the testbed (`$NODEGUARD_TESTBED`, else `<workspace>/.testbed`) and checks that
    /// `scripts/testbed/setup.sh` completed there. The error says to run the script.
    pub fn locate() -> Result<Testbed> {
        let root = match std::env::var_os(TESTBED_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".testbed"),
        };
        Testbed::at(root)
    }

    /// The testbed in `root`, checked like [`Testbed::locate`] does.
    pub fn at(root: impl Into<PathBuf>) -> Result<Testbed> {
        let testbed = Testbed { root: root.into() };
        testbed.check()?;
        Ok(testbed)
    }

    fn check(&self) -> Result<()> {
        let marker = self.root.join("SETUP_OK");
        let hint = "run `sudo scripts/testbed/setup.sh` from the repository root (or point \
                    NODEGUARD_TESTBED at a prepared testbed)";
        let text = std::fs::read_to_string(&marker).map_err(|e| {
            anyhow::anyhow!(
                "the end-to-end testbed is not set up ({}: {e}): {hint}",
                marker.display()
            )
        })?;
        let format = text
            .lines()
            .find_map(|line| line.strip_prefix("format="))
            .unwrap_or("");
        if format != TESTBED_FORMAT {
            bail!(
                "the testbed in {} has format {format:?}, this harness needs {TESTBED_FORMAT:?}: {hint}",
                self.root.display()
            );
        }
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        for version in ContainerdVersion::ALL {
            let key = version.dir_name();
            let (installed, pinned) = (value(key), value(&format!("{key}-pinned")));
            if installed != pinned {
                eprintln!(
                    "nodeguard-e2e: WARNING: the testbed has {key} {} instead of the pinned {}",
                    installed.unwrap_or_default(),
                    pinned.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// The testbed folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding `containerd`, `ctr` and `containerd-shim-runc-v2` for `version`.
    pub fn bin_dir(&self, version: ContainerdVersion) -> PathBuf {
        self.root.join(version.dir_name()).join("usr/bin")
    }

    /// The Debian package version that setup unpacked for `version`.
    pub fn package_version(&self, version: ContainerdVersion) -> Result<String> {
        let path = self.root.join(version.dir_name()).join("VERSION");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    }

    /// The OCI image archives to import, in name order.
    pub fn image_archives(&self) -> Result<Vec<PathBuf>> {
        let dir = self.root.join("images");
        let mut archives = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "tar") {
                archives.push(path);
            }
        }
        archives.sort();
        if archives.is_empty() {
            bail!(
                "no image archives in {}: run scripts/testbed/setup.sh",
                dir.display()
            );
        }
        Ok(archives)
    }
}

/// Image references available in every containerd the harness starts.
pub mod images {
    /// Busybox from the registry the test policies allow.
    pub const BUSYBOX: &str = "registry.local/busybox:1";
    /// The same busybox files under the `latest` tag, as another content (image ID).
    pub const BUSYBOX_LATEST: &str = "registry.local/busybox:latest";
    /// The same busybox files from a registry the test policies forbid, as another content.
    pub const EVIL_BUSYBOX: &str = "evil.example/busybox:1";
    /// A mirror: one content named by the allowed registry and by [`MIRRORED_UPSTREAM`].
    pub const MIRRORED: &str = "registry.local/mirrored:1";
    /// The upstream name of [`MIRRORED`]'s content; it sorts first, so containerd 1.7 names
    /// containers of either name by it.
    pub const MIRRORED_UPSTREAM: &str = "docker.io/library/mirrored:1";
    /// Every name above.
    pub const ALL: &[&str] = &[
        BUSYBOX,
        BUSYBOX_LATEST,
        EVIL_BUSYBOX,
        MIRRORED,
        MIRRORED_UPSTREAM,
        PAUSE,
    ];
    /// The sandbox ("pause") image; its command sleeps forever.
    pub const PAUSE: &str = "registry.local/pause:1";
}
