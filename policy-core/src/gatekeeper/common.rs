//! What the kinds share: whose template a kind follows, and values printed as OPA prints them
//! in the templates' messages.

/// Whose template a kind follows where the gatekeeper-library and Azure Policy differ (in
/// messages, or in a detail of the check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// The gatekeeper-library's.
    Library,
    /// Azure Policy for AKS's (`K8sAzure...`).
    Azure,
}

/// A JSON value as OPA's `sprintf("%v")` prints it: strings quoted in arrays and objects, keys
/// sorted, `": "` and `", "` between them.
pub(crate) fn rego_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(rego_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .iter()
                .map(|k| format!("{k:?}: {}", rego_value(&map[*k])))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A list as OPA's `sprintf("%v")` prints an array: `["a", "b"]`.
pub(crate) fn rego_array(items: &[String]) -> String {
    use std::fmt::Write as _;
    // One allocation: the quotes and separators, and the items (escapes may add a little).
    let size = items.iter().map(|i| i.len() + 4).sum::<usize>() + 2;
    let mut out = String::with_capacity(size);
    out.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item:?}");
    }
    out.push(']');
    out
}

/// Whether an image list's `entry` names `image` as the templates read image lists
/// (`exemptImages`, `allowedImages`, Azure's `excludedImages`): exactly, or as a prefix when it
/// ends in `*` (one trailing `*` removed).
pub(crate) fn lists_image(entry: &str, image: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => image == entry,
    }
}

/// Strings as OPA's `sprintf("%v")` prints a set: sorted, each once, `{"a", "b"}`.
pub(crate) fn rego_set<S: AsRef<str>>(items: &[S]) -> String {
    let mut sorted: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let quoted: Vec<String> = sorted.iter().map(|i| format!("{i:?}")).collect();
    format!("{{{}}}", quoted.join(", "))
}
