"""The reporter against a real `beacon-meter sink`: exact totals, forks,
a child killed with SIGKILL whose windows a later process delivers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import Sink, free_port, reporter_env

from beacon_meter import Meter, Reporter

RUNS = "langgraph.platform.runs"
NODES = "langgraph.platform.nodes"


def run_python(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh interpreter. The working directory is not
    python/: there, `import beacon_meter` would find the source package
    (without the built extension) before the installed one."""
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def slots(root: Path) -> list:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("slot-"))


def test_exact_totals_at_the_sink(sink, tmp_path):
    meter = Meter(counters=["myplatform.tokens"])
    with Reporter(meter, **reporter_env(sink.url, tmp_path)) as r:
        for i in range(1000):
            meter.record_run(nodes=3, tokens=i % 7)
    stats = r.stats()
    assert stats["pending" if "pending" in stats else "windows_sent"] is not None
    summary = sink.summary()["measures"]
    assert (summary[RUNS], summary[NODES]) == (1000, 3000)
    assert summary["myplatform.tokens"] == sum(i % 7 for i in range(1000))
    assert sum(d["pending"] for d in stats["destinations"]) == 0


def wait_closed(reporter: Reporter, more: int) -> None:
    """Waits until `more` further windows have closed. Three closes after a
    record, the window holding it is closed *and* spooled (a close bumps the
    count before it writes; the next close starts after that write)."""
    start = reporter.stats()["windows_closed"]
    deadline = time.monotonic() + 60
    while reporter.stats()["windows_closed"] < start + more:
        assert time.monotonic() < deadline, reporter.stats()
        time.sleep(0.05)


def test_fork_four_children_exact_totals(sink, tmp_path):
    """A parent records, forks four children that record and exit: the
    parent's pre-fork counts are reported once, each child's once."""
    meter = Meter()
    reporter = Reporter(meter, **reporter_env(sink.url, tmp_path))
    meter.record_run(nodes=3)
    for _ in range(99):
        meter.record_run(nodes=3)  # 100 runs before the fork
    pids = []
    for child in range(4):
        pid = os.fork()
        if pid == 0:  # the child: record, shut down (delivers), exit
            code = 1
            try:
                assert meter.peek().runs == 0, "a child must start from zero"
                for _ in range(10 * (child + 1)):
                    meter.record_run(nodes=3)
                stats = reporter.shutdown(timeout=30)
                code = 0 if stats and sum(d["pending"] for d in stats["destinations"]) == 0 else 2
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    meter.record_run(nodes=3)  # one more after the children
    reporter.shutdown(timeout=30)
    expected = 100 + (10 + 20 + 30 + 40) + 1
    summary = sink.summary()
    print(f"\nfork test: parent 101 runs + children 10/20/30/40 -> sink runs={summary['measures'][RUNS]} "
          f"nodes={summary['measures'][NODES]} (expected {expected}/{3 * expected}), "
          f"duplicates={summary['duplicates']}, slots={slots(tmp_path)}")
    assert summary["measures"][RUNS] == expected
    assert summary["measures"][NODES] == 3 * expected
    assert len(slots(tmp_path)) <= 5  # at most five processes were alive at once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="closing inherited locks needs /proc")
