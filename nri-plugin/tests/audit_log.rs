//! The audit log file: rotation and retention, restarts, failures kept in memory and written
//! in order once the file is writable again, counters, concurrent writers.
//!
//! Unwritable logs are made in ways that also stop root (CI runs as root, where file modes
//! do not): the directory removed, a directory in place of the file, a regular file in place
//! of the directory, `/dev/full`.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nodeguard::ops::audit::{
    AuditFile, AuditSink, AuditStats, BacklogLimit, ContainerRef, Outcome, Phase, PodRef, Record,
    Rotation, SCHEMA,
};
use policy_core::Decision;

/// Writes record number `seq` of `writer`. Every record serializes to the same length.
fn write(sink: &dyn AuditSink, writer: usize, seq: usize) {
    let decision = Decision::default();
    sink.record(&Record {
        schema: SCHEMA,
        time: Record::now(),
        node: "node-1",
        phase: Phase::Create,
        outcome: Outcome::Allowed,
        pod: PodRef {
            namespace: "default",
            name: &format!("writer-{writer}"),
            uid: "0b5c2a4e-7d51-4a8e-9f0c-1d2e3f405162",
        },
        container: ContainerRef {
            name: "app",
            id: &format!("{writer}-{seq:06}"),
        },
        image: Some("docker.io/library/nginx:1.27"),
        started_while_away: false,
        non_kubernetes: None,
        decision: &decision,
    });
}

/// Writes records `seqs` of writer 0.
fn write_all(sink: &dyn AuditSink, seqs: std::ops::Range<usize>) {
    for seq in seqs {
        write(sink, 0, seq);
    }
}

/// The length of one line as [`write`] makes it, newline included.
fn line_len() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.jsonl");
    let file = AuditFile::open(&path, Rotation::default()).unwrap();
    write(&file, 0, 0);
    fs::metadata(&path).unwrap().len()
}

/// `path.n`.
fn rotated(path: &Path, n: usize) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// The `(writer, seq)` of every line of `path`, checking that each is a whole record.
fn records(path: &Path) -> Vec<(usize, usize)> {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a partial line",
        path.display()
    );
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()));
            assert_eq!(value["schema"], SCHEMA);
            let id = value["container"]["id"].as_str().unwrap();
            let (writer, seq) = id.split_once('-').unwrap();
            (writer.parse().unwrap(), seq.parse().unwrap())
        })
        .collect()
}

/// The sequence numbers in `path`.
fn seqs(path: &Path) -> Vec<usize> {
    records(path).into_iter().map(|(_, seq)| seq).collect()
}

/// The log's files, oldest first: `path.max_files` … `path.1`, then `path`; those missing
/// are skipped.
fn files_oldest_first(path: &Path, max_files: usize) -> Vec<PathBuf> {
    (1..=max_files)
        .rev()
        .map(|n| rotated(path, n))
        .chain([path.to_path_buf()])
        .filter(|p| p.exists())
        .collect()
}

fn healthy(records_written: u64, rotations: u64) -> AuditStats {
    AuditStats {
        records_written,
        rotations,
        healthy: true,
        ..AuditStats::default()
    }
}

#[test]
fn rotation_keeps_max_files_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let len = line_len();
    // Ten lines per file.
    let rotation = Rotation {
        max_bytes: 10 * len + len / 2,
        max_files: 3,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..95);
    assert_eq!(file.stats(), healthy(95, 9));

    assert!(!rotated(&path, 4).exists(), "a fourth rotated file is kept");
    let files = files_oldest_first(&path, 3);
    assert_eq!(files.len(), 4);
    let mut all = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let size = fs::metadata(f).unwrap().len();
        assert!(
            size <= rotation.max_bytes,
            "{} holds {size} bytes",
            f.display()
        );
        let lines = seqs(f);
        assert_eq!(lines.len(), if i < 3 { 10 } else { 5 }, "{}", f.display());
        all.extend(lines);
    }
    // The three newest rotated files and the live one: records 60 to 94, once, in order.
    assert_eq!(all, (60..95).collect::<Vec<_>>());
}

#[test]
fn rotation_loses_nothing_when_retention_suffices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let len = line_len();
    let rotation = Rotation {
        max_bytes: 7 * len,
        max_files: 20,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..100);
    // Exactly seven lines fit: 14 full files and 2 records in the live one.
    assert_eq!(file.stats(), healthy(100, 14));
    let files = files_oldest_first(&path, 20);
    assert_eq!(files.len(), 15);
    let all: Vec<usize> = files.iter().flat_map(|f| seqs(f)).collect();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_record_bigger_than_max_bytes_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: line_len() / 2,
        max_files: 10,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..4);
    assert_eq!(file.stats(), healthy(4, 3));
    let files = files_oldest_first(&path, 10);
    let per_file: Vec<Vec<usize>> = files.iter().map(|f| seqs(f)).collect();
    assert_eq!(per_file, vec![vec![0], vec![1], vec![2], vec![3]]);
}

