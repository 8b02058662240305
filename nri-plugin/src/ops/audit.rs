//! The audit log: one JSON object per line for every decision, written before the reply.
//!
//! The format is stable and versioned (`schema`); see `docs/audit-log.md`. [`AuditFile`]
//! writes it to a file rotated by size, never blocking enforcement: when the file cannot be
//! written, records wait in a bounded backlog in memory.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use policy_core::{Decision, Verdict};
use serde::Serialize;

/// The schema identifier every record carries.
pub const SCHEMA: &str = "nodeguard.io/audit/v1";

/// When in a container's life a decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// At `RunPodSandbox`: the pod, before any of its containers (the record's container is
    /// empty).
    Sandbox,
    /// At `CreateContainer`.
    Create,
    /// At `StartContainer`.
    Start,
    /// At `UpdateContainer`.
    Update,
    /// While auditing containers already running (at registration, periodically, after a
    /// policy reload).
    Sync,
}

impl Phase {
    /// The phase's name in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Sandbox => "sandbox",
            Phase::Create => "create",
            Phase::Start => "start",
            Phase::Update => "update",
            Phase::Sync => "sync",
        }
    }
}

/// What nodeguard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed with nothing to report.
    Allowed,
    /// Refused.
    Refused,
    /// Allowed, with violations of `audit` rules.
    Audited,
    /// Allowed, with violations of `warn` rules.
    Warned,
    /// Allowed for now: an enforced rule could not decide yet (re-checked at start).
    Undecided,
    /// Found running in breach of a `remediate: stop` rule, and stopped (phase `sync`).
    Stopped,
}

impl Outcome {
    /// The outcome's name in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::Audited => "audited",
            Outcome::Warned => "warned",
            Outcome::Undecided => "undecided",
            Outcome::Stopped => "stopped",
        }
    }
}

impl Outcome {
    /// The outcome of a decision, given whether it was enforced.
    pub fn of(decision: &Decision, refused: bool) -> Outcome {
        use policy_core::Effect;
        if refused {
            Outcome::Refused
        } else if decision.verdict() == Verdict::Undecided {
            Outcome::Undecided
        } else if decision.violations.iter().any(|v| v.effect == Effect::Warn) {
            Outcome::Warned
        } else if !decision.violations.is_empty() {
            Outcome::Audited
        } else {
            Outcome::Allowed
        }
    }
}

/// The pod a record is about.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PodRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// UID.
    pub uid: &'a str,
}

/// The container a record is about.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ContainerRef<'a> {
    /// Kubernetes container name.
    pub name: &'a str,
    /// Runtime container id.
    pub id: &'a str,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// RFC 3339 time with milliseconds, UTC.
    pub time: String,
    /// Node name.
    pub node: &'a str,
    /// Phase of the decision.
    pub phase: Phase,
    /// What nodeguard did.
    pub outcome: Outcome,
    /// The pod.
    pub pod: PodRef<'a>,
    /// The container.
    pub container: ContainerRef<'a>,
    /// The image reference, normalized.
    pub image: Option<&'a str>,
    /// On a `sync` record at registration: nodeguard did not know the container to run before
    /// (neither in memory after a reconnection nor in its state file after a restart), so it
    /// started while nodeguard was not running. Left out when false.
    #[serde(
        rename = "startedWhileAway",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub started_while_away: bool,
    /// Present only for a container made outside Kubernetes (with `ctr`, nerdctl, Docker,
    /// buildkit: not through CRI), which compliance audits find through containerd's API:
    /// its containerd namespace. `pod` is then empty and `container.name` is its id.
    #[serde(rename = "nonKubernetes", skip_serializing_if = "Option::is_none")]
    pub non_kubernetes: Option<NonKubernetes<'a>>,
    /// Every violation and undecided rule.
    #[serde(flatten)]
    pub decision: &'a Decision,
}

/// What an audit record says of a container made outside Kubernetes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NonKubernetes<'a> {
    /// The containerd namespace it is in (`default`, `moby`, `buildkit`, or `k8s.io` for one
    /// made there without CRI).
    #[serde(rename = "containerdNamespace")]
    pub containerd_namespace: &'a str,
}

impl Record<'_> {
    /// The current time in the record's format.
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

