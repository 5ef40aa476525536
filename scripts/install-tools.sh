#!/usr/bin/env bash
# Installs the real tools the e2e suite drives (crictl, critest, Jaeger v2; the kubelet on request) with `go install`
# (critest, a test binary: `go test -c`), caching each build under ~/.cache/cristack/<tool>-<version>
# so that only the first run on a machine pays for the Go build, then links them into the
# git-ignored .tools/bin.
#
# Each tool is pinned by a tiny Go module under tools/<name>/ (go.mod + go.sum). We build
# through that module rather than `go install pkg@version` because the latter also asks the
# module proxy for the version list (for deprecation notices), which some proxies refuse;
# the pinned go.sum makes the build reproducible all the same.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CRISTACK_TOOLS_CACHE:-$HOME/.cache/cristack}
bin="$root/.tools/bin"
mkdir -p "$bin"

# The ttrpc interop peer is our own small program: its cache key carries a hash of its sources, so an edit
# rebuilds it.
peer_hash=$(cat "$root"/tools/ttrpc-peer/go.mod "$root"/tools/ttrpc-peer/go.sum "$root"/tools/ttrpc-peer/*.go \
  | sha256sum | cut -c1-12)

# name | version label (cache key) | package inside the pinned module
tools=(
  "crictl|v1.36.0|sigs.k8s.io/cri-tools/cmd/crictl"
  # Jaeger v2.13.0: built from the module tag v1.76.0, which marks the same release commit
  # (Jaeger's Go module has no /v2 suffix, so its v2 releases are reachable only through the
  # v1 tags). tools/jaeger/go.sum is seeded from Jaeger's own go.sum, so no checksum lookups
  # beyond the module proxy are needed.
  "jaeger|v2.13.0|github.com/jaegertracing/jaeger/cmd/jaeger"
  # HotROD, Jaeger's demo application, from the same pinned module (benchmarks only).
  "hotrod|v2.13.0|github.com/jaegertracing/jaeger/examples/hotrod"
  # critest, the CRI validation suite: a Go test binary (`go test -c`), from the crictl module.
  "critest|v1.36.0|sigs.k8s.io/cri-tools/cmd/critest"
  # The real kubelet, opt-in (`make tools-kubelet`): about 1,800 packages, tens of minutes on 2 cores.
  # tools/kubelet pins each staging module (k8s.io/api, cri-api, ...) to v0.36.3 with replace lines.
  "kubelet|v1.36.3|k8s.io/kubernetes/cmd/kubelet"
  # kustomize and kubeconform render and validate deploy/kubernetes offline (tests/e2e/test_kubernetes_manifests.py).
  "kustomize|v5.8.2|sigs.k8s.io/kustomize/kustomize/v5"
  "kubeconform|v0.8.0|github.com/yannh/kubeconform/cmd/kubeconform"
  # The real Go ttrpc (github.com/containerd/ttrpc v1.2.9, containerd v2.4.2's) and containerd's task v3
  # client from github.com/containerd/containerd/api v1.12.0, on the other side of our ttrpc
  # (tests/e2e/test_ttrpc_interop.py); about a minute's build. It also puts the api module's .proto files
  # in the module cache for tests/unit/test_containerd_proto.py.
  "ttrpc-peer|v1.2.9-$peer_hash|cristack.local/tools/ttrpc-peer"
  # telemetrygen, the Collector's load generator, opt-in for `make bench` (the fleet section's side-by-side figure).
  "telemetrygen|v0.161.0|github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen"
)
# Which tools to install: the arguments, or what `make test` needs.
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(crictl jaeger critest kustomize kubeconform ttrpc-peer)

if ! command -v go >/dev/null 2>&1; then
  echo "make tools: Go is not installed; skipping crictl and Jaeger (their e2e tests will skip)." >&2
  exit 0
fi

status=0
for entry in "${tools[@]}"; do
  IFS='|' read -r name version pkg <<<"$entry"
  [[ " ${wanted[*]} " == *" $name "* ]] || continue
  dest="$cache/$name-$version/bin"
  if [ ! -x "$dest/$name" ]; then
    echo "make tools: building $name $version (first time only; cached in $dest)"
    mkdir -p "$dest"
    module="$root/tools/$name"
    case $name in
      hotrod) module="$root/tools/jaeger" ;;  # hotrod lives in the Jaeger module
      critest) module="$root/tools/crictl" ;;  # critest lives in the cri-tools module, like crictl
    esac
    if [ "$name" = critest ]; then
      # critest is a test binary: `go install` cannot build it, `go test -c` does.
      build=(go test -c -o "$dest/$name" "$pkg")
    elif [ "$name" = kubelet ]; then
      # The version stamps Kubernetes' own build (hack/lib/version.sh) sets, so --version and the
      # User-Agent say v1.36.3 rather than v0.0.0-master; low priority, since it takes a while.
      V=k8s.io/component-base/version C=k8s.io/client-go/pkg/version
      stamp="-X $V.gitVersion=$version -X $V.gitMajor=1 -X $V.gitMinor=36 -X $V.gitTreeState=clean"
      stamp+=" -X $C.gitVersion=$version -X $C.gitMajor=1 -X $C.gitMinor=36"
      build=(nice -n "${CRISTACK_BUILD_NICE:-10}" go build -o "$dest/$name" -ldflags "$stamp" "$pkg")
    else
      build=(env GOBIN="$dest" go install "$pkg")
    fi
    if ! (cd "$module" && GOFLAGS=-mod=mod "${build[@]}"); then
      echo "make tools: building $name failed" >&2
      status=1
      continue
    fi
  fi
  ln -sf "$dest/$name" "$bin/$name"
  echo "make tools: $name $version -> .tools/bin/$name"
done
# kubeconform's schemas for the Kubernetes v1.36.3 API, generated from the pinned k8s.io/kubernetes module's
# OpenAPI spec (scripts/k8s_schemas.py; cached like the tools).
if [[ " ${wanted[*]} " == *" kubeconform "* ]] && [ ! -d "$cache/k8s-schemas-v1.36.3/v1.36.3-standalone-strict" ]; then
  python3 "$root/scripts/k8s_schemas.py" --out "$cache/k8s-schemas-v1.36.3" || status=1
fi
# The CRI proto parity test reads upstream's api.proto from the module cache; the containerd one reads
# containerd's api module and ttrpc's request.proto.
(cd "$root/tools/crictl" && go mod download k8s.io/cri-api) || status=1
(cd "$root/tools/ttrpc-peer" && GOFLAGS=-mod=mod go mod download github.com/containerd/containerd/api \
  github.com/containerd/ttrpc) || status=1
exit $status
