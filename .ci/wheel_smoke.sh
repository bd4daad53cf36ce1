#!/usr/bin/env bash
# Packaging smoke: build the wheel, install it (not editable) into a fresh virtual environment
# outside the source tree, and from a directory outside the source tree run the shipped demo
# deployment with the installed `connector` against the simulator and the devstack, checking
# that records arrive in Kafka and decode through the registry (.ci/wheel_smoke.py).
# A wheel that misses its package data (Avro schemas, example deployments) fails here. Then a
# wheel built without a Rust toolchain must install and run on the Python path.
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
cp -a "$WORK/src" "$WORK/src-python"  # for the build without Rust (no build/ left by the first)
# The checkout's cargo target directory: the crates built by the editable install are reused.
CARGO_TARGET_DIR="$SRC/native/target" \
    "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WORK"/dist/connector-*.whl
echo "wheel built and installed in $((SECONDS - started)) s: $(cd "$WORK/dist" && ls)"
if [ "${CONNECTOR_NATIVE:-}" = require ]; then
    (cd "$WORK" && env -u PYTHONPATH "$WORK/venv/bin/connector" --version | grep "record path: native")
fi

# Outside the source tree, with nothing pointing into it: only the installed package is importable
# (python -I: no script directory, no PYTHON* variables; PYTHONPATH unset for the children too).
mkdir "$WORK/run"
cd "$WORK/run"
env -u PYTHONPATH -u PYTHONHOME "$WORK/venv/bin/python" -I "$SRC/.ci/wheel_smoke.py" \
    --source-tree "$SRC" --bin "$WORK/venv/bin"

# A machine without Rust: the wheel builds without the extension (setuptools-rust's optional
# build), installs, and runs on the Python path, saying so.
no_rust_path=""
IFS=: read -ra path_dirs <<< "$PATH"
for dir in "${path_dirs[@]}"; do
    [ -x "$dir/cargo" ] || [ -x "$dir/rustc" ] || no_rust_path="${no_rust_path:+$no_rust_path:}$dir"
done
PATH="$no_rust_path" "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist-python" \
    "$WORK/src-python"
if unzip -l "$WORK"/dist-python/connector-*.whl | grep -q "_native"; then
    echo "wheel_smoke: a wheel built without Rust has the native extension" >&2
    exit 1
fi
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --force-reinstall "$WORK"/dist-python/connector-*.whl
env -u PYTHONPATH -u CONNECTOR_NATIVE "$WORK/venv/bin/connector" --version \
    | grep "record path: python (the native extension is not built"
env -u PYTHONPATH -u PYTHONHOME -u CONNECTOR_NATIVE "$WORK/venv/bin/python" -I \
    "$SRC/.ci/wheel_smoke.py" --source-tree "$SRC" --bin "$WORK/venv/bin"
echo "without Rust: the wheel installs and runs the demo on the Python path"
