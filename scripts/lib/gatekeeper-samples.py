"""Judges the gatekeeper-library's own test cases with `nodeguard check`.

Run by scripts/gatekeeper-samples.sh (read its header first): it checks the tools and
finds the library checkout and the nodeguard binary, then runs
    python3 gatekeeper-samples.py LIBRARY_DIR NODEGUARD_BIN

For every kind directory with a gator test suite (suite.yaml: tests of a template and a
constraint, each with cases of an object and assertions), each case is judged with
`nodeguard check --format json --policy <constraint> <object>` and classified:

  agree       Gatekeeper expects violations and nodeguard reports the constraint violated,
              or Gatekeeper expects none and nodeguard reports none for it;
  DISAGREE    the other way round (or nodeguard leaves the constraint undecided);
  not-judged  the case needs what a manifest check cannot see: an UPDATE (or any other
              operation than CREATE, or an oldObject), inventory (data.inventory), an object
              holding no pod (a Namespace, a Service, ...), a workload that gator reviews
              as itself (no expansion), or a constraint nodeguard notes as not judged on the
              node (kind not implemented or never visible to a node, namespaceSelector,
              matches no Pod, ...);
  skipped     the suite, test or case says `skip: true`;
  ERROR       the case or nodeguard's answer could not be read (nodeguard exit status 2).

Needs PyYAML (Debian: python3-yaml). Exit status: 0 no disagreement nor error, 1 otherwise,
2 bad usage.
"""

import collections
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import yaml

# Notes (`note: not judged: <file>:<line>:<col>: <field>: <why>`) that mean the constraint
# as a whole is not judged on the node. Other notes (a parameter ignored, a Rego-only
# `message`) leave it judged.
CONSTRAINT_NOT_JUDGED = re.compile(
    r"not enforced on the node|never applies|cannot be enforced on a node"
    r"|does not act on the node|never a pod on the node"
)
NOTE = re.compile(r"^note: not judged: (?:.*?:\d+:\d+: )?(.*)$")


class CaseError(Exception):
    """A case that cannot be read as gator reads it."""


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_one(path):
    docs = load_docs(path)
    if len(docs) != 1:
        raise CaseError(f"{path} holds {len(docs)} documents; gator wants exactly one")
    if not isinstance(docs[0], dict):
        raise CaseError(f"{path} is not a mapping")
    return docs[0]


def violations_spec(value):
    """An assertion's `violations` as ('yes'|'no'|int); gator defaults to 'yes'."""
    if value is None:
        return "yes"
    if isinstance(value, bool):  # YAML 1.1 reads bare yes/no as booleans
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text in ("yes", "no"):
        return text
    if text.isdigit():
        return int(text)
    raise CaseError(f"assertion violations {value!r} is not yes, no or a number")


def expectation(assertions):
    """What the assertions say of the constraint: (wants, label, message regexes that must
    match some violation). wants is True (violations), False (none) or None (unsaid)."""
    if not assertions:
        # gator refuses a case without assertions; its documented meaning is "no violation".
        return False, "no", []
    labels, regexes, positive, refuses = [], [], False, False
    for a in assertions:
        if not isinstance(a, dict):
            raise CaseError(f"assertion {a!r} is not a mapping")
        v = violations_spec(a.get("violations"))
        msg = a.get("message")
        labels.append(f"{v}" + (f"~/{msg}/" if msg is not None else ""))
        if v == "yes" or (isinstance(v, int) and v > 0):
            positive = True
            if msg is not None:
                regexes.append(str(msg))
        elif msg is None:
            refuses = True
    if positive and refuses:
        raise CaseError("the assertions both want and refuse violations")
    wants = True if positive else (False if refuses else None)
    label = "yes" if wants else ("no" if wants is False else "?")
    if len(labels) > 1 or (labels and labels[0] not in ("yes", "no")):
        label += " (" + ", ".join(labels) + ")"
    return wants, label, regexes


