//! Every name of the image content a container runs or mounts (ADR 0020).
//!
//! The runtime names a container's image by one reference (containerd 2.x: the pod's own
//! string; 1.7: the first sorted name of the image's record), and an image volume only by the
//! digest of its content. containerd's image records tell every name pointing to one content:
//! the index here is built from them, and read again when it lacks a name or digest asked for,
//! or is older than [`MAX_AGE`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::future::Future;

use super::containerd::{ContainerdError, ImageRecord};

/// How long a read of the image records is trusted for names it holds: a name moved to other
/// content (a re-pulled `:latest`) is seen at the next read.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// How long a read is trusted for names and digests it lacks: requests naming images
/// containerd does not have (removed since, or never there) read the records at most this
/// often, not once each.
pub const MIN_AGE_TO_REREAD: Duration = Duration::from_millis(100);

/// The image records of one containerd namespace, by name and by content digest.
#[derive(Debug, Default)]
pub struct ImageIndex {
    digest_by_name: HashMap<String, usize>,
    slot_by_digest: HashMap<String, usize>,
    /// Per content digest, its names, sorted.
    names: Vec<(String, Vec<String>)>,
}

impl ImageIndex {
    /// The index of `records`. A record named by a bare digest (CRI names every image it
    /// pulls by its ID too, `sha256:<hex>`) is not a name of the image: left out, or it would
    /// read as `docker.io/library/sha256:<hex>`.
    pub fn new(records: Vec<ImageRecord>) -> Self {
        let mut index = ImageIndex::default();
        for record in records.into_iter().filter(|r| !is_bare_digest(&r.name)) {
            let slot = *index
                .slot_by_digest
                .entry(record.digest.clone())
                .or_insert_with(|| {
                    index.names.push((record.digest.clone(), Vec::new()));
                    index.names.len() - 1
                });
            index.names[slot].1.push(record.name.clone());
            index.digest_by_name.insert(record.name, slot);
        }
        for (_, names) in &mut index.names {
            names.sort();
        }
        index
    }

    /// The content digest image `name` (normalized, as containerd stores it) points to.
    pub fn digest_of(&self, name: &str) -> Option<&str> {
        self.digest_by_name
            .get(name)
            .map(|&slot| self.names[slot].0.as_str())
    }

    /// Every name of the content `digest`, sorted (empty when none).
    pub fn names_of(&self, digest: &str) -> &[String] {
        self.slot_by_digest
            .get(digest)
            .map_or(&[], |&slot| self.names[slot].1.as_slice())
    }

    /// Every name of the content image `name` points to (empty when it is unknown).
    pub fn names_with(&self, name: &str) -> &[String] {
        self.digest_by_name
            .get(name)
            .map_or(&[], |&slot| self.names[slot].1.as_slice())
    }
}

