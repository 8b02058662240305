//! The policy documents the API server holds: `NodePolicy` objects and Gatekeeper (or Azure
//! Policy) constraints, each validated on its own as it arrives.
//!
//! Pure: objects in, accepted texts out. An object whose new generation fails validation
//! keeps its last good generation in force and is reported once per generation; an object
//! whose policy name a file already uses is left out (the file wins). What is accepted is
//! what [`crate::ops::reload`] merges with the files, and what the cache keeps on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use policy_core::Policy;

use crate::ops::reload::MoreDocument;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which object: its kind and name (cluster-scoped: no namespace).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// `NodePolicy`, or a constraint kind (`K8sAllowedRepos`).
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One accepted object: the generation in force and the document nodeguard compiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// `metadata.generation` of the object in force.
    pub generation: i64,
    /// The document: `apiVersion`, `kind`, `metadata` (name and labels) and `spec`, as JSON.
    pub text: String,
}

/// What became of an object received from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Its generation is now in force (new, or changed).
    Accepted,
    /// This generation is already in force, or was already rejected: nothing changes.
    Unchanged,
    /// This generation is invalid; the last good one (if any) stays in force.
    Rejected {
        /// Every error, located by field.
        errors: String,
        /// The generation rejected.
        generation: i64,
    },
}

/// The API server's policy documents for this node.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClusterDocuments {
    accepted: BTreeMap<ObjectKey, Accepted>,
    /// The text last rejected, per object: reported once.
    rejected: BTreeMap<ObjectKey, String>,
    /// Whether a document whose notes (what the node would not enforce) make it invalid, as
    /// `serve --strict` asks of the files.
    strict: bool,
}

/// Validates `text`, strictly when asked.
fn validate(source: &str, text: &str, strict: bool) -> Result<(), policy_core::PolicyErrors> {
    let policy = Policy::parse(source, text)?;
    if strict {
        policy.into_strict().map(drop)
    } else {
        Ok(())
    }
}

/// The part of an object nodeguard reads: server-set metadata (uid, resourceVersion,
/// managedFields, annotations) and `status` dropped.
fn document_of(object: &Value) -> Option<(ObjectKey, i64, Value)> {
    let kind = object.get("kind")?.as_str()?.to_string();
    let api_version = object.get("apiVersion")?.clone();
    let metadata = object.get("metadata")?;
    let name = metadata.get("name")?.as_str()?.to_string();
    let generation = metadata
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut kept = Map::new();
    kept.insert("name".into(), Value::String(name.clone()));
    if let Some(labels) = metadata.get("labels").filter(|l| l.is_object()) {
        kept.insert("labels".into(), labels.clone());
    }
    let mut document = Map::new();
    document.insert("apiVersion".into(), api_version);
    document.insert("kind".into(), Value::String(kind.clone()));
    document.insert("metadata".into(), Value::Object(kept));
    if let Some(spec) = object.get("spec") {
        document.insert("spec".into(), spec.clone());
    }
    Some((
        ObjectKey { kind, name },
        generation,
        Value::Object(document),
    ))
}

/// The source name a document's errors and audit records carry:
/// `api:NodePolicy/baseline@3` (kind, name, generation).
pub fn source_name(key: &ObjectKey, generation: i64) -> String {
    format!("api:{key}@{generation}")
}

impl ClusterDocuments {
    /// No documents; with `strict`, a document with notes is rejected (`serve --strict`).
    pub fn new(strict: bool) -> Self {
        ClusterDocuments {
            strict,
            ..ClusterDocuments::default()
        }
    }

    /// Takes in `object` (as the API server sent it): validated on its own, it replaces the
    /// object's generation in force, or is rejected with every error. Compared by content, not
    /// generation: an object deleted and made again starts at generation 1 again.
    pub fn apply(&mut self, object: &Value) -> Applied {
        let Some((key, generation, document)) = document_of(object) else {
            return Applied::Rejected {
                errors: "the object has no kind, apiVersion or metadata.name".into(),
                generation: 0,
            };
        };
        // One field per line, so that an error's line points at its field.
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        if let Some(a) = self.accepted.get_mut(&key)
            && a.text == text
        {
            // The same document (a metadata change may have moved the generation).
            a.generation = generation;
            return Applied::Unchanged;
        }
        if self.rejected.get(&key) == Some(&text) {
            return Applied::Unchanged;
        }
        match validate(&source_name(&key, generation), &text, self.strict) {
            Ok(()) => {
                self.rejected.remove(&key);
                self.accepted.insert(key, Accepted { generation, text });
                Applied::Accepted
            }
            Err(errors) => {
                self.rejected.insert(key, text);
                Applied::Rejected {
                    errors: errors.to_string(),
                    generation,
                }
            }
        }
    }

