#!/usr/bin/env bash
# Builds the control plane that envtest runs (kube-apiserver, etcd, kubectl) from Go modules and caches
# it outside the clone. setup-envtest cannot download release binaries on machines without internet,
# but the Go module proxy serves the sources, so we compile them. Idempotent: a cached build whose
# --version matches is reused, so a warm run costs a second.
#
# Prints the asset directory (for KUBEBUILDER_ASSETS) on stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
# etcd at the version k8s.io/kubernetes pins in its own go.mod for this release.
ETCD_VERSION="${ETCD_VERSION:-3.7.0}"
CACHE_ROOT="${CAPZ_EW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capz-encryption-webhook}"
ASSETS="$CACHE_ROOT/k8s/$K8S_VERSION"

log() { printf 'envtest-assets: %s\n' "$*" >&2; }

# reports BINARY PATTERN: BINARY --version prints a line matching PATTERN. The output is captured
# before grep reads it: under pipefail, `bin --version | grep -q` fails at random when grep exits on
# the first line while the binary is still writing the next ones (SIGPIPE); etcd prints four lines.
reports() {
  local out
  [ -x "$1" ] || return 1
  out="$("$1" --version 2>/dev/null)" || return 1
  grep -q "$2" <<<"$out"
}

is_current() {
  [ -x "$ASSETS/kubectl" ] || return 1
  reports "$ASSETS/kube-apiserver" "v$K8S_VERSION\$" || return 1
  reports "$ASSETS/etcd" "etcd Version: $ETCD_VERSION\$" || return 1
}

if is_current; then
  echo "$ASSETS"
  exit 0
fi

mkdir -p "$ASSETS"
work="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Wrappers are built with a go.mod of their own so that the project's module graph cannot interfere.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

build_kube() {
  local dir="$work/kube" kmod
  mkdir -p "$dir"
  (cd "$dir" && printf 'module envtestkube\n\ngo 1.26.0\n' > go.mod)
  kmod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$kmod" ] || { log "cannot read go.mod of k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
  # k8s.io/kubernetes requires every staging module at v0.0.0 and replaces it with a local path; a
  # dependency's replaces are ignored, so we replace each staging module it *requires* with the
  # published v0.$minor.$patch. (sample-* modules are replaced but not required and have no release.)
  local goline godebug staging
  goline="$(grep -m1 '^go ' "$kmod")"
  godebug="$(grep -m1 '^godebug ' "$kmod" || true)"
  staging="$(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod")"
  {
    echo "module envtestkube"
    echo
    echo "$goline"
    [ -n "$godebug" ] && echo "$godebug"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do
      if grep -qE "^[[:space:]]$m v0\.0\.0" "$kmod"; then
        echo "	$m => $m v0.${K8S_VERSION#1.}"
      fi
    done
    echo ")"
  } > "$dir/go.mod"
  printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n)\n' > "$dir/tools.go"
  local major="${K8S_VERSION%%.*}" minor
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  log "building kube-apiserver and kubectl v$K8S_VERSION from Go modules (cold: ~8 min, ~2.5 GiB)"
  (cd "$dir" && go mod tidy >&2 && \
    go build -trimpath -ldflags "$ld" -o "$ASSETS/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver && \
    go build -trimpath -ldflags "$ld" -o "$ASSETS/kubectl.new" k8s.io/kubernetes/cmd/kubectl)
  mv "$ASSETS/kube-apiserver.new" "$ASSETS/kube-apiserver"
  mv "$ASSETS/kubectl.new" "$ASSETS/kubectl"
}

build_etcd() {
  # Its own wrapper: in one module with kube-apiserver, minimal version selection would lift the
  # apiserver's etcd client libraries to the server's version.
  local dir="$work/etcd"
  mkdir -p "$dir"
  printf 'module envtestetcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$dir/go.mod"
  printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$dir/tools.go"
  log "building etcd v$ETCD_VERSION from Go modules"
  (cd "$dir" && go mod tidy >&2 && go build -trimpath -o "$ASSETS/etcd.new" go.etcd.io/etcd/server/v3)
  mv "$ASSETS/etcd.new" "$ASSETS/etcd"
}

if ! { [ -x "$ASSETS/kubectl" ] && reports "$ASSETS/kube-apiserver" "v$K8S_VERSION\$"; }; then
  build_kube
fi
if ! reports "$ASSETS/etcd" "etcd Version: $ETCD_VERSION\$"; then
  build_etcd
fi
is_current || { log "built binaries do not report the expected versions"; exit 1; }
log "ready in $ASSETS"
echo "$ASSETS"
