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
//! scalars and `!!str` stay strings). Anchors and aliases are resolved.
//!
//! Hostile input is bounded by [`Limits`]: nesting depth (the stack), nodes per document, and
//! the **bytes** a document expands to. Node counts alone do not bound memory: an alias to a
//! 1 MiB scalar is one node, and a hundred of them are 100 MiB. So every node is charged what
//! building it costs — a fixed [`NODE_BYTES`] plus its text, its key and its recorded path — and
//! an alias is charged the full cost of the value it copies, so a document's charge is an
//! upper bound of the memory it takes, however its aliases nest. The caller bounds the text
//! itself (a file size cap) before parsing.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput};
use serde_json::{Map, Number, Value};

/// Deepest nesting of collections accepted in a document.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (counting every alias expansion) accepted in one document by default.
pub const MAX_NODES: usize = 1_000_000;
/// What a node is charged beyond its text: its JSON value and its slot in the parent
/// collection (a map entry with its key is about 60 bytes on 64-bit targets), its entry in the
/// location index (about 50) and the allocator's rounding of its strings.
pub const NODE_BYTES: usize = 128;

/// Bounds on what a YAML stream may expand to; beyond them reading stops with an error that
/// names the place where the bound was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of collections.
    pub max_depth: usize,
    /// Most nodes in one document, each alias counted at the size of what it copies.
    pub max_nodes: usize,
    /// Most bytes one document may expand to (see [`NODE_BYTES`]).
    pub max_document_bytes: usize,
    /// Most bytes all the documents of the stream may expand to together (for readers that
    /// keep every document; a reader that handles one document at a time leaves it unbounded).
    pub max_total_bytes: usize,
    /// Yield each item of a top-level `items` list (what `kubectl get -o yaml` prints) as a
    /// document of its own, within the per-document limits, instead of the whole list as one:
    /// a dump of thousands of pods is read one pod at a time. The list's own document then
    /// comes last, with `items` empty.
    pub split_items: bool,
}

impl Limits {
    /// Bounds for policy files, which a node agent keeps in memory under a container memory
    /// limit: 1,000,000 nodes and 48 MiB per document and per stream. A policy is a few KiB;
    /// a `kubectl get constraints -o yaml` of hundreds of constraints is a few MiB.
    pub const POLICY: Limits = Limits {
        max_depth: MAX_DEPTH,
        max_nodes: MAX_NODES,
        max_document_bytes: 48 << 20,
        max_total_bytes: 48 << 20,
        split_items: false,
    };

    /// Bounds for manifests read one document at a time (`nodeguard check`): 1,000,000 nodes
    /// and 256 MiB per document, and per item of a `List`; the stream unbounded.
    pub const MANIFEST: Limits = Limits {
        max_depth: MAX_DEPTH,
        max_nodes: MAX_NODES,
        max_document_bytes: 256 << 20,
        max_total_bytes: usize::MAX,
        split_items: true,
    };
}

impl Limits {
    /// These limits with another bound on each document's expanded bytes.
    pub const fn with_document_bytes(self, max_document_bytes: usize) -> Limits {
        Limits {
            max_document_bytes,
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::POLICY
    }
}

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

