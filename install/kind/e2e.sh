#!/usr/bin/env bash
# End-to-end test of the install on a kind cluster: the scenarios of
# integration/tests/enforcement.rs, driven through the Kubernetes API instead of CRI.
#   1. builds the image (docker build -f install/Dockerfile) and a copy tagged :latest;
#   2. creates a kind cluster with NRI on (install/kind/cluster.yaml) and loads both images;
#   3. applies install/kubernetes/overlays/cluster (the enforce overlay in the
#      cluster-connected mode: the NodePolicy CRD, read-only RBAC, `serve --cluster`) with the
#      image set to nodeguard:e2e and waits for the DaemonSet's rollout and for every nodeguard
#      to register over NRI;
#   4. in namespace nodeguard-e2e:
#      - a compliant Deployment becomes ready;
#      - a `:latest` image and a hostPID pod are refused at create (CreateContainerError),
#        with nodeguard's message in `kubectl describe pod`;
#      - a privileged container is refused at start (RunContainerError / StartError);
#      - after containerd restarts on the worker, nodeguard still judges containers at start
#        (it reconnects, and still reads containerd's socket) and a compliant pod starts;
#      - the worker's audit log (/var/log/nodeguard/audit.jsonl) records the refusals;
#      - a NodePolicy applied with kubectl refuses a pod within seconds, and no longer once
#        it is deleted;
#      - each node's compliance reports appear as PolicyReport objects (the PolicyReport CRD
#        is installed from install/kind/policyreport-crd.yaml when the cluster has none);
#   5. deletes the cluster on exit, whatever happened (--keep leaves it for a look).
#
# Usage: install/kind/e2e.sh [--keep]        needs docker (with its engine), kind, kubectl
#        install/kind/e2e.sh --print-manifests   what step 3 applies (needs kustomize or
#                                                kubectl)
#        install/kind/e2e.sh --print-workloads   the Deployments of step 4
# scripts/install-checks.sh runs both --print modes: it validates the manifests and checks
# with `nodeguard check` that the install policies judge each workload as step 4 expects.
# Environment: KIND_NODE_IMAGE (a kindest/node image: e.g. kindest/node:v1.32.0, containerd
#   1.7.24, to test 1.7; default: kind's own, containerd 2.x), NODEGUARD_E2E_CLUSTER (cluster
#   name, default nodeguard-e2e), KUSTOMIZE (a kustomize binary for --print-manifests).
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
readonly CLUSTER=${NODEGUARD_E2E_CLUSTER:-nodeguard-e2e}
readonly IMAGE=nodeguard:e2e
# Built from the same image, never run: nodeguard refuses it at create for its tag.
readonly LATEST_IMAGE=e2e.local/app:latest
# Runs as UID 65535 and sleeps: compliant with install/policies/restricted.yaml.
readonly PAUSE_IMAGE=registry.k8s.io/pause:3.10
readonly NS=nodeguard-e2e
readonly TIMEOUT=180

log() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf 'e2e: FAILED: %s\n' "$*" >&2
    exit 1
}

# Renders the cluster overlay with the image set to $IMAGE, to stdout.
render() {
    local dir overlay
    dir=$(mktemp -d)
    overlay=$(realpath --relative-to="$dir" "$REPO/install/kubernetes/overlays/cluster")
    cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $overlay
images:
  - name: ghcr.io/nodeguard/nodeguard
    newName: ${IMAGE%%:*}
    newTag: ${IMAGE#*:}
EOF
    local status=0
    if [[ -n ${KUSTOMIZE:-} ]]; then
        "$KUSTOMIZE" build "$dir" || status=$?
    elif command -v kustomize >/dev/null; then
        kustomize build "$dir" || status=$?
    else
        kubectl kustomize "$dir" || status=$?
    fi
    rm -rf "$dir"
    return "$status"
}

kc() { kubectl --context "kind-$CLUSTER" "$@"; }

cleanup() {
    local status=$?
    if ((status != 0)) && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        printf '\n--- nodeguard pods and logs ---\n' >&2
        kc -n nodeguard-system get pods -o wide >&2 || true
        kc -n nodeguard-system logs -l app.kubernetes.io/name=nodeguard --tail=50 --prefix >&2 || true
        printf '\n--- %s ---\n' "$NS" >&2
        kc -n "$NS" get pods -o wide >&2 || true
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        printf 'e2e: keeping cluster %s (kind delete cluster --name %s)\n' "$CLUSTER" "$CLUSTER" >&2
    else
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    fi
    exit "$status"
}

# wait_for DESCRIPTION COMMAND...: runs COMMAND every 2 s until it succeeds, for $TIMEOUT s.
wait_for() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
        sleep 2
    done
}

