#!/usr/bin/env python3
"""Checks what the install/ tree renders, so its security settings cannot regress silently.

Usage: check_manifests.py --repo DIR --nodeguard BIN [--kind-workloads FILE] OVERLAY=RENDERED.yaml ...

Each RENDERED.yaml is the output of `kustomize build install/kubernetes/overlays/OVERLAY`.
For every overlay it asserts the DaemonSet's security context, host paths, mounts, environment,
arguments, probes, resources, scheduling and policy ConfigMap; then, with the nodeguard
binary, that the sample policies allow the cluster's own workloads
(install/tests/workloads/allowed), refuse the others (.../refused), refuse nothing in
audit, and allow nodeguard's own DaemonSet; and that they judge the Deployments of
install/kind/e2e.sh (`--print-workloads`) as its scenarios expect. Prints every failure,
exits 1 if any.
Needs only PyYAML (Debian: python3-yaml).
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys

import yaml

NAMESPACE = "nodeguard-system"

# The measured peak resident memory of `nodeguard serve` (docs/install.md, "Resources").
MEASURED_PEAK_RSS_MIB = 10.1

# Every host path the pod may mount: path -> (hostPath type, mount path, read-only,
# mount propagation). Nothing else: no /, no /var/lib, no /etc, no /proc, no /dev.
# /var/lib/nodeguard holds the compliance report and the state file, which must outlive the
# pod (the next nodeguard reads the state file to name containers started while it was away).
HOST_PATHS = {
    "/var/run/nri": ("Directory", "/var/run/nri", True, None),
    "/run/containerd": ("Directory", "/run/containerd", True, "HostToContainer"),
    "/var/log/nodeguard": ("DirectoryOrCreate", "/var/log/nodeguard", False, None),
    "/var/lib/nodeguard": ("DirectoryOrCreate", "/var/lib/nodeguard", False, None),
    # Read-only at its own path: the kubelet's subPath bind mounts show in nodeguard's mount
    # table, so that a hostPath reached through a subPath is judged as that host path.
    "/var/lib/kubelet": ("Directory", "/var/lib/kubelet", True, "HostToContainer"),
}
NEVER_MOUNTED = ("/", "/var/lib", "/etc", "/proc", "/sys", "/dev", "/root", "/home", "/boot", "/usr")
# Directories inside a NEVER_MOUNTED one that are allowed, and only these: nodeguard's own, and
# the kubelet's (read-only, for its subPath mounts).
OWN_DIRECTORIES = {"/var/lib/nodeguard", "/var/lib/kubelet"}

POLICY_MOUNT = "/etc/nodeguard/policy"
POLICY_FILES = ("baseline.yaml", "restricted.yaml")

ARGS = [
    "serve",
    "--policy", POLICY_MOUNT,
    "--nri-socket", "/var/run/nri/nri.sock",
    "--containerd-socket", "/run/containerd/containerd.sock",
    "--audit-log", "/var/log/nodeguard/audit.jsonl",
    "--log-format", "json",
    "--metrics-addr", "0.0.0.0:9400",
]

RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}

# The cluster-connected mode reads these and writes its reports, nothing else
# (docs/operations.md, section 10).
CLUSTER_RULES = [
    {"apiGroups": ["nodeguard.io"], "resources": ["nodepolicies"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["constraints.gatekeeper.sh"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
    {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports", "clusterpolicyreports"],
     "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["openreports.io"], "resources": ["reports", "clusterreports"],
     "verbs": ["get", "list", "create", "patch", "delete"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]


def check_cluster_rbac(c, where, kinds):
    """The cluster overlay: one read-only ClusterRole, bound to nodeguard's service account,
    and the NodePolicy CRD."""
    roles = kinds.get("ClusterRole", [])
    c.check(len(roles) == 1 and roles[0]["metadata"]["name"] == "nodeguard-cluster"
            and roles[0].get("rules") == CLUSTER_RULES,
            f"{where}: want one ClusterRole nodeguard-cluster with exactly {CLUSTER_RULES}, got {roles}")
    bindings = kinds.get("ClusterRoleBinding", [])
    c.check(len(bindings) == 1
            and bindings[0].get("roleRef", {}).get("name") == "nodeguard-cluster"
            and bindings[0].get("subjects") == [
                {"kind": "ServiceAccount", "name": "nodeguard", "namespace": NAMESPACE}],
            f"{where}: want one ClusterRoleBinding of nodeguard-cluster to nodeguard's service account, got {bindings}")
    c.check(not kinds.get("Role") and not kinds.get("RoleBinding"),
            f"{where}: namespaced RBAC objects appeared")
    crds = [o["metadata"]["name"] for o in kinds.get("CustomResourceDefinition", [])]
    c.check(crds == ["nodepolicies.nodeguard.io"], f"{where}: CRDs {crds}, want [nodepolicies.nodeguard.io]")


class Checker:
    def __init__(self):
        self.failures = []
        self.count = 0

    def check(self, ok, what):
        self.count += 1
        if not ok:
            self.failures.append(what)
        return ok


def quantity(value):
    """A Kubernetes quantity as a float (CPU in cores, memory in bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or (match.group(2) and match.group(2) not in units):
        raise ValueError(f"unreadable quantity {value!r}")
    return float(match.group(1)) * units.get(match.group(2), 1)


def check_overlay(c, overlay, objects, repo):
    where = f"overlay {overlay}"
    kinds = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)

    cluster = overlay == "cluster"
    if cluster:
        check_cluster_rbac(c, where, kinds)
    else:
        c.check(not RBAC_KINDS & kinds.keys(),
                f"{where}: RBAC objects {sorted(RBAC_KINDS & kinds.keys())}: nodeguard never calls the API server")
    namespaces = [o["metadata"]["name"] for o in kinds.get("Namespace", [])]
    c.check(namespaces == [NAMESPACE], f"{where}: namespaces {namespaces}, want [{NAMESPACE}]")
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            c.check(obj["metadata"].get("namespace") == NAMESPACE,
                    f"{where}: {obj['kind']} {obj['metadata']['name']} is not in {NAMESPACE}")
    sas = kinds.get("ServiceAccount", [])
    c.check(len(sas) == 1 and sas[0]["metadata"]["name"] == "nodeguard"
            and sas[0].get("automountServiceAccountToken") is False,
            f"{where}: want one ServiceAccount nodeguard with automountServiceAccountToken: false")

    daemonsets = kinds.get("DaemonSet", [])
    if not c.check(len(daemonsets) == 1, f"{where}: {len(daemonsets)} DaemonSets, want 1"):
        return
    ds = daemonsets[0]
    spec = ds["spec"]
    strategy = spec.get("updateStrategy", {})
    c.check(strategy.get("type") == "RollingUpdate"
            and strategy.get("rollingUpdate", {}).get("maxUnavailable") == "10%",
            f"{where}: updateStrategy {strategy}, want RollingUpdate with maxUnavailable 10%")

    template = spec["template"]
    annotations = template["metadata"].get("annotations", {})
    c.check(annotations.get("prometheus.io/scrape") == "true"
            and annotations.get("prometheus.io/port") == "9400"
            and annotations.get("prometheus.io/path") == "/metrics",
            f"{where}: pod template lacks the Prometheus scrape annotations: {annotations}")
    c.check(annotations.get("tolerate-missing-plugins.nodeguard.io") == "true",
            f"{where}: pod template lacks tolerate-missing-plugins.nodeguard.io: \"true\" (with containerd's "
            "required_plugins, nodeguard could never start again on a node)")

    pod = template["spec"]
    c.check(pod.get("nodeSelector") == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
            f"{where}: nodeSelector {pod.get('nodeSelector')}, want kubernetes.io/os: linux and kubernetes.io/arch: amd64 (the image is amd64 only)")
    c.check(pod.get("tolerations") == [{"operator": "Exists"}],
            f"{where}: tolerations {pod.get('tolerations')}, want [{{operator: Exists}}] (every node)")
    c.check(pod.get("priorityClassName") == "system-node-critical",
            f"{where}: priorityClassName {pod.get('priorityClassName')}, want system-node-critical")
    c.check(pod.get("serviceAccountName") == "nodeguard", f"{where}: serviceAccountName is not nodeguard")
    c.check(pod.get("automountServiceAccountToken") is cluster,
            f"{where}: the pod mounts a service account token" if not cluster
            else f"{where}: the cluster mode needs the service account's token mounted")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        c.check(not pod.get(field), f"{where}: pod sets {field}")
    pod_sc = pod.get("securityContext", {})
    c.check(pod_sc.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault",
            f"{where}: pod seccompProfile {pod_sc.get('seccompProfile')}")
    c.check(not pod.get("initContainers") and not pod.get("ephemeralContainers"),
            f"{where}: init or ephemeral containers appeared")

    containers = pod.get("containers", [])
    if not c.check(len(containers) == 1, f"{where}: {len(containers)} containers, want 1"):
        return
    ctr = containers[0]
    want_args = ARGS + ["--cluster"] if cluster else ARGS
    c.check(ctr.get("args") == want_args, f"{where}: args {ctr.get('args')}, want {want_args}")
    c.check(not ctr.get("command"), f"{where}: command overrides the image's entrypoint")
    c.check(bool(ctr.get("image")), f"{where}: no image")
    env = {e["name"]: e for e in ctr.get("env", [])}
    for name, field in (("NODE_NAME", "spec.nodeName"), ("POD_NAMESPACE", "metadata.namespace"),
                        ("POD_NAME", "metadata.name")):
        c.check(env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field,
                f"{where}: env {name} is not taken from {field}"
                + (" (remediation must know nodeguard's own pod, never to stop it)" if name != "NODE_NAME" else ""))
    c.check("MALLOC_ARENA_MAX" not in env,
            f"{where}: env MALLOC_ARENA_MAX set: with fewer malloc arenas than threads, the "
            "audit's threads contend on them (ADR 0026)")

    sc = ctr.get("securityContext", {})
    caps = sc.get("capabilities", {})
    c.check(caps.get("drop") == ["ALL"], f"{where}: capabilities.drop {caps.get('drop')}, want [ALL]")
    c.check(not caps.get("add"), f"{where}: capabilities.add {caps.get('add')}, want none")
    c.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem is not true")
    c.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
    c.check(sc.get("privileged") is False, f"{where}: privileged is not false")
    c.check(sc.get("seccompProfile") == {"type": "RuntimeDefault"},
            f"{where}: container seccompProfile {sc.get('seccompProfile')}, want RuntimeDefault")
    c.check(sc.get("runAsUser") == 0 and sc.get("runAsNonRoot") is False,
            f"{where}: runAsUser {sc.get('runAsUser')} / runAsNonRoot {sc.get('runAsNonRoot')}: the sockets "
            "are root's (see daemonset.yaml); want 0 / false")
    for field in ("procMount", "seLinuxOptions", "appArmorProfile", "windowsOptions"):
        c.check(field not in sc, f"{where}: container securityContext sets {field}")

    ports = ctr.get("ports", [])
    c.check(ports == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}],
            f"{where}: ports {ports}, want metrics 9400/TCP only (and no hostPort)")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ctr.get(probe, {}).get("httpGet", {})
        c.check(get.get("path") == path and get.get("port") == "metrics" and not get.get("host"),
                f"{where}: {probe} {ctr.get(probe)}, want httpGet {path} on port metrics")

    res = ctr.get("resources", {})
    try:
        req, lim = res["requests"], res["limits"]
        c.check(quantity(req["memory"]) >= 2 * MEASURED_PEAK_RSS_MIB * 2**20,
                f"{where}: memory request {req['memory']} is below twice the measured peak RSS")
        c.check(quantity(lim["memory"]) >= 4 * MEASURED_PEAK_RSS_MIB * 2**20,
                f"{where}: memory limit {lim['memory']} is below 4x the measured peak RSS")
        c.check(quantity(lim["cpu"]) >= 0.5,
                f"{where}: CPU limit {lim['cpu']} below 500m: a throttled nodeguard delays every container start")
        c.check(quantity(req["cpu"]) > 0 and quantity(req["cpu"]) <= quantity(lim["cpu"])
                and quantity(req["memory"]) <= quantity(lim["memory"]),
                f"{where}: requests {req} exceed limits {lim}")
    except (KeyError, ValueError) as e:
        c.check(False, f"{where}: resources {res} incomplete or unreadable ({e})")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in ctr.get("volumeMounts", [])}
    c.check(len(mounts) == len(ctr.get("volumeMounts", [])), f"{where}: a volume is mounted twice")
    host_paths = {}
    for name, vol in volumes.items():
        types = set(vol) - {"name"}
        c.check(types in ({"hostPath"}, {"configMap"}),
                f"{where}: volume {name} is of type {sorted(types)}; only hostPath and configMap are expected")
        if "hostPath" in vol:
            host_paths[vol["hostPath"]["path"].rstrip("/") or "/"] = name
    c.check(set(host_paths) == set(HOST_PATHS),
            f"{where}: host paths {sorted(host_paths)}, want exactly {sorted(HOST_PATHS)}")
    for path in host_paths:
        for never in NEVER_MOUNTED:
            inside = never != "/" and path.startswith(never + "/") and path not in OWN_DIRECTORIES
            c.check(not (path == never or inside), f"{where}: host path {path} lies in {never}")
    for path, (kind, mount_path, read_only, propagation) in HOST_PATHS.items():
        name = host_paths.get(path)
        if name is None:
            continue
        c.check(volumes[name]["hostPath"].get("type") == kind,
                f"{where}: host path {path} has type {volumes[name]['hostPath'].get('type')}, want {kind}")
        mount = mounts.get(name)
        if not c.check(mount is not None, f"{where}: host path {path} is not mounted"):
            continue
        c.check(mount["mountPath"] == mount_path, f"{where}: {path} mounted at {mount['mountPath']}, want {mount_path}")
        c.check(bool(mount.get("readOnly")) == read_only,
                f"{where}: {path} mounted {'read-write' if not mount.get('readOnly') else 'read-only'}")
        c.check(mount.get("mountPropagation") == propagation,
                f"{where}: {path} mount propagation {mount.get('mountPropagation')}, want {propagation}")
        c.check("subPath" not in mount and "subPathExpr" not in mount, f"{where}: {path} mounted with subPath")
    for name, mount in mounts.items():
        c.check(mount.get("mountPropagation") != "Bidirectional", f"{where}: {name} mounted Bidirectional")
        c.check(name in volumes, f"{where}: mount of unknown volume {name}")

    config_maps = {o["metadata"]["name"]: o for o in kinds.get("ConfigMap", [])}
    policy_volumes = [v for v in volumes.values() if "configMap" in v]
    if c.check(len(policy_volumes) == 1, f"{where}: {len(policy_volumes)} configMap volumes, want 1 (the policy)"):
        vol = policy_volumes[0]
        cm_name = vol["configMap"]["name"]
        mount = mounts.get(vol["name"], {})
        c.check(mount.get("mountPath") == POLICY_MOUNT and mount.get("readOnly") is True
                and "subPath" not in mount and "subPathExpr" not in mount,
                f"{where}: policy mounted as {mount}, want a read-only directory at {POLICY_MOUNT} (no subPath: "
                "ConfigMap updates never reach subPath mounts)")
        c.check(not vol["configMap"].get("items"), f"{where}: the policy volume picks items")
        c.check(re.fullmatch(r"nodeguard-policy-[a-z0-9]{10}", cm_name) is not None,
                f"{where}: policy ConfigMap {cm_name} lacks the generator's content hash (a policy change "
                "would not roll the DaemonSet)")
        cm = config_maps.get(cm_name)
        if c.check(cm is not None, f"{where}: the DaemonSet mounts ConfigMap {cm_name}, which is not rendered"):
            data = cm.get("data", {})
            c.check(sorted(data) == sorted(POLICY_FILES), f"{where}: policy files {sorted(data)}")
            source = repo / "install/policies" / ("audit" if overlay == "audit" else "")
            for name in POLICY_FILES:
                c.check(data.get(name) == (source / name).read_text(),
                        f"{where}: ConfigMap {name} differs from {source / name}")
            if overlay == "audit":
                c.check(not any(re.search(r"^\s*effect:\s*enforce\s*$", d, re.M) for d in data.values()),
                        f"{where}: an audit policy says effect: enforce")
    c.check(set(config_maps) == {vol["configMap"]["name"] for vol in policy_volumes},
            f"{where}: unexpected ConfigMaps {sorted(config_maps)}")