    /// Forgets object `key` (deleted in the API). Whether it was in force.
    pub fn delete(&mut self, key: &ObjectKey) -> bool {
        self.rejected.remove(key);
        self.accepted.remove(key).is_some()
    }

    /// After a full list of the objects of `kind`: forgets those of that kind not in
    /// `present`. Whether any was in force.
    pub fn retain_listed(&mut self, kind: &str, present: &[ObjectKey]) -> bool {
        let before = self.accepted.len();
        self.accepted
            .retain(|k, _| k.kind != kind || present.contains(k));
        self.rejected
            .retain(|k, _| k.kind != kind || present.contains(k));
        before != self.accepted.len()
    }

    /// The accepted objects, by key.
    pub fn accepted(&self) -> &BTreeMap<ObjectKey, Accepted> {
        &self.accepted
    }

    /// The accepted documents, in key order: each with its policy name (a NodePolicy's name,
    /// a constraint's `Kind/name`), its source name (`api:Kind/name@generation`) and text.
    pub fn documents(&self) -> Vec<MoreDocument> {
        self.accepted
            .iter()
            .map(|(key, accepted)| MoreDocument {
                policy: if key.kind == policy_core::document::KIND {
                    key.name.clone()
                } else {
                    key.to_string()
                },
                source: PathBuf::from(source_name(key, accepted.generation)),
                text: accepted.text.clone(),
            })
            .collect()
    }

    /// The accepted objects as kept on disk.
    pub fn to_cache(&self) -> Vec<(ObjectKey, Accepted)> {
        self.accepted
            .iter()
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect()
    }

