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
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}
