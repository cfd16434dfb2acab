"""Conformance: the REAL reference reporter against `beacon-meter sink`.

Runs `langgraph_api.metadata.metadata_loop` from langgraph-api 0.16.7,
unchanged, against a `beacon-meter sink` on 127.0.0.1 (a free port), and
checks that what the reporter says it delivered is exactly what the sink
counted, window by window, and exactly what was recorded.

Two independent sides are compared:

* the reporter's side: every call of its `http_request` (the function it
  posts with) is wrapped; a call that returned without raising is a report
  the reporter considers delivered (it raises on any non-2xx), and its body
  is kept;
* the sink's side: `GET /v1/reports` (the reports it accepted) and
  `GET /v1/summary` (its totals), read by this process after the reporter
  stopped;

plus the totals recorded through `incr_runs` / `incr_nodes`, which the
driver chooses. Scenarios (each in a fresh interpreter, because the
reference reads its configuration when the module is imported):

* `both`: an `lcl_` license and an API key: both destinations at once;
* `airgapped-with-api-key`: a non-`lcl_` license and an API key: only the
  API-key destination, and the license never leaves the process;
* `airgapped`: a non-`lcl_` license alone: nothing is sent.

Usage: reference.py --beacon-meter PATH   (run by tests/conformance/run.sh)
Exit status 0 when every check holds, 1 otherwise. Reads nothing outside
the repository; talks to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

# Known numbers recorded through the reference's own counters: per batch,
# (incr_runs calls of incr=runs, incr_nodes calls of incr=nodes). The batches
# are spread over several reporting intervals, so the totals span windows.
BATCHES = [(1, 3), (7, 21), (0, 5), (12, 40), (1, 1), (250, 1000), (3, 0)]
# Single-step calls (the reference's default incr=1) after the batches.
SINGLE_RUNS, SINGLE_NODES = 17, 29
INTERVAL = 0.25  # seconds, the reference's INTERVAL module attribute
DEADLINE = 90.0  # seconds for one scenario before it fails

LICENSE = "lcl_conformance0123456789abcdef"
OFFLINE_LICENSE = "offline-conformance-license-0123456789"
API_KEY = "lsv2_pt_conformance0123456789abcdef_01"

SCENARIOS = {
    # name: (license key, api key, destinations that must receive reports)
    "both": (LICENSE, API_KEY, ("license", "api_key")),
    "airgapped-with-api-key": (OFFLINE_LICENSE, API_KEY, ("api_key",)),
    "airgapped": (OFFLINE_LICENSE, None, ()),
}
DESTINATIONS = ("license", "api_key")


def recorded_totals() -> dict[str, int]:
    runs = sum(r for r, _ in BATCHES) + SINGLE_RUNS
    nodes = sum(n for _, n in BATCHES) + SINGLE_NODES
    return {"runs": runs, "nodes": nodes}


def instant(text: str) -> str:
    """An RFC 3339 timestamp as one canonical UTC string (microseconds)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no offset")
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def window(report: dict) -> dict:
    """What a report says happened: its window and its two counts."""
    m = report["measures"]
    return {
        "from": instant(report["from_timestamp"]),
        "to": instant(report["to_timestamp"]),
        "runs": m["langgraph.platform.runs"],
        "nodes": m["langgraph.platform.nodes"],
    }


# --------------------------------------------------------------------------
# The reporter's side: runs inside a fresh interpreter per scenario.
# --------------------------------------------------------------------------