    /// The locations of the node at `path` (an item of a `kind: List`, say), as if it were a
    /// document of its own: paths relative to it, and its start as the start.
    pub fn within(&self, path: &str) -> Locations {
        let prefix = format!("{path}.");
        Locations {
            by_path: self
                .by_path
                .iter()
                .filter_map(|(p, l)| p.strip_prefix(&prefix).map(|rest| (rest.to_string(), *l)))
                .collect(),
            start: self.nearest(path),
        }
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

/// Reads every document of a YAML stream within [`Limits::POLICY`]. Empty (null) documents
/// are left out.
///
/// # Errors
/// Syntax errors, duplicate or non-scalar mapping keys, unknown aliases, and input beyond the
/// limits, each with its location.
///
/// ```
/// let docs = policy_core::yaml::parse_documents("a: [1, two]\n---\nb: true\n").unwrap();
/// assert_eq!(docs.len(), 2);
/// assert_eq!(docs[0].value["a"][1], "two");
/// assert_eq!(docs[0].locations.get("a[1]").unwrap().column, 8);
/// ```
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    parse_documents_with(text, Limits::POLICY)
}

/// Reads every document of a YAML stream within `limits`; the first error ends the reading.
///
/// # Errors
/// As [`parse_documents`].
pub fn parse_documents_with(text: &str, limits: Limits) -> Result<Vec<Document>, YamlError> {
    Documents::new(text, limits).collect()
}

/// The documents of a YAML stream, one at a time, so a reader that handles each in turn never
/// holds more than one (`nodeguard check` on a `kubectl get -A -o yaml` dump).
///
/// A document over the per-document limits yields its error and the reading goes on with the
/// next document; any other error (YAML syntax, the stream's total) ends the stream.
///
/// ```
/// use policy_core::yaml::{Documents, Limits};
/// let limits = Limits { max_nodes: 3, ..Limits::MANIFEST };
/// let results: Vec<_> = Documents::new("a: 1\n---\nb: [1, 2, 3]\n---\nc: 3\n", limits).collect();
/// assert!(results[0].is_ok());
/// assert!(results[1].as_ref().unwrap_err().message.contains("more than 3 nodes"));
/// assert_eq!(results[2].as_ref().unwrap().value["c"], 3);
/// ```
pub struct Documents<'a> {
    parser: Parser<'a, StrInput<'a>>,
    builder: Builder,
    done: bool,
}

impl fmt::Debug for Documents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Documents")
            .field("limits", &self.builder.limits)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The error the YAML reader gives a quoted scalar whose continuation lines are indented less
/// than its mapping (as in the gatekeeper-library's own templates), which Go's and libyaml's
/// readers accept.
pub const QUOTED_INDENTATION: &str = "invalid indentation in quoted scalar";

/// `text` with the quoted scalar that starts at `at` given continuation lines indented past
/// its opening quote; `None` when no quoted scalar starts there or it does not end. The
/// scalar's value is the same: a flow scalar folds its line breaks and drops the leading
/// white space of each continuation line. Only columns on those lines move.
pub fn reindent_quoted(text: &str, at: Location) -> Option<String> {
    let line_start = text
        .split_inclusive('\n')
        .take(at.line.checked_sub(1)?)
        .map(str::len)
        .sum::<usize>();
    let line = &text[line_start..];
    let (offset, quote) = line.char_indices().nth(at.column.checked_sub(1)?)?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let start = line_start + offset;
    let body = &text[start + 1..];
    let mut end = None;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            ('"', '\\') => {
                chars.next();
            }
            ('\'', '\'') if chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            (q, c) if c == q => {
                end = Some(start + 1 + i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    // Padding every continuation line costs the quote's column each: a text built to make
    // that grow beyond its own size is left as the error it is.
    let lines = text[start..end].bytes().filter(|b| *b == b'\n').count();
    if at.column.saturating_mul(lines) > text.len() + (64 << 10) {
        return None;
    }
    let pad = " ".repeat(at.column);
    let mut out = String::with_capacity(text.len() + pad.len() * 8);
    out.push_str(&text[..start]);
    for (n, piece) in text[start..end].split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(piece);
    }
    out.push_str(&text[end..]);
    Some(out)
}

/// Every document of `text`, read within `limits` after `spent` expanded bytes (see
/// [`Documents::after`]), tolerating quoted scalars indented under their key as other YAML
/// readers do ([`reindent_quoted`], sixteen times at most: each costs a whole read); with the expanded bytes after
/// reading.
///
/// # Errors
/// The first error of the text (after the tolerated ones).
pub fn read_all(
    text: &str,
    limits: Limits,
    spent: usize,
) -> (Result<Vec<Document>, YamlError>, usize) {
    const MOST_FIXES: usize = 16;
    let mut fixed: Option<String> = None;
    for _ in 0..=MOST_FIXES {
        let current = fixed.as_deref().unwrap_or(text);
        let mut stream = Documents::new(current, limits).after(spent);
        let docs: Result<Vec<Document>, YamlError> = stream.by_ref().collect();
        let expanded = stream.expanded_bytes();
        match docs {
            Err(e) if e.message.contains(QUOTED_INDENTATION) => {
                match reindent_quoted(current, e.location) {
                    Some(next) => fixed = Some(next),
                    None => return (Err(e), expanded),
                }
            }
            other => return (other, expanded),
        }
    }
    let mut stream = Documents::new(fixed.as_deref().unwrap_or(text), limits).after(spent);
    let docs = stream.by_ref().collect();
    (docs, stream.expanded_bytes())
}

impl<'a> Documents<'a> {
    /// The documents of `text`, read within `limits`.
    pub fn new(text: &'a str, limits: Limits) -> Self {
        Documents {
            parser: Parser::new_from_str(text),
            builder: Builder::new(limits),
            done: false,
        }
    }
}

impl Documents<'_> {
    /// Continues a budget: counts `expanded_bytes` as already spent on earlier streams toward
    /// [`Limits::max_total_bytes`] (the files of one policy share one budget).
    #[must_use]
    pub fn after(mut self, expanded_bytes: usize) -> Self {
        self.builder.total_bytes = expanded_bytes;
        self
    }

    /// What the documents read so far expanded to, in bytes (see [`NODE_BYTES`]), with what
    /// [`Documents::after`] counted as spent before.
    pub fn expanded_bytes(&self) -> usize {
        self.builder.total_bytes
    }
}