# registered MIN [NODE]: every nodeguard pod (on NODE) has logged MIN registrations with
# containerd over NRI.
registered() {
    local min=$1 node=${2:-} pod count pods
    pods=$(kc -n nodeguard-system get pods -l app.kubernetes.io/name=nodeguard -o name \
        ${node:+--field-selector "spec.nodeName=$node"})
    [[ -n $pods ]] || return 1
    for pod in $pods; do
        count=$(kc -n nodeguard-system logs "$pod" | grep -c 'registered with the runtime' || true)
        ((count >= min)) || return 1
    done
}

# deployment NAME [NODE] <<< 'pod spec fields': a one-replica Deployment, printed. The
# fields on stdin are indented for the pod's spec (see compliant_pod).
deployment() {
    local name=$1 node=${2:-} pod_spec selector=''
    pod_spec=$(cat)
    [[ -z $node ]] || selector="      nodeSelector: {kubernetes.io/hostname: $node}"
    cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $name
  namespace: $NS
spec:
  replicas: 1
  selector:
    matchLabels: {app: $name}
  template:
    metadata:
      labels: {app: $name}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
$selector
$pod_spec
EOF
}

# The container of a compliant pod (restricted level, limits), with an image and extras.
compliant_pod() {
    local image=$1 pull=$2
    cat <<EOF
      securityContext:
        runAsNonRoot: true
        runAsUser: 65535
        runAsGroup: 65535
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: main
          image: $image
          imagePullPolicy: $pull
          resources:
            limits: {cpu: 50m, memory: 16Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
EOF
}

# workload NAME: the Deployment of one scenario, printed.
workload() {
    local worker="$CLUSTER-worker"
    case $1 in
    compliant) compliant_pod "$PAUSE_IMAGE" IfNotPresent | deployment compliant ;;
    latest-tag) compliant_pod "$LATEST_IMAGE" Never | deployment latest-tag ;;
    host-pid) { echo '      hostPID: true'; compliant_pod "$PAUSE_IMAGE" IfNotPresent; } | deployment host-pid ;;
    privileged | privileged-after-restart)
        # allowPrivilegeEscalation: false is invalid next to privileged: true.
        compliant_pod "$PAUSE_IMAGE" IfNotPresent |
            sed -e '/allowPrivilegeEscalation/d' -e 's/readOnlyRootFilesystem: true/privileged: true/' |
            deployment "$1" "$([[ $1 == privileged ]] || echo "$worker")"
        ;;
    compliant-after-restart) compliant_pod "$PAUSE_IMAGE" IfNotPresent | deployment "$1" "$worker" ;;
    # Compliant with the install policies; refused by the NodePolicy the scenario applies.
    compliant-denied) compliant_pod "$PAUSE_IMAGE" IfNotPresent | deployment "$1" ;;
    *) die "no workload $1" ;;
    esac
}
readonly WORKLOADS=(compliant latest-tag host-pid privileged compliant-after-restart privileged-after-restart)

# refused APP REASONS NEEDLE...: the pods of APP are stuck with a waiting reason or a
# terminated reason in REASONS (a regex), and `kubectl describe` shows every NEEDLE.
refused() {
    local app=$1 reasons=$2
    shift 2
    refused_now() {
        local states described needle
        states=$(kc -n "$NS" get pods -l "app=$app" -o \
            jsonpath='{range .items[*].status.containerStatuses[*]}{.state.waiting.reason} {.lastState.terminated.reason}{"\n"}{end}')
        grep -Eq "$reasons" <<<"$states" || return 1
        described=$(kc -n "$NS" describe pods -l "app=$app")
        for needle in "$@"; do
            grep -qF -- "$needle" <<<"$described" || return 1
        done
    }
    wait_for "$app to be refused ($reasons, with: $*)" refused_now "$@"
    kc -n "$NS" get pods -l "app=$app" --no-headers >&2
    printf '    kubectl describe: %s\n' "$(kc -n "$NS" describe pods -l "app=$app" | grep -m1 -F 'nodeguard: refused' | sed 's/^ *//' | cut -c1-300)" >&2
}

