//! Tearing a test instance down to nothing: its processes, mounts, cgroups and folder.
//!
//! Everything here is scoped to one instance folder (a unique temporary path) and the cgroup
//! root derived from it: a process is ours when its command line names that folder (containerd,
//! its shims, NRI plugins it launched), when it descends from such a process (containers), or
//! when it sits in a cgroup under our cgroup root. Processes of a system containerd never match.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Prefix of every instance folder (under the system's temporary folder) and cgroup root.
pub(crate) const INSTANCE_PREFIX: &str = "nodeguard-e2e-";

/// A live process, as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Command line, arguments joined with spaces.
    pub cmdline: String,
}

fn read_stat(pid: i32) -> Option<(char, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    // Field 22 of stat is the start time; `rest` starts at field 3.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

/// Every process that is alive (zombies excluded: they hold nothing and only wait to be reaped).
fn processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Some((state, ppid, _)) = read_stat(pid) else {
            continue;
        };
        if state == 'Z' || state == 'X' {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push(ProcessInfo { pid, ppid, cmdline });
    }
    out
}

/// The start time of `pid` (clock ticks since boot), to tell a live owner from a reused pid.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|(_, _, start)| start)
}

/// The cgroup root (as a path inside each hierarchy) of the instance in `dir`.
pub(crate) fn cgroup_root_for(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("/{name}")
}

/// Mount points of cgroup hierarchies (v1 and v2) in this mount namespace.
fn cgroup_mounts() -> Vec<PathBuf> {
    mountinfo()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| m.mount_point)
        .collect()
}

/// Pids in any cgroup at or below `cgroup_root`, in any hierarchy.
fn cgroup_pids(cgroup_root: &str) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    for mount in cgroup_mounts() {
        let top = mount.join(cgroup_root.trim_start_matches('/'));
        for dir in walk_dirs(&top) {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
    }
    pids
}

/// `top` and every folder below it, parents before children. Symlinks are not followed.
fn walk_dirs(top: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        out.push(dir);
    }
    out.sort_by_key(|p| p.components().count());
    out
}

/// Processes that belong to the instance in `dir`: those naming it on their command line,
/// their descendants, and those in its cgroups. The calling process is never included.
pub fn instance_processes(dir: &Path, cgroup_root: &str) -> Vec<ProcessInfo> {
    // With the trailing slash, `/tmp/nodeguard-e2e-abc` cannot match `/tmp/nodeguard-e2e-abcd`.
    let needle = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    let all = processes();
    let me = std::process::id() as i32;
    let in_cgroups = cgroup_pids(cgroup_root);
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in &all {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut ours: BTreeSet<i32> = all
        .iter()
        .filter(|p| p.cmdline.contains(&needle) || in_cgroups.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    let mut queue: Vec<i32> = ours.iter().copied().collect();
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if ours.insert(*child) {
                queue.push(*child);
            }
        }
    }
    ours.remove(&me);
    all.into_iter().filter(|p| ours.contains(&p.pid)).collect()
}

/// The live descendants of `pid`, each with its start time (see [`kill_processes`]).
pub(crate) fn descendants(pid: i32) -> Vec<(i32, u64)> {
    let all = processes();
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if let Some(start) = process_start_time(p.pid) {
                found.push((p.pid, start));
                queue.push(p.pid);
            }
        }
    }
    found
}

/// SIGKILLs the given processes, skipping any whose pid now belongs to another process.
pub(crate) fn kill_processes(procs: &[(i32, u64)]) {
    for &(pid, start) in procs {
        if process_start_time(pid) == Some(start) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct MountEntry {
    mount_point: PathBuf,
    fstype: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mountinfo() -> Vec<MountEntry> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = PathBuf::from(unescape(fields.get(4)?));
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?.to_string();
            Some(MountEntry {
                mount_point,
                fstype,
            })
        })
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
}

/// Socket files that `pid` listens on under `/run/containerd/s/` (a shim's ttrpc socket):
/// a shim killed with SIGKILL leaves them behind.
fn shim_sockets(pid: i32) -> Vec<PathBuf> {
    let mut inodes = BTreeSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(6)?;
            let path = fields.get(7)?;
            (inodes.contains(*inode) && path.starts_with("/run/containerd/s/"))
                .then(|| PathBuf::from(path))
        })
        .collect()
}