def subject(obj, tmpdir, n):
    """The object gator reviews, as (path to judge or None, kind, reason not judged or None).
    An AdmissionReview is unwrapped: CREATE of request.object is judged; anything else
    (UPDATE, DELETE, an oldObject) is not visible to a manifest check."""
    if obj.get("kind") != "AdmissionReview":
        return None, obj.get("kind") or "?", None
    req = obj.get("request") or {}
    op = req.get("operation") or "CREATE"
    inner = req.get("object")
    reason = None
    if op != "CREATE":
        reason = f"AdmissionReview {op}"
    elif req.get("oldObject"):
        reason = "AdmissionReview with an oldObject"
    if not isinstance(inner, dict):
        return None, "AdmissionReview", reason or "AdmissionReview without an object"
    inner = dict(inner)
    ns = req.get("namespace")
    if ns and not (inner.get("metadata") or {}).get("namespace"):
        inner["metadata"] = dict(inner.get("metadata") or {}, namespace=ns)
    path = os.path.join(tmpdir, f"review-{n}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(inner, f)
    return path, inner.get("kind") or "?", reason


def kind_matches(constraint, api_version, kind):
    """Whether the constraint's match.kinds takes the object's kind (empty: any)."""
    kinds = ((constraint.get("spec") or {}).get("match") or {}).get("kinds") or []
    if not kinds:
        return True
    group = api_version.split("/")[0] if "/" in api_version else ""
    for k in kinds:
        if not isinstance(k, dict):
            continue
        groups = k.get("apiGroups") or ["*"]
        names = k.get("kinds") or ["*"]
        if ("*" in groups or group in groups) and ("*" in names or kind in names):
            return True
    return False


def run_nodeguard(binary, constraint_path, object_path):
    proc = subprocess.run(
        [binary, "check", "--format", "json", "--policy", constraint_path, object_path],
        capture_output=True,
        text=True,
        check=False,
    )
    notes = []
    for line in proc.stderr.splitlines():
        m = NOTE.match(line)
        if m:
            notes.append(m.group(1))
    report = None
    if proc.stdout.strip():
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            report = None
    return proc.returncode, report, notes, proc.stderr


def search(regex, text):
    """Go's regexp.MatchString, as gator applies `message`, for the RE2 syntax Python shares;
    a pattern Python cannot read matches nothing (and is reported as differing)."""
    try:
        return re.search(regex, text) is not None
    except re.error:
        return False


class Row:
    def __init__(self, suite, test, case):
        self.suite, self.test, self.case = suite, test, case
        self.expected, self.got, self.cls, self.detail = "-", "-", None, ""
        self.messages = []
        self.constraint = None


def judge_case(ctx, row, test, constraint, constraint_id, case, tmpdir, n):
    suite_dir = ctx["suite_dir"]
    row.constraint = constraint_id
    if case.get("skip"):
        row.cls, row.detail = "skipped", "case skip: true"
        return
    wants, row.expected, regexes = expectation(case.get("assertions") or [])
    obj_path = os.path.join(suite_dir, case.get("object") or "")
    if not case.get("object"):
        raise CaseError("case has no object")
    obj = load_one(obj_path)
    judged_path, kind, reason = subject(obj, tmpdir, n)
    judged_path = judged_path or obj_path
    if case.get("inventory"):
        reason = reason or "needs inventory (data.inventory)"
    workload = None
    if kind != "Pod" and not test.get("expansion"):
        inner = obj if obj.get("kind") != "AdmissionReview" else obj["request"]["object"]
        if kind_matches(constraint, str(inner.get("apiVersion") or ""), kind):
            workload = f"gator reviews the {kind} itself (the test has no expansion)"
        else:
            workload = f"the constraint does not match a {kind} (the test has no expansion)"

    rc, report, notes, stderr = run_nodeguard(ctx["binary"], ctx["constraint_path"], judged_path)
    whole = [nt for nt in notes if CONSTRAINT_NOT_JUDGED.search(nt)]
    if rc not in (0, 1) or report is None:
        row.got = f"exit {rc}"
        if reason is None:
            row.cls = "ERROR"
            row.detail = (stderr.strip().splitlines() or ["no output"])[-1]
            return
    else:
        found = [
            v
            for r in report.get("results") or []
            for v in r.get("violations") or []
            if v.get("policy") == constraint_id
        ]
        undecided = [
            u
            for r in report.get("results") or []
            for u in r.get("undecided") or []
            if u.get("policy") == constraint_id
        ]
        row.messages = [v.get("message", "") for v in found]
        if found:
            row.got = f"violated ({len(found)})"
        elif undecided:
            row.got = "undecided"
            row.messages = [u.get("message", "") for u in undecided]
        elif not report.get("results") and report.get("skipped"):
            row.got = "no pod"
            reason = reason or "the object holds no pod: " + (
                report["skipped"][0].get("reason") or ""
            )
        else:
            row.got = "none"
    if reason is None and whole:
        reason = "nodeguard: " + whole[0]
    if reason is None and ((constraint.get("spec") or {}).get("match") or {}).get(
        "namespaceSelector"
    ):
        reason = "the constraint uses namespaceSelector"
    if reason is None:
        reason = workload
    if reason is not None:
        row.cls, row.detail = "not-judged", reason
        return
    if wants is None:
        row.cls, row.detail = "not-judged", "the assertions say nothing of the whole count"
        return
    got_violation = row.got.startswith("violated")
    if row.got == "undecided" or wants != got_violation:
        row.cls = "DISAGREE"
        return
    row.cls = "agree"
    if got_violation:
        missing = [rx for rx in regexes if not any(search(rx, m) for m in row.messages)]
        if missing:
            row.detail = "messages differ: no message matches " + ", ".join(
                f"/{rx}/" for rx in missing
            )


def suites(library):
    root = library
    if os.path.isdir(os.path.join(library, "library")):
        root = os.path.join(library, "library")
    found = []
    for group in ("general", "pod-security-policy"):
        found += sorted(glob.glob(os.path.join(root, group, "*", "suite.yaml")))
    return root, found


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    library, binary = argv[1], argv[2]
    root, suite_files = suites(library)
    if not suite_files:
        print(
            f"gatekeeper-samples: no general/*/suite.yaml nor pod-security-policy/*/suite.yaml "
            f"under {library} (or {library}/library): not a gatekeeper-library checkout",
            file=sys.stderr,
        )
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="gatekeeper-samples.") as tmpdir:
        n = 0
        for suite_file in suite_files:
            suite_dir = os.path.dirname(suite_file)
            suite_name = os.path.relpath(suite_dir, root)
            try:
                suite = load_one(suite_file)
            except (CaseError, yaml.YAMLError, OSError) as e:
                row = Row(suite_name, "-", "-")
                row.cls, row.detail = "ERROR", f"suite: {e}"
                rows.append(row)
                report_row(row)
                continue
            for test in suite.get("tests") or []:
                test_name = test.get("name") or "?"
                cases = test.get("cases") or []
                constraint_path = os.path.join(suite_dir, test.get("constraint") or "")
                try:
                    constraint = load_one(constraint_path)
                    constraint_id = "{}/{}".format(
                        constraint.get("kind"), (constraint.get("metadata") or {}).get("name")
                    )
                except (CaseError, yaml.YAMLError, OSError) as e:
                    constraint, constraint_id = None, None
                    constraint_error = str(e)
                for case in cases:
                    n += 1
                    row = Row(suite_name, test_name, case.get("name") or f"#{n}")
                    rows.append(row)
                    if suite.get("skip") or test.get("skip"):
                        row.cls = "skipped"
                        row.detail = "suite skip: true" if suite.get("skip") else "test skip: true"
                    elif constraint is None:
                        row.cls, row.detail = "ERROR", f"constraint: {constraint_error}"
                    else:
                        ctx = {
                            "suite_dir": suite_dir,
                            "binary": binary,
                            "constraint_path": constraint_path,
                        }
                        try:
                            judge_case(ctx, row, test, constraint, constraint_id, case, tmpdir, n)
                        except (CaseError, yaml.YAMLError, OSError) as e:
                            row.cls, row.detail = "ERROR", str(e)
                    report_row(row)
    return summarize(rows)


