#!/usr/bin/env bash
# CI of the Python binding: makes a virtualenv under target/, installs pinned
# maturin, pytest and the test dependencies, builds the extension once
# (release) and installs it, builds the sink binary the tests talk to, and
# runs the pytest suite. Pytest's exit 5 ("no tests ran") is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/target/python-venv"
export CARGO_TARGET_DIR="$ROOT/target"

cargo fmt --manifest-path python/Cargo.toml --check

[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# maturin's build backend runs the `maturin` executable from PATH.
export PATH="$VENV/bin:$PATH"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    maturin==1.16.0 pytest==9.2.0 \
    prometheus-client==0.26.0 opentelemetry-sdk==1.45.2 langgraph-api==0.16.7

cargo build --bin beacon-meter
"$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./python

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