async def drive_reference(sink: str) -> dict:
    """Runs metadata_loop, records the known numbers, returns what it sent."""
    import langgraph_api.metadata as meta  # noqa: PLC0415 (env set first)

    expected_api_url = f"{sink}/v1/metadata/submit"
    if meta.LANGSMITH_CONTROL_PLANE_API_KEY and meta.LANGCHAIN_METADATA_ENDPOINT != expected_api_url:
        raise SystemExit(
            f"the reference computed API-key URL {meta.LANGCHAIN_METADATA_ENDPOINT!r} from "
            f"LANGSMITH_AUTH_ENDPOINT, expected {expected_api_url!r}"
        )
    meta.BEACON_ENDPOINT = f"{sink}/v1/beacon/metadata/submit"
    meta.INTERVAL = INTERVAL
    dest_of = {meta.BEACON_ENDPOINT: "license", expected_api_url: "api_key"}

    delivered: list[dict] = []  # calls that returned: the reporter's "sent"
    failed: list[dict] = []  # calls that raised
    calls_in_order: list[dict] = []  # both, in the order they were made
    real_http_request = meta.http_request

    async def recording_http_request(method, url, /, *, body=None, **kwargs):
        entry = {"destination": dest_of.get(url, f"unexpected URL {url}"), "url": url,
                 "body": json.loads(body)}
        calls_in_order.append(entry)
        try:
            result = await real_http_request(method, url, body=body, **kwargs)
        except Exception as e:  # the reference catches it; we only note it
            response = getattr(e, "response", None)
            entry["error"] = (
                f"{response.status_code} on {response.url.path}: {response.text[:300]}"
                if response is not None else f"{type(e).__name__}: {e}"
            )
            entry["done"] = True
            failed.append(entry)
            raise
        entry["done"] = True
        delivered.append(entry)
        return result

    meta.http_request = recording_http_request
    loop_task = asyncio.create_task(meta.metadata_loop())

    for runs, nodes in BATCHES:
        meta.incr_runs(incr=runs)
        meta.incr_nodes(None, incr=nodes)
        await asyncio.sleep(INTERVAL * 1.5)
    for _ in range(SINGLE_RUNS):
        meta.incr_runs()
    for _ in range(SINGLE_NODES):
        meta.incr_nodes(None)

    # Every count recorded so far is taken by the reporter's next iteration.
    # Wait until each destination it posts to got two more completed posts
    # (the second is the last post of its iteration, so no counts are in
    # flight when the loop is then cancelled in its sleep), or until the
    # loop ends by itself, as it does when air-gapped.
    calls_before = len(calls_in_order)
    started = time.monotonic()
    while not loop_task.done():
        active = {c["destination"] for c in calls_in_order}
        after = [c["destination"] for c in calls_in_order[calls_before:] if c.get("done")]
        if active and all(after.count(d) >= 2 for d in active):
            break
        if time.monotonic() - started > DEADLINE:
            raise SystemExit(f"the reference reporter did not report within {DEADLINE} s")
        await asyncio.sleep(INTERVAL / 5)
    loop_ended_by_itself = loop_task.done()
    loop_task.cancel()
    try:
        await loop_task
    except asyncio.CancelledError:
        pass
    return {
        "delivered": delivered,
        "failed": failed,
        "loop_ended_by_itself": loop_ended_by_itself,
        "unsent": {"runs": meta.RUN_COUNTER, "nodes": meta.NODE_COUNTER},
    }


def reporter_main(sink: str, out: str) -> None:
    result = asyncio.run(drive_reference(sink))
    with open(out, "w") as f:  # not stdout: the reference logs there
        json.dump(result, f)


# --------------------------------------------------------------------------
# The orchestrator: starts the sink, runs a scenario, compares both sides.
# --------------------------------------------------------------------------