    /// The documents kept on disk, each validated again (a cache written by another version,
    /// or damaged, must not bring in what this one rejects); those that fail are left out
    /// and named.
    pub fn from_cache(entries: Vec<(ObjectKey, Accepted)>, strict: bool) -> (Self, Vec<String>) {
        let mut documents = ClusterDocuments::new(strict);
        let mut bad = Vec::new();
        for (key, accepted) in entries {
            match validate(
                &source_name(&key, accepted.generation),
                &accepted.text,
                strict,
            ) {
                Ok(()) => {
                    documents.accepted.insert(key, accepted);
                }
                Err(e) => bad.push(format!("{key}: {e}")),
            }
        }
        (documents, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::reload::without_taken;
    use serde_json::json;

    fn node_policy(name: &str, generation: i64, rules: Value) -> Value {
        json!({
            "apiVersion": "nodeguard.io/v1alpha1",
            "kind": "NodePolicy",
            "metadata": {
                "name": name,
                "generation": generation,
                "uid": "0b7f",
                "resourceVersion": "812",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "labels": {"team": "platform"}
            },
            "spec": {"rules": rules},
            "status": {"observedGeneration": 1}
        })
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_valid_object_is_accepted_without_what_the_server_added() {
        let mut docs = ClusterDocuments::default();
        let object = node_policy("no-privileged", 1, json!({"privileged": {}}));
        assert_eq!(docs.apply(&object), Applied::Accepted);
        assert_eq!(docs.apply(&object), Applied::Unchanged);
        let (sources, left_out) = without_taken(docs.documents(), &[]);
        assert!(left_out.is_empty());
        assert_eq!(
            sources[0].0,
            PathBuf::from("api:NodePolicy/no-privileged@1")
        );
        let text: Value = serde_json::from_str(&sources[0].1).unwrap();
        assert_eq!(
            text["metadata"],
            json!({"name": "no-privileged", "labels": {"team": "platform"}})
        );
        assert!(text.get("status").is_none());
        let policy = Policy::parse("x", &sources[0].1).unwrap();
        assert_eq!(policy.names().collect::<Vec<_>>(), ["no-privileged"]);
    }

    #[test]
    fn an_invalid_generation_keeps_the_last_good_one_and_is_reported_once() {
        let mut docs = ClusterDocuments::default();
        docs.apply(&node_policy("p", 1, json!({"privileged": {}})));
        let bad = node_policy("p", 2, json!({"privilegd": {}}));
        let Applied::Rejected { errors, generation } = docs.apply(&bad) else {
            panic!("accepted a typo");
        };
        assert_eq!(generation, 2);
        assert!(
            errors.contains("api:NodePolicy/p@2:") && errors.contains("spec.rules.privilegd"),
            "{errors}"
        );
        assert_eq!(docs.apply(&bad), Applied::Unchanged, "reported once");
        assert_eq!(docs.accepted()[&key("NodePolicy", "p")].generation, 1);
        // A fixed generation is taken in.
        assert_eq!(
            docs.apply(&node_policy(
                "p",
                3,
                json!({"privileged": {}, "hostPorts": {}})
            )),
            Applied::Accepted
        );
        assert_eq!(docs.accepted()[&key("NodePolicy", "p")].generation, 3);
    }

    #[test]
    fn constraints_are_documents_too_and_files_win_a_name() {
        let mut docs = ClusterDocuments::default();
        let constraint = json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sAllowedRepos",
            "metadata": {"name": "repos", "generation": 4},
            "spec": {"parameters": {"repos": ["registry.corp/"]}}
        });
        assert_eq!(docs.apply(&constraint), Applied::Accepted);
        docs.apply(&node_policy("baseline", 1, json!({"privileged": {}})));
        let (sources, left_out) = without_taken(docs.documents(), &["baseline"]);
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].0, PathBuf::from("api:K8sAllowedRepos/repos@4"));
        assert_eq!(
            left_out,
            [
                r#"api:NodePolicy/baseline@1: a policy file already defines "baseline"; the file's is in force"#
            ]
        );
        let (sources, left_out) = without_taken(docs.documents(), &["K8sAllowedRepos/repos"]);
        assert_eq!(left_out.len(), 1);
        assert_eq!(sources[0].0, PathBuf::from("api:NodePolicy/baseline@1"));
    }

    #[test]
    fn an_object_made_again_is_compared_by_content_not_generation() {
        let mut docs = ClusterDocuments::default();
        docs.apply(&node_policy("p", 1, json!({"privileged": {}})));
        // Deleted while nodeguard was away, made again with another spec: generation 1 again.
        assert_eq!(
            docs.apply(&node_policy("p", 1, json!({"hostPorts": {}}))),
            Applied::Accepted
        );
        assert!(
            docs.accepted()[&key("NodePolicy", "p")]
                .text
                .contains("hostPorts")
        );
    }

    #[test]
    fn strict_rejects_an_object_the_node_would_not_fully_enforce() {
        let constraint = json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sAllowedRepos",
            "metadata": {"name": "no-repos", "generation": 1},
            "spec": {"parameters": {}}
        });
        assert_eq!(
            ClusterDocuments::new(false).apply(&constraint),
            Applied::Accepted
        );
        let Applied::Rejected { errors, .. } = ClusterDocuments::new(true).apply(&constraint)
        else {
            panic!("a note is an error with --strict");
        };
        assert!(errors.contains("spec.parameters.repos"), "{errors}");
    }

    #[test]
    fn deletions_and_relists_forget_objects() {
        let mut docs = ClusterDocuments::default();
        docs.apply(&node_policy("a", 1, json!({"privileged": {}})));
        docs.apply(&node_policy("b", 1, json!({"privileged": {}})));
        assert!(docs.delete(&key("NodePolicy", "a")));
        assert!(!docs.delete(&key("NodePolicy", "a")));
        assert!(!docs.retain_listed("NodePolicy", &[key("NodePolicy", "b")]));
        assert!(docs.retain_listed("NodePolicy", &[]));
        assert!(docs.accepted().is_empty());
    }

    #[test]
    fn the_cache_is_validated_again_when_read() {
        let mut docs = ClusterDocuments::default();
        docs.apply(&node_policy("a", 1, json!({"privileged": {}})));
        let mut entries = docs.to_cache();
        entries.push((
            key("NodePolicy", "damaged"),
            Accepted {
                generation: 1,
                text: "{not json".into(),
            },
        ));
        let (read, bad) = ClusterDocuments::from_cache(entries, false);
        assert_eq!(read.accepted().len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("NodePolicy/damaged: "), "{bad:?}");
    }
}
