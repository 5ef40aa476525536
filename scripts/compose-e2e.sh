#!/usr/bin/env bash
# `docker compose up` for real: the repository's own compose.yaml and Dockerfile, unchanged, on a real Docker
# engine, checked by tests/e2e/test_compose_real.py (traces of all three services in Jaeger's API, crictl in the
# crio container, a dropped-in manifest, the collector and kata profiles, `down -v` leaving nothing, no container
# needing SIGKILL to stop). .ci/run runs it after `make test`.
#
# Usage: scripts/compose-e2e.sh [pytest args...]
#
# On Debian as root (CI, this project's machines) it installs what is missing: Debian's docker.io and mmdebstrap
# (apt), the Compose v2 CLI plugin and a collector built from the Go module proxy (scripts/install-tools.sh, cached
# in ~/.cache/cristack), and starts dockerd if no engine answers (and stops it again at the end). Images the
# compose file names that cannot be pulled (no Docker Hub here) are stood in by local builds tagged with the
# public names and labelled io.cristack.stand-in (see build_standin below); the rootfs they share is cached
# as a tarball. Without root and without a working engine it skips with the reason (exit 0); with CI=true a
# missing piece fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${CRISTACK_TOOLS_CACHE:-$HOME/.cache/cristack}
state=$cache/compose-e2e
mkdir -p "$state"
work=$(mktemp -d /tmp/cristack-compose-e2e.XXXXXX)
t_start=$(date +%s)
step() { printf '\n== compose-e2e [%4ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
skip_or_fail() {
  if [ "${CI:-}" = true ]; then echo "compose-e2e: CI=true: $*" >&2; exit 1; fi
  echo "compose-e2e: skipped: $*"
  exit 0
}

# The classic builder: Debian's engine has no buildx, and compose falls back to it without a warning only so.
export DOCKER_BUILDKIT=0 COMPOSE_BAKE=false
# The compose plugin lives in a private docker config directory: nothing is added to the user's ~/.docker.
export DOCKER_CONFIG=$state/docker-config
mkdir -p "$DOCKER_CONFIG/cli-plugins"

started_dockerd=
builds=()  # background Go builds still running
finish() {
  local rc=$?
  for pid in "${builds[@]}"; do pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  if [ -n "$started_dockerd" ]; then
    step "stopping the dockerd this script started (pid $started_dockerd)"
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit $rc
}
trap finish EXIT

apt_install() {  # $@: Debian packages
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || skip_or_fail "needs $* (apt-get as root installs them)"
  step "apt-get install $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "engine"
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || apt_install docker.io
  [ "$(id -u)" = 0 ] || skip_or_fail "no Docker engine answers and starting dockerd needs root"
  dockerd >"$state/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$state/dockerd.log"; skip_or_fail "dockerd did not start"; }
fi
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}'

# --- stand-ins: only for images the engine has not got and cannot pull ---------------------------------------
standins=()
have_or_pull() {  # $1: image; true when the engine has it (pulled if it can be)
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  timeout 120 docker pull -q "$1" >/dev/null 2>&1
}

PYTHON=python:3.12.8-slim-bookworm GOLANG=golang:1.26-bookworm
JAEGER=jaegertracing/jaeger:2.13.0 COLLECTOR=otel/opentelemetry-collector-contrib:0.140.1

# The two Go builds (minutes each on a fresh machine, cached after) run in the background, one after the other,
# while the rootfs is fetched and the other stand-ins are built; each is waited for where it is needed.
go_build() {  # $1: tool of scripts/install-tools.sh; $2: a pid to wait for first (or empty). Sets $built.
  ( while [ -n "$2" ] && kill -0 "$2" 2>/dev/null; do sleep 1; done
    "$repo/scripts/install-tools.sh" "$1" >"$state/build-$1.log" 2>&1 ) </dev/null >/dev/null &
  built=$!
  builds+=("$built")
}
wait_build() {  # $1: pid from go_build, $2: what it is for
  [ -z "$1" ] && return 0
  wait "$1" || { tail -20 "$state/build-$2.log"; skip_or_fail "building $2 failed ($state/build-$2.log)"; }
}
plugin=$cache/docker-compose-v5.6.0/bin/docker-compose
compose_build= collector_build=
if ! docker compose version >/dev/null 2>&1 && [ ! -x "$plugin" ]; then
  command -v go >/dev/null || skip_or_fail "docker compose v2 is missing and building it needs Go"
  step "building the compose v2 plugin in the background"
  go_build docker-compose ""
  compose_build=$built
