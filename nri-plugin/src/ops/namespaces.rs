//! The labels of the cluster's namespaces, as the API server last listed them (the
//! cluster-connected mode): what a `namespaceSelector` is matched against on the node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock};

/// Labels by namespace name; unknown until the first full list.
#[derive(Debug, Default)]
pub struct NamespaceLabels {
    /// `None` until a full list arrived.
    labels: RwLock<Option<HashMap<String, BTreeMap<String, String>>>>,
}

impl NamespaceLabels {
    /// The labels of namespace `name`; `None` when they are not known (nothing listed yet, or
    /// a namespace the API server has not reported).
    pub fn get(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.labels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()?
            .get(name)
            .cloned()
    }

    /// Every namespace and its labels, when a full list arrived (or was kept on disk).
    pub fn snapshot(&self) -> Option<HashMap<String, BTreeMap<String, String>>> {
        self.labels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A full list: every namespace and its labels.
    pub fn replace_all(&self, all: HashMap<String, BTreeMap<String, String>>) {
        *self.labels.write().unwrap_or_else(PoisonError::into_inner) = Some(all);
    }

    /// Namespace `name` was added or relabelled.
    pub fn set(&self, name: &str, labels: BTreeMap<String, String>) {
        self.labels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(name.to_string(), labels);
    }

    /// Namespace `name` was deleted.
    pub fn remove(&self, name: &str) {
        if let Some(all) = self
            .labels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            all.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unknown_until_listed_and_follow_changes() {
        let labels = NamespaceLabels::default();
        assert_eq!(labels.get("prod"), None);
        labels.replace_all(HashMap::from([(
            "prod".to_string(),
            BTreeMap::from([("env".to_string(), "prod".to_string())]),
        )]));
        assert_eq!(labels.get("prod").unwrap()["env"], "prod");
        assert_eq!(labels.get("dev"), None, "a namespace not reported");
        labels.set("dev", BTreeMap::new());
        assert_eq!(labels.get("dev"), Some(BTreeMap::new()));
        labels.remove("prod");
        assert_eq!(labels.get("prod"), None);
    }
}