/// Where records go.
pub trait AuditSink: Send + Sync {
    /// Writes one record. Failures are the sink's to report (log and count); they never
    /// block enforcement.
    fn record(&self, record: &Record<'_>);
}

/// An audit log that drops everything (no `--audit-log`).
#[derive(Debug, Default)]
pub struct Discard;

impl AuditSink for Discard {
    fn record(&self, _: &Record<'_>) {}
}

/// How the live audit log is rotated, and how many rotated files are kept.
///
/// Rotation is by renaming: `audit.jsonl` → `audit.jsonl.1` (newest) … `audit.jsonl.N`
/// (oldest, N = `max_files`); the next rotation drops the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Size in bytes the live file may reach: a record that would take a non-empty live file
    /// past it is written to a new file instead. A record larger than this gets a file of
    /// its own. `0` disables rotation (and `max_files` is then unused).
    pub max_bytes: u64,
    /// Rotated files kept beside the live one; `0` keeps none (a full live file is deleted).
    pub max_files: usize,
}

impl Default for Rotation {
    /// 100 MiB, 5 rotated files: at most 600 MiB on disk.
    fn default() -> Self {
        Rotation {
            max_bytes: 100 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Bounds of the in-memory backlog that holds records while the log cannot be written.
/// Past either bound the oldest records are dropped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogLimit {
    /// Bytes of JSON lines kept at most.
    pub max_bytes: usize,
    /// Records kept at most.
    pub max_records: usize,
}

impl Default for BacklogLimit {
    /// 4 MiB or 10 000 records, whichever comes first.
    fn default() -> Self {
        BacklogLimit {
            max_bytes: 4 * 1024 * 1024,
            max_records: 10_000,
        }
    }
}

/// The audit log's counters since it was opened, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records written to the file (directly, or later from the backlog).
    pub records_written: u64,
    /// Failed attempts to write a record (opening the file included).
    pub write_failures: u64,
    /// Records lost: dropped from a full backlog (or that could not be serialized, which the
    /// current record cannot fail).
    pub records_dropped: u64,
    /// Records waiting in memory for the file to be writable.
    pub backlog_records: u64,
    /// Rotations done.
    pub rotations: u64,
    /// Rotations that failed (the live file then keeps growing).
    pub rotation_failures: u64,
    /// Whether the last attempt to write succeeded.
    pub healthy: bool,
}

/// Failures are logged when they start, then at most this often while they last.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// An append-only JSON-lines file, rotated by size.
///
/// # Durability
/// - Each record is one complete line handed to the kernel with a single `write_all` on a
///   file opened in append mode, under a lock: lines from concurrent callers never
///   interleave, and a line is never split across two files.
/// - When [`AuditSink::record`] returns with the log healthy, the line is in the kernel's page
///   cache: it survives nodeguard crashing, being killed or restarting. It is not fsynced
///   per record (too slow for a call made before each reply to containerd): a crash of the
///   node itself can lose what was written since the last fsync, which happens at each
///   rotation and at [`AuditFile::sync`].
/// - A write that fails part-way is cut back off the file when possible; if not, the next
///   line starts on a new line, so a fragment (also after a crash) is never glued to a
///   record and can only stand as a line of its own.
/// - When the file cannot be written (full disk, missing directory, permissions, I/O
///   error), records wait in memory, bounded by [`BacklogLimit`] (the oldest dropped past
///   it), and go out in order before any newer record once writing works again: at the next
///   [`AuditSink::record`], [`AuditFile::retry`] or [`AuditFile::sync`]. The failure is
///   logged when it starts, then at most once a minute, and its end is logged. Nothing
///   blocks and nothing panics.
/// - Before each record the path is checked to still name the open file: a live file deleted
///   or moved away is replaced by a new one, and a removed directory is a write failure,
///   rather than records going to a file nobody can see.
///
/// ```no_run
/// use nodeguard::ops::audit::{AuditFile, Rotation};
///
/// let log = AuditFile::open("/var/log/nodeguard/audit.jsonl".as_ref(), Rotation::default())?;
/// // Hand it to the enforcer as an `Arc<dyn AuditSink>`; then, periodically:
/// log.retry();
/// // at scrape time:
/// let stats = log.stats();
/// // and at shutdown:
/// log.sync()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    rotation: Rotation,
    limit: BacklogLimit,
    state: Mutex<State>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    records_written: AtomicU64,
    write_failures: AtomicU64,
    records_dropped: AtomicU64,
    backlog_records: AtomicU64,
    rotations: AtomicU64,
    rotation_failures: AtomicU64,
    healthy: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// The open live file; `None` after a failure or a rotation, reopened at the next write.
    live: Option<Live>,
    /// Complete lines not written yet, oldest first.
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    /// Set while writes fail.
    outage: Option<Outage>,
    /// When a rotation last failed: retried at most once a minute.
    rotation_failed: Option<Instant>,
}

#[derive(Debug)]
struct Live {
    file: File,
    dev: u64,
    ino: u64,
    /// A regular file (rotated and cut back after a partial write); not a pipe or device.
    regular: bool,
    /// The file does not end with a newline: start the next record on a line of its own.
    torn: bool,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    reported: Instant,
    dropped_before: u64,
}

impl Live {
    /// Opens (creating) the file at `path` for appending; returns it and its size.
    fn open(path: &Path) -> io::Result<(Live, u64)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        let regular = meta.file_type().is_file();
        let len = meta.len();
        let torn = regular && len > 0 && !ends_with_newline(path, len);
        let live = Live {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            regular,
            torn,
        };
        Ok((live, len))
    }
}