def test_a_forked_child_does_not_hold_the_parents_slot(sink, tmp_path):
    """A child inherits the parent's open slot LOCK; the at-fork hook closes
    the child's copy, so once the parent's reporter is gone the slot is
    free again while the child lives: the next reporter claims slot-0."""
    first = Reporter(Meter(), **reporter_env(sink.url, tmp_path))
    assert slots(tmp_path) == ["slot-0"]
    go, ready = os.pipe()
    stop, wait = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never uses the reporter, waits to be told
        try:
            os.write(ready, b"up")
            os.read(stop, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(go, 2) == b"up"
        first.shutdown(timeout=10)
        second = Reporter(Meter(), **reporter_env(sink.url, tmp_path))
        print(f"\nslot after the parent's restart, child alive: {slots(tmp_path)}")
        assert slots(tmp_path) == ["slot-0"], "the child kept the parent's slot locked"
        second.shutdown(timeout=10)
    finally:
        os.write(wait, b"x")
        os.waitpid(pid, 0)


def test_sigkilled_child_windows_are_delivered_by_a_later_process(sink, tmp_path):
    """A child reports to a dead address, is killed with SIGKILL with its
    windows spooled; a later process on the same spool root delivers them."""
    dead = f"http://127.0.0.1:{free_port()}"
    meter = Meter()
    reporter = Reporter(meter, start=False, **reporter_env(dead, tmp_path))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            reporter.start()
            for _ in range(37):
                meter.record_run(nodes=3)
            wait_closed(reporter, 3)
            os.write(w, b"spooled")
            time.sleep(600)  # until killed
        finally:
            os._exit(1)
    assert os.read(r, 16) == b"spooled"
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    # A later process (a fresh interpreter) on the same root, at the sink.
    script = textwrap.dedent(
        f"""
        from beacon_meter import Meter, Reporter
        m = Meter()
        with Reporter(m, api_key={reporter_env(sink.url, tmp_path)['api_key']!r},
                      auth_endpoint={sink.url!r}, spool_dir={str(tmp_path)!r},
                      interval_secs=1, checkpoint_secs=1) as rep:
            m.record_run(nodes=3)
        print(rep.stats()["windows_sent"])
        """
    )
    out = run_python(script, tmp_path)
    assert out.returncode == 0, out.stderr
    summary = sink.summary()
    print(f"\nkill -9 test: child recorded 37 runs, later process 1 -> sink runs={summary['measures'][RUNS]}")
    assert summary["measures"][RUNS] == 38
    assert summary["measures"][NODES] == 3 * 38


def test_atexit_shuts_down_and_delivers(sink, tmp_path):
    """A process that never calls shutdown still delivers: the atexit hook."""
    env = reporter_env(sink.url, tmp_path)
    script = textwrap.dedent(
        f"""
        from beacon_meter import Meter, Reporter
        m = Meter()
        r = Reporter(m, **{env!r})
        for _ in range(25):
            m.record_run(nodes=3)
        """
    )
    out = run_python(script, tmp_path)
    assert out.returncode == 0, out.stderr
    assert sink.summary()["measures"][RUNS] == 25


def test_a_raising_tag_is_skipped_and_the_window_delivered(sink, tmp_path, caplog):
    meter = Meter()
    tags = {"myplatform.region": "eu", "myplatform.broken": lambda: 1 // 0}
    with Reporter(meter, tags=tags, **reporter_env(sink.url, tmp_path)):
        meter.record_run(nodes=3)
    assert sink.summary()["measures"][RUNS] == 1
    assert any("myplatform.broken" in r.getMessage() for r in caplog.records)


def test_reporter_logs_reach_python_logging(tmp_path, caplog):
    """Without BEACON_LOG, the reporter's records go to Python's logging,
    under `beacon_meter.*`, at their levels; the one warning a reporter
    with no credential gives says what to set."""
    caplog.set_level(logging.INFO, logger="beacon_meter")
    with Reporter(Meter(), spool_dir=str(tmp_path), interval_secs=1):
        pass
    ours = [r for r in caplog.records if r.name.startswith("beacon_meter.")]
    warned = [r for r in ours if "has no credential" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING, [r.getMessage() for r in ours]
    assert warned[0].name == "beacon_meter.reporter", warned[0].name
    started = [r for r in ours if "reporter started" in r.getMessage()]
    assert started and started[0].levelno == logging.INFO


def test_beacon_log_sends_the_reporters_records_to_stderr_instead(tmp_path):
    """With BEACON_LOG, records go to stderr through Rust's tracing, and
    nothing through Python's logging."""
    script = textwrap.dedent(
        f"""
        import logging
        seen = []
        class H(logging.Handler):
            def emit(self, record):
                seen.append(record)
        logging.getLogger().addHandler(H())
        logging.getLogger().setLevel(logging.DEBUG)
        from beacon_meter import Meter, Reporter
        with Reporter(Meter(), spool_dir={str(tmp_path)!r}, interval_secs=1):
            pass
        assert not [r for r in seen if r.name.startswith("beacon_meter.")], seen
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, BEACON_LOG="info"),
    )
    assert out.returncode == 0, out.stderr
    assert "has no credential" in out.stderr and "reporter started" in out.stderr, out.stderr
