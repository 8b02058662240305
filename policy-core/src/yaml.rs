//! YAML streams read into JSON values, remembering where every node came from.
//!
//! Policy documents and Kubernetes manifests are YAML, but their errors must name a line.
//! serde's YAML deserializers stop at the first error and forget positions once a value is
//! built, so this module reads the YAML event stream itself (with `saphyr-parser`), builds a
//! [`serde_json::Value`] per document and records the position of each node under its field
//! path (`spec.rules.images.allowed[1]`). Typed deserialization and validation then run on the
//! value and look their errors' paths up in [`Locations`].
//!
//! Scalars are typed by the YAML 1.2 core schema (`true`, `null`, `12`, `1.5`; quoted
//! scalars and `!!str` stay strings). Anchors and aliases are resolved; nesting depth and the
//! number of nodes (aliases included) are bounded so hostile input cannot exhaust the stack or
//! memory.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Deepest nesting of collections accepted in a document.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (counting every alias expansion) accepted in one YAML stream.
pub const MAX_NODES: usize = 1_000_000;

/// A position in a source text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// Line number, counted from 1.
    pub line: usize,
    /// Column number, counted from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Location {
    fn of(span: &Span) -> Self {
        Location {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// Where each node of one document stands in the source, by field path.
///
/// Paths use dots between mapping keys and `[i]` for sequence items, as
/// `serde_path_to_error` prints them: `spec.rules.images.allowed[1]`.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    by_path: HashMap<String, Location>,
    start: Location,
}

impl Locations {
    /// The position of the node at `path`, if that node exists.
    pub fn get(&self, path: &str) -> Option<Location> {
        if path.is_empty() || path == "." {
            return Some(self.start);
        }
        self.by_path.get(path).copied()
    }

    /// The position of the node at `path`, or of its nearest existing ancestor (a missing
    /// field is reported where its parent is), or of the document itself.
    pub fn nearest(&self, path: &str) -> Location {
        let mut path = path;
        loop {
            if let Some(location) = self.get(path) {
                return location;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.start,
            }
        }
    }

    /// Where the document begins.
    pub fn start(&self) -> Location {
        self.start
    }
}

/// One document of a YAML stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's content.
    pub value: Value,
    /// Where each of its nodes stands in the source.
    pub locations: Locations,
}

/// A YAML text that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct YamlError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong.
    pub message: String,
}

/// Reads every document of a YAML stream. Empty (null) documents are left out.
///
/// # Errors
/// Syntax errors, duplicate or non-scalar mapping keys, unknown aliases, and input beyond
/// [`MAX_DEPTH`] or [`MAX_NODES`], each with its location.
///
/// ```
/// let docs = policy_core::yaml::parse_documents("a: [1, two]\n---\nb: true\n").unwrap();
/// assert_eq!(docs.len(), 2);
/// assert_eq!(docs[0].value["a"][1], "two");
/// assert_eq!(docs[0].locations.get("a[1]").unwrap().column, 8);
/// ```
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError {
            location: Location {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.documents)
}

