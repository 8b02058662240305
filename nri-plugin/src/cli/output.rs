//! What `nodeguard check` prints: text for people, JSON for tools, SARIF 2.1.0 for
//! code-scanning dashboards and JUnit XML for CI test reports, all from one [`Report`]; and the
//! helpers every command prints with.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use policy_core::{Effect, Verdict};
use serde_json::{Value, json};

use super::findings::{Finding, Format, ObjectResult, Report, Summary};

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
pub fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Exit status 2 with `message` on standard error: unusable input.
pub(super) fn unusable(message: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("nodeguard: {message}");
    std::process::ExitCode::from(2)
}

/// Renders the report.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Text => render_text(report),
        Format::Sarif => sarif(report),
        Format::Junit => junit(report),
    }
}

/// `container "a"`, or `containers "a", "b", "init"`.
fn containers(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.len() {
        1 => format!("container {}", quoted[0]),
        _ => format!("containers {}", quoted.join(", ")),
    }
}

fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        let warned = r
            .violations
            .iter()
            .any(|v| v.effect != policy_core::Effect::Enforce);
        let label = match r.verdict {
            Verdict::Deny => "FAIL",
            Verdict::Undecided => "UNDECIDED",
            Verdict::Allow if warned => "WARN",
            Verdict::Allow if !r.policy_applies => "NOPOLICY",
            Verdict::Allow => "PASS",
        };
        let _ = writeln!(
            out,
            "{label:<9} {}: {} {}/{}{}",
            r.file,
            r.kind,
            r.namespace,
            r.name,
            if r.policy_applies {
                ""
            } else {
                " (no policy applies: outside the scope of every policy document)"
            }
        );
        for v in &r.violations {
            let _ = writeln!(
                out,
                "          {} {}: {} [{} {}]",
                v.effect,
                containers(&v.containers),
                v.message,
                v.policy,
                v.rule
            );
        }
        for u in &r.undecided {
            let _ = writeln!(
                out,
                "          undecided {}: {} [{} {}]",
                containers(&u.containers),
                u.message,
                u.policy,
                u.rule
            );
        }
    }
    for k in &report.skipped {
        let _ = writeln!(
            out,
            "SKIPPED   {}: {} {} ({})",
            k.file, k.kind, k.name, k.reason
        );
    }
    for e in &report.errors {
        let _ = writeln!(out, "ERROR     {}: {}", e.file, e.message);
    }
    let t = Summary::of(report);
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "{} checked: {} passed, {} failed, {} undecided, {} outside every policy; {} skipped; \
         {} input error{}",
        t.checked,
        t.passed,
        t.failed,
        t.undecided,
        t.outside_every_policy,
        t.skipped,
        t.input_errors,
        plural(t.input_errors)
    );
    if report.results.is_empty() {
        out.push_str(
            "warning: nothing was judged: no pod, workload template or OCI runtime spec found \
             (--fail-if-empty makes this an error)\n",
        );
    }
    out
}

/// The SARIF level of a finding: enforced rules are errors, `warn` warnings, `audit` notes.
fn level(effect: Effect) -> &'static str {
    match effect {
        Effect::Enforce => "error",
        Effect::Warn => "warning",
        _ => "note",
    }
}

fn location(file: &str, line: usize, column: usize) -> Value {
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": file},
            "region": {"startLine": line.max(1), "startColumn": column.max(1)},
        }
    })
}

fn quoted_containers(f: &Finding) -> String {
    let quoted: Vec<String> = f.containers.iter().map(|c| format!("{c:?}")).collect();
    quoted.join(", ")
}

