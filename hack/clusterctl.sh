#!/usr/bin/env bash
# Builds clusterctl at the Cluster API version go.mod pins, from the Go module proxy, and caches it
# outside the clone (next to the envtest binaries). test/capzflavors compares its own rendering of
# CAPZ's flavors with `clusterctl generate cluster`, byte for byte. Idempotent: a cached binary whose
# `clusterctl version` matches is reused, so a warm run costs a second.
#
# Prints the binary's path (for CLUSTERCTL) on stdout; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CAPI_VERSION="${CAPI_VERSION:-$(cd "$ROOT" && go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api/api)}"
CACHE_ROOT="${CAPZ_EW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capz-encryption-webhook}"
DIR="$CACHE_ROOT/clusterctl/$CAPI_VERSION"
BIN="$DIR/clusterctl"

log() { printf 'clusterctl: %s\n' "$*" >&2; }

# The output is captured before grep reads it (see envtest-assets.sh: pipefail and SIGPIPE).
current() {
  local out
  [ -x "$BIN" ] || return 1
  out="$(CLUSTERCTL_DISABLE_VERSIONCHECK=true "$BIN" version 2>/dev/null)" || return 1
  grep -q "GitVersion:\"$CAPI_VERSION\"" <<<"$out"
}

if current; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$DIR"
work="$(mktemp -d "$CACHE_ROOT/clusterctl-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

# sigs.k8s.io/cluster-api replaces its api module with ./api, and a dependency's replaces are
# ignored: the wrapper replaces it with the published module of the same version instead.
cat > "$work/go.mod" <<MOD
module clusterctlbuild

go 1.26.0

require sigs.k8s.io/cluster-api $CAPI_VERSION

replace sigs.k8s.io/cluster-api/api => sigs.k8s.io/cluster-api/api $CAPI_VERSION
MOD
printf 'package tools\n\nimport _ "sigs.k8s.io/cluster-api/cmd/clusterctl"\n' > "$work/tools.go"
# clusterctl reads its version from these (what CAPI's Makefile stamps).
ld="-X sigs.k8s.io/cluster-api/version.gitVersion=$CAPI_VERSION -X sigs.k8s.io/cluster-api/version.gitMajor=${CAPI_VERSION%%.*} -X sigs.k8s.io/cluster-api/version.gitTreeState=clean"
log "building clusterctl $CAPI_VERSION from Go modules (cold: ~3 min)"
(cd "$work" && go mod tidy >&2 && go build -trimpath -ldflags "$ld" -o "$BIN.new" sigs.k8s.io/cluster-api/cmd/clusterctl)
mv "$BIN.new" "$BIN"
current || { log "the built binary does not report $CAPI_VERSION"; exit 1; }
log "ready: $BIN"
echo "$BIN"
