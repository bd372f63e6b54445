#!/usr/bin/env bash
# Build the CPU smoke image where no registry is reachable (`make docker-smoke-offline`).
#
# A Debian 12 base made with debootstrap stands in for python:3.11-slim-bookworm: it is imported
# into Docker and used by its image ID (a content digest, so the build stays pinned to it), then
# Dockerfile.eval builds with LOCK=cpu and the lock's hashes exactly as in a normal build.
# Needs root, debootstrap and a Debian mirror. Where TLS to the package index is intercepted,
# the host's CA bundle is carried into the base. LOCAL_WHEELS=<dir> serves the +cpu torch wheel
# from a local copy (download.pytorch.org unreachable); pip checks it against the lock's hash.
set -euo pipefail
TAG=${1:-repro-smoke:dev}
BASE=${OFFLINE_BASE_TAG:-repro-offline/debian:bookworm}
PYTHON=${PYTHON:-python3}
PORT=${LOCAL_WHEELS_PORT:-8765}

if ! docker image inspect "$BASE" > /dev/null 2>&1; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca.crt"
        printf '[global]\ncert = /etc/ssl/certs/host-ca.crt\n' > "$root/etc/pip.conf"
    fi
    tar -C "$root" -c . | docker import - "$BASE"
fi
id=$(docker image inspect --format '{{.Id}}' "$BASE")

extra=()
if [ -n "${LOCAL_WHEELS:-}" ]; then
    index=$(mktemp -d)
    mkdir -p "$index/torch"
    for wheel in "$LOCAL_WHEELS"/torch-*.whl; do
        name=$(basename "$wheel")
        cp "$wheel" "$index/torch/$name"
        printf '<a href="%s">%s</a>\n' "${name//+/%2B}" "$name" >> "$index/torch/index.html"
    done
    "$PYTHON" -m http.server --bind 127.0.0.1 "$PORT" --directory "$index" > /dev/null 2>&1 &
    server=$!
    trap 'kill $server; rm -rf "$index"' EXIT
    extra=(--build-arg "PIP_EXTRA_INDEX_URL=http://127.0.0.1:$PORT/")
fi

# shellcheck disable=SC2046 # build-args prints separate words on purpose
docker build --network host \
    $("$PYTHON" -m repro.provenance.pins build-args cpu --offline-base "$BASE@$id") \
    "${extra[@]}" --build-arg "VCS_REF=$(git rev-parse HEAD 2> /dev/null || echo unknown)" \
    -t "$TAG" .
