#!/usr/bin/env bash
# oibeam on this machine, from nothing:
#   ./run_local.sh          run the main job end to end on generated sample data
#   ./run_local.sh test     install the test extras and run the whole test suite
#   ./run_local.sh lock [--beam X.Y.Z] [--upgrade]
#                           re-resolve constraints.txt (every version pinned) from
#                           pyproject.toml: keep what fits, move Beam, or move all
# Extra arguments after `test` go to pytest (e.g. ./run_local.sh test -k join).
# Every install here is pinned by constraints.txt, as the worker image is.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${OIBEAM_VENV:-.venv}
PYTHON=${PYTHON:-python3}
LOCK="$PWD/constraints.txt"
# The resolver that writes constraints.txt (only `lock` uses it).
UV_REQUIREMENT="uv==0.13.9"
SAMPLE_IMAGES=${SAMPLE_IMAGES:-100000}
FETCH_PER_LABEL=${FETCH_PER_LABEL:-25}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
      echo "oibeam needs Python >= 3.10 (found $("$PYTHON" --version 2>&1)); set PYTHON=" >&2
      exit 1
    }
    echo "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
}

# Installs the project (editable) with the given extras, pinned by constraints.txt
# (also inside pip's isolated build environment, through PIP_CONSTRAINT), once per
# change of pyproject.toml or constraints.txt.
ensure_installed() {
  local extras=$1 stamp="$VENV/.oibeam-installed-$1"
  local want
  want=$(cat pyproject.toml "$LOCK" | cksum)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing oibeam[$extras] into $VENV from constraints.txt (first run takes a minute or two)"
    local log="$VENV/pip-install.log"
    if ! { PIP_CONSTRAINT="$LOCK" "$VENV/bin/python" -m pip install pip &&
           PIP_CONSTRAINT="$LOCK" "$VENV/bin/python" -m pip install -e ".[$extras]"; } >"$log" 2>&1; then
      tail -40 "$log" >&2
      echo "pip install failed; full log in $log" >&2
      exit 1
    fi
    echo "$want" > "$stamp"
  fi
}

# Re-resolves constraints.txt: every package the project and its test extra need,
# for every Python the project supports, plus pip and the build backend. Pins that
# still fit are kept; --beam X.Y.Z moves Beam (and what must move with it);
# --upgrade moves everything to the newest versions pyproject.toml allows.
run_lock() {
  local beam upgrade=()
  beam=$(sed -n 's/^apache-beam==\([^ ;]*\).*/\1/p' "$LOCK")
  while [ $# -gt 0 ]; do
    case "$1" in
      --beam) beam=${2:?--beam needs a version}; upgrade+=(--upgrade-package apache-beam); shift 2 ;;
      --upgrade) upgrade=(--upgrade); shift ;;
      *) echo "usage: $0 lock [--beam X.Y.Z] [--upgrade]" >&2; exit 2 ;;
    esac
  done
  ensure_venv
  "$VENV/bin/python" -m pip install -q "$UV_REQUIREMENT"
  printf 'apache-beam[gcp]==%s\npip\nsetuptools>=77\nwheel\n' "$beam" |
    "$VENV/bin/python" -m uv pip compile pyproject.toml - --extra test \
      --universal --python-version 3.10 --quiet "${upgrade[@]}" \
      --custom-compile-command "./run_local.sh lock" -o "$LOCK"
  echo "constraints.txt: apache-beam==$beam; now run ./run_local.sh test"
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_main() {
  ensure_venv
  ensure_installed test
  local data=out/sample root=out/snapshots port
  port=$(free_port)
  echo "== writing a synthetic V1-shaped release of $SAMPLE_IMAGES images to $data"
  rm -rf "$data" "$root"
  "$VENV/bin/oibeam" sample --output "$data" --images "$SAMPLE_IMAGES" \
    --serve-base "http://127.0.0.1:$port/" >/dev/null
  "$VENV/bin/oibeam" sample-server --root "$data" --port "$port" >/dev/null &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  local selection=(
    --images "$data"/images_2016_08/*/images.csv
    --labels "$data"/machine_ann_2016_08/*/labels.csv "$data"/human_ann_2016_08/*/labels.csv
    --classes "$data/dict.csv"
    --trainable-only --max-per-label "$FETCH_PER_LABEL"
    --allow-private-hosts
  )
  local snapshot=(
    "$VENV/bin/oibeam" snapshot "${selection[@]}" --output "$root" --previous latest
  )
  echo "== oibeam plan: what the snapshot below will select, a probe of 100 of its URLs,"
  echo "   and hours and cost projected for 8 workers (nothing else is fetched)"
  "$VENV/bin/oibeam" plan "${selection[@]}" --probe 100 --output out/plan --overwrite
  echo "== oibeam snapshot on the DirectRunner: tables, label statistics, up to"
  echo "   $FETCH_PER_LABEL images of each trainable label fetched from a loopback server"
  echo "   started here (it answers like Flickr: some 404s, placeholders, changed bytes)"
  SECONDS=0
  "${snapshot[@]}" --snapshot-id first
  echo "   (${SECONDS} s)"
  echo "== the same command again: a refresh of LATEST, with nothing to fetch"
  SECONDS=0
  "${snapshot[@]}" --snapshot-id refresh
  echo "   (${SECONDS} s)"
  echo "== oibeam verify --deep $root (follows LATEST: files, checksums, counts, image MD5s)"
  "$VENV/bin/oibeam" verify --deep "$root"
  echo "== oibeam export $root --format all (training lists, JSONL, attribution of ok images)"
  "$VENV/bin/oibeam" export "$root" --format all
  echo "== done: snapshots in $root/ (LATEST names the newest), each with its report.html"
}

run_tests() {
  ensure_venv
  ensure_installed test
  echo "== ruff"
  "$VENV/bin/python" -m ruff check .
  "$VENV/bin/python" -m ruff format --check .
  echo "== pytest"
  "$VENV/bin/pytest" "$@"
}

case "${1:-}" in
  test) shift; run_tests "$@" ;;
  lock) shift; run_lock "$@" ;;
  "") run_main ;;
  *) echo "usage: $0 [test [pytest args] | lock [--beam X.Y.Z] [--upgrade]]" >&2; exit 2 ;;
esac
