"""Hot-path cost of recording one graph run of 3 nodes, side by side.

    python python/bench/hot_path.py [--runs N]

Prints ns per recorded run at 1 and 4 threads for: the reference platform's
`incr_runs()` + `incr_nodes(None, incr=3)` (plain module globals), the same
behind a `threading.Lock`, prometheus_client `Counter.inc` x2,
opentelemetry-sdk `Counter.add` x2, and beacon-meter `meter.record_run(nodes=3)`;
then the per-node callback path (`incr_nodes(None)` once per node, plus the
run) for the reference and beacon-meter. At 4 threads it checks that
beacon-meter's totals are exact. Timings are wall time of the whole batch
divided by the runs recorded; under the GIL, threads take turns.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Callable, Dict, List, Tuple

from beacon_meter import Meter

# --- the reference: langgraph_api.metadata's counters, verbatim in shape ---
RUN_COUNTER = 0
NODE_COUNTER = 0


def incr_runs(*, incr: int = 1) -> None:
    global RUN_COUNTER
    RUN_COUNTER += incr


def incr_nodes(_, *, incr: int = 1) -> None:
    global NODE_COUNTER
    NODE_COUNTER += incr


LOCK = threading.Lock()


def locked_incr_runs(*, incr: int = 1) -> None:
    global RUN_COUNTER
    with LOCK:
        RUN_COUNTER += incr


def locked_incr_nodes(_, *, incr: int = 1) -> None:
    global NODE_COUNTER
    with LOCK:
        NODE_COUNTER += incr


def candidates() -> Dict[str, Callable[[int], None]]:
    """name -> a loop recording n runs of 3 nodes."""
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, Counter

    reg = CollectorRegistry()
    p_runs = Counter("runs", "runs", registry=reg)
    p_nodes = Counter("nodes", "nodes", registry=reg)
    otel = MeterProvider().get_meter("bench")
    o_runs = otel.create_counter("runs")
    o_nodes = otel.create_counter("nodes")
    meter = Meter()
    record_run = meter.record_run
    m_incr_runs, m_incr_nodes = meter.incr_runs, meter.incr_nodes

    def reference(n: int) -> None:
        for _ in range(n):
            incr_runs()
            incr_nodes(None, incr=3)

    def locked(n: int) -> None:
        for _ in range(n):
            locked_incr_runs()
            locked_incr_nodes(None, incr=3)

    def prometheus(n: int) -> None:
        for _ in range(n):
            p_runs.inc()
            p_nodes.inc(3)

    def opentelemetry(n: int) -> None:
        for _ in range(n):
            o_runs.add(1)
            o_nodes.add(3)

    def beacon(n: int) -> None:
        for _ in range(n):
            record_run(nodes=3)

    def reference_per_node(n: int) -> None:
        for _ in range(n):
            incr_runs()
            incr_nodes(None)
            incr_nodes(None)
            incr_nodes(None)

    def beacon_per_node(n: int) -> None:
        for _ in range(n):
            m_incr_runs()
            m_incr_nodes(None)
            m_incr_nodes(None)
            m_incr_nodes(None)

    beacon.meter = meter  # type: ignore[attr-defined]
    return {
        "reference incr_runs()+incr_nodes(None, incr=3)": reference,
        "reference pair behind threading.Lock": locked,
        "prometheus_client Counter.inc x2": prometheus,
        "opentelemetry-sdk Counter.add x2": opentelemetry,
        "beacon_meter meter.record_run(nodes=3)": beacon,
        "per node: reference incr_runs()+3x incr_nodes(None)": reference_per_node,
        "per node: beacon_meter incr_runs()+3x incr_nodes(None)": beacon_per_node,
    }


def timed(fn: Callable[[int], None], runs: int, threads: int) -> float:
    """ns per recorded run: the best of 3 batches of `runs` runs per thread."""
    best = float("inf")
    for _ in range(3):
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            fn(runs)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter_ns()
        for t in ts:
            t.join()
        best = min(best, (time.perf_counter_ns() - t0) / (runs * threads))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200_000, help="runs per thread per batch")
    args = ap.parse_args()
    cands = candidates()
    rows: List[Tuple[str, float, float]] = []
    for name, fn in cands.items():
        rows.append((name, timed(fn, args.runs, 1), timed(fn, args.runs, 4)))
    ref1, ref4 = rows[0][1], rows[0][2]
    print(f"ns per recorded run (one run of 3 nodes), best of 3 batches of {args.runs:,} runs per thread")
    print(f"| {'candidate':<56} | {'1 thread':>9} | {'4 threads':>9} | {'vs reference (1t / 4t)':>22} |")
    print(f"|{'-' * 58}|{'-' * 11}|{'-' * 11}|{'-' * 24}|")
    for name, t1, t4 in rows:
        print(f"| {name:<56} | {t1:>9.1f} | {t4:>9.1f} | {t1 / ref1:>9.2f}x / {t4 / ref4:>5.2f}x |")
    by = {name: (t1, t4) for name, t1, t4 in rows}
    b = by["beacon_meter meter.record_run(nodes=3)"]
    p = by["prometheus_client Counter.inc x2"]
    o = by["opentelemetry-sdk Counter.add x2"]
    print()
    for i, label in ((0, "1 thread"), (1, "4 threads")):
        print(f"{label}: beacon_meter is {b[i] / by[rows[0][0]][i]:.2f}x the reference pair (target <= 1.0x), "
              f"{p[i] / b[i]:.1f}x faster than prometheus_client (target >= 5x), "
              f"{o[i] / b[i]:.1f}x faster than opentelemetry-sdk (target >= 20x)")
    # Exact totals at 4 threads: a fresh meter, 4 threads, then one window.
    meter = Meter()
    n = args.runs

    def rec() -> None:
        for _ in range(n):
            meter.record_run(nodes=3)

    ts = [threading.Thread(target=rec) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    w = meter.rotate()
    ok = (w.runs, w.nodes) == (4 * n, 12 * n)
    print(f"exact totals at 4 threads: runs {w.runs:,} (expected {4 * n:,}), nodes {w.nodes:,} "
          f"(expected {12 * n:,}): {'EXACT' if ok else 'WRONG'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
