#!/usr/bin/env bash
# GitHub's official REST API description, for the tests' GitHub stand-in
# (tests/support/github.rs): every request nightshift sends and every
# response the stand-in gives is validated against it. It comes from the npm
# package @octokit/openapi (pinned: 23.0.2; the OpenAPI 3.0 file
# generated/api.github.com.json, about 10 MB) and is cached under
# ~/.cache/nightshift/octokit-openapi. npm is installed with apt-get when
# missing. Without the file the stand-in's tests print "SKIP" and pass,
# unless NIGHTSHIFT_REQUIRE_GITHUB_SPEC=1.
#
#   scripts/github-openapi.sh          fetch and cache the description (idempotent); prints its path
#   scripts/github-openapi.sh path     print where the tests look for it
#
# Environment: NIGHTSHIFT_CACHE (default ~/.cache/nightshift); the tests also
# read NIGHTSHIFT_GITHUB_OPENAPI (a path to api.github.com.json) before the cache.
set -euo pipefail
version="23.0.2"
root="${NIGHTSHIFT_CACHE:-$HOME/.cache/nightshift}"
dest="$root/octokit-openapi/generated/api.github.com.json"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

die() {
  echo "github-openapi: $*" >&2
  exit 1
}

fetch() {
  if [ -s "$dest" ]; then
    echo "$dest"
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "github-openapi: npm is missing; installing it with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null || die "apt-get could not install npm"
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@octokit/openapi@$version" >/dev/null) || die "npm pack @octokit/openapi@$version failed (is the npm registry reachable?)"
  tarball="$(ls "$tmp"/octokit-openapi-*.tgz 2>/dev/null | head -n1)"
  [ -n "$tarball" ] || die "npm pack left no tarball in $tmp"
  tar -xzf "$tarball" -C "$tmp" package/generated/api.github.com.json || die "the package has no generated/api.github.com.json"
  src="$tmp/package/generated/api.github.com.json"
  [ -s "$src" ] || die "generated/api.github.com.json is empty"
  # A whole, parseable JSON document whose "openapi" is 3.0.x, or nothing is cached.
  node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(!/^3\.0\./.test(d.openapi)) { console.error("openapi is " + d.openapi); process.exit(1) }' "$src" || die "the description is not an OpenAPI 3.0 JSON document"
  mkdir -p "$(dirname "$dest")"
  cp "$src" "$dest.tmp.$$"
  mv "$dest.tmp.$$" "$dest"
  echo "$dest"
}

case "${1:-fetch}" in
  fetch) fetch ;;
  path) echo "$dest" ;;
  *) die "usage: $0 [fetch|path]" ;;
esac