fi
if ! have_or_pull "$COLLECTOR" && [ ! -x "$cache/otelcol-contrib-v0.140.1/bin/otelcol-contrib" ]; then
  command -v go >/dev/null || skip_or_fail "$COLLECTOR cannot be pulled and its stand-in needs Go"
  step "building the collector stand-in in the background"
  go_build otelcol-contrib "$compose_build"
  collector_build=$built
fi
is_standin() { [ "$(docker image inspect -f '{{index .Config.Labels "io.cristack.stand-in"}}' "$1" 2>/dev/null)" = true ]; }
build_standin() {  # $1: image, $2: context directory with a Dockerfile
  docker build -q --label io.cristack.stand-in=true -t "$1" "$2" >/dev/null
}

step "$PYTHON"
if ! have_or_pull "$PYTHON"; then
  # Debian bookworm (Python 3.11, venv, pip) with this machine's extra CAs, so that pip inside the builds trusts
  # what the host trusts. The tarball is cached, keyed by the package list and those CAs.
  include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,wget
  key=$( { echo "$include"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | sha256sum | cut -c1-12)
  rootfs=$state/bookworm-rootfs-$key.tar
  if [ ! -s "$rootfs" ]; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    step "mmdebstrap bookworm (cached as $rootfs)"
    sources=/etc/apt/sources.list.d/debian.sources
    [ -f "$sources" ] || sources=/etc/apt/sources.list
    mmdebstrap --quiet --variant=minbase --include="$include" \
      --customize-hook='for f in /usr/local/share/ca-certificates/*.crt; do [ -e "$f" ] && cp "$f" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null' \
      bookworm "$rootfs.partial.tar" "$sources" </dev/null   # the .tar suffix picks the format
    mv "$rootfs.partial.tar" "$rootfs"
  fi
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'LABEL io.cristack.stand-in=true' -c 'CMD ["python3"]' "$rootfs" "$PYTHON" >/dev/null
fi

step "$GOLANG"
if ! have_or_pull "$GOLANG"; then
  command -v go >/dev/null || skip_or_fail "$GOLANG cannot be pulled and its stand-in needs the host's Go"
  mkdir -p "$work/golang" && cp -a "$(go env GOROOT)" "$work/golang/go"
  cat >"$work/golang/Dockerfile" <<EOF
FROM $PYTHON
COPY go /usr/local/go
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go
WORKDIR /go
EOF
  build_standin "$GOLANG" "$work/golang"
fi

step "$JAEGER"
if ! have_or_pull "$JAEGER"; then
  # The project's own Jaeger build (make tools), with the upstream image's entrypoint, user and listen host.
  "$repo/scripts/install-tools.sh" jaeger >/dev/null
  mkdir -p "$work/jaeger" && cp "$cache/jaeger-v2.13.0/bin/jaeger" "$work/jaeger/jaeger-linux"
  cat >"$work/jaeger/Dockerfile" <<EOF
FROM $PYTHON
ENV JAEGER_LISTEN_HOST=0.0.0.0
COPY jaeger-linux /cmd/jaeger/jaeger-linux
VOLUME ["/tmp"]
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
USER 10001
EOF
  build_standin "$JAEGER" "$work/jaeger"
fi

step "$COLLECTOR"
if ! have_or_pull "$COLLECTOR"; then
  # A collector with just the components deploy/otel-collector.yaml uses (tools/otelcol-contrib/main.go).
  wait_build "$collector_build" otelcol-contrib
  mkdir -p "$work/otelcol" && cp "$cache/otelcol-contrib-v0.140.1/bin/otelcol-contrib" "$work/otelcol/"
  cat >"$work/otelcol/Dockerfile" <<EOF
FROM $PYTHON
COPY otelcol-contrib /otelcol-contrib
USER 10001
ENTRYPOINT ["/otelcol-contrib"]
CMD ["--config", "/etc/otelcol-contrib/config.yaml"]
EOF
  build_standin "$COLLECTOR" "$work/otelcol"
fi
for image in "$PYTHON" "$GOLANG" "$JAEGER" "$COLLECTOR"; do
  is_standin "$image" && standins+=("$image")
done
echo "stand-ins: ${standins[*]:-none}"

step "compose v2 plugin"
if ! docker compose version >/dev/null 2>&1; then
  wait_build "$compose_build" docker-compose
  ln -sf "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
docker compose version

step "docker compose build"
docker compose build --quiet

step "tests/e2e/test_compose_real.py"
[ -x .venv/bin/python ] || make venv >/dev/null
CRISTACK_COMPOSE_E2E=1 \
  .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/e2e/test_compose_real.py "$@"  # -s: the figures
step "done"