main() {
    case ${1:-} in
    --print-manifests)
        render
        return
        ;;
    --print-workloads)
        local name
        for name in "${WORKLOADS[@]}"; do
            workload "$name"
            echo ---
        done
        return
        ;;
    --keep) KEEP=1 ;;
    '') KEEP=0 ;;
    *) die "usage: install/kind/e2e.sh [--keep | --print-manifests | --print-workloads]" ;;
    esac
    local tool
    for tool in docker kind kubectl; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    kind get clusters 2>/dev/null | grep -qx "$CLUSTER" &&
        die "a kind cluster named $CLUSTER exists already (delete it, or set NODEGUARD_E2E_CLUSTER)"
    trap cleanup EXIT

    log "Building $IMAGE (install/Dockerfile)"
    docker build -f "$REPO/install/Dockerfile" -t "$IMAGE" "$REPO"
    docker tag "$IMAGE" "$LATEST_IMAGE"

    log "Creating kind cluster $CLUSTER (install/kind/cluster.yaml)"
    kind create cluster --name "$CLUSTER" --config "$REPO/install/kind/cluster.yaml" \
        ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 180s
    local worker="$CLUSTER-worker"
    docker exec "$worker" containerd --version >&2
    kind load docker-image "$IMAGE" "$LATEST_IMAGE" --name "$CLUSTER"

    log "Installing install/kubernetes/overlays/cluster with image $IMAGE"
    kc get crd policyreports.wgpolicyk8s.io >/dev/null 2>&1 ||
        kc apply -f "$REPO/install/kind/policyreport-crd.yaml"
    render | kc apply -f -
    kc -n nodeguard-system rollout status daemonset/nodeguard --timeout="${TIMEOUT}s"
    wait_for "every nodeguard to register with containerd over NRI" registered 1
    kc -n nodeguard-system get pods -o wide >&2
    kc create namespace "$NS"

    log "A compliant Deployment becomes ready"
    workload compliant | kc apply -f -
    kc -n "$NS" rollout status deployment/compliant --timeout="${TIMEOUT}s"

    log "Refused at create: an image tagged :latest"
    workload latest-tag | kc apply -f -
    refused latest-tag 'CreateContainerError' 'nodeguard: refused' 'uses forbidden tag "latest"' '[images.tag]'

    log "Refused at create: the host's PID namespace"
    workload host-pid | kc apply -f -
    refused host-pid 'CreateContainerError' 'nodeguard: refused' '[pss.baseline.hostNamespaces]'

    log "Refused at start: a privileged container (the node sees it only in the OCI spec)"
    workload privileged | kc apply -f -
    # (CreateContainerError too: a containerd that shows privileged at create may refuse there.)
    refused privileged 'RunContainerError|StartError|CrashLoopBackOff|CreateContainerError' \
        'nodeguard: refused' '[pss.baseline.privileged]'

    log "containerd restarts on $worker: nodeguard reconnects and still judges at start"
    docker exec "$worker" systemctl restart containerd
    wait_for "nodeguard on $worker to register again after containerd's restart" registered 2 "$worker"
    kc -n nodeguard-system rollout status daemonset/nodeguard --timeout="${TIMEOUT}s"
    workload compliant-after-restart | kc apply -f -
    kc -n "$NS" rollout status deployment/compliant-after-restart --timeout="${TIMEOUT}s"
    workload privileged-after-restart | kc apply -f -
    # "container is privileged", not "cannot verify": nodeguard read the spec from containerd.
    refused privileged-after-restart 'RunContainerError|StartError|CrashLoopBackOff|CreateContainerError' \
        'nodeguard: refused' 'container is privileged [pss.baseline.privileged]'

    log "The audit log on $worker records the refusals"
    local audit
    audit=$(docker exec "$worker" cat /var/log/nodeguard/audit.jsonl)
    grep -q '"refused"' <<<"$audit" || die "no refusal in $worker:/var/log/nodeguard/audit.jsonl"
    grep -q 'latest-tag' <<<"$audit" || die "the audit log lacks the latest-tag refusal"
    printf '    %s audit records, %s refusals\n' "$(wc -l <<<"$audit")" "$(grep -c '"refused"' <<<"$audit")" >&2

    log "A NodePolicy applied with kubectl is enforced within seconds (the cluster-connected mode)"
    kc apply -f - <<'YAML'
apiVersion: nodeguard.io/v1alpha1
kind: NodePolicy
metadata: {name: e2e-no-pause}
spec:
  scope: {namespaces: [nodeguard-e2e]}
  rules:
    images: {denied: ['^registry\.k8s\.io/pause:']}
YAML
    local applied=$SECONDS
    workload compliant-denied | kc apply -f -
    refused compliant-denied 'CreateContainerError' 'nodeguard: refused' '[images.denied]'
    printf '    refused %s s after the NodePolicy was applied\n' "$((SECONDS - applied))" >&2
    kc delete nodepolicy e2e-no-pause
    kc -n "$NS" rollout restart deployment/compliant-denied
    kc -n "$NS" rollout status deployment/compliant-denied --timeout="${TIMEOUT}s"

    log "Each node's compliance reports are PolicyReport objects in the API server"
    reports() { [[ -n $(kc -n "$NS" get policyreports -l nodeguard.io/node -o name) ]]; }
    wait_for "PolicyReports of $NS written by nodeguard" reports
    kc get policyreports -A -l nodeguard.io/node >&2

    log "e2e: all scenarios passed"
}

main "$@"
