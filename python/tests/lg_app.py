"""A langgraph-api 0.16.7 process for tests/test_langgraph.py.

`python lg_app.py beacon|reference|late|zero-code`: imports the real
platform, installs beacon-meter's drop-in (mode `beacon`) or not
(`reference`; `late`, which installs it later on command; `zero-code`,
where only `BEACON_METER_LANGGRAPH=1` in the environment may), starts the platform's
`metadata_loop()` the way its lifespan does (looked up in
`langgraph_api.metadata` at start), then obeys stdin, one command a line:

* `run N`: N graph runs through the platform's own call sites: the worker's
  `incr_runs()` (looked up in `langgraph_api.worker`'s globals, as
  `worker()` does) and a real 3-node langgraph graph whose per-node
  callback is `langgraph_api.stream.incr_nodes` (as `astream_state` sets
  `configurable["__pregel_node_finished"]`). Answers `ok`.
* `install`: calls `install()` on an executor thread, as a graph module
  loaded by the platform would (after its lifespan started the loop).
  Answers `ok`.
* `exit`: cancels the loop (the lifespan's shutdown) and exits.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TypedDict

os.environ.setdefault("REDIS_URI", "redis://127.0.0.1:1")
os.environ.setdefault("DATABASE_URI", "postgres://127.0.0.1:1/none")
os.environ.setdefault("LANGGRAPH_RUNTIME_EDITION", "inmem")
os.environ.setdefault("LANGSMITH_TRACING", "false")  # no trace uploads: loopback only

import langgraph_api.metadata as metadata  # noqa: E402
import langgraph_api.stream as stream  # noqa: E402
import langgraph_api.worker as worker  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

MODE = sys.argv[1]
metadata.INTERVAL = 1  # the reference loop's period, a module attribute
if MODE in ("beacon", "late"):
    import beacon_meter.langgraph as drop_in

    drop_in.SHUTDOWN_TIMEOUT = 2.0
if MODE == "beacon":
    drop_in.install()


class State(TypedDict):
    n: int


def node(state: State) -> State:
    return {"n": state["n"] + 1}


builder = StateGraph(State)
for name in ("a", "b", "c"):
    builder.add_node(name, node)
builder.add_edge(START, "a")
builder.add_edge("a", "b")
builder.add_edge("b", "c")
builder.add_edge("c", END)
graph = builder.compile()


async def one_run() -> None:
    worker.worker.__globals__["incr_runs"]()  # worker(): `incr_runs()` at attempt 1
    config = {"configurable": {"__pregel_node_finished": stream.__dict__["incr_nodes"]}}
    out = await graph.ainvoke({"n": 0}, config)
    assert out["n"] == 3


async def main() -> None:
    loop_task = asyncio.create_task(metadata.metadata_loop())
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "exit":
            break
        if line[0] == "install":
            await asyncio.get_running_loop().run_in_executor(None, drop_in.install)
            await asyncio.sleep(0.2)  # the takeover runs on this loop
        for _ in range(int(line[1]) if line[0] == "run" else 0):
            await one_run()
        print("ok", flush=True)
    tasks = [loop_task] + ([drop_in._TAKEN_OVER] if MODE == "late" and drop_in._TAKEN_OVER else [])
    for task in tasks:  # the lifespan's shutdown cancels the loop it started
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


asyncio.run(main())
