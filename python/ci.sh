#!/usr/bin/env bash
# CI of the Python binding: makes a virtualenv under target/, installs pinned
# maturin, zig, pytest and the test dependencies (the real LangGraph server
# among them), builds the manylinux wheel
# once (release) and installs it with no Rust on PATH, builds the sink
# binary the tests talk to, and runs the pytest suite. Pytest's exit 5 ("no
# tests ran") is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/target/python-venv"
export CARGO_TARGET_DIR="$ROOT/target"

cargo fmt --manifest-path python/Cargo.toml --check

[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# maturin's build backend runs the `maturin` executable from PATH.
export PATH="$VENV/bin:$PATH"
# The platform and its dependencies at the versions the conformance run
# pins (langgraph-cli[inmem] runs the real in-memory server in
# tests/test_server.py). A failed install fails CI: nothing is skipped.
"$VENV/bin/pip" install -q --disable-pip-version-check \
    --constraint "$ROOT/crates/cli/tests/conformance/constraints.txt" \
    maturin==1.16.0 ziglang==0.13.0 pytest==9.2.0 \
    prometheus-client==0.26.0 opentelemetry-sdk==1.45.2 langgraph-api==0.16.7 \
    'langgraph-cli[inmem]==0.4.40'

cargo build --bin beacon-meter

# The wheel a user would install: manylinux2014 (glibc 2.17) through zig as
# the linker, abi3, stripped. Installed with no Rust on PATH, so that the
# tests below run against exactly what `pip install` of the wheel gives.
WHEELS="$ROOT/target/python-wheels"
rm -rf "$WHEELS"
maturin build -q --release --zig --compatibility manylinux2014 --strip \
    -m python/Cargo.toml --out "$WHEELS"
wheel=$(ls "$WHEELS"/*.whl)
no_rust_path="$VENV/bin:/usr/local/bin:/usr/bin:/bin"
if PATH="$no_rust_path" command -v cargo >/dev/null; then
    echo "python/ci.sh: cargo is on $no_rust_path; the no-Rust install would prove nothing" >&2
    exit 1
fi
case "$(basename "$wheel")" in
    *-cp39-abi3-manylinux2014_x86_64*) ;;
    *) echo "python/ci.sh: $wheel is not a cp39-abi3 manylinux2014 wheel" >&2; exit 1 ;;
esac
start=$(date +%s%N)
PATH="$no_rust_path" "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
echo "python/ci.sh: installed $(basename "$wheel") ($(stat -c %s "$wheel") bytes) without Rust in $(( ($(date +%s%N) - start) / 1000000 )) ms"

# Not `python -m pytest`: that would put python/ (the source package,
# without the built extension) first on sys.path.
cd python
rc=0
"$VENV/bin/pytest" -q -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "python/ci.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