def nodeguard_check(nodeguard, policy, paths):
    out = subprocess.run([str(nodeguard), "check", "--policy", str(policy), "--format", "json", *map(str, paths)],
                         capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"nodeguard check --policy {policy} exited {out.returncode}: {out.stderr}{out.stdout}")
    report = json.loads(out.stdout)
    if report.get("errors"):
        raise RuntimeError(f"nodeguard check --policy {policy}: input errors {report['errors']}")
    return report["results"]


def check_policies(c, repo, nodeguard, rendered):
    policies = repo / "install/policies"
    workloads = repo / "install/tests/workloads"
    allowed = sorted((workloads / "allowed").glob("*.yaml"))
    refused = sorted((workloads / "refused").glob("*.yaml"))
    c.check(allowed and refused, "no workload fixtures found")

    for result in nodeguard_check(nodeguard, policies, allowed):
        c.check(result["verdict"] == "allow",
                f"install/policies refuses {result['kind']} {result['namespace']}/{result['name']} "
                f"({result['file']}): {[v['rule'] for v in result['violations'] if v['effect'] == 'enforce']}")
    results = nodeguard_check(nodeguard, policies, refused)
    c.check(len(results) == len(refused), f"{len(results)} results for {len(refused)} refused fixtures")
    for result in results:
        c.check(result["verdict"] == "deny",
                f"install/policies does not refuse {result['kind']} {result['namespace']}/{result['name']} "
                f"({result['file']}): verdict {result['verdict']}")
    for result in nodeguard_check(nodeguard, policies / "audit", refused):
        c.check(result["verdict"] == "allow" and result["violations"]
                and all(v["effect"] == "audit" for v in result["violations"]),
                f"install/policies/audit does not merely audit {result['file']}: verdict {result['verdict']}")

    # nodeguard must never refuse its own DaemonSet (its next version, on upgrade).
    for overlay, path in rendered.items():
        policy = policies / "audit" if overlay == "audit" else policies
        for result in nodeguard_check(nodeguard, policies, [path]) + nodeguard_check(nodeguard, policy, [path]):
            c.check(result["verdict"] == "allow",
                    f"the policies refuse nodeguard's own {result['kind']} ({overlay}): {result['violations']}")


