#!/usr/bin/env bash
# The Kubernetes test control plane (v1.20.2: the newest whose source Debian
# carries): kube-apiserver, kube-controller-manager and kube-scheduler built
# from Debian's `kubernetes` source package with Debian's Go, cached under
# ~/.cache/nightshift/k8s-1.20.2 (about 12 minutes once on 2 cores; see
# ../shared/TEST-CLUSTER-NOTES.md). etcd comes from Debian's etcd-server.
#
#   scripts/test-cluster.sh build    build and cache the binaries (idempotent)
#
# Starting the control plane and the simulated kubelet belong to the
# Kubernetes issue; this part only provides the binaries.
set -euo pipefail
cache="${NIGHTSHIFT_CACHE:-$HOME/.cache/nightshift}/k8s-1.20.2"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

build() {
  if [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kube-controller-manager" ] && [ -x "$cache/kube-scheduler" ]; then
    echo "control plane binaries cached in $cache"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Source packages from the same archives apt already uses (deb822 or one-line lists).
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -e "$f" ] && $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
      grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/nightshift-src.list >/dev/null || true
    fi
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends golang-go rsync etcd-server dpkg-dev >/dev/null
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null)
  orig="$(ls "$work"/kubernetes_*.orig.tar.* | head -n 1)"
  mkdir -p "$work/src"
  tar xf "$orig" -C "$work/src"
  top="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  (cd "$top" && GOPATH="$PWD/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
     make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >/dev/null)
  mkdir -p "$cache"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    cp "$(find "$top/_output" -type f -name "$b" -perm -u+x | head -n 1)" "$cache/$b"
  done
  "$cache/kube-apiserver" --version
}

case "${1:-}" in
  build) build ;;
  *) echo "usage: $0 build" >&2; exit 2 ;;
esac
