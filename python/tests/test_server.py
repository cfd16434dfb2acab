"""The drop-in inside the real in-memory LangGraph server.

`langgraph dev` (langgraph-cli[inmem] 0.4.40, langgraph-api 0.16.7,
langgraph-runtime-inmem 0.36.7; pinned in
crates/cli/tests/conformance/constraints.txt) or plain `uvicorn
langgraph_api.server:app` serves a project made here, with one graph of
three nodes and one whose node count varies per run. Runs are created over
HTTP with `langgraph_sdk` and executed by the platform's own queue, worker
and stream code. A `beacon-meter sink` on loopback is the Beacon.

"Executed" is counted by the graphs themselves: every node appends a line
to a file, so the expected nodes are measured, not derived from the
graphs' shape.

Every request stays on loopback: tracing, the version check and the CLI's
analytics are off, and HTTP(S)_PROXY points at a trap on loopback that
fails the test if anything tries to reach another host. A missing
`langgraph` executable or package fails the test; nothing here skips.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from conftest import API_KEY, SUMMARY, Sink, free_port, sink_binary
from test_langgraph import KNOWN_TAG_DIFFERENCES, tags_of

RUNS, NODES = "langgraph.platform.runs", "langgraph.platform.nodes"
#: (graph, n): three runs of the fixed graph, four of the varying one.
WORKLOAD = [("fixed", 0), ("varying", 1), ("fixed", 0), ("varying", 4), ("varying", 2), ("fixed", 0), ("varying", 6)]

GRAPHS_PY = '''
"""The test project's graphs. Each node execution appends a line to
$NODE_LOG (O_APPEND: one write per line, whole lines under concurrency)."""
import os
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

if os.environ.get("INSTALL_IN") == "graph-module":
    import beacon_meter.langgraph

    beacon_meter.langgraph.install()
    beacon_meter.langgraph.install()  # twice, and in every graph module: harmless


class State(TypedDict):
    n: int
    i: int


def step(state: State) -> dict:
    fd = os.open(os.environ["NODE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"node\\n")
    finally:
        os.close(fd)
    return {"i": state["i"] + 1}


def _fixed():
    b = StateGraph(State)
    for name in ("a", "b", "c"):
        b.add_node(name, step)
    b.add_edge(START, "a")
    b.add_edge("a", "b")
    b.add_edge("b", "c")
    b.add_edge("c", END)
    return b.compile()


def _varying():
    b = StateGraph(State)
    b.add_node("step", step)
    b.add_edge(START, "step")
    b.add_conditional_edges("step", lambda s: "step" if s["i"] < s["n"] else END)
    return b.compile()


fixed = _fixed()
varying = _varying()
'''

#: A custom app (langgraph.json `http.app`) calling install() at its top
#: level, or from its own Starlette lifespan.
APP_PY = '''
import contextlib
import os

from starlette.applications import Starlette

import beacon_meter.langgraph

if os.environ.get("INSTALL_IN") == "custom-app":
    beacon_meter.langgraph.install()


@contextlib.asynccontextmanager
async def lifespan(app):
    if os.environ.get("INSTALL_IN") == "lifespan":
        beacon_meter.langgraph.install()
    yield


app = Starlette(lifespan=lifespan)
'''

#: PYTHONPATH for `INSTALL_IN=sitecustomize`: install() at interpreter
#: start, before `langgraph dev` has set the platform's environment.
SITECUSTOMIZE_INSTALL = '''
import beacon_meter.langgraph

beacon_meter.langgraph.install()
'''

#: PYTHONPATH for the reference alone: its period is a module constant
#: (INTERVAL = 300 s, never a setting), made 1 s when the module is
#: imported so that the test sees its reports. Nothing else changes.
SITECUSTOMIZE_REFERENCE_PERIOD = '''
import importlib.abc
import importlib.machinery
import sys


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "langgraph_api.metadata":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        inner = spec.loader

        class _Loader(importlib.abc.Loader):
            def create_module(self, s):
                return inner.create_module(s)

            def exec_module(self, module):
                inner.exec_module(module)
                module.INTERVAL = 1

        spec.loader = _Loader()
        return spec


sys.meta_path.insert(0, _Finder())
'''


class ProxyTrap:
    """A listener on loopback that HTTP(S)_PROXY points at: any request to
    a host other than loopback (NO_PROXY) arrives here and is recorded."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.seen: List[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(512))
                except OSError:
                    self.seen.append(b"(nothing read)")

    def close(self) -> None:
        self.sock.close()


