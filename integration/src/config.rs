//! containerd configuration files for a test instance: version 2 for 1.7, version 3 for 2.x.
//!
//! Every path containerd writes to is under the instance folder, so an instance never touches
//! a system containerd: root, state, temp, the gRPC socket, NRI's socket and plugin folders,
//! runc's state (`Root` of the runc runtime options) and the `opt` plugin's folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::testbed::{ContainerdVersion, images};

/// The paths of one containerd instance, all under its temporary folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
}

impl Layout {
    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("containerd.toml")
    }
    pub(crate) fn log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    pub(crate) fn nri_socket(&self) -> PathBuf {
        self.dir.join("nri/nri.sock")
    }
    pub(crate) fn nri_plugin_dir(&self) -> PathBuf {
        self.dir.join("nri/plugins")
    }
    pub(crate) fn nri_plugin_config_dir(&self) -> PathBuf {
        self.dir.join("nri/conf.d")
    }
    pub(crate) fn kubelet_dir(&self) -> PathBuf {
        self.dir.join("kubelet")
    }
    fn sub(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// Folders that must exist before containerd starts.
    pub(crate) fn folders(&self) -> Vec<PathBuf> {
        vec![
            self.sub("root"),
            self.sub("state"),
            self.sub("tmp"),
            self.sub("opt"),
            self.sub("runc"),
            self.sub("cni/bin"),
            self.sub("cni/conf"),
            self.sub("cdi"),
            self.sub("image-verifier"),
            self.nri_plugin_dir(),
            self.nri_plugin_config_dir(),
            self.kubelet_dir(),
        ]
    }
}

/// NRI settings of the generated configuration.
#[derive(Debug, Clone)]
pub struct NriConfig {
    /// Whether containerd's NRI plugin is enabled.
    pub enabled: bool,
    /// How long a plugin has to register after connecting (`plugin_registration_timeout`).
    pub registration_timeout: Duration,
    /// How long containerd waits for a plugin's answer (`plugin_request_timeout`).
    pub request_timeout: Duration,
}

impl Default for NriConfig {
    fn default() -> Self {
        NriConfig {
            enabled: true,
            registration_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// A TOML basic string (quoted, with `\` and `"` escaped).
fn q(value: impl AsRef<str>) -> String {
    let mut out = String::from("\"");
    for c in value.as_ref().chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn p(path: &Path) -> String {
    q(path.to_string_lossy())
}

/// containerd's duration syntax (`"5s"`, `"1500ms"`).
fn d(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        q(format!("{}s", duration.as_secs()))
    } else {
        q(format!("{}ms", duration.as_millis()))
    }
}

/// Renders the configuration file for `version`.
pub(crate) fn render(
    version: ContainerdVersion,
    layout: &Layout,
    nri: &NriConfig,
    log_level: &str,
) -> String {
    let common = format!(
        r#"root = {root}
state = {state}
temp = {temp}

[grpc]
  address = {socket}

[debug]
  level = {level}
"#,
        root = p(&layout.sub("root")),
        state = p(&layout.sub("state")),
        temp = p(&layout.sub("tmp")),
        socket = p(&layout.socket()),
        level = q(log_level),
    );
    let nri_table = format!(
        r#"
[plugins."io.containerd.nri.v1.nri"]
  disable = {disable}
  disable_connections = false
  socket_path = {socket}
  plugin_path = {plugins}
  plugin_config_path = {configs}
  plugin_registration_timeout = {registration}
  plugin_request_timeout = {request}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
        disable = !nri.enabled,
        socket = p(&layout.nri_socket()),
        plugins = p(&layout.nri_plugin_dir()),
        configs = p(&layout.nri_plugin_config_dir()),
        registration = d(nri.registration_timeout),
        request = d(nri.request_timeout),
        opt = p(&layout.sub("opt")),
    );
    let cri = match version {
        ContainerdVersion::V1_7 => format!(
            r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {pause}
  # This machine kind's root lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_cdi = false
  cdi_spec_dirs = [{cdi}]

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc}
        SystemdCgroup = false

  # No CNI here: pods use the host's network.
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
"#,
            pause = q(images::PAUSE),
            cdi = p(&layout.sub("cdi")),
            runc = p(&layout.sub("runc")),
            cni_bin = p(&layout.sub("cni/bin")),
            cni_conf = p(&layout.sub("cni/conf")),
        ),
        ContainerdVersion::V2_1 => format!(
            r#"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"

  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {pause}

[plugins."io.containerd.cri.v1.runtime"]
  # This machine kind's root lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_cdi = false
  cdi_spec_dirs = [{cdi}]

  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = {runc}
        SystemdCgroup = false

  # No CNI here: pods use the host's network.
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{cni_bin}]
    conf_dir = {cni_conf}

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = {verifier}
"#,
            pause = q(images::PAUSE),
            cdi = p(&layout.sub("cdi")),
            runc = p(&layout.sub("runc")),
            cni_bin = p(&layout.sub("cni/bin")),
            cni_conf = p(&layout.sub("cni/conf")),
            verifier = p(&layout.sub("image-verifier")),
        ),
    };
    let header = match version {
        ContainerdVersion::V1_7 => "version = 2\n",
        ContainerdVersion::V2_1 => "version = 3\n",
    };
    format!(
        "# Generated by nodeguard-integration for a test instance of {version}.\n{header}{common}{nri_table}{cri}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(q(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn durations_use_containerd_syntax() {
        assert_eq!(d(Duration::from_secs(5)), "\"5s\"");
        assert_eq!(d(Duration::from_millis(1500)), "\"1500ms\"");
    }

    #[test]
    fn each_version_gets_its_schema() {
        let layout = Layout {
            dir: PathBuf::from("/tmp/x"),
        };
        let v2 = render(
            ContainerdVersion::V1_7,
            &layout,
            &NriConfig::default(),
            "info",
        );
        assert!(v2.contains("version = 2\n"));
        assert!(v2.contains(r#"sandbox_image = "registry.local/pause:1""#));
        assert!(v2.contains("plugin_request_timeout = \"2s\""));
        let v3 = render(
            ContainerdVersion::V2_1,
            &layout,
            &NriConfig::default(),
            "info",
        );
        assert!(v3.contains("version = 3\n"));
        assert!(v3.contains(r#"sandbox = "registry.local/pause:1""#));
        assert!(v3.contains("plugin_registration_timeout = \"5s\""));
        for text in [&v2, &v3] {
            assert!(text.contains("restrict_oom_score_adj = true"));
            assert!(text.contains(r#"socket_path = "/tmp/x/nri/nri.sock""#));
        }
    }
}