# What install/kind/e2e.sh expects of each of its Deployments: None to run, or the rule id
# of the refusal it asserts on.
KIND_WORKLOADS = {
    "compliant": None,
    "latest-tag": "images.tag",
    "host-pid": "pss.baseline.hostNamespaces",
    "privileged": "pss.baseline.privileged",
    "compliant-after-restart": None,
    "privileged-after-restart": "pss.baseline.privileged",
}


def check_kind_workloads(c, repo, nodeguard, path):
    results = {r["name"]: r for r in nodeguard_check(nodeguard, repo / "install/policies", [path])}
    c.check(sorted(results) == sorted(KIND_WORKLOADS),
            f"install/kind/e2e.sh --print-workloads: {sorted(results)}, want {sorted(KIND_WORKLOADS)}")
    for name, rule in KIND_WORKLOADS.items():
        result = results.get(name)
        if result is None:
            continue
        enforced = [v["rule"] for v in result["violations"] if v["effect"] == "enforce"]
        if rule is None:
            c.check(result["verdict"] == "allow", f"kind e2e workload {name} would be refused: {enforced}")
        else:
            c.check(result["verdict"] == "deny" and rule in enforced,
                    f"kind e2e workload {name}: verdict {result['verdict']} {enforced}, want a refusal with {rule}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, type=pathlib.Path)
    parser.add_argument("--nodeguard", required=True, type=pathlib.Path)
    parser.add_argument("--kind-workloads", type=pathlib.Path)
    parser.add_argument("rendered", nargs="+", help="OVERLAY=RENDERED.yaml")
    args = parser.parse_args()
    rendered = dict(r.split("=", 1) for r in args.rendered)

    c = Checker()
    for overlay, path in rendered.items():
        with open(path) as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        check_overlay(c, overlay, objects, args.repo)
    check_policies(c, args.repo, args.nodeguard, rendered)
    if args.kind_workloads:
        check_kind_workloads(c, args.repo, args.nodeguard, args.kind_workloads)

    for failure in c.failures:
        print(f"FAIL: {failure}")
    print(f"{c.count - len(c.failures)}/{c.count} manifest and policy checks passed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