def tool(name: str) -> str:
    """An executable of this virtualenv (the test's interpreter's)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(f"{path} is missing: install langgraph-cli[inmem]==0.4.40 (python/ci.sh does)")
    return str(path)


class Project:
    """The project directory: graphs, langgraph.json, optional custom app."""

    def __init__(self, root: Path, custom_app: bool) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        (root / "graphs.py").write_text(GRAPHS_PY)
        config = {
            "dependencies": ["."],
            "graphs": {"fixed": "./graphs.py:fixed", "varying": "./graphs.py:varying"},
        }
        if custom_app:
            (root / "app.py").write_text(APP_PY)
            config["http"] = {"app": "./app.py:app"}
        (root / "langgraph.json").write_text(json.dumps(config))
        self.node_log = root / "nodes.log"

    def nodes_executed(self) -> int:
        return len(self.node_log.read_text().splitlines()) if self.node_log.exists() else 0


class Server:
    """One platform process: `langgraph dev` or `uvicorn`, on a free port."""

    def __init__(
        self, project: Project, sink_url: str, spool: Path, trap: ProxyTrap, *,
        install_in: Optional[str], launcher: str = "dev", interval: int = 1, log: Path,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "LANGGRAPH_", "LANGSMITH_"))}
        env.update(
            LANGSMITH_API_KEY=API_KEY,
            LANGSMITH_AUTH_ENDPOINT=sink_url,
            LANGSMITH_ENDPOINT=sink_url,
            LANGSMITH_TRACING="false",
            LANGCHAIN_TRACING_V2="false",
            LANGGRAPH_NO_VERSION_CHECK="true",
            LANGGRAPH_CLI_NO_ANALYTICS="1",
            HTTP_PROXY=trap.url, HTTPS_PROXY=trap.url, ALL_PROXY=trap.url,
            http_proxy=trap.url, https_proxy=trap.url,
            NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
            NODE_LOG=str(project.node_log),
            BEACON_SPOOL_DIR=str(spool),
            BEACON_INTERVAL_SECS=str(interval),
            BEACON_CHECKPOINT_SECS="1",
            PYTHONUNBUFFERED="1",
        )
        env.pop("PYTHONPATH", None)
        if install_in == "zero-code":
            env["BEACON_METER_LANGGRAPH"] = "1"
        elif install_in is not None:
            env["INSTALL_IN"] = install_in
        site = project.root / "site"
        site.mkdir(exist_ok=True)
        if install_in == "sitecustomize":
            (site / "sitecustomize.py").write_text(SITECUSTOMIZE_INSTALL)
            env["PYTHONPATH"] = str(site)
        elif install_in is None:
            (site / "sitecustomize.py").write_text(SITECUSTOMIZE_REFERENCE_PERIOD)
            env["PYTHONPATH"] = str(site)
        if launcher == "dev":
            cmd = [tool("langgraph"), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
                   "--port", str(self.port), "--n-jobs-per-worker", "4"]
        else:  # what `langgraph dev` sets, then plain uvicorn on the platform's app
            env.update(
                LANGSERVE_GRAPHS=json.dumps({"fixed": "./graphs.py:fixed", "varying": "./graphs.py:varying"}),
                DATABASE_URI=":memory:", REDIS_URI="fake", MIGRATIONS_PATH="__inmem",
                LANGGRAPH_RUNTIME_EDITION="inmem", N_JOBS_PER_WORKER="4",
                LANGGRAPH_DISABLE_FILE_PERSISTENCE="true",
            )
            cmd = [tool("uvicorn"), "langgraph_api.server:app", "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log
        self.proc = subprocess.Popen(
            cmd, cwd=project.root, env=env, stdin=subprocess.DEVNULL,
            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ok", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the server did not answer /ok in 90 s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self) -> str:
        """The server's last log lines, without colours."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))
        return "\n".join(text.splitlines()[-40:])

    def run(self, workload=WORKLOAD) -> int:
        """Runs the workload over HTTP, four at a time; returns runs done."""
        from langgraph_sdk import get_sync_client

        client = get_sync_client(url=self.url, api_key=None)

        def one(item: Tuple[str, int]) -> None:
            graph, n = item
            out = client.runs.wait(None, graph, input={"n": n, "i": 0})
            assert out["i"] == (3 if graph == "fixed" else max(n, 1)), out

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, workload))
        return len(workload)

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a pod; waits for the exit."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the server did not exit within 60 s of SIGTERM:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: nothing in the process runs again."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def trap():
    t = ProxyTrap()
    yield t
    t.close()
    assert not t.seen, f"a request left loopback (through the proxy trap): {t.seen}"


