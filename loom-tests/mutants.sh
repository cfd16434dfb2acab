#!/usr/bin/env bash
# Mutation check of the loom suite: every ordering in src/meter/slot.rs that
# is stronger than Relaxed must be needed, and so must the seqlock's and the
# claim's structural steps. Each mutant weakens exactly one of them; the loom
# suite must then fail. A mutant that survives is either an ordering the
# code does not need (make it Relaxed and write down why) or a gap in the
# models (add one). Exits non-zero if any mutant survives, does not build, or
# times out.
#
#   loom-tests/mutants.sh              # every mutant
#   loom-tests/mutants.sh push         # mutants whose description matches
#   MUTANTS_BASELINE=all loom-tests/mutants.sh   # first check that every
#                                      # model passes unmutated (CI runs
#                                      # loom-tests/run.sh just before, so
#                                      # by default one model is checked)
#
# The mutants:
# * ordering: each `Ordering::{Acquire,Release,AcqRel,SeqCst}` in slot.rs,
#   found by scanning the file (so a new ordering is covered without editing
#   this script), replaced by `Ordering::Relaxed`, one at a time;
# * structural: the `STRUCTURAL` list below, each a line of slot.rs replaced
#   by another (the pattern must match exactly one line).
#
# There is no exception. The one ordering whose weakening loom cannot
# notice, the success ordering of the CAS in `SlotList::claim` (it succeeds
# only on a null head, and then nothing is read through it), is `Relaxed` in
# the source, with that argument written beside it.
#
# Speed: the source is copied once to a temporary directory (the checkout is
# never modified; the copy is deleted on exit), each mutant is built once,
# incrementally (only the core crate and the test crate recompile, into
# loom-tests/target, beside the artifacts of run.sh), and only the models
# that exercise the mutated function run, most likely catcher first,
# stopping at the first that fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
filter="${1:-}"
export RUSTFLAGS="--cfg loom -C debug-assertions ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
# Incremental: a mutant changes one line of slot.rs, so most of the core and
# of the test crate is reused from the previous mutant's build (3-5x faster
# builds; dependencies are built once, by run.sh, as usual).
export CARGO_PROFILE_RELEASE_INCREMENTAL=true
# Seconds one model may run on a mutant before the mutant counts as timed
# out (a failing model normally stops within seconds).
MODEL_TIMEOUT="${MODEL_TIMEOUT:-300}"

work="$(mktemp -d "${TMPDIR:-/tmp}/beacon-mutants.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -r "$root/Cargo.toml" "$root/Cargo.lock" "$root/src" "$root/benches" "$root/examples" "$work/"
mkdir "$work/loom-tests"
cp -r "$here/Cargo.toml" "$here/Cargo.lock" "$here/src" "$here/tests" "$work/loom-tests/"
# A version of their own for the copied packages: cargo names a path
# package's artifacts by its path relative to the workspace, which the copy
# shares with the checkout, so without this the mutants' builds would
# overwrite run.sh's, and a later run.sh would find them fresh and run the
# last mutant.
sed -i 's/^version = "\(.*\)"$/version = "\1-mutant"/' "$work/Cargo.toml" "$work/loom-tests/Cargo.toml"
slot="$work/src/meter/slot.rs"
pristine="$work/slot.rs.pristine"
cp "$slot" "$pristine"

# Models of loom-tests/tests/core.rs, fastest first (seconds at
# LOOM_MAX_PREEMPTIONS=2 on a 2-core machine, see README).
ALL_MODELS="direct_records_through_thread_cache_survive_thread_exit
record_nodes_and_custom_counters_are_exact
writer_exits_between_rotations
two_slots_registered_concurrently
slot_registered_while_rotating
two_writers_one_rotator"

# The models that exercise a function of slot.rs (`fn:custom` for a line
# about custom counters), most likely catcher first. A function not listed
# gets every model.
models_for() {
    case "$1" in
    begin | end | bump | snapshot_into)
        echo two_writers_one_rotator record_nodes_and_custom_counters_are_exact ;;
    snapshot_into:custom)
        # Only this model has custom counters.
        echo record_nodes_and_custom_counters_are_exact ;;
    release)
        # A joined thread's release happens-before the next spawn anyway:
        # only the direct model has a writer exit while another claims.
        echo direct_records_through_thread_cache_survive_thread_exit writer_exits_between_rotations ;;
    claim)
        echo two_slots_registered_concurrently writer_exits_between_rotations \
            direct_records_through_thread_cache_survive_thread_exit ;;
    push)
        echo two_slots_registered_concurrently slot_registered_while_rotating ;;
    iter | iter_from)
        echo slot_registered_while_rotating two_slots_registered_concurrently ;;
    *)
        echo $ALL_MODELS ;;
    esac
}

# Structural mutants: description | function | exact line content (trimmed)
# | replacement.
STRUCTURAL=(
    "seqlock: a record does not mark seq odd|begin|self.seq.store(s.wrapping_add(1), Ordering::Relaxed);|"
    "seqlock: a snapshot reads while seq is odd|snapshot_into|if s1 & 1 == 0 {|if true {"
    "seqlock: a snapshot skips the seq recheck|snapshot_into|if s1 == s2 {|if s1 == s1 {"
    "claim: takes a slot without checking it is free|claim|.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)|.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).or(Ok::<bool, bool>(true))"
    "release: a retired slot is never freed|release|self.in_use.store(false, Ordering::Release);|"
)

# Builds the copy; prints the path of the `core` test binary.
build() {
    local out
    if ! out="$(cd "$work/loom-tests" && cargo test --release --test core --no-run 2>&1)"; then
        echo "$out" >&2
        return 1
    fi
    sed -n 's/.*Executable tests\/core.rs (\(.*\))$/\1/p' <<<"$out" | tail -n 1
}