/// Whether the file of `len` bytes at `path` ends with a newline (read through a handle of
/// its own: the log is open append-only). When unknown, assume it does.
fn ends_with_newline(path: &Path, len: u64) -> bool {
    let mut last = [0u8];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut last, len.saturating_sub(1)))
        .map_or(true, |()| last[0] == b'\n')
}

/// `path.N`.
fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The directory `path` is in.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether a report last made at `last` may be made again at `now`.
fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY)
}

impl AuditFile {
    /// Opens (creating) the log at `path` for appending, rotated as `rotation` says, with
    /// the default [`BacklogLimit`]. An existing file is appended to, and its size counts
    /// towards the next rotation.
    ///
    /// # Errors
    /// When the directory of `path` does not exist or is not a directory, when `path` is a
    /// directory or names no file, or when the file cannot be opened for appending.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<AuditFile> {
        if path.file_name().is_none() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "the path names no file",
            ));
        }
        let dir = parent(path);
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::NotADirectory,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(io::Error::new(
                    ErrorKind::NotFound,
                    format!("the directory {} does not exist", dir.display()),
                ));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(ErrorKind::IsADirectory, "is a directory"));
        }
        let (live, _) = Live::open(path)?;
        let counters = Counters::default();
        counters.healthy.store(true, Ordering::Relaxed);
        Ok(AuditFile {
            path: path.to_path_buf(),
            rotation,
            limit: BacklogLimit::default(),
            state: Mutex::new(State {
                live: Some(live),
                ..State::default()
            }),
            counters,
        })
    }

    /// The same log with other bounds for its in-memory backlog.
    #[must_use]
    pub fn with_backlog_limit(mut self, limit: BacklogLimit) -> AuditFile {
        self.limit = limit;
        self
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters, read without waiting for a write in progress.
    pub fn stats(&self) -> AuditStats {
        let c = &self.counters;
        AuditStats {
            records_written: c.records_written.load(Ordering::Relaxed),
            write_failures: c.write_failures.load(Ordering::Relaxed),
            records_dropped: c.records_dropped.load(Ordering::Relaxed),
            backlog_records: c.backlog_records.load(Ordering::Relaxed),
            rotations: c.rotations.load(Ordering::Relaxed),
            rotation_failures: c.rotation_failures.load(Ordering::Relaxed),
            healthy: c.healthy.load(Ordering::Relaxed),
        }
    }

    /// Tries to write the records kept in memory (the daemon calls this periodically, so
    /// that they go out even when no new decision comes). Does nothing when there are none.
    pub fn retry(&self) {
        let mut state = self.lock();
        if !state.backlog.is_empty() && self.drain(&mut state) {
            self.recovered(&mut state);
        }
    }

    /// Writes the records kept in memory if possible, then fsyncs the live file: for
    /// shutdown.
    ///
    /// # Errors
    /// When the fsync fails, or when records are still only in memory (they are lost if the
    /// process exits).
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        if !state.backlog.is_empty() && self.drain(&mut state) {
            self.recovered(&mut state);
        }
        if let Some(live) = &state.live {
            live.file.sync_data()?;
        }
        match state.backlog.len() {
            0 => Ok(()),
            n => Err(io::Error::other(format!(
                "{n} audit records could not be written to {}",
                self.path.display()
            ))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the backlog in order; whether it is now empty.
    fn drain(&self, state: &mut State) -> bool {
        while let Some(line) = state.backlog.pop_front() {
            if self.attempt(state, &line) {
                state.backlog_bytes = state.backlog_bytes.saturating_sub(line.len());
            } else {
                state.backlog.push_front(line);
                break;
            }
        }
        self.counters
            .backlog_records
            .store(state.backlog.len() as u64, Ordering::Relaxed);
        state.backlog.is_empty()
    }

    /// Writes one line, counting and reporting the outcome; whether it was written.
    fn attempt(&self, state: &mut State, line: &[u8]) -> bool {
        match self.write(state, line) {
            Ok(()) => {
                self.counters
                    .records_written
                    .fetch_add(1, Ordering::Relaxed);
                self.counters.healthy.store(true, Ordering::Relaxed);
                true
            }
            Err(error) => {
                self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                self.counters.healthy.store(false, Ordering::Relaxed);
                let now = Instant::now();
                match &mut state.outage {
                    None => {
                        tracing::error!(
                            path = %self.path.display(),
                            %error,
                            backlog_max_records = self.limit.max_records,
                            backlog_max_bytes = self.limit.max_bytes,
                            "cannot write the audit log: keeping records in memory until it \
                             is writable"
                        );
                        state.outage = Some(Outage {
                            since: now,
                            reported: now,
                            dropped_before: self.counters.records_dropped.load(Ordering::Relaxed),
                        });
                    }
                    Some(outage) if due(Some(outage.reported), now) => {
                        tracing::error!(
                            path = %self.path.display(),
                            %error,
                            backlog_records = state.backlog.len(),
                            backlog_bytes = state.backlog_bytes,
                            records_dropped = self
                                .counters
                                .records_dropped
                                .load(Ordering::Relaxed)
                                .saturating_sub(outage.dropped_before),
                            failing_for = ?now.saturating_duration_since(outage.since),
                            "still cannot write the audit log"
                        );
                        outage.reported = now;
                    }
                    Some(_) => {}
                }
                false
            }
        }
    }

    /// Logs the end of an outage, if there was one.
    fn recovered(&self, state: &mut State) {
        if let Some(outage) = state.outage.take() {
            tracing::info!(
                path = %self.path.display(),
                failed_for = ?outage.since.elapsed(),
                records_dropped = self
                    .counters
                    .records_dropped
                    .load(Ordering::Relaxed)
                    .saturating_sub(outage.dropped_before),
                "writing the audit log again; the records kept in memory are written"
            );
        }
    }

    /// Keeps a line that could not be written, dropping the oldest past the limit.
    fn keep(&self, state: &mut State, line: Vec<u8>) {
        state.backlog_bytes = state.backlog_bytes.saturating_add(line.len());
        state.backlog.push_back(line);
        while state.backlog.len() > self.limit.max_records
            || state.backlog_bytes > self.limit.max_bytes
        {
            let Some(dropped) = state.backlog.pop_front() else {
                break;
            };
            state.backlog_bytes = state.backlog_bytes.saturating_sub(dropped.len());
            self.counters
                .records_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .backlog_records
            .store(state.backlog.len() as u64, Ordering::Relaxed);
    }

    /// The size of the live file, (re)opening it when there is none open or the path no
    /// longer names the open one (deleted, moved away, replaced).
    fn live_size(&self, state: &mut State) -> io::Result<u64> {
        if let (Some(live), Ok(meta)) = (&state.live, std::fs::metadata(&self.path))
            && meta.dev() == live.dev
            && meta.ino() == live.ino
        {
            return Ok(meta.len());
        }
        state.live = None;
        let (live, len) = Live::open(&self.path)?;
        state.live = Some(live);
        Ok(len)
    }

    /// Appends one complete line to the live file, rotating first when it is due.
    fn write(&self, state: &mut State, line: &[u8]) -> io::Result<()> {
        let mut size = self.live_size(state)?;
        let extra = u64::from(state.live.as_ref().is_some_and(|l| l.torn));
        let over = self.rotation.max_bytes > 0
            && size > 0
            && size.saturating_add(line.len() as u64).saturating_add(extra)
                > self.rotation.max_bytes;
        if over
            && state.live.as_ref().is_some_and(|l| l.regular)
            && due(state.rotation_failed, Instant::now())
            && self.rotate(state)
        {
            size = self.live_size(state)?;
        }
        let Some(live) = state.live.as_mut() else {
            return Err(io::Error::other("the audit log is not open"));
        };
        let written = if live.torn {
            let mut torn = Vec::with_capacity(line.len() + 1);
            torn.push(b'\n');
            torn.extend_from_slice(line);
            live.file.write_all(&torn)
        } else {
            live.file.write_all(line)
        };
        match written {
            Ok(()) => {
                live.torn = false;
                Ok(())
            }
            Err(e) => {
                // Cut off what part of the line may have gone out, so that the retry's
                // whole line is not glued to a fragment. If the cut fails, the reopened
                // file's missing final newline says so.
                if live.regular
                    && let Ok(meta) = live.file.metadata()
                    && meta.len() > size
                {
                    let _ = live.file.set_len(size);
                }
                state.live = None;
                Err(e)
            }
        }
    }

    /// Rotates the live file; whether it was renamed (a new one must be opened).
    fn rotate(&self, state: &mut State) -> bool {
        if let Some(live) = &state.live
            && let Err(error) = live.file.sync_data()
        {
            tracing::error!(path = %self.path.display(), %error, "cannot fsync the audit log");
        }
        match self.shift() {
            Ok(()) => {
                state.live = None;
                state.rotation_failed = None;
                self.counters.rotations.fetch_add(1, Ordering::Relaxed);
                // Make the renames durable; a failure here loses nothing written.
                let _ = File::open(parent(&self.path)).and_then(|d| d.sync_all());
                true
            }
            Err(error) => {
                self.counters
                    .rotation_failures
                    .fetch_add(1, Ordering::Relaxed);
                state.rotation_failed = Some(Instant::now());
                tracing::error!(
                    path = %self.path.display(),
                    %error,
                    "cannot rotate the audit log: writing on to the live file, retrying in a minute"
                );
                false
            }
        }
    }

    /// Renames `path.N-1` → `path.N` … `path` → `path.1` (dropping the oldest), or deletes
    /// the live file when no rotated file is kept.
    fn shift(&self) -> io::Result<()> {
        let max = self.rotation.max_files;
        if max == 0 {
            return std::fs::remove_file(&self.path);
        }
        // Files left by a larger `max_files` earlier.
        let mut extra = max.checked_add(1);
        while let Some(n) = extra {
            if std::fs::remove_file(rotated(&self.path, n)).is_err() {
                break;
            }
            extra = n.checked_add(1);
        }
        // Shift only the run of rotated files from `.1`: after a failed rotation left a gap,
        // a retry does not push older files out for nothing.
        let mut run = 0;
        while run < max && std::fs::symlink_metadata(rotated(&self.path, run + 1)).is_ok() {
            run += 1;
        }
        for n in (1..=run.min(max - 1)).rev() {
            std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1))?;
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
    }
}

impl AuditSink for AuditFile {
    fn record(&self, record: &Record<'_>) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(error) => {
                self.counters
                    .records_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "cannot serialize an audit record");
                return;
            }
        };
        line.push(b'\n');
        let mut state = self.lock();
        // The backlog first, in order; the new record only behind it.
        if self.drain(&mut state) && self.attempt(&mut state, &line) {
            self.recovered(&mut state);
            return;
        }
        self.keep(&mut state, line);
    }
}