/// The report as one SARIF 2.1.0 log: a rule per policy rule seen, a result per finding (and
/// per input error, rule `input-error`), located at the object's first line.
fn sarif(report: &Report) -> String {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let mut results = Vec::new();
    for r in &report.results {
        let object = format!("{} {}/{}", r.kind, r.namespace, r.name);
        for (f, undecided) in r
            .violations
            .iter()
            .map(|f| (f, false))
            .chain(r.undecided.iter().map(|f| (f, true)))
        {
            rules.entry(f.rule.to_string()).or_insert_with(|| {
                json!({"id": f.rule, "shortDescription": {"text": format!("nodeguard rule {}", f.rule)}})
            });
            results.push(json!({
                "ruleId": f.rule,
                "level": if undecided { "note" } else { level(f.effect) },
                "message": {"text": format!(
                    "{object}, {} {}: {} (policy {})",
                    if f.containers.len() == 1 { "container" } else { "containers" },
                    quoted_containers(f),
                    f.message,
                    f.policy
                )},
                "locations": [location(&r.file, r.line, r.column)],
                "properties": {"policy": f.policy, "effect": f.effect, "undecided": undecided},
            }));
        }
    }
    if !report.errors.is_empty() {
        rules.insert(
            "input-error".into(),
            json!({"id": "input-error", "shortDescription": {"text": "input nodeguard could not judge"}}),
        );
    }
    for e in &report.errors {
        results.push(json!({
            "ruleId": "input-error",
            "level": "error",
            "message": {"text": e.message},
            "locations": [location(&e.file, e.line.unwrap_or(1), 1)],
        }));
    }
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "nodeguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}

/// Escapes text for an XML attribute or element.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn finding_lines(r: &ObjectResult) -> String {
    let mut out = String::new();
    for f in &r.violations {
        let _ = writeln!(
            out,
            "{} {}: {} [{} {}]",
            f.effect,
            quoted_containers(f),
            f.message,
            f.policy,
            f.rule
        );
    }
    for f in &r.undecided {
        let _ = writeln!(
            out,
            "undecided {}: {} [{} {}]",
            quoted_containers(f),
            f.message,
            f.policy,
            f.rule
        );
    }
    out
}

/// The report as JUnit XML: one test case per object (failure: an enforced rule broken;
/// skipped: outside every policy, or undecided), one per skipped object, one error per input
/// that could not be used.
fn junit(report: &Report) -> String {
    let t = Summary::of(report);
    let mut cases = String::new();
    for r in &report.results {
        let name = xml(&format!("{} {}/{}", r.kind, r.namespace, r.name));
        let class = xml(&format!("{}:{}", r.file, r.line));
        let details = xml(&finding_lines(r));
        let _ = write!(cases, "    <testcase classname=\"{class}\" name=\"{name}\"");
        match r.verdict {
            Verdict::Deny => {
                let first = r
                    .violations
                    .iter()
                    .find(|v| v.effect == Effect::Enforce)
                    .map_or(String::new(), |v| v.message.clone());
                let _ = writeln!(
                    cases,
                    ">\n      <failure message=\"{}\" type=\"enforce\">{details}</failure>\n    </testcase>",
                    xml(&first)
                );
            }
            Verdict::Undecided => {
                let _ = writeln!(
                    cases,
                    ">\n      <skipped message=\"an enforced rule could not decide\"/>\n      <system-out>{details}</system-out>\n    </testcase>"
                );
            }
            Verdict::Allow if !r.policy_applies => {
                let _ = writeln!(
                    cases,
                    ">\n      <skipped message=\"no policy applies\"/>\n    </testcase>"
                );
            }
            Verdict::Allow if !details.is_empty() => {
                let _ = writeln!(
                    cases,
                    ">\n      <system-out>{details}</system-out>\n    </testcase>"
                );
            }
            Verdict::Allow => {
                let _ = writeln!(cases, "/>");
            }
        }
    }
    for k in &report.skipped {
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\">\n      <skipped message=\"{}\"/>\n    </testcase>",
            xml(&k.file),
            xml(&format!("{} {}", k.kind, k.name)),
            xml(&k.reason)
        );
    }
    for e in &report.errors {
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"input\">\n      <error message=\"{}\" type=\"input\"/>\n    </testcase>",
            xml(&e.file),
            xml(&e.message)
        );
    }
    let tests = t.checked + t.skipped + t.input_errors;
    let skipped = t.undecided + t.outside_every_policy + t.skipped;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"nodeguard check\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{skipped}\">\n  <testsuite name=\"nodeguard check\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{skipped}\">\n{cases}  </testsuite>\n</testsuites>\n",
        t.failed, t.input_errors, t.failed, t.input_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_control_characters() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\\u0001"
        );
    }
}