/// Whether `name` is a digest and no reference (`sha256:0a1b...`): an image ID.
fn is_bare_digest(name: &str) -> bool {
    let length = |algorithm: &str| match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    name.split_once(':').is_some_and(|(algorithm, hex)| {
        length(algorithm) == Some(hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The image indexes of containerd namespaces, read on demand and kept for [`MAX_AGE`].
#[derive(Debug, Default)]
pub struct ImageNames {
    cache: Mutex<HashMap<String, (Arc<ImageIndex>, Instant)>>,
}

impl ImageNames {
    /// The index of `namespace` that holds every name of `names` and every digest of
    /// `digests` if containerd has them: the one kept, when it is younger than [`MAX_AGE`]
    /// and holds them all (or was read less than [`MIN_AGE_TO_REREAD`] ago); otherwise read
    /// again from `api`.
    ///
    /// `read` reads the namespace's records (containerd's `Images/List`).
    ///
    /// # Errors
    /// `read`'s, when the records must be read and cannot be.
    pub async fn index<Read, Records>(
        &self,
        namespace: &str,
        names: &[&str],
        digests: &[&str],
        now: Instant,
        read: Read,
    ) -> Result<Arc<ImageIndex>, ContainerdError>
    where
        Read: FnOnce() -> Records,
        Records: Future<Output = Result<Vec<ImageRecord>, ContainerdError>>,
    {
        let kept = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .filter(|(_, read)| now.saturating_duration_since(*read) < MAX_AGE)
            .map(|(index, read)| (Arc::clone(index), now.saturating_duration_since(*read)));
        if let Some((index, age)) = kept
            && (age < MIN_AGE_TO_REREAD
                || (names.iter().all(|n| index.digest_of(n).is_some())
                    && digests.iter().all(|d| !index.names_of(d).is_empty())))
        {
            return Ok(index);
        }
        let index = Arc::new(ImageIndex::new(read().await?));
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(namespace.to_string(), (Arc::clone(&index), now));
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, digest: &str) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            digest: digest.into(),
        }
    }

    /// containerd's image records, counting the reads.
    #[derive(Default)]
    struct Records {
        records: Mutex<Vec<ImageRecord>>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl Records {
        async fn read(&self) -> Result<Vec<ImageRecord>, ContainerdError> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.records.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn the_records_are_read_again_when_old_or_lacking_but_not_in_a_flood() {
        let api = Records::default();
        *api.records.lock().unwrap() = vec![record("a:1", "sha256:a")];
        let reads = || api.reads.load(std::sync::atomic::Ordering::Relaxed);
        let names = ImageNames::default();
        let t0 = Instant::now();
        names
            .index("k8s.io", &["a:1"], &[], t0, || api.read())
            .await
            .unwrap();
        assert_eq!(reads(), 1);
        // Kept: younger than MAX_AGE and holding what is asked.
        let t1 = t0 + Duration::from_secs(1);
        names
            .index("k8s.io", &["a:1"], &[], t1, || api.read())
            .await
            .unwrap();
        assert_eq!(reads(), 1);
        // A name it lacks (just pulled) is read again.
        api.records.lock().unwrap().push(record("b:1", "sha256:b"));
        let index = names
            .index("k8s.io", &["b:1"], &[], t1, || api.read())
            .await
            .unwrap();
        assert_eq!((reads(), index.digest_of("b:1")), (2, Some("sha256:b")));
        // ...but not again within MIN_AGE_TO_REREAD, whatever is missing.
        names
            .index(
                "k8s.io",
                &["gone:1"],
                &["sha256:c"],
                t1 + Duration::from_millis(50),
                || api.read(),
            )
            .await
            .unwrap();
        assert_eq!(reads(), 2);
        // Too old: read again though it holds the name.
        names
            .index("k8s.io", &["a:1"], &[], t1 + MAX_AGE, || api.read())
            .await
            .unwrap();
        assert_eq!(reads(), 3);
        // Namespaces are apart.
        names
            .index("moby", &["a:1"], &[], t1 + MAX_AGE, || api.read())
            .await
            .unwrap();
        assert_eq!(reads(), 4);
    }

    #[test]
    fn names_are_grouped_by_content() {
        let index = ImageIndex::new(vec![
            record("registry.corp/nginx:1", "sha256:a"),
            record("docker.io/library/nginx:1", "sha256:a"),
            record("docker.io/library/nginx@sha256:a", "sha256:a"),
            record("evil.example/busybox:1", "sha256:b"),
            // CRI's record of the image ID: not a name.
            record(&format!("sha256:{}", "a".repeat(64)), "sha256:a"),
        ]);
        assert_eq!(index.digest_of("registry.corp/nginx:1"), Some("sha256:a"));
        assert_eq!(
            index.names_with("registry.corp/nginx:1"),
            [
                "docker.io/library/nginx:1",
                "docker.io/library/nginx@sha256:a",
                "registry.corp/nginx:1"
            ]
        );
        assert_eq!(index.names_of("sha256:b"), ["evil.example/busybox:1"]);
        assert!(index.names_of("sha256:c").is_empty());
        assert!(index.names_with("nginx").is_empty());
        assert!(is_bare_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_bare_digest("nginx:1") && !is_bare_digest("sha256:1"));
        assert_eq!(index.digest_of("nginx"), None);
    }
}
