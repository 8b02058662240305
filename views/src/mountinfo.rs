//! The node's mount table (`/proc/<pid>/mountinfo`), read to find what a bind mount really
//! shows: the kubelet bind-mounts a volume's `subPath` from its `volume-subpaths` directory,
//! whose name does not tell whether a host path is behind it; the mount table does.

use policy_core::matcher::path_has_prefix;

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The filesystem's device, `major:minor`.
    pub device: String,
    /// The directory of that filesystem mounted here (`/` for the whole of it).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4);
        match octal {
            Some(digits)
                if bytes[i] == b'\\' && digits.iter().all(|b| (b'0'..=b'7').contains(b)) =>
            {
                out.push((digits[0] - b'0') * 64 + (digits[1] - b'0') * 8 + (digits[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries of a mount table's text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_id, _parent, device, root, mount_point) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            Some(MountEntry {
                device: device.to_string(),
                root: unescape(root),
                mount_point: unescape(mount_point),
            })
        })
        .collect()
}

/// The path, as the node names it, of what is mounted at `mount_point` (the last mount there
/// wins): its filesystem's directory found through another mount of the same filesystem that
/// shows it, the shortest such mount point first (the filesystem's own mount before later bind
/// mounts of it). `None` when nothing is mounted there or no other mount shows its directory.
///
/// ```
/// use nodeguard_views::mountinfo::{parse, source_of};
/// let table = parse("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
///     90 22 8:1 /etc /var/lib/kubelet/pods/u1/volume-subpaths/host/app/0 rw - ext4 /dev/sda1 rw\n");
/// assert_eq!(
///     source_of(&table, "/var/lib/kubelet/pods/u1/volume-subpaths/host/app/0").as_deref(),
///     Some("/etc")
/// );
/// ```
pub fn source_of(entries: &[MountEntry], mount_point: &str) -> Option<String> {
    let (at, here) = entries
        .iter()
        .enumerate()
        .rev()
        .find(|(_, e)| e.mount_point == mount_point)?;
    // Another subPath bind (of this pod or another) is no place to find a path from: it is
    // itself what needs resolving, and would name a kubelet directory instead of the host's.
    let others = || {
        entries.iter().enumerate().filter(move |(i, e)| {
            *i != at
                && e.device == here.device
                && e.mount_point != mount_point
                && !e.mount_point.contains("/volume-subpaths/")
        })
    };
    let tidy = |joined: String| {
        if joined.len() > 1 {
            joined.trim_end_matches('/').to_string()
        } else {
            joined
        }
    };
    // A mount that shows the directory itself.
    if let Some((_, base)) = others()
        .filter(|(_, e)| path_has_prefix(&here.root, &e.root))
        .min_by_key(|(_, e)| (e.mount_point.len(), std::cmp::Reverse(e.root.len())))
    {
        let rest = here.root[base.root.trim_end_matches('/').len()..].trim_start_matches('/');
        return Some(tidy(format!(
            "{}/{rest}",
            base.mount_point.trim_end_matches('/')
        )));
    }
    // Else a mount of the filesystem at the path it has on the node (a host directory mounted
    // at its own path, as the DaemonSet mounts the kubelet's): it tells where the filesystem's
    // root is.
    others().find_map(|(_, e)| {
        let root = e.root.trim_end_matches('/');
        let prefix = e.mount_point.strip_suffix(root)?;
        (prefix.is_empty() || !root.is_empty())
            .then(|| tidy(format!("{}{}", prefix.trim_end_matches('/'), here.root)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 8:17 / /data rw shared:2 - xfs /dev/sdb1 rw
40 22 0:45 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/scratch rw - tmpfs tmpfs rw
91 22 8:1 /etc /var/lib/kubelet/pods/u1/volume-subpaths/host/app/0 rw - ext4 /dev/sda1 rw
92 22 8:17 /logs/a\\040b /var/lib/kubelet/pods/u1/volume-subpaths/data/app/1 rw - xfs /dev/sdb1 rw
93 22 8:1 /var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/cfg/..2026/nginx.conf /var/lib/kubelet/pods/u1/volume-subpaths/cfg/app/2 rw - ext4 /dev/sda1 rw
94 22 0:45 /cache /var/lib/kubelet/pods/u1/volume-subpaths/scratch/app/3 rw - tmpfs tmpfs rw
";

    #[test]
    fn sub_paths_resolve_to_what_the_node_names_them() {
        let table = parse(TABLE);
        let at = |i: u32| {
            format!(
                "/var/lib/kubelet/pods/u1/volume-subpaths/{}",
                ["host/app/0", "data/app/1", "cfg/app/2", "scratch/app/3"][i as usize]
            )
        };
        assert_eq!(source_of(&table, &at(0)).as_deref(), Some("/etc"));
        assert_eq!(source_of(&table, &at(1)).as_deref(), Some("/data/logs/a b"));
        assert_eq!(
            source_of(&table, &at(2)).as_deref(),
            Some("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/cfg/..2026/nginx.conf")
        );
        assert_eq!(
            source_of(&table, &at(3)).as_deref(),
            Some("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/scratch/cache")
        );
        assert_eq!(source_of(&table, "/nowhere"), None);
        // The whole of a filesystem mounted once shows nothing else of it.
        assert_eq!(source_of(&table, "/data"), None);
        assert!(parse("garbage\n\n").is_empty());
    }

    #[test]
    fn another_sub_path_is_never_the_base() {
        // Mount 1 (`data/x`) lies inside mount 0 (`data`): it still resolves to the host's
        // directory, not to a path under the kubelet's volume-subpaths.
        let table = parse(
            "1 0 0:50 / / rw - overlay overlay rw\n\
             2 1 8:1 /var/lib/kubelet /var/lib/kubelet ro - ext4 /dev/sda1 rw\n\
             90 2 8:1 /srv/data /var/lib/kubelet/pods/u1/volume-subpaths/h/c/0 ro - ext4 /dev/sda1 rw\n\
             91 22 8:1 /srv/data/x /var/lib/kubelet/pods/u1/volume-subpaths/h/c/1 rw - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(
            source_of(&table, "/var/lib/kubelet/pods/u1/volume-subpaths/h/c/1").as_deref(),
            Some("/srv/data/x")
        );
    }

    #[test]
    fn in_a_pod_the_kubelets_directory_mounted_at_its_own_path_places_the_filesystem() {
        // The DaemonSet's view: its own root is an overlay; the host's root filesystem shows
        // only through the kubelet's directory, mounted at the same path.
        let table = parse(
            "1 0 0:50 / / rw - overlay overlay rw\n\
             2 1 8:1 /var/lib/kubelet /var/lib/kubelet ro - ext4 /dev/sda1 rw\n\
             3 2 8:1 /etc /var/lib/kubelet/pods/u1/volume-subpaths/host/app/0 ro - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(
            source_of(
                &table,
                "/var/lib/kubelet/pods/u1/volume-subpaths/host/app/0"
            )
            .as_deref(),
            Some("/etc")
        );
    }
}
