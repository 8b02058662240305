//! The architecture as the tree shows it, checked: in `nri-plugin`, each layer imports only the
//! layers below it (docs/adr/0014-nri-plugin-layers.md); in `nri-plugin`, `policy-core` and
//! `nodeguard-views`, no module imports one that imports it back; and the two pure crates do
//! no I/O and know nothing of async.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module of `nri-plugin` may import from the crate, besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "daemon",
        &[
            "cluster",
            "nri",
            "compliance",
            "enforce",
            "runtime",
            "ops",
            "cli",
        ],
    ),
    ("cluster", &["compliance", "ops"]),
    ("nri", &["enforce", "ops"]),
    ("compliance", &["enforce", "runtime", "ops"]),
    ("enforce", &["runtime", "ops"]),
    ("runtime", &[]),
    ("ops", &[]),
    ("cli", &["compliance", "ops"]),
];

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

/// The `.rs` files under `dir`, by module path (`nri/transport/mux`, `ops`, `lib`).
fn modules(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().into_owned();
                if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_string();
                }
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The code of a file without comments (doc links name modules without importing them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules of `known` that `module`'s code names: through `crate::`, through `super::`
/// (the parent, or a sibling), and its own child modules by name (`use child::Item`).
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    // A module's unit tests (`use super::*`) are not part of its place in the layering.
    let code = code(text);
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    let parent = module.rsplit_once('/').map_or("", |(p, _)| p);
    // Child modules are named relative to this one (`lib` and `main` are the crate root).
    let here = if module == "lib" || module == "main" {
        String::new()
    } else {
        module.to_string()
    };
    let children: Vec<(String, String)> = known
        .iter()
        .filter_map(|m| {
            let rest = if here.is_empty() {
                Some(m.as_str())
            } else {
                m.strip_prefix(&format!("{here}/"))
            }?;
            (!rest.contains('/')).then(|| (format!("{rest}::"), here.clone()))
        })
        .collect();
    let mut prefixes = vec![
        ("crate::".to_string(), String::new()),
        ("super::".to_string(), parent.to_string()),
    ];
    prefixes.extend(children);
    for (prefix, base) in prefixes {
        for (at, _) in code.match_indices(prefix.as_str()) {
            // `child::` only at the start of a path, not inside `crate::x::child::`.
            let before = code[..at].chars().next_back();
            if !prefix.starts_with("crate")
                && !prefix.starts_with("super")
                && matches!(before, Some(c) if c == ':' || c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = if prefix.starts_with("crate") || prefix.starts_with("super") {
                path[prefix.len()..].to_string()
            } else {
                path
            };
            let mut target = base.clone();
            let mut best = (!base.is_empty() && known.contains(&base)).then(|| base.clone());
            for part in path.split("::").filter(|p| !p.is_empty()) {
                target = if target.is_empty() {
                    part.to_string()
                } else {
                    format!("{target}/{part}")
                };
                if known.contains(&target) {
                    best = Some(target.clone());
                }
            }
            if let Some(target) = best
                && target != module
            {
                found.insert(target);
            }
        }
    }
    found
}

/// The import graph of a crate's modules.
fn graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = modules(dir);
    let known: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(m, text)| (m.clone(), imports(m, text, &known)))
        .collect()
}

/// A cycle in `graph`, if any (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// The top-level module of a module path (`nri` for `nri/transport/mux`).
fn layer(module: &str) -> &str {
    module.split('/').next().unwrap_or(module)
}

#[test]
fn nri_plugin_layers_import_only_downward() {
    let graph = graph(&crate_dir("nri-plugin"));
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        let from = layer(module);
        if from == "lib" || from == "main" {
            continue;
        }
        let Some(may) = allowed.get(from) else {
            wrong.push(format!("{module}: a layer the architecture does not name"));
            continue;
        };
        for target in targets {
            let to = layer(target);
            if to != from && !may.contains(&to) {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for krate in ["nri-plugin", "policy-core", "views"] {
        let graph = graph(&crate_dir(krate));
        assert!(graph.len() > 3, "{krate}: modules found");
        if let Some(cycle) = cycle(&graph) {
            panic!("{krate}: import circle {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_pure_crates_do_no_io_and_no_async() {
    for krate in ["policy-core", "views"] {
        for (module, text) in modules(&crate_dir(krate)) {
            let code = code(&text);
            // Tests may read fixtures; the code they test may not.
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for banned in [
                "std::fs",
                "std::net",
                "std::process",
                "tokio",
                "async fn",
                ".await",
            ] {
                assert!(
                    !code.contains(banned),
                    "{krate}/{module} uses {banned}: the crate is pure"
                );
            }
        }
    }
}

#[test]
fn the_checker_sees_imports_and_circles() {
    let known: BTreeSet<String> = ["a", "b", "b/c"].iter().map(|s| s.to_string()).collect();
    let found = imports(
        "a",
        "use crate::b::c::Thing;\n// crate::b in a comment\n",
        &known,
    );
    assert_eq!(found, BTreeSet::from(["b/c".to_string()]));
    let found = imports("b/c", "use super::Thing;", &known);
    assert_eq!(found, BTreeSet::from(["b".to_string()]));
    let found = imports("b", "mod c;\nuse c::Thing;\nuse crate::a::c::X;", &known);
    assert_eq!(found, BTreeSet::from(["b/c".to_string(), "a".to_string()]));
    let circle: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert!(cycle(&circle).is_some());
}