def start_sink(binary: str) -> tuple[subprocess.Popen, str]:
    sink = subprocess.Popen(
        [binary, "sink", "--bind", "127.0.0.1:0", "--json",
         "--license", LICENSE, "--api-key", API_KEY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = sink.stdout.readline()
    if not line:
        sink.kill()
        raise SystemExit(f"beacon-meter sink did not start: {sink.stderr.read()}")
    return sink, json.loads(line)["url"]


def get_json(url: str):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(url, timeout=30) as response:
        return json.load(response)


def all_reports(sink: str) -> list:
    """Every stored report, page by page (`GET /v1/reports?offset=&limit=`)."""
    out: list = []
    while True:
        page = get_json(f"{sink}/v1/reports?offset={len(out)}&limit=1000")
        out += page
        if not page:
            return out


def run_reporter(scenario: str, sink: str) -> dict:
    license_key, api_key, _ = SCENARIOS[scenario]
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_"))}
    env.update({
        # The module imports with any values for these (it never connects).
        "REDIS_URI": "redis://127.0.0.1:9/0",
        "DATABASE_URI": "postgres://conformance@127.0.0.1:9/none",
        "LANGGRAPH_CLOUD_LICENSE_KEY": license_key,
        "LANGSMITH_AUTH_ENDPOINT": sink,
        "LANGSMITH_TRACING": "false",
        "NO_PROXY": "127.0.0.1",
    })
    if api_key:
        env["LANGSMITH_API_KEY"] = api_key
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sent.json")
        proc = subprocess.run(
            [sys.executable, __file__, "--reporter", sink, "--out", out],
            env=env, capture_output=True, text=True, timeout=DEADLINE + 60,
        )
        if proc.returncode != 0:
            raise SystemExit(f"[{scenario}] the reference reporter failed:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def stop_sink(sink: subprocess.Popen) -> None:
    sink.terminate()
    try:
        sink.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sink.kill()
        sink.wait()


def destination_of_stored(report: dict) -> str:
    """Which destination a stored report came to, by its credential member."""
    fields = [f for f in ("license", "license_key", "api_key") if f in report]
    if len(fields) != 1:
        raise SystemExit(f"a stored report has credential members {fields}: {report}")
    return "api_key" if fields[0] == "api_key" else "license"


class Checks:
    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.failures: list[str] = []

    def equal(self, what: str, left, right) -> None:
        if left != right:
            self.failures.append(f"[{self.scenario}] {what}: {left!r} != {right!r}")


def totals(windows: list[dict]) -> dict[str, int]:
    return {"reports": len(windows), "runs": sum(w["runs"] for w in windows),
            "nodes": sum(w["nodes"] for w in windows)}


def check_scenario(scenario: str, sent: dict, stored: list, summary: dict, rows: list) -> list[str]:
    license_key, _, expected_dests = SCENARIOS[scenario]
    c = Checks(scenario)
    recorded = recorded_totals()
    errors = sorted({f["error"] for f in sent["failed"]})
    c.equal(f"submissions that failed (reporter side; distinct errors: {errors})",
            len(sent["failed"]), 0)
    c.equal("reports the sink rejected", summary.get("rejects"), 0)
    c.equal("counts still held by the reporter at the end", sent["unsent"],
            {"runs": 0, "nodes": 0} if expected_dests else recorded)
    c.equal("the reporter's loop stopped by itself (air-gapped)",
            sent["loop_ended_by_itself"], not expected_dests)
    everything_sent = json.dumps([d["body"] for d in sent["delivered"] + sent["failed"]])
    if license_key != LICENSE and license_key in everything_sent:
        c.failures.append(f"[{scenario}] the offline license left the process")
    for dest in DESTINATIONS:
        sent_w = [window(d["body"]) for d in sent["delivered"] if d["destination"] == dest]
        got_w = sorted((window(r) for r in stored if destination_of_stored(r) == dest),
                       key=lambda w: w["from"])
        s, g = totals(sent_w), totals(got_w)
        rows.append((scenario, dest, recorded if dest in expected_dests else
                     {"runs": 0, "nodes": 0}, s, g))
        c.equal(f"{dest}: windows sent vs windows the sink stored", sent_w, got_w)
        if dest in expected_dests:
            c.equal(f"{dest}: runs/nodes sent vs recorded",
                    {"runs": s["runs"], "nodes": s["nodes"]}, recorded)
            c.equal(f"{dest}: runs/nodes received vs recorded",
                    {"runs": g["runs"], "nodes": g["nodes"]}, recorded)
            c.equal(f"{dest}: windows tile (each from is the previous to)",
                    [w["from"] for w in got_w[1:]], [w["to"] for w in got_w[:-1]])
            if s["reports"] < 3:
                c.failures.append(f"[{scenario}] {dest}: only {s['reports']} reports; "
                                  "the batches should span several windows")
        else:
            c.equal(f"{dest}: reports received (must be none)", g["reports"], 0)
            c.equal(f"{dest}: reports sent (must be none)", s["reports"], 0)
    both = {k: v for k, v in summary.get("measures", {}).items()
            if k in ("langgraph.platform.runs", "langgraph.platform.nodes")}
    n = len(expected_dests)
    c.equal("sink summary totals over all destinations",
            {k: both.get(k, 0) for k in ("langgraph.platform.runs", "langgraph.platform.nodes")},
            {"langgraph.platform.runs": n * recorded["runs"],
             "langgraph.platform.nodes": n * recorded["nodes"]})
    c.equal("sink summary report count", summary.get("reports"), len(stored))
    c.equal("the dialect the sink recorded for each report",
            sorted({r.get("dialect") for r in stored}), ["langgraph-api"] if stored else [])
    c.equal("sink summary by dialect", summary.get("by_dialect", {}),
            {"langgraph-api": len(stored)} if stored else {})
    c.equal("reports without an Idempotency-Key (the reference never sends one)",
            summary.get("without_idempotency_key"), len(stored))
    return c.failures


def print_table(rows: list) -> None:
    head = ("scenario", "destination", "recorded runs/nodes",
            "sent reports runs/nodes", "received reports runs/nodes")
    lines = [head] + [
        (sc, dest, f"{r['runs']}/{r['nodes']}",
         f"{s['reports']}  {s['runs']}/{s['nodes']}", f"{g['reports']}  {g['runs']}/{g['nodes']}")
        for sc, dest, r, s, g in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


def orchestrate(binary: str) -> int:
    import langgraph_api  # noqa: PLC0415

    print(f"conformance: langgraph-api {langgraph_api.__version__} "
          f"(langgraph_api.metadata.metadata_loop, unchanged) against {binary} sink")
    if langgraph_api.__version__ != "0.16.7":
        print("conformance: FAILED: expected langgraph-api 0.16.7", file=sys.stderr)
        return 1
    failures: list[str] = []
    rows: list = []
    for scenario in SCENARIOS:
        sink, url = start_sink(binary)
        try:
            sent = run_reporter(scenario, url)
            stored = all_reports(url)
            summary = get_json(f"{url}/v1/summary")
        finally:
            stop_sink(sink)
        failures += check_scenario(scenario, sent, stored, summary, rows)
    print_table(rows)
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print("conformance: " + ("FAILED" if failures else "ok: sent == received == recorded"))
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beacon-meter", help="path of the beacon-meter binary")
    ap.add_argument("--reporter", metavar="SINK_URL", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reporter:
        reporter_main(args.reporter, args.out)
        return 0
    if not args.beacon_meter:
        ap.error("--beacon-meter PATH is required")
    return orchestrate(args.beacon_meter)


if __name__ == "__main__":
    sys.exit(main())
