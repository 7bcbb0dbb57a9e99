#!/usr/bin/env bash
# Build the container image from the Dockerfile and check it the way users run
# it: `docker run IMAGE validate` on the default workspace baked into it, as
# the non-root user deploy/kubernetes/nightshift.yaml expects.
#   scripts/image.sh [TAG]      (default nightshift:latest)
# Needs a container engine (docker, or podman with its docker CLI); where none
# answers, it says SKIP and exits 0 (the machine cannot build images, which is
# not a defect of the image), and exits 1 if the build or the check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-nightshift:latest}"
engine=""
for e in docker podman; do
  if command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1; then engine="$e"; break; fi
done
if [ -z "$engine" ]; then
  echo "SKIP: container image: no container engine answers here (docker info / podman info failed); the Dockerfile was not built"
  exit 0
fi
"$engine" build -t "$tag" .
out="$("$engine" run --rm "$tag" validate)"
echo "$out"
case "$out" in *"is valid"*) ;; *) echo "FAILED: the image's default workspace does not validate" >&2; exit 1 ;; esac
user="$("$engine" run --rm --entrypoint /usr/bin/id "$tag" -u)"
[ "$user" = "65532" ] || { echo "FAILED: the image runs as uid $user, not 65532 (deploy/kubernetes/nightshift.yaml)" >&2; exit 1; }
"$engine" run --rm --entrypoint /bin/sh "$tag" -c 'command -v ssh && command -v git' >/dev/null \
  || { echo "FAILED: the image lacks ssh or git" >&2; exit 1; }
echo "image $tag: built, validates its default workspace, runs as 65532, has ssh and git"
