#!/usr/bin/env bash
# Packaging smoke: build the wheel, install it (not editable) into a fresh virtual environment
# outside the source tree, and from a directory outside the source tree run the shipped demo
# deployment with the installed `connector` against the simulator and the devstack, checking
# that records arrive in Kafka and decode through the registry (.ci/wheel_smoke.py).
# A wheel that misses its package data (Avro schemas, example deployments) fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$PWD"
PYTHON="${PYTHON:-python3}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/connector-wheel-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Build from a copy of the checkout's files (tracked and new, not ignored): a stale build/ or
# *.egg-info/SOURCES.txt in the tree would otherwise add files that package-data does not ship.
started=$SECONDS
mkdir "$WORK/src"
git -C "$SRC" ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$SRC/$f" ] && printf '%s\0' "$f"; done \
    | tar -C "$SRC" --null -T - -cf - | tar -C "$WORK/src" -xf -
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WORK"/dist/connector-*.whl
echo "wheel built and installed in $((SECONDS - started)) s: $(cd "$WORK/dist" && ls)"

# Outside the source tree, with nothing pointing into it: only the installed package is importable
# (python -I: no script directory, no PYTHON* variables; PYTHONPATH unset for the children too).
mkdir "$WORK/run"
cd "$WORK/run"
env -u PYTHONPATH -u PYTHONHOME "$WORK/venv/bin/python" -I "$SRC/.ci/wheel_smoke.py" \
    --source-tree "$SRC" --bin "$WORK/venv/bin"