impl Iterator for Documents<'_> {
    type Item = Result<Document, YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(event) = self.parser.next() else {
                self.done = true;
                break;
            };
            let (event, span) = match event {
                Ok(event) => event,
                Err(e) => {
                    self.done = true;
                    return Some(Err(YamlError {
                        location: Location {
                            line: e.marker().line(),
                            column: e.marker().col() + 1,
                        },
                        message: e.info().to_string(),
                    }));
                }
            };
            match self.builder.event(event, span) {
                Ok(Some(document)) => return Some(Ok(document)),
                Ok(None) => {}
                Err(Failure::Document(e)) => {
                    // The rest of this document is skipped, the next one read.
                    self.builder.skip_document();
                    return Some(Err(e));
                }
                Err(Failure::Stream(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// A collection being built.
enum Frame {
    Sequence {
        path: String,
        items: Vec<Value>,
        /// Items already handed out as documents of their own (`Limits::split_items`).
        emitted: usize,
        anchor: usize,
        cost_before: Cost,
    },
    Mapping {
        path: String,
        map: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
        cost_before: Cost,
    },
}

/// What a document has cost so far, or what an anchored value costs each time it is copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

impl Cost {
    fn node(text_bytes: usize) -> Self {
        Cost {
            nodes: 1,
            bytes: NODE_BYTES.saturating_add(text_bytes),
        }
    }

    fn since(self, before: Cost) -> Cost {
        Cost {
            nodes: self.nodes - before.nodes,
            bytes: self.bytes - before.bytes,
        }
    }
}

/// Why building stopped: a document over its limits (the next may be read), or the stream.
enum Failure {
    Document(YamlError),
    Stream(YamlError),
}

impl From<YamlError> for Failure {
    fn from(e: YamlError) -> Self {
        Failure::Stream(e)
    }
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    root: Option<Value>,
    locations: Locations,
    /// Anchored values with what each copy of them costs.
    anchors: HashMap<usize, (Value, Cost)>,
    /// What the current document has cost.
    cost: Cost,
    /// What the documents already read have cost together.
    total_bytes: usize,
    /// The current document broke a limit: its remaining events are ignored.
    skipping: bool,
    /// An item of a top-level `items` list being read as a document of its own: the list
    /// document's locations and its cost when the item began.
    item: Option<(Locations, Cost)>,
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            root: None,
            locations: Locations::default(),
            anchors: HashMap::new(),
            cost: Cost::default(),
            total_bytes: 0,
            skipping: false,
            item: None,
        }
    }

    /// Whether the node about to start (or just finished) is an item of the document's
    /// top-level `items` list, to be read on its own.
    fn at_split_item(&self) -> bool {
        self.limits.split_items
            && self.stack.len() == 2
            && matches!(&self.stack[0], Frame::Mapping { path, .. } if path.is_empty())
            && matches!(&self.stack[1], Frame::Sequence { path, .. } if path == "items")
    }

    fn error(span: &Span, message: impl Into<String>) -> YamlError {
        YamlError {
            location: Location::of(span),
            message: message.into(),
        }
    }

    /// Drops what was built of the current document and ignores its remaining events.
    fn skip_document(&mut self) {
        self.stack.clear();
        self.root = None;
        self.anchors.clear();
        self.locations = Locations::default();
        self.item = None;
        self.skipping = true;
    }

    /// Charges `cost` to the document, failing when it goes over a limit.
    fn charge(&mut self, cost: Cost, span: &Span) -> Result<(), Failure> {
        self.cost.nodes = self.cost.nodes.saturating_add(cost.nodes);
        self.cost.bytes = self.cost.bytes.saturating_add(cost.bytes);
        let limits = self.limits;
        if self.cost.nodes > limits.max_nodes {
            return Err(Failure::Document(Self::error(
                span,
                format!(
                    "document too large: more than {} nodes (each alias counted at the size of what it repeats)",
                    limits.max_nodes
                ),
            )));
        }
        if self.cost.bytes > limits.max_document_bytes {
            return Err(Failure::Document(Self::error(
                span,
                format!(
                    "document too large: it expands to more than {} (each alias counted at the size of what it repeats)",
                    human_bytes(limits.max_document_bytes)
                ),
            )));
        }
        if self.total_bytes.saturating_add(self.cost.bytes) > limits.max_total_bytes {
            return Err(Failure::Stream(Self::error(
                span,
                format!(
                    "input too large: its documents expand to more than {} together",
                    human_bytes(limits.max_total_bytes)
                ),
            )));
        }
        Ok(())
    }

    /// Keeps a copy of an anchored value for its aliases, charging the copy.
    fn keep_anchor(
        &mut self,
        anchor: usize,
        value: &Value,
        cost: Cost,
        span: &Span,
    ) -> Result<(), Failure> {
        self.charge(
            Cost {
                nodes: 0,
                bytes: cost.bytes,
            },
            span,
        )?;
        self.anchors.insert(anchor, (value.clone(), cost));
        Ok(())
    }

    /// Records where the node at `path` starts, charging the path's bytes.
    fn locate(&mut self, path: String, span: &Span) -> Result<(), Failure> {
        let bytes = path.len();
        if let std::collections::hash_map::Entry::Vacant(entry) = self.locations.by_path.entry(path)
        {
            entry.insert(Location::of(span));
            self.charge(Cost { nodes: 0, bytes }, span)?;
        }
        Ok(())
    }

    /// The path of the node about to start, or `None` if it is a mapping key.
    fn next_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Sequence {
                path,
                items,
                emitted,
                ..
            }) => Some(format!("{path}[{}]", items.len() + emitted)),
            Some(Frame::Mapping {
                path, pending_key, ..
            }) => pending_key.as_ref().map(|key| child_path(path, key)),
        }
    }

    /// Takes one parser event; returns a document when one is complete and not empty.
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<Option<Document>, Failure> {
        if self.skipping && !matches!(event, Event::DocumentEnd | Event::DocumentStart(_)) {
            return Ok(None);
        }
        match event {
            Event::DocumentStart(_) => {
                self.locations = Locations {
                    by_path: HashMap::new(),
                    start: Location::of(&span),
                };
                self.root = None;
                self.anchors.clear();
                self.cost = Cost::default();
                self.skipping = false;
            }
            Event::DocumentEnd => {
                let value = self.root.take().unwrap_or(Value::Null);
                let locations = std::mem::take(&mut self.locations);
                self.anchors.clear();
                if self.skipping {
                    self.skipping = false;
                    return Ok(None);
                }
                self.total_bytes = self.total_bytes.saturating_add(self.cost.bytes);
                if !value.is_null() {
                    return Ok(Some(Document { value, locations }));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let cost = Cost::node(text.len());
                self.charge(cost, &span)?;
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    plain_scalar(&text)
                } else {
                    Value::String(text.into_owned())
                };
                if anchor != 0 {
                    self.keep_anchor(anchor, &value, cost, &span)?;
                }
                self.node(value, &span)?;
            }
            Event::Alias(id) => {
                let Some(cost) = self.anchors.get(&id).map(|(_, cost)| *cost) else {
                    return Err(Self::error(&span, "alias to an unknown anchor").into());
                };
                // Charged before the copy is made: a copy over the limits is never built.
                self.charge(cost, &span)?;
                let value = self.anchors[&id].0.clone();
                self.node(value, &span)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.at_split_item() {
                    let outer = std::mem::replace(
                        &mut self.locations,
                        Locations {
                            by_path: HashMap::new(),
                            start: Location::of(&span),
                        },
                    );
                    self.item = Some((outer, self.cost));
                }
                let cost_before = self.cost;
                self.charge(Cost::node(0), &span)?;
                if self.stack.len() >= self.limits.max_depth {
                    return Err(Failure::Document(Self::error(
                        &span,
                        format!("nesting deeper than {} levels", self.limits.max_depth),
                    )));
                }
                let Some(path) = self.next_path() else {
                    return Err(Self::error(&span, "mapping keys must be plain strings").into());
                };
                self.locate(path.clone(), &span)?;
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Sequence {
                            path,
                            items: Vec::new(),
                            emitted: 0,
                            anchor,
                            cost_before,
                        }
                    } else {
                        Frame::Mapping {
                            path,
                            map: Map::new(),
                            pending_key: None,
                            anchor,
                            cost_before,
                        }
                    });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, cost_before) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        items,
                        anchor,
                        cost_before,
                        ..
                    }) => (Value::Array(items), anchor, cost_before),
                    Some(Frame::Mapping {
                        map,
                        anchor,
                        cost_before,
                        ..
                    }) => (Value::Object(map), anchor, cost_before),
                    None => return Err(Self::error(&span, "unbalanced collection end").into()),
                };
                if anchor != 0 {
                    let cost = self.cost.since(cost_before);
                    self.keep_anchor(anchor, &value, cost, &span)?;
                }
                if self.at_split_item()
                    && let Some((outer, before)) = self.item.take()
                {
                    return Ok(Some(self.emit_item(value, outer, before)));
                }
                self.attach(value, &span)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(None)
    }

    /// Hands out a finished item of the top-level `items` list as a document: its locations
    /// relative to it, its cost taken off the list's (each item has the per-document limits).
    fn emit_item(&mut self, value: Value, outer: Locations, before: Cost) -> Document {
        let item_locations = std::mem::replace(&mut self.locations, outer);
        let index = match self.stack.last_mut() {
            Some(Frame::Sequence { items, emitted, .. }) => {
                *emitted += 1;
                items.len() + *emitted - 1
            }
            _ => 0,
        };
        let prefix = format!("items[{index}]");
        let start = item_locations.get(&prefix).unwrap_or(item_locations.start);
        let nested = format!("{prefix}.");
        let by_path = item_locations
            .by_path
            .into_iter()
            .filter_map(|(path, at)| {
                path.strip_prefix(&nested)
                    .map(|rest| (rest.to_string(), at))
            })
            .collect();
        let cost = self.cost.since(before);
        self.cost = before;
        self.total_bytes = self.total_bytes.saturating_add(cost.bytes);
        // The list keeps where the item was, for messages about the list itself.
        self.locations.by_path.entry(prefix).or_insert(start);
        Document {
            value,
            locations: Locations { by_path, start },
        }
    }

    /// Places a finished scalar or alias value, or takes it as a mapping key.
    fn node(&mut self, value: Value, span: &Span) -> Result<(), Failure> {
        if let Some(Frame::Mapping {
            path,
            map,
            pending_key: None,
            ..
        }) = self.stack.last()
        {
            let key = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => return Err(Self::error(span, "mapping keys must be plain strings").into()),
            };
            if map.contains_key(&key) {
                return Err(Self::error(span, format!("duplicate key `{key}`")).into());
            }
            // kubectl's YAML 1.1 merges `<<: *anchor` into the mapping; read as a plain key it
            // would drop what the author meant in silence.
            if key == "<<" {
                return Err(Self::error(
                    span,
                    "YAML merge keys (`<<`) are not supported: write the merged mapping out",
                )
                .into());
            }
            let key_path = child_path(path, &key);
            self.locate(key_path, span)?;
            if let Some(Frame::Mapping { pending_key, .. }) = self.stack.last_mut() {
                *pending_key = Some(key);
            }
            return Ok(());
        }
        if let Some(path) = self.next_path() {
            self.locate(path, span)?;
        }
        Ok(self.attach(value, span)?)
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

