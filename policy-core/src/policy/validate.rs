//! Validation that recovers from mistakes: each one is recorded with its file, line, column
//! and field, cut out of the document, and reading goes on, so one load reports them all.

use regex::{Regex, RegexBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::PolicyError;
use crate::document::{self, DocumentRaw, SpecRaw};
use crate::matcher::{Globs, Regexes};
use crate::yaml::Locations;

/// Largest compiled size of one regex, so a policy cannot make the node agent balloon.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Most mistakes reported for one object (a rule, the scope, ...) before giving up on it.
const MAX_ERRORS_PER_OBJECT: usize = 32;

/// Removes the node at `segments` from `value`; false when there is nothing to remove (the
/// path is empty or does not lead anywhere).
pub(super) fn remove_at(value: &mut Value, segments: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(child) => child,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(items)) => match items.get_mut(*index) {
                Some(child) => child,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Map { key }, Value::Object(map)) => map.remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(items)) if *index < items.len() => {
            items.remove(*index);
            true
        }
        _ => false,
    }
}

/// Validation context for one document.
pub(super) struct Ctx<'a> {
    pub(super) source_name: &'a str,
    pub(super) locations: &'a Locations,
    pub(super) errors: &'a mut Vec<PolicyError>,
    /// What is accepted but not enforced on the node.
    pub(super) notes: &'a mut Vec<PolicyError>,
    /// Whether a mistake was cut out of some object of this document to look for more: the
    /// object may then look emptier than written, so "checks nothing" is not reported.
    pub(super) recovered: bool,
}

pub(super) fn join(path: &str, child: &str) -> String {
    match (path.is_empty(), child.is_empty() || child == ".") {
        (_, true) => path.to_string(),
        (true, false) => child.to_string(),
        (false, false) if child.starts_with('[') => format!("{path}{child}"),
        (false, false) => format!("{path}.{child}"),
    }
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            source_name: self.source_name.to_string(),
            location: self.locations.nearest(path),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records something accepted but not enforced on the node.
    pub(super) fn note(&mut self, path: &str, message: impl Into<String>) {
        self.notes.push(PolicyError {
            source_name: self.source_name.to_string(),
            location: self.locations.nearest(path),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes `value` (found at `path`) strictly, recording a located error on failure.
    pub(super) fn typed<T: DeserializeOwned>(&mut self, path: &str, value: &Value) -> Option<T> {
        // serde stops at the first error. To report every mistake of one object, record the
        // error, cut the offending field out of a copy, and try again. What is returned after
        // a cut is only used to find further mistakes: the recorded errors fail the load.
        let mut value = std::borrow::Cow::Borrowed(value);
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_ERRORS_PER_OBJECT {
            let e = match serde_path_to_error::deserialize::<_, T>(value.as_ref()) {
                Ok(v) => {
                    self.recovered |= !removed.is_empty();
                    return Some(v);
                }
                Err(e) => e,
            };
            let relative = e.path().to_string();
            let mut at = join(path, &relative);
            let message = crate::document::plain_message(&e.inner().to_string());
            // Point an unknown field's error at the field itself (serde_path_to_error
            // usually names it already; never name it twice).
            if let Some(rest) = message.strip_prefix("unknown field `")
                && let Some(field) = rest.split('`').next()
                && at != field
                && !at.ends_with(&format!(".{field}"))
            {
                at = join(&at, field);
            }
            // A field cut out earlier is not missing a second time.
            if let Some(rest) = message.strip_prefix("missing field `")
                && let Some(field) = rest.split('`').next()
                && removed.contains(&join(&at, field))
            {
                return None;
            }
            self.error(&at, message);
            let segments: Vec<&serde_path_to_error::Segment> = e.path().iter().collect();
            if !remove_at(value.to_mut(), &segments) {
                return None;
            }
            removed.push(at);
        }
        None
    }

    /// Reports a rule (or list) that checks nothing, unless a mistake cut out of the document
    /// may be why it looks empty.
    pub(super) fn checks_nothing(&mut self, path: &str, message: &str) {
        if !self.recovered {
            self.error(path, message);
        }
    }

    pub(super) fn regex(&mut self, path: &str, pattern: &str) -> Option<Regex> {
        match RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason);
                self.error(path, format!("invalid regex {pattern:?}: {reason}"));
                None
            }
        }
    }

    /// Notes each image pattern anchored at neither end: an allow or exempt pattern such as
    /// `registry.corp/` also lets `evil.example/registry.corp/x` through. A pattern anchored at
    /// the end only (`:debug$`) is taken as a deliberate suffix.
    pub(super) fn unanchored_images(&mut self, path: &str, patterns: &[String]) {
        for (i, p) in patterns.iter().enumerate() {
            if !p.starts_with('^') && !p.ends_with('$') {
                self.note(
                    &format!("{path}[{i}]"),
                    format!(
                        "image pattern {p:?} is not anchored: it also matches {:?}; write {:?}",
                        format!("evil.example/{}", p.trim_start_matches(".*")),
                        format!("^{p}")
                    ),
                );
            }
        }
    }

    /// Compiles a list of regexes, naming each bad one. `None` when empty or invalid.
    pub(super) fn regexes(
        &mut self,
        path: &str,
        patterns: &[String],
    ) -> Result<Option<Regexes>, ()> {
        let mut ok = true;
        for (i, p) in patterns.iter().enumerate() {
            ok &= self.regex(&format!("{path}[{i}]"), p).is_some();
        }
        if !ok {
            return Err(());
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        Regexes::new(patterns).map(Some).map_err(|e| {
            self.error(path, format!("regex list too large: {e}"));
        })
    }

    pub(super) fn globs(&mut self, path: &str, patterns: &[String]) -> Result<Option<Globs>, ()> {
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                self.error(&format!("{path}[{i}]"), "empty pattern");
                return Err(());
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        Globs::new(patterns).map(Some).map_err(|e| {
            self.error(path, format!("pattern list too large: {e}"));
        })
    }
}

/// What can be read of a document whose top level failed strict reading (that error is
/// already recorded). Absent or mistyped parts take values that raise no second error.
pub(super) fn lenient_document(value: &Value) -> Option<DocumentRaw> {
    let text =
        |v: Option<&Value>, default: &str| v.and_then(Value::as_str).unwrap_or(default).to_string();
    let top = value.as_object()?;
    Some(DocumentRaw {
        api_version: text(top.get("apiVersion"), document::API_VERSION),
        kind: text(top.get("kind"), document::KIND),
        metadata: document::MetadataRaw {
            name: text(value.pointer("/metadata/name"), "-"),
            labels: Default::default(),
            annotations: Default::default(),
        },
        spec: top.get("spec").cloned().unwrap_or(Value::Null),
    })
}

/// What can be read of a `spec` that failed strict reading (that error is already recorded).
pub(super) fn lenient_spec(value: &Value) -> Option<SpecRaw> {
    let spec = value.as_object()?;
    let part = |key: &str| spec.get(key).filter(|v| !v.is_null()).cloned();
    Some(SpecRaw {
        effect: part("effect").and_then(|v| serde_json::from_value(v).ok()),
        scope: part("scope"),
        pod_security: part("podSecurity"),
        rules: spec.get("rules").and_then(Value::as_object).cloned(),
    })
}