impl Drop for AuditFile {
    /// Writes what the backlog holds if possible; says how many records are lost if not.
    fn drop(&mut self) {
        let mut state = self.lock();
        if !state.backlog.is_empty() && !self.drain(&mut state) {
            tracing::error!(
                path = %self.path.display(),
                records = state.backlog.len(),
                "audit records lost: the audit log could not be written"
            );
        }
    }
}

/// An in-memory sink, for tests.
#[derive(Debug, Default)]
pub struct Memory {
    lines: Mutex<Vec<serde_json::Value>>,
}

impl Memory {
    /// Every record written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for Memory {
    fn record(&self, record: &Record<'_>) {
        if let Ok(v) = serde_json::to_value(record) {
            self.lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_once_then_once_a_minute() {
        let t = Instant::now();
        assert!(due(None, t));
        assert!(!due(Some(t), t));
        assert!(!due(Some(t), t + Duration::from_secs(59)));
        assert!(due(Some(t), t + REPORT_EVERY));
        // A clock that seems to go back never reports early nor panics.
        assert!(!due(Some(t + Duration::from_secs(5)), t));
    }

    #[test]
    fn rotated_names_append_the_number() {
        assert_eq!(
            rotated(Path::new("/var/log/nodeguard/audit.jsonl"), 3),
            PathBuf::from("/var/log/nodeguard/audit.jsonl.3")
        );
        assert_eq!(parent(Path::new("audit.jsonl")), Path::new("."));
    }
}
