#!/usr/bin/env bash
# The Kubernetes test control plane (v1.20.2: the newest whose source Debian
# carries), on loopback: etcd from Debian's etcd-server; kube-apiserver,
# kube-controller-manager and kube-scheduler built from Debian's `kubernetes`
# source package with Debian's Go and cached under ~/.cache/nightshift/k8s-1.20.2-r2
# (about 12 minutes once on 2 cores; see ../shared/TEST-CLUSTER-NOTES.md). The
# vendored github.com/modern-go/reflect2 1.0.1 is swapped for Debian's 1.0.2:
# built with Go 1.18 or later, 1.0.1 iterates maps with the wrong iterator
# size (modern-go/reflect2#26) and the apiserver can die with "fatal error:
# fault" while encoding objects; the "-r2" cache replaces binaries built without it.
# There is no kubelet: the tests' simulated kubelet (tests/support/kubelet.rs)
# registers nodes and drives pod status.
#
#   scripts/test-cluster.sh build    build and cache the binaries (idempotent)
#   scripts/test-cluster.sh start    start the control plane unless it runs; prints the kubeconfig path
#   scripts/test-cluster.sh stop     stop it (apiserver before etcd) and keep its data
#   scripts/test-cluster.sh reset    stop it and remove its data
#   scripts/test-cluster.sh status   exit 0 when it answers /readyz
#
# Environment: NIGHTSHIFT_CACHE (default ~/.cache/nightshift), NIGHTSHIFT_CLUSTER_DIR
# (default $NIGHTSHIFT_CACHE/cluster), NIGHTSHIFT_CLUSTER_PORT (apiserver, default 16443;
# etcd uses the two ports after it).
set -euo pipefail
root="${NIGHTSHIFT_CACHE:-$HOME/.cache/nightshift}"
cache="$root/k8s-1.20.2-r2"
dir="${NIGHTSHIFT_CLUSTER_DIR:-$root/cluster}"
port="${NIGHTSHIFT_CLUSTER_PORT:-16443}"
etcd_client=$((port + 1))
etcd_peer=$((port + 2))
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
  $SUDO apt-get install -y -qq --no-install-recommends golang-go rsync etcd-server dpkg-dev golang-github-modern-go-reflect2-dev >/dev/null
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source --download-only kubernetes >/dev/null)
  orig="$(ls "$work"/kubernetes_*.orig.tar.* | head -n 1)"
  mkdir -p "$work/src"
  tar xf "$orig" -C "$work/src"
  top="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
  # reflect2 1.0.2 (Go 1.18+ map iteration); go.mod's replace and vendor/modules.txt must agree.
  rsync -a --delete --exclude go.mod --exclude '*_test.go' /usr/share/gocode/src/github.com/modern-go/reflect2/ "$top/vendor/github.com/modern-go/reflect2/"
  sed -i 's#\(github.com/modern-go/reflect2\) v1.0.1#\1 v1.0.2#g' "$top/go.mod" "$top/vendor/modules.txt"
  grep -q 'modern-go/reflect2 v1.0.2' "$top/vendor/modules.txt"
  (cd "$top" && GOPATH="$PWD/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor \
     make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >/dev/null)
  mkdir -p "$cache"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    cp "$(find "$top/_output" -type f -name "$b" -perm -u+x | head -n 1)" "$cache/$b"
  done
  "$cache/kube-apiserver" --version
}