/// SIGKILLs every process of the instance until none is left (or `deadline` passes), removing
/// the shim sockets they leave. Returns a description of what could not be done.
pub(crate) fn kill_instance_processes(
    dir: &Path,
    cgroup_root: &str,
    deadline: Duration,
) -> Vec<String> {
    let mut problems = Vec::new();
    let start = Instant::now();
    let mut sockets = BTreeSet::new();
    loop {
        let procs = instance_processes(dir, cgroup_root);
        if procs.is_empty() {
            break;
        }
        if start.elapsed() > deadline {
            problems.push(format!(
                "processes still alive after {deadline:?}: {}",
                procs
                    .iter()
                    .map(|p| format!("{} ({})", p.pid, p.cmdline))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            break;
        }
        for p in &procs {
            if p.cmdline.contains("containerd-shim") {
                sockets.extend(shim_sockets(p.pid));
            }
        }
        for p in &procs {
            // ESRCH (already gone) is what we want anyway.
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(50));
    }
    for socket in sockets {
        if let Err(e) = std::fs::remove_file(&socket)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            problems.push(format!("removing {}: {e}", socket.display()));
        }
    }
    problems
}

/// Lazily unmounts everything at or below `dir`, deepest first, until nothing is left.
pub(crate) fn unmount_all(dir: &Path) -> Vec<String> {
    for _ in 0..10 {
        let points = mounts_under(dir);
        if points.is_empty() {
            return Vec::new();
        }
        for point in points {
            let _ = umount2(&point, MntFlags::MNT_DETACH);
        }
    }
    let left = mounts_under(dir);
    if left.is_empty() {
        Vec::new()
    } else {
        vec![format!("mounts left under {}: {left:?}", dir.display())]
    }
}

/// Removes the cgroups below `cgroup_root` in every hierarchy, children first.
pub(crate) fn remove_cgroups(cgroup_root: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for mount in cgroup_mounts() {
        let top = mount.join(cgroup_root.trim_start_matches('/'));
        if !top.exists() {
            continue;
        }
        let mut dirs = walk_dirs(&top);
        dirs.reverse();
        for dir in dirs {
            // A cgroup empties asynchronously after its last process dies: retry briefly.
            let mut attempts = 0;
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if attempts < 40 => {
                        attempts += 1;
                        thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => {
                        problems.push(format!("removing cgroup {}: {e}", dir.display()));
                        break;
                    }
                }
            }
        }
    }
    problems
}

/// Cgroup folders left below `cgroup_root` in any hierarchy.
pub fn cgroups_under(cgroup_root: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(cgroup_root.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect()
}

/// Everything after the daemon is gone: processes, shim sockets, mounts, cgroups, the folder.
pub(crate) fn sweep(dir: &Path, cgroup_root: &str) -> Vec<String> {
    let mut problems = kill_instance_processes(dir, cgroup_root, Duration::from_secs(10));
    problems.extend(unmount_all(dir));
    problems.extend(remove_cgroups(cgroup_root));
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        problems.push(format!("removing {}: {e}", dir.display()));
    }
    problems
}

/// The file in an instance folder naming the test process that owns it.
pub(crate) const OWNER_FILE: &str = "owner";

/// Tears down instances left by test processes that died without cleaning up (killed by a
/// timeout, SIGKILL, ...). An instance is stale when the process its `owner` file names is
/// gone. Problems are reported on stderr; they never fail the caller.
pub(crate) fn reap_stale_instances() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_instance = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(INSTANCE_PREFIX));
        if !is_instance || !dir.is_dir() {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let mut fields = owner.split_whitespace();
        let pid: Option<i32> = fields.next().and_then(|f| f.parse().ok());
        let start: Option<u64> = fields.next().and_then(|f| f.parse().ok());
        let (Some(pid), Some(start)) = (pid, start) else {
            continue;
        };
        if process_start_time(pid) == Some(start) {
            continue;
        }
        eprintln!(
            "nodeguard-e2e: cleaning up stale instance {}",
            dir.display()
        );
        for problem in sweep(&dir, &cgroup_root_for(&dir)) {
            eprintln!("nodeguard-e2e: stale instance {}: {problem}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/tmp/a\134b"), r"/tmp/a\b");
        assert_eq!(unescape(r"/tmp/plain"), "/tmp/plain");
        assert_eq!(unescape(r"/tmp/end\04"), r"/tmp/end\04");
    }

    #[test]
    fn own_process_is_listed_with_its_parent() {
        let me = std::process::id() as i32;
        let found = processes().into_iter().find(|p| p.pid == me);
        assert!(found.is_some_and(|p| p.ppid > 0));
    }
}