/// A collection being built.
enum Frame {
    Sequence {
        path: String,
        items: Vec<Value>,
        anchor: usize,
        nodes_before: usize,
    },
    Mapping {
        path: String,
        map: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
        nodes_before: usize,
    },
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<Frame>,
    root: Option<Value>,
    locations: Locations,
    /// Anchored values with the number of nodes each holds.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    fn error(span: &Span, message: impl Into<String>) -> YamlError {
        YamlError {
            location: Location::of(span),
            message: message.into(),
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(Self::error(
                span,
                format!("document too large: more than {MAX_NODES} nodes (aliases included)"),
            ));
        }
        Ok(())
    }

    /// The path of the node about to start, or `None` if it is a mapping key.
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Sequence { path, items, .. }) => Some(format!("{path}[{}]", items.len())),
            Some(Frame::Mapping {
                path, pending_key, ..
            }) => pending_key.as_ref().map(|key| child_path(path, key)),
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(_) => {
                self.locations = Locations {
                    by_path: HashMap::new(),
                    start: Location::of(&span),
                };
                self.root = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let locations = std::mem::take(&mut self.locations);
                if !value.is_null() {
                    self.documents.push(Document { value, locations });
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, &span)?;
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    plain_scalar(&text)
                } else {
                    Value::String(text.into_owned())
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.node(value, &span)?;
            }
            Event::Alias(id) => {
                let Some((value, size)) = self.anchors.get(&id).cloned() else {
                    return Err(Self::error(&span, "alias to an unknown anchor"));
                };
                self.count(size, &span)?;
                self.node(value, &span)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.count(1, &span)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(Self::error(
                        &span,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let Some(path) = self.next_path() else {
                    return Err(Self::error(&span, "mapping keys must be plain strings"));
                };
                self.locations
                    .by_path
                    .entry(path.clone())
                    .or_insert(Location::of(&span));
                let nodes_before = self.nodes;
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Sequence {
                            path,
                            items: Vec::new(),
                            anchor,
                            nodes_before,
                        }
                    } else {
                        Frame::Mapping {
                            path,
                            map: Map::new(),
                            pending_key: None,
                            anchor,
                            nodes_before,
                        }
                    });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, nodes_before) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        items,
                        anchor,
                        nodes_before,
                        ..
                    }) => (Value::Array(items), anchor, nodes_before),
                    Some(Frame::Mapping {
                        map,
                        anchor,
                        nodes_before,
                        ..
                    }) => (Value::Object(map), anchor, nodes_before),
                    None => return Err(Self::error(&span, "unbalanced collection end")),
                };
                if anchor != 0 {
                    let size = self.nodes - nodes_before + 1;
                    self.anchors.insert(anchor, (value.clone(), size));
                }
                self.attach(value, &span)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Places a finished scalar or alias value, or takes it as a mapping key.
    fn node(&mut self, value: Value, span: &Span) -> Result<(), YamlError> {
        if let Some(Frame::Mapping {
            path,
            map,
            pending_key: pending @ None,
            ..
        }) = self.stack.last_mut()
        {
            let key = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => return Err(Self::error(span, "mapping keys must be plain strings")),
            };
            if map.contains_key(&key) {
                return Err(Self::error(span, format!("duplicate key `{key}`")));
            }
            let key_path = child_path(path, &key);
            self.locations.by_path.insert(key_path, Location::of(span));
            *pending = Some(key);
            return Ok(());
        }
        if let Some(path) = self.next_path() {
            self.locations
                .by_path
                .entry(path)
                .or_insert(Location::of(span));
        }
        self.attach(value, span)
    }

    /// Places a finished value into its parent collection or as the document root.
    fn attach(&mut self, value: Value, span: &Span) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping {
                map, pending_key, ..
            }) => match pending_key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => return Err(Self::error(span, "mapping keys must be plain strings")),
            },
        }
        Ok(())
    }
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        u64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<u64>().ok()?
    } else {
        return None;
    };
    if negative {
        let n = i64::try_from(magnitude).ok()?;
        Some(Number::from(-n))
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_plain_scalars_by_the_core_schema() {
        let docs = parse_documents(
            "a: 1\nb: -2\nc: 1.5\nd: true\ne: null\nf: '1'\ng: yes\nh: 0x1F\ni: 1e3\nj: !!str 5\nk:\n",
        )
        .unwrap();
        assert_eq!(
            docs[0].value,
            json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "1", "g": "yes",
                   "h": 31, "i": 1000.0, "j": "5", "k": null})
        );
    }

    #[test]
    fn records_locations_of_keys_items_and_nested_nodes() {
        let text = "spec:\n  rules:\n    images:\n      allowed:\n        - '^a'\n        - '('\n";
        let docs = parse_documents(text).unwrap();
        let l = &docs[0].locations;
        assert_eq!(l.get("spec.rules.images").unwrap().line, 3);
        assert_eq!(l.get("spec.rules.images.allowed[1]").unwrap().line, 6);
        assert_eq!(l.get("spec.rules.images.allowed[1]").unwrap().column, 11);
        assert_eq!(l.nearest("spec.rules.images.denied[0]").line, 3);
        assert_eq!(l.nearest("nothing.here").line, 1);
    }

    #[test]
    fn splits_streams_and_skips_empty_documents() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n...\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].locations.get("b").unwrap().line, 5);
    }

    #[test]
    fn resolves_aliases() {
        let docs = parse_documents("x: &v [1, 2]\ny: *v\n").unwrap();
        assert_eq!(docs[0].value["y"], json!([1, 2]));
    }

    #[test]
    fn rejects_duplicate_keys_with_their_line() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(err.message.contains("duplicate key `a`"), "{err}");
    }

    #[test]
    fn reports_syntax_errors_with_a_location() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.location.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn bounds_nesting_depth() {
        let text = "[".repeat(MAX_DEPTH + 5);
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("nesting"), "{err}");
    }

    #[test]
    fn bounds_alias_expansion() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("too large"), "{err}");
    }

    #[test]
    fn rejects_complex_keys() {
        assert!(parse_documents("? [a, b]\n: 1\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = parse_documents(&text);
        }

        #[test]
        fn never_panics_on_yamlish_text(text in "[-:\\[\\]{}&*!|>'\" \na-z0-9#?,]{0,120}") {
            let _ = parse_documents(&text);
        }
    }
}