def spooled_runs(spool: Path) -> int:
    """Runs in the pending windows of a spool (`beacon-meter spool export`)."""
    out = spool.parent / "export.json"
    subprocess.run(
        [str(sink_binary()), "spool", "--dir", str(spool), "export", str(out)],
        check=True, capture_output=True, timeout=60,
    )
    return sum(w["report"]["measures"].get(RUNS, 0) for w in json.loads(out.read_text())["windows"])


def wait_for(what, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def counts(summary: Dict) -> Tuple[int, int]:
    return summary["measures"].get(RUNS, 0), summary["measures"].get(NODES, 0)


def serve(tmp: Path, trap: ProxyTrap, install_in: Optional[str], *, launcher: str = "dev",
          custom_app: bool = False, interval: int = 1) -> Tuple[Dict, Dict]:
    """One server through a whole life: the workload, then SIGTERM. Returns
    (executed, sink summary at the end)."""
    project = Project(tmp / "project", custom_app)
    sink = Sink()
    server = Server(project, sink.url, tmp / "spool", trap, install_in=install_in,
                    launcher=launcher, interval=interval, log=tmp / "server.log")
    try:
        runs = server.run()
        executed = {"runs": runs, "nodes": project.nodes_executed()}
        if install_in is None:  # the reference has no final report: wait for its next one
            wait_for("the reference's report", lambda: counts(sink.summary()) >= (runs, executed["nodes"]))
        else:
            executed["before_sigterm"] = counts(sink.summary())
        server.terminate()
    finally:
        if server.proc.poll() is None:
            server.kill()
        with urllib.request.urlopen(sink.url + "/v1/reports?limit=1000", timeout=10) as r:
            executed["reports"] = json.loads(r.read())
        summary = sink.stop()
    assert summary is not None
    log = server.log.read_text(errors="replace")
    executed["took_over"] = "took over from it" in log
    executed["log"] = server.tail()
    return executed, summary


#: What the table in the closing note and the README is made of.
TABLE: List[str] = []
#: Tag name -> (drop-in, reference), where the two differ.
TAGS: Dict[str, Tuple[str, str]] = {}


def record(row: str, executed: Dict, summary: Dict) -> None:
    runs, nodes = counts(summary)
    by = summary["by_dialect"]
    TABLE.append(
        f"  {row:<44} {executed['runs']:>5} {executed['nodes']:>6} {runs:>5} {nodes:>6}"
        f" {by.get('langgraph-api', 0):>9} {by.get('published', 0):>8}  {'yes' if executed['took_over'] else 'no'}"
    )


@pytest.fixture(scope="module", autouse=True)
def print_table():
    """Shows the table after the run (conftest's terminal summary)."""
    yield
    if TABLE:
        SUMMARY.append("")
        SUMMARY.append("the real server (langgraph dev / uvicorn, langgraph-api 0.16.7), at the sink:")
        SUMMARY.append(f"  {'':<44} {'executed':>12} {'received':>12} {'reports from':>18}")
        SUMMARY.append(
            f"  {'':<44} {'runs':>5} {'nodes':>6} {'runs':>5} {'nodes':>6} {'reference':>9} {'drop-in':>8}  took over"
        )
        SUMMARY.extend(TABLE)
    if TAGS:
        SUMMARY.append("tags that differ (drop-in, reference), each in the README's migration table:")
        SUMMARY.extend(f"  {k}: {v}" for k, v in sorted(TAGS.items()))


def test_the_reference_alone_and_the_drop_in_receive_what_was_executed(tmp_path, trap):
    """The same workload through the reference (alone, its period made 1 s)
    and through the zero-code switch, whose reporter's period is an hour:
    nothing reaches the sink before SIGTERM, and the final window carries
    every run and node at SIGTERM."""
    ref_executed, ref = serve(tmp_path / "reference", trap, None)
    ours_executed, ours = serve(tmp_path / "zero-code", trap, "zero-code", interval=3600)
    record("reference alone (langgraph dev)", ref_executed, ref)
    record("drop-in, zero-code, final window at SIGTERM", ours_executed, ours)
    assert set(ref["by_dialect"]) == {"langgraph-api"}, ref
    assert counts(ref) == (ref_executed["runs"], ref_executed["nodes"]), ref_executed["log"]
    # The same runs give the same nodes in both servers.
    assert (ours_executed["runs"], ours_executed["nodes"]) == (ref_executed["runs"], ref_executed["nodes"])
    assert ours_executed["before_sigterm"] == (0, 0), "an hour-long window closed before SIGTERM"
    assert counts(ours) == (ours_executed["runs"], ours_executed["nodes"]), ours_executed["log"]
    # The drop-in alone reported: the reference sent nothing, not even a zero report.
    assert set(ours["by_dialect"]) == {"published"} and ours["without_idempotency_key"] == 0, ours
    # Tag parity, key by key, between the two servers' last reports: the
    # same names, the same values but for the differences the README's
    # migration table lists with their reasons.
    theirs, mine = tags_of(ref_executed["reports"][-1]), tags_of(ours_executed["reports"][-1])
    assert set(mine) == set(theirs), set(mine) ^ set(theirs)
    differing = {k: (mine[k], theirs[k]) for k in theirs if mine[k] != theirs[k]}
    assert set(differing) <= KNOWN_TAG_DIFFERENCES, differing
    TAGS.update(differing)


@pytest.mark.parametrize(
    "install_in,launcher,custom_app",
    [
        ("zero-code", "uvicorn", False),
        ("graph-module", "dev", False),
        ("custom-app", "dev", True),
        ("lifespan", "dev", True),
        ("sitecustomize", "dev", False),
    ],
)
def test_every_place_install_may_be_called_from_reports_everything(tmp_path, trap, install_in, launcher, custom_app):
    """Wherever install() runs (or the zero-code switch under plain uvicorn),
    every executed run and node arrives exactly once. Where install() runs
    after the platform's lifespan started the reference loop (a graph
    module, the app's lifespan), it takes over: whatever the reference sent
    before (its first report, at start) counted nothing."""
    executed, summary = serve(tmp_path, trap, install_in, launcher=launcher, custom_app=custom_app)
    record(f"drop-in, {install_in} ({'langgraph dev' if launcher == 'dev' else 'uvicorn'})", executed, summary)
    assert counts(summary) == (executed["runs"], executed["nodes"]), executed["log"]
    assert set(summary["by_dialect"]) <= {"published", "langgraph-api"}, summary
    assert summary["by_dialect"].get("published", 0) > 0, summary
    # Reports in the reference's dialect, if any, were sent before the
    # takeover: they carry no run (the sink's totals above are the drop-in's).
    assert summary["by_dialect"].get("langgraph-api", 0) <= 1, summary


def outage(tmp: Path, trap: ProxyTrap, install_in: Optional[str]) -> Tuple[Dict, Dict]:
    """Runs delivered; the sink goes down; more runs; the server is
    SIGKILLed; sink and server come back; more runs; SIGTERM. Returns
    (executed, the sink's summary over both of its lives)."""
    project = Project(tmp / "project", custom_app=False)
    spool, db, log = tmp / "spool", tmp / "sink.db", tmp / "server.log"
    sink = Sink(db=db)
    server = Server(project, sink.url, spool, trap, install_in=install_in, log=log)
    before = server.run()
    wait_for("the first runs at the sink", lambda: counts(sink.summary())[0] == before)
    port = sink.port
    sink.stop()
    during = server.run()
    if install_in is None:
        time.sleep(2.5)  # the reference's sends fail; it keeps the counts in memory
    else:  # every run of the outage is in a closed, spooled window
        wait_for("the outage's runs in the spool", lambda: spooled_runs(spool) == during)
    server.kill()
    sink = Sink(port=port, db=db)
    server = Server(project, sink.url, spool, trap, install_in=install_in, log=log)
    after = server.run(WORKLOAD[:4])
    executed = {"runs": before + during + after, "nodes": project.nodes_executed(), "took_over": False}
    if install_in is None:
        wait_for("the reference's report", lambda: counts(sink.summary())[0] >= before + after)
    server.terminate()
    return executed, sink.stop()


def test_an_outage_then_sigkill_then_a_restart_loses_nothing_and_duplicates_nothing(tmp_path, trap):
    ours_executed, ours = outage(tmp_path / "zero-code", trap, "zero-code")
    ref_executed, ref = outage(tmp_path / "reference", trap, None)
    record("drop-in, outage + SIGKILL + restart", ours_executed, ours)
    record("reference alone, outage + SIGKILL + restart", ref_executed, ref)
    assert counts(ours) == (ours_executed["runs"], ours_executed["nodes"]), ours
    assert ours["duplicates"] == 0 and set(ours["by_dialect"]) == {"published"}, ours
    # The reference lost what it held in memory when the process died.
    assert counts(ref)[0] < ref_executed["runs"], ref