def report_row(row):
    line = (
        f"{row.cls:<10}  {row.suite}  {row.test}  {row.case}  "
        f"expected={row.expected}  got={row.got}"
    )
    if row.detail:
        line += f"  [{row.detail}]"
    print(line, flush=True)
    if row.cls == "DISAGREE":
        print(f"            constraint: {row.constraint}", flush=True)
        for m in row.messages or ["(nodeguard reports nothing for the constraint)"]:
            print(f"            nodeguard: {m}", flush=True)


def summary_reason(detail):
    """A not-judged reason without the names of one case, to count alike cases together."""
    if detail.startswith("the object holds no pod"):
        return "the object holds no pod"
    detail = re.sub(r"^nodeguard: [\w.\[\]]+: ", "nodeguard: ", detail)
    detail = re.sub(r"^gator reviews the \w+ itself", "gator reviews the workload itself", detail)
    detail = re.sub(r"^the constraint does not match a \w+", "the constraint does not match the workload", detail)
    return re.sub(r'"[^"]*"', '"..."', detail)


def summarize(rows):
    counts = collections.Counter(r.cls for r in rows)
    reasons = collections.Counter(summary_reason(r.detail) for r in rows if r.cls == "not-judged")
    differ = sum(1 for r in rows if r.cls == "agree" and r.detail)
    print()
    print(
        "summary: {} cases: {} agree, {} disagree, {} not judged, {} skipped, {} errors".format(
            len(rows),
            counts["agree"],
            counts["DISAGREE"],
            counts["not-judged"],
            counts["skipped"],
            counts["ERROR"],
        )
    )
    if differ:
        print(f"  of the agreeing cases, {differ} with messages that differ from the assertions'")
    for reason, k in reasons.most_common():
        print(f"  not judged, {k:>3}: {reason}")
    for r in rows:
        if r.cls == "DISAGREE":
            print(f"  DISAGREE: {r.suite} / {r.test} / {r.case}: expected {r.expected}, got {r.got}")
        elif r.cls == "ERROR":
            print(f"  ERROR: {r.suite} / {r.test} / {r.case}: {r.detail}")
    return 1 if counts["DISAGREE"] or counts["ERROR"] else 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the run quietly
    sys.exit(main(sys.argv))