# Runs one model; 0 if it passed, 1 if it failed, 2 if it timed out, 3 if
# it did not run (no such model).
run_model() {
    local bin="$1" model="$2" log="$3" rc=0
    # In a subshell with stderr dropped: a model that aborts (a panic while
    # panicking) would otherwise make bash print "Aborted" here.
    (timeout "$MODEL_TIMEOUT" "$bin" --exact "$model" --test-threads=1 >"$log" 2>&1) 2>/dev/null || rc=$?
    if [ "$rc" = 124 ]; then return 2; fi
    grep -q '^running 1 test' "$log" || return 3
    [ "$rc" = 0 ] && return 0
    return 1
}

started=$(date +%s)
echo "mutants: loom, LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS; copy in $work"
bin="$(build)" || { echo "mutants: the unmutated copy does not build" >&2; exit 1; }
baseline="direct_records_through_thread_cache_survive_thread_exit"
[ "${MUTANTS_BASELINE:-}" = all ] && baseline="$ALL_MODELS"
for m in $baseline; do
    if ! run_model "$bin" "$m" "$work/baseline.log"; then
        cat "$work/baseline.log" >&2
        echo "mutants: model $m fails (or is missing) WITHOUT a mutant: fix that first" >&2
        exit 1
    fi
done

# Ordering mutants: "line|occurrence on the line|ordering|function".
orderings="$(awk '
    match($0, /fn [a-z_0-9]+/) { fn = substr($0, RSTART + 3, RLENGTH - 3) }
    {
        rest = $0; k = 0
        while (match(rest, /Ordering::(Acquire|Release|AcqRel|SeqCst)/)) {
            k++
            # A line of custom counters gets the models that have some.
            f = ($0 ~ /custom/) ? fn ":custom" : fn
            print NR "|" k "|" substr(rest, RSTART + 10, RLENGTH - 10) "|" f
            rest = substr(rest, RSTART + RLENGTH)
        }
    }' "$pristine")"

# Writes the ordering mutant (line $1, occurrence $2) into the copy.
apply_ordering() {
    awk -v L="$1" -v K="$2" '
        NR != L { print; next }
        {
            rest = $0; out = ""; k = 0
            while (match(rest, /Ordering::(Acquire|Release|AcqRel|SeqCst)/)) {
                k++
                rep = (k == K) ? "Ordering::Relaxed" : substr(rest, RSTART, RLENGTH)
                out = out substr(rest, 1, RSTART - 1) rep
                rest = substr(rest, RSTART + RLENGTH)
            }
            print out rest
        }' "$pristine" >"$slot"
}

# Writes a structural mutant (exact trimmed line $1 -> $2) into the copy.
apply_structural() {
    local n
    n="$(awk -v P="$1" '{ t = $0; gsub(/^[ \t]+|[ \t]+$/, "", t) } t == P { c++ } END { print c + 0 }' "$pristine")"
    if [ "$n" != 1 ]; then
        echo "mutants: the line '$1' occurs $n times in slot.rs (want 1): update STRUCTURAL" >&2
        return 1
    fi
    awk -v P="$1" -v R="$2" '{
        t = $0; gsub(/^[ \t]+|[ \t]+$/, "", t)
        if (t == P) { match($0, /^[ \t]*/); print substr($0, 1, RLENGTH) R } else print
    }' "$pristine" >"$slot"
}

total=0 caught=0
failures=()
# Builds the copy as mutated, runs its models; records the verdict.
check() {
    local desc="$1" fn="$2" t0 verdict="" model rc
    t0=$(date +%s)
    total=$((total + 1))
    if ! bin="$(build 2>"$work/build.log")"; then
        failures+=("$desc: DOES NOT BUILD (see the error above)")
        cat "$work/build.log" >&2
        printf '  %-72s BUILD FAILED\n' "$desc"
        cp "$pristine" "$slot"
        return
    fi
    for model in $(models_for "$fn"); do
        rc=0
        run_model "$bin" "$model" "$work/model.log" || rc=$?
        case "$rc" in
        1) verdict="caught by $model"; break ;;
        2) verdict="TIMEOUT in $model"; break ;;
        3) verdict="NO MODEL $model"; break ;;
        esac
    done
    cp "$pristine" "$slot"
    case "$verdict" in
    caught*) caught=$((caught + 1)) ;;
    "") verdict="SURVIVED ($(models_for "$fn"))"; failures+=("$desc: $verdict") ;;
    *) failures+=("$desc: $verdict") ;;
    esac
    printf '  %-72s %s (%ds)\n' "$desc" "$verdict" $(($(date +%s) - t0))
}

while IFS='|' read -r line k ord fn; do
    [ -n "$line" ] || continue
    desc="slot.rs:$line fn $fn: $ord #$k -> Relaxed"
    [[ -z "$filter" || "$desc" == *"$filter"* ]] || continue
    apply_ordering "$line" "$k"
    check "$desc" "$fn"
done <<<"$orderings"

for s in "${STRUCTURAL[@]}"; do
    IFS='|' read -r desc fn pat rep <<<"$s"
    desc="$desc (fn $fn)"
    [[ -z "$filter" || "$desc" == *"$filter"* ]] || continue
    apply_structural "$pat" "$rep" || { failures+=("$desc: PATTERN NOT FOUND"); total=$((total + 1)); continue; }
    check "$desc" "$fn"
done

echo "mutants: $caught of $total caught in $(($(date +%s) - started)) s"
if [ "${#failures[@]}" -gt 0 ]; then
    printf 'mutants: NOT CAUGHT: %s\n' "${failures[@]}" >&2
    exit 1
fi