/// `1 MiB`, `48 MiB`, `512 KiB`, `100 bytes`.
fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
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
    fn a_quoted_scalar_indented_under_its_key_reads_once_reindented() {
        let text = "spec:\n  properties:\n    d:\n      description: \"When set the TLS {} is optional, defaults\n      to false.\"\n      type: string\n";
        let err = parse_documents(text).unwrap_err();
        assert!(err.message.contains(QUOTED_INDENTATION), "{err}");
        let fixed = reindent_quoted(text, err.location).expect("a quoted scalar there");
        let docs = parse_documents(&fixed).unwrap();
        assert_eq!(
            docs[0].value["spec"]["properties"]["d"]["description"],
            json!("When set the TLS {} is optional, defaults to false.")
        );
        assert_eq!(
            docs[0]
                .locations
                .get("spec.properties.d.type")
                .unwrap()
                .line,
            6
        );
        // Not a quoted scalar, or one that never ends: nothing to do.
        assert_eq!(
            reindent_quoted("a: b\n", Location { line: 1, column: 4 }),
            None
        );
        assert_eq!(
            reindent_quoted("a: \"b\n", Location { line: 1, column: 4 }),
            None
        );
        // A scalar far to the right over many lines would grow the text past its own size:
        // not re-indented.
        let wide = format!(
            "[{}\"a\n{}b\"]\n",
            "x, ".repeat(30_000),
            "c\n".repeat(30_000)
        );
        assert_eq!(
            reindent_quoted(
                &wide,
                Location {
                    line: 1,
                    column: 90_002
                }
            ),
            None
        );
        // Escapes and doubled quotes do not end it.
        let single = "a:\n  b: 'it''s\n  long'\n";
        let fixed = reindent_quoted(single, Location { line: 2, column: 6 }).unwrap();
        assert_eq!(
            parse_documents(&fixed).unwrap()[0].value["a"]["b"],
            json!("it's long")
        );
    }

    #[test]
    fn rejects_merge_keys_rather_than_misread_them() {
        let err = parse_documents("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n").unwrap_err();
        assert_eq!(err.location.line, 3);
        assert!(err.message.contains("merge keys"), "{err}");
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

    /// A 1 MiB scalar aliased `n` times, as in the report that took the daemon down.
    fn long_scalar_bomb(n: usize) -> String {
        let mut text = format!("a: &big '{}'\nb: [", "x".repeat(1 << 20));
        for i in 0..n {
            text.push_str(if i == 0 { "*big" } else { ", *big" });
        }
        text.push_str("]\n");
        text
    }

    #[test]
    fn an_alias_is_charged_the_bytes_it_repeats() {
        // One copy of 1 MiB is fine; the 48th is over the 48 MiB of a policy.
        assert!(parse_documents(&long_scalar_bomb(1)).is_ok());
        let text = long_scalar_bomb(100);
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("expands to more than 48 MiB"), "{err}");
        // Located at the alias that crossed the bound, on line 2, not at the document.
        assert_eq!(err.location.line, 2);
        assert!(err.location.column > 40, "{err}");
    }

    #[test]
    fn nested_aliases_are_charged_their_full_expansion() {
        // 10 KiB, copied 10 times per level: 100 KiB, 1 MiB, 10 MiB, 100 MiB.
        let mut text = format!("l0: &l0 '{}'\n", "y".repeat(10 << 10));
        for level in 1..5 {
            let prev = format!("*l{}", level - 1);
            let items = vec![prev; 10].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err}");
        assert_eq!(err.location.line, 5, "{err}");
        // Three levels (1 MiB) are fine.
        let three: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        assert!(parse_documents(&three).is_ok());
    }

    #[test]
    fn many_references_to_a_small_anchor_are_bounded_by_nodes() {
        let limits = Limits {
            max_nodes: 1_000,
            ..Limits::POLICY
        };
        let refs = vec!["*v"; 2_000].join(", ");
        let text = format!("v: &v 1\nrefs: [{refs}]\n");
        let err = parse_documents_with(&text, limits).unwrap_err();
        assert!(err.message.contains("more than 1000 nodes"), "{err}");
    }

    #[test]
    fn limits_are_per_document_and_the_total_per_stream() {
        let doc = format!("a: '{}'\n", "z".repeat(600));
        let per_doc = Limits {
            max_document_bytes: 1_000,
            max_total_bytes: usize::MAX,
            ..Limits::POLICY
        };
        // Each document is within its own bound, however many there are.
        let stream = vec![doc.clone(); 50].join("---\n");
        assert_eq!(parse_documents_with(&stream, per_doc).unwrap().len(), 50);
        // Together they may not exceed the stream's.
        let total = Limits {
            max_total_bytes: 5_000,
            ..per_doc
        };
        let err = parse_documents_with(&stream, total).unwrap_err();
        assert!(err.message.contains("together"), "{err}");
    }

    #[test]
    fn a_document_over_its_limits_is_skipped_and_the_next_read() {
        let text = format!("{}---\nnext: 1\n", long_scalar_bomb(60));
        let results: Vec<_> =
            Documents::new(&text, Limits::MANIFEST.with_document_bytes(1 << 24)).collect();
        assert_eq!(results.len(), 2, "{results:?}");
        assert!(results[0].is_err());
        let next = results[1].as_ref().unwrap();
        assert_eq!(next.value["next"], 1);
        assert_eq!(next.locations.get("next").unwrap().line, 4);
    }

    #[test]
    fn list_items_are_read_one_at_a_time_within_their_own_limits() {
        // What `kubectl get pods -o yaml` prints: items before kind.
        let item = |i: usize| {
            format!(
                "- kind: Pod\n  metadata: {{name: p{i}}}\n  spec: {{containers: [{{name: a, image: x}}]}}\n"
            )
        };
        let items: String = (0..3).map(item).collect();
        let text = format!("apiVersion: v1\nitems:\n{items}kind: List\nmetadata: {{}}\n");
        // Each item is 16 nodes (with the list around it, 21), the whole list some 55: read as
        // one it would fail.
        let limits = Limits {
            max_nodes: 30,
            ..Limits::MANIFEST
        };
        let whole = Documents::new(
            &text,
            Limits {
                split_items: false,
                ..limits
            },
        )
        .collect::<Result<Vec<_>, _>>();
        assert!(whole.is_err());
        let docs: Vec<Document> = Documents::new(&text, limits)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(docs.len(), 4, "three items, then the list");
        for (i, doc) in docs[..3].iter().enumerate() {
            assert_eq!(doc.value["metadata"]["name"], format!("p{i}"));
            // Locations are the item's own, at the item's lines.
            assert_eq!(doc.locations.start().line, 3 + 3 * i);
            assert_eq!(
                doc.locations.get("spec.containers[0]").unwrap().line,
                5 + 3 * i
            );
        }
        assert_eq!(docs[3].value["kind"], "List");
        assert_eq!(docs[3].value["items"], json!([]));
        // Only a top-level items list is split.
        let nested = "spec:\n  items: [{a: 1}, {b: 2}]\n";
        let docs: Vec<Document> = Documents::new(nested, Limits::MANIFEST)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].value["spec"]["items"], json!([{"a": 1}, {"b": 2}]));
    }

    #[test]
    fn a_syntax_error_ends_the_stream() {
        let results: Vec<_> = Documents::new("a: [1\n---\nb: 2\n", Limits::MANIFEST).collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
    }

    #[test]
    fn long_paths_are_charged() {
        // A long key nested deep makes every path long, without aliases.
        let key = "k".repeat(1_000);
        let mut text = String::new();
        for depth in 0..50 {
            text.push_str(&format!("{}{key}{depth}:\n", "  ".repeat(depth)));
        }
        text.push_str(&format!("{}- 1\n", "  ".repeat(50)).repeat(2_000));
        let err = parse_documents_with(
            &text,
            Limits {
                max_document_bytes: 16 << 20,
                ..Limits::POLICY
            },
        )
        .unwrap_err();
        assert!(err.message.contains("expands to more than 16 MiB"), "{err}");
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
