#!/usr/bin/env bash
# Model-checks the metering core with loom.
#
# The core reaches every atomic through `src/sync.rs`, which switches to loom
# under `--cfg loom`, so this checks the production code itself.
#
#   loom-tests/run.sh                 # every model
#   loom-tests/run.sh two_writers     # models whose name matches
#
# LOOM_MAX_PREEMPTIONS bounds the number of preemptions loom explores per
# execution. 2 covers every interleaving with up to two forced context
# switches, which is where the races of a seqlock and a lock-free list live,
# and keeps the run to a few minutes on 2 cores. Raise it for a deeper search.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTFLAGS="--cfg loom -C debug-assertions ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "loom: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS"
exec cargo test --release --tests -- --nocapture --test-threads=1 "$@"