ready() {
  [ -f "$dir/admin.token" ] || return 1
  curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" \
    "https://127.0.0.1:$port/readyz" >/dev/null 2>&1
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

pki() {
  local p="$dir/pki"
  [ -f "$p/apiserver.crt" ] && return 0
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=nightshift-test-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\n' >"$p/san.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
    -extfile "$p/san.ext" -out "$p/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  # Static tokens: the tests' admin, and the two components (the bootstrap RBAC roles name them).
  local admin cm sched
  admin="$(openssl rand -hex 24)"; cm="$(openssl rand -hex 24)"; sched="$(openssl rand -hex 24)"
  {
    echo "$admin,nightshift-admin,uid-admin,\"system:masters\""
    echo "$cm,system:kube-controller-manager,uid-cm"
    echo "$sched,system:kube-scheduler,uid-sched"
  } >"$p/tokens.csv"
  chmod 600 "$p/tokens.csv" "$p"/*.key
  printf '%s' "$admin" >"$dir/admin.token"
  kubeconfig "$dir/kubeconfig" "$admin" nightshift-admin
  kubeconfig "$dir/controller-manager.kubeconfig" "$cm" system:kube-controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" "$sched" system:kube-scheduler
}

kubeconfig() {
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: nightshift-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $3
  user:
    token: $2
contexts:
- name: nightshift-test
  context: {cluster: nightshift-test, user: $3}
current-context: nightshift-test
KUBECONFIG
  chmod 600 "$1"
}

spawn() {
  local name="$1"; shift
  # 9>&-: the daemons must not inherit (and so keep holding) start's lock.
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/$name.pid"
}

start() {
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  if ready; then echo "$dir/kubeconfig"; return 0; fi
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$cache/$b" ] || { echo "$cache/$b is missing: run $0 build first" >&2; exit 1; }
  done
  command -v etcd >/dev/null || { echo "etcd is missing: apt-get install etcd-server" >&2; exit 1; }
  stop_all
  pki
  local p="$dir/pki"
  spawn etcd etcd --name nightshift-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "nightshift-test=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync
  # --kubelet-preferred-address-types: the simulated nodes' Hostname does not resolve; pods/log
  # is proxied to their InternalIP 127.0.0.1, where tests/support/kubelet.rs serves containerLogs.
  spawn apiserver "$cache/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" --insecure-port 0 \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --token-auth-file "$p/tokens.csv" --authorization-mode RBAC --allow-privileged \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --max-requests-inflight 1000 --max-mutating-requests-inflight 500 \
    --kubelet-preferred-address-types InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP
  local i
  for i in $(seq 1 120); do ready && break; sleep 0.5; done
  ready || { echo "the apiserver did not become ready; see $dir/apiserver.log" >&2; tail -n 20 "$dir/apiserver.log" >&2; exit 1; }
  # No kubelet: the node-lifecycle controller would only mark the simulated nodes NotReady.
  spawn controller-manager "$cache/kube-controller-manager" --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --requestheader-client-ca-file "$p/ca.crt" --bind-address 127.0.0.1 --port 0 --secure-port 0 \
    --leader-elect=false --use-service-account-credentials --controllers '*,-nodelifecycle' \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --kube-api-qps 500 --kube-api-burst 1000 --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10
  spawn scheduler "$cache/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --requestheader-client-ca-file "$p/ca.crt" --bind-address 127.0.0.1 --port 0 --secure-port 0 \
    --leader-elect=false --kube-api-qps 500 --kube-api-burst 1000
  sleep 0.5
  for c in controller-manager scheduler; do
    alive "$c" || { echo "$c exited; see $dir/$c.log" >&2; tail -n 20 "$dir/$c.log" >&2; exit 1; }
  done
  echo "$dir/kubeconfig"
}

stop_one() {
  local name="$1" pid
  [ -f "$dir/$name.pid" ] || return 0
  pid="$(cat "$dir/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/$name.pid"
}

stop_all() {
  # The three components together, then etcd (an apiserver without etcd hangs on shutdown).
  stop_one scheduler & stop_one controller-manager & stop_one apiserver & wait
  stop_one etcd
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) [ -d "$dir" ] && stop_all; true ;;
  reset) [ -d "$dir" ] && stop_all; rm -rf "$dir" ;;
  status) ready ;;
  *) echo "usage: $0 build|start|stop|reset|status" >&2; exit 2 ;;
esac
