"""The drop-in against the real langgraph-api 0.16.7: the platform's own
call sites record into beacon-meter, and its reports reach a
`beacon-meter sink` exactly once through a sink outage and a process
restart, where the reference reporter alone loses the counts of the outage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import API_KEY, Sink

import beacon_meter.langgraph as drop_in

APP = Path(__file__).with_name("lg_app.py")
RUNS, NODES = "langgraph.platform.runs", "langgraph.platform.nodes"
BATCHES = (5, 7, 4)  # before the outage, during it (then a restart), after


class App:
    """One platform process (tests/lg_app.py)."""

    def __init__(self, mode: str, url: str, spool: Path, **extra_env: str) -> None:
        env = dict(os.environ, **extra_env)
        env.update(
            REDIS_URI="redis://127.0.0.1:1",
            DATABASE_URI="postgres://127.0.0.1:1/none",
            LANGGRAPH_RUNTIME_EDITION="inmem",
            LANGSMITH_API_KEY=API_KEY,
            LANGSMITH_AUTH_ENDPOINT=url,
            LANGSMITH_TRACING="false",
            LANGCHAIN_TRACING_V2="false",
            LANGSMITH_ENDPOINT=url,
            LANGCHAIN_ENDPOINT=url,
            BEACON_SPOOL_DIR=str(spool),
            BEACON_INTERVAL_SECS="1",
            BEACON_CHECKPOINT_SECS="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def run(self, n: int) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def exit(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=60) == 0


def wait_until(server, value: int) -> None:
    deadline = time.monotonic() + 60
    while server.measure(RUNS) < value:
        if time.monotonic() > deadline:
            pytest.fail(f"runs stayed at {server.measure(RUNS)}, expected {value}")
        time.sleep(0.05)


def reports(sink: Sink) -> list:
    """Every report the sink stored."""
    with urllib.request.urlopen(sink.url + "/v1/reports?limit=1000", timeout=10) as r:
        return json.loads(r.read())


def tags_of(record: dict) -> dict:
    """The report tags inside a stored record."""
    if isinstance(record.get("tags"), dict):
        return record["tags"]
    for value in record.values():
        if isinstance(value, dict) and (found := tags_of(value)):
            return found
    return {}


def scenario(mode: str, start, spool: Path) -> dict:
    """Batch 1 delivered; the server goes down; batch 2 recorded during the
    outage, then the process exits; the server comes back; a new process
    records batch 3. Returns what the server(s) counted."""
    before, during, after = BATCHES
    server = start(0)
    app = App(mode, server.url, spool)
    app.run(before)
    wait_until(server, before)
    port, first = server.port, server.stop()
    app.run(during)
    time.sleep(2.5)  # a few report attempts fail during the outage
    app.exit()
    server = start(port)
    app = App(mode, server.url, spool)
    app.run(after)
    wait_until(server, after + (during if mode == "beacon" else 0))
    app.exit()
    # Both report the platform's delta-channel flag, which it computes.
    delta = {tags_of(r).get("user_app.uses_delta_channel") for r in reports(server)}
    assert delta and delta <= {"True", "False", "unknown"}, delta
    plans = {tags_of(r).get("langgraph.platform.plan") for r in reports(server)}
    second = server.stop()
    # The reference speaks its own dialect (section 4 of docs/protocol.md);
    # the sink takes it and says so.
    dialect = "published" if mode == "beacon" else "langgraph-api"
    for summary in (first, second):
        assert set(summary["by_dialect"]) == {dialect}, summary["by_dialect"]
    pick = lambda s, k: s["measures"].get(k, 0)  # noqa: E731
    counts = {k: pick(first, k) for k in (RUNS, NODES)} | {k + "#2": pick(second, k) for k in (RUNS, NODES)}
    return counts | {"plans": plans}

def test_drop_in_exactly_once_vs_reference(tmp_path, capsys):
    recorded = sum(BATCHES)
    ours = scenario("beacon", Sink, tmp_path / "beacon")
    ref = scenario("reference", Sink, tmp_path / "reference")
    total = {side: {k: r[k] + r[k + "#2"] for k in (RUNS, NODES)} for side, r in (("ours", ours), ("ref", ref))}
    with capsys.disabled():
        print("\n\nlanggraph-api 0.16.7, runs of 3 nodes: 5 before a sink outage, 7 during it (then the")
        print("process restarts), 4 after. Delivered:")
        print(f"  {'reporter':<36} {'runs':>6} {'nodes':>6}")
        print(f"  {'recorded by the platform':<36} {recorded:>6} {3 * recorded:>6}")
        print(f"  {'beacon-meter drop-in (at the sink)':<36} {total['ours'][RUNS]:>6} {total['ours'][NODES]:>6}")
        print(f"  {'reference metadata_loop alone':<36} {total['ref'][RUNS]:>6} {total['ref'][NODES]:>6}")
    assert total["ours"] == {RUNS: recorded, NODES: 3 * recorded}
    assert total["ref"][RUNS] < recorded  # the outage's counts died with the process
    # The plan is the platform's own PLAN, as the reference reports it, not
    # a guess from the credential.
    assert ours["plans"] == ref["plans"] and len(ref["plans"]) == 1, (ours["plans"], ref["plans"])


def test_a_late_install_takes_over_from_the_running_reference_loop(tmp_path):
    """install() called once the reference loop runs (from a graph module,
    on an executor thread): the reference sends nothing more, not even a
    zero report, and every run reaches the sink exactly once."""
    sink = Sink()
    app = App("late", sink.url, tmp_path / "late")
    app.run(4)  # counted by the reference's own counters
    time.sleep(1.5)  # the reference loop may send some of them
    app.proc.stdin.write("install\n")
    app.proc.stdin.flush()
    assert app.proc.stdout.readline().strip() == "ok"
    time.sleep(0.5)  # a report the reference was sending at the takeover has landed
    sent_by_reference = [r for r in reports(sink) if r.get("dialect") == "langgraph-api"]
    app.run(6)
    time.sleep(2.5)  # several reference intervals: it must stay silent
    app.exit()
    after = [r for r in reports(sink) if r.get("dialect") == "langgraph-api"]
    summary = sink.stop()
    assert len(after) == len(sent_by_reference), "the reference loop kept sending after install()"
    assert summary["measures"][RUNS] == 10, summary
    assert summary["measures"][NODES] == 30, summary
    assert set(summary["by_dialect"]) <= {"langgraph-api", "published"}, summary


def test_the_zero_code_switch_needs_no_custom_app(tmp_path):
    """BEACON_METER_LANGGRAPH=1 alone (the wheel's .pth file): the platform's
    own lifespan start of metadata_loop runs beacon-meter's reporter, and
    every run arrives, in beacon-meter's dialect only."""
    sink = Sink()
    app = App("zero-code", sink.url, tmp_path / "zero", BEACON_METER_LANGGRAPH="1")
    app.run(5)
    app.exit()
    summary = sink.stop()
    assert summary["measures"][RUNS] == 5 and summary["measures"][NODES] == 15, summary
    assert set(summary["by_dialect"]) == {"published"}, summary
    # Without the variable, the same process runs the reference.
    sink = Sink()
    app = App("zero-code", sink.url, tmp_path / "off")
    app.run(1)
    time.sleep(1.5)
    app.exit()
    assert set(sink.stop()["by_dialect"]) == {"langgraph-api"}


#: The tags whose values differ between the drop-in and the reference in
#: the same process, each listed with its reason in the README's migration
#: table: `tenant_id` (beacon-meter fills it with the org id the API key's
#: verification returned when LANGSMITH_TENANT_ID is unset) and the
#: `user_app.*` flags (the published format's "true"/"false", where the
#: reference sends "True", or "" for false).
KNOWN_TAG_DIFFERENCES = {
    "langgraph.platform.tenant_id",
    "user_app.uses_custom_app",
    "user_app.uses_custom_auth",
    "user_app.uses_indexing",
    "user_app.uses_store_ttl",
    "user_app.uses_thread_ttl",
}


def test_the_drop_in_sends_the_references_tags_key_by_key(tmp_path):
    """The same process configuration, once with the drop-in and once with
    the reference: the last report of each carries the same tag names, and
    the same values except the documented differences."""
    tags = {}
    for mode in ("beacon", "reference"):
        sink = Sink()
        app = App(mode, sink.url, tmp_path / mode)
        app.run(2)
        time.sleep(2.5)  # a report of the reference's after the runs
        app.exit()
        tags[mode] = tags_of(reports(sink)[-1])
        sink.stop()
    ours, ref = tags["beacon"], tags["reference"]
    assert set(ours) == set(ref), (set(ours) ^ set(ref))
    differing = {k for k in ref if ours[k] != ref[k]}
    assert differing <= KNOWN_TAG_DIFFERENCES, {k: (ours[k], ref[k]) for k in differing - KNOWN_TAG_DIFFERENCES}
    for flag in differing - {"langgraph.platform.tenant_id"}:
        assert (ours[flag], ref[flag]) in {("true", "True"), ("false", ""), ("false", "False")}, flag


def test_install_refuses_an_unknown_version(monkeypatch):
    import langgraph_api

    monkeypatch.setattr(langgraph_api, "__version__", "0.99.0")
    with pytest.raises(RuntimeError, match="0.99.0"):
        drop_in.install()


def test_reference_signatures():
    import inspect

    assert str(inspect.signature(drop_in.incr_runs)) == "(*, incr=1)"
    assert str(inspect.signature(drop_in.incr_nodes)) == "(_node, *, incr=1)"
    assert inspect.iscoroutinefunction(drop_in.metadata_loop)