#[test]
fn max_bytes_zero_never_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: 0,
        max_files: 1,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..300);
    assert_eq!(file.stats(), healthy(300, 0));
    assert!(!rotated(&path, 1).exists());
    assert_eq!(seqs(&path), (0..300).collect::<Vec<_>>());
}

#[test]
fn max_files_zero_keeps_only_the_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: 10 * line_len(),
        max_files: 0,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..25);
    assert_eq!(file.stats(), healthy(25, 2));
    assert!(!rotated(&path, 1).exists());
    assert_eq!(seqs(&path), (20..25).collect::<Vec<_>>());
}

#[test]
fn reopening_appends_and_rotation_counts_the_existing_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: 10 * line_len(),
        max_files: 5,
    };
    let before = AuditFile::open(&path, rotation).unwrap();
    write_all(&before, 0..7);
    drop(before);

    let after = AuditFile::open(&path, rotation).unwrap();
    write_all(&after, 7..12);
    // Records 7, 8 and 9 fill the file the first run began; 10 starts a new one.
    assert_eq!(after.stats(), healthy(5, 1));
    assert_eq!(seqs(&rotated(&path, 1)), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs(&path), vec![10, 11]);
}

#[test]
fn a_smaller_max_files_removes_older_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let len = line_len();
    let wide = Rotation {
        max_bytes: len,
        max_files: 5,
    };
    write_all(&AuditFile::open(&path, wide).unwrap(), 0..6);
    assert!(rotated(&path, 5).exists());

    let narrow = Rotation {
        max_bytes: len,
        max_files: 2,
    };
    write_all(&AuditFile::open(&path, narrow).unwrap(), 6..7);
    let kept: Vec<Vec<usize>> = files_oldest_first(&path, 5)
        .iter()
        .map(|f| seqs(f))
        .collect();
    assert_eq!(kept, vec![vec![4], vec![5], vec![6]]);
}

#[test]
fn a_torn_last_line_does_not_swallow_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_all(&AuditFile::open(&path, Rotation::default()).unwrap(), 0..1);
    // A crash of the node part-way through a write.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"schema":"nodeguard.io/audit/v1","ti"#);
    fs::write(&path, &text).unwrap();

    write_all(&AuditFile::open(&path, Rotation::default()).unwrap(), 1..2);
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], r#"{"schema":"nodeguard.io/audit/v1","ti"#);
    let last: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(last["container"]["id"], "0-000001");
}

#[test]
fn a_deleted_live_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let file = AuditFile::open(&path, Rotation::default()).unwrap();
    write_all(&file, 0..2);
    fs::remove_file(&path).unwrap();
    write_all(&file, 2..4);
    assert_eq!(file.stats(), healthy(4, 0));
    assert_eq!(seqs(&path), vec![2, 3]);
}

#[test]
fn records_wait_in_memory_while_the_directory_is_gone_and_come_out_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("audit.jsonl");
    let file = AuditFile::open(&path, Rotation::default()).unwrap();
    write_all(&file, 0..3);

    fs::remove_dir_all(&logs).unwrap();
    write_all(&file, 3..8);
    let failing = AuditStats {
        records_written: 3,
        write_failures: 5,
        backlog_records: 5,
        healthy: false,
        ..AuditStats::default()
    };
    assert_eq!(file.stats(), failing);
    file.retry();
    assert_eq!(
        file.stats(),
        AuditStats {
            write_failures: 6,
            ..failing
        }
    );
    assert!(file.sync().is_err(), "records only in memory are reported");

    fs::create_dir(&logs).unwrap();
    file.retry();
    assert_eq!(
        file.stats(),
        AuditStats {
            records_written: 8,
            write_failures: 7,
            healthy: true,
            ..AuditStats::default()
        }
    );
    write_all(&file, 8..10);
    file.sync().unwrap();
    assert_eq!(seqs(&path), (3..10).collect::<Vec<_>>());
}

#[test]
fn a_directory_in_place_of_the_log_fails_until_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let file = AuditFile::open(&path, Rotation::default()).unwrap();
    write_all(&file, 0..2);

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    fs::write(path.join("occupied"), "").unwrap();
    write_all(&file, 2..5);
    let stats = file.stats();
    assert!(!stats.healthy);
    assert_eq!((stats.backlog_records, stats.write_failures), (3, 3));

    fs::remove_dir_all(&path).unwrap();
    // The next record writes the backlog first, then itself.
    write_all(&file, 5..6);
    assert_eq!(
        file.stats(),
        AuditStats {
            records_written: 6,
            write_failures: 3,
            healthy: true,
            ..AuditStats::default()
        }
    );
    assert_eq!(seqs(&path), vec![2, 3, 4, 5]);
}

