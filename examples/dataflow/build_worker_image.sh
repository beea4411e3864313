#!/usr/bin/env bash
# Build the worker image for Dataflow or Flink, with the Beam version that
# constraints.txt locks (the one ./run_local.sh installs where you launch).
#   examples/dataflow/build_worker_image.sh REGION-docker.pkg.dev/PROJECT/oibeam/worker:TAG
# Then `docker push` it and pass it as --sdk_container_image.
# DOCKER names another client (e.g. podman); PYTHON_VERSION another Python.
set -euo pipefail
tag=${1:?usage: $0 IMAGE_TAG}
root="$(cd "$(dirname "$0")/../.." && pwd)"
beam=$(sed -n 's/^apache-beam==\([^ ;]*\).*/\1/p' "$root/constraints.txt")
[ -n "$beam" ] || { echo "no apache-beam pin in $root/constraints.txt" >&2; exit 1; }
exec "${DOCKER:-docker}" build \
  --build-arg "BEAM_VERSION=$beam" \
  --build-arg "PYTHON_VERSION=${PYTHON_VERSION:-3.11}" \
  -f "$root/examples/dataflow/Dockerfile" -t "$tag" "$root"
