#!/usr/bin/env bash
# Conformance with the real reference reporter (docs/protocol.md, "How the
# reference platform reports"): installs langgraph-api 0.16.7 from PyPI with
# pip into a virtualenv under the build directory, then runs
# crates/cli/tests/conformance/reference.py, which drives its unchanged metadata_loop
# against `beacon-meter sink` on 127.0.0.1 and checks sent == received ==
# recorded on each destination.
#
#   crates/cli/tests/conformance/run.sh          # from anywhere; uses $CARGO_TARGET_DIR or target/
#   PYTHON=python3.12 crates/cli/tests/conformance/run.sh
#
# Needs Python 3.11+ and PyPI. If the install fails, this FAILS: it never skips.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target/conformance/venv-langgraph-api-0.16.7"
python="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"

fail() {
    printf 'conformance: FAILED: %s\n' "$1" >&2
    exit 1
}

[ -n "$python" ] || fail "no python3.11 or python3 on PATH (set PYTHON=/path/to/python3.11)"
command -v "$python" >/dev/null || fail "PYTHON=$python is not an executable (set PYTHON=/path/to/python3.11)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "$python is $("$python" --version 2>&1); langgraph-api 0.16.7 needs Python 3.11 or later (set PYTHON)"

# The venv is reused when it holds exactly this constraints file's set.
stamp="$(sha256sum "$here/constraints.txt" | cut -d' ' -f1)"
if [ "$(cat "$venv/.constraints.sha256" 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" || fail "could not create a virtualenv at $venv with $python"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
        --constraint "$here/constraints.txt" 'langgraph-api==0.16.7' \
        || fail "pip could not install langgraph-api==0.16.7 (constraints: $here/constraints.txt) into $venv; see pip's output above. This step needs PyPI and is not skipped."
    echo "$stamp" > "$venv/.constraints.sha256"
fi

(cd "$repo" && cargo build --quiet --bin beacon-meter) || fail "cargo build --bin beacon-meter failed"
exec "$venv/bin/python" "$here/reference.py" --beacon-meter "$target/debug/beacon-meter"