#[test]
fn a_file_in_place_of_the_directory_fails_until_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("audit.jsonl");
    let file = AuditFile::open(&path, Rotation::default()).unwrap();

    fs::remove_dir_all(&logs).unwrap();
    fs::write(&logs, "not a directory").unwrap();
    write_all(&file, 0..4);
    file.retry();
    let stats = file.stats();
    assert!(!stats.healthy);
    assert_eq!((stats.backlog_records, stats.write_failures), (4, 5));

    fs::remove_file(&logs).unwrap();
    fs::create_dir(&logs).unwrap();
    write_all(&file, 4..6);
    assert_eq!(file.stats().records_written, 6);
    assert!(file.stats().healthy);
    assert_eq!(seqs(&path), (0..6).collect::<Vec<_>>());
}

#[test]
fn a_full_disk_keeps_records_in_memory() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        println!("skipped: no /dev/full on this system");
        return;
    }
    let file = AuditFile::open(full, Rotation::default()).unwrap();
    write_all(&file, 0..3);
    file.retry();
    assert_eq!(
        file.stats(),
        AuditStats {
            write_failures: 4,
            backlog_records: 3,
            healthy: false,
            ..AuditStats::default()
        }
    );
    let error = file.sync().unwrap_err();
    assert!(error.to_string().contains("3 audit records"), "{error}");
}

#[test]
fn a_full_backlog_drops_the_oldest_records_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("audit.jsonl");
    let file = AuditFile::open(&path, Rotation::default())
        .unwrap()
        .with_backlog_limit(BacklogLimit {
            max_bytes: usize::MAX,
            max_records: 5,
        });

    fs::remove_dir_all(&logs).unwrap();
    write_all(&file, 0..12);
    let stats = file.stats();
    assert_eq!((stats.backlog_records, stats.records_dropped), (5, 7));

    fs::create_dir(&logs).unwrap();
    file.retry();
    assert_eq!(
        file.stats(),
        AuditStats {
            records_written: 5,
            write_failures: 12,
            records_dropped: 7,
            healthy: true,
            ..AuditStats::default()
        }
    );
    assert_eq!(seqs(&path), (7..12).collect::<Vec<_>>());
}

#[test]
fn the_backlog_is_bounded_in_bytes_too() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("audit.jsonl");
    let len = usize::try_from(line_len()).unwrap();
    let file = AuditFile::open(&path, Rotation::default())
        .unwrap()
        .with_backlog_limit(BacklogLimit {
            max_bytes: 3 * len + 1,
            max_records: 1000,
        });

    fs::remove_dir_all(&logs).unwrap();
    write_all(&file, 0..10);
    let stats = file.stats();
    assert_eq!((stats.backlog_records, stats.records_dropped), (3, 7));
    fs::create_dir(&logs).unwrap();
    write_all(&file, 10..11);
    assert_eq!(seqs(&path), vec![7, 8, 9, 10]);
}

#[test]
fn a_failed_rotation_keeps_writing_to_the_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // The place of the only rotated file is a directory that a rename cannot replace.
    fs::create_dir(rotated(&path, 1)).unwrap();
    fs::write(rotated(&path, 1).join("occupied"), "").unwrap();
    let rotation = Rotation {
        max_bytes: 10 * line_len(),
        max_files: 1,
    };
    let file = AuditFile::open(&path, rotation).unwrap();
    write_all(&file, 0..25);
    let stats = file.stats();
    assert!(stats.rotation_failures >= 1);
    assert_eq!(stats.rotations, 0);
    assert_eq!(stats.records_written, 25);
    assert!(stats.healthy);
    assert_eq!(seqs(&path), (0..25).collect::<Vec<_>>());
}

#[test]
fn opening_checks_the_path_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("audit.jsonl");
    let error = AuditFile::open(&missing, Rotation::default()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.to_string().contains("does not exist"), "{error}");

    let regular = dir.path().join("regular");
    fs::write(&regular, "").unwrap();
    let under_a_file = regular.join("audit.jsonl");
    assert!(AuditFile::open(&under_a_file, Rotation::default()).is_err());

    let error = AuditFile::open(dir.path(), Rotation::default()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IsADirectory);
}

#[test]
fn concurrent_writers_with_rotation_lose_nothing() {
    const WRITERS: usize = 8;
    const RECORDS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let rotation = Rotation {
        max_bytes: 16 * 1024,
        max_files: 1000,
    };
    let file = Arc::new(AuditFile::open(&path, rotation).unwrap());
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let file = Arc::clone(&file);
            std::thread::spawn(move || {
                for seq in 0..RECORDS {
                    write(file.as_ref(), writer, seq);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let stats = file.stats();
    assert_eq!(stats.records_written, (WRITERS * RECORDS) as u64);
    assert!(stats.rotations > 10, "{stats:?}");
    let files = files_oldest_first(&path, 1000);
    assert_eq!(files.len() as u64, stats.rotations + 1);
    let mut seen = HashSet::new();
    let mut next = [0usize; WRITERS];
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= rotation.max_bytes);
        for (writer, seq) in records(f) {
            assert!(seen.insert((writer, seq)), "({writer}, {seq}) twice");
            // Each writer's records come out in the order it wrote them.
            assert_eq!(seq, next[writer]);
            next[writer] += 1;
        }
    }
    assert_eq!(seen.len(), WRITERS * RECORDS);
}
