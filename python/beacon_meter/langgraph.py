"""A drop-in for the reference platform's usage counters and reporting loop.

``langgraph_api.metadata`` (langgraph-api 0.16.7) counts with two plain
module globals and reports them with ``metadata_loop()``, which loses every
count still in memory when the process stops during an outage. This module
offers the same three functions on beacon-meter's Rust core and reporter:

* ``incr_runs(*, incr=1)``: the worker's call, once per run;
* ``incr_nodes(_, *, incr=1)``: the graph engine's per-node callback
  (``configurable["__pregel_node_finished"]``);
* ``async def metadata_loop()``: runs beacon-meter's reporter (windows
  spooled to disk before sending, idempotent retries with backoff, a final
  report at shutdown) until cancelled.

``install()`` puts them in place in a running ``langgraph_api``: in
``langgraph_api.metadata`` and in the modules that imported them by name
(``langgraph_api.worker``, ``langgraph_api.stream``). It refuses a version
of ``langgraph_api`` whose call sites it has not been checked against.

It may be called before the platform is even imported (a
``sitecustomize``: it then waits, through the zero-code switch's import
hook, for the platform to start its loop), before the platform starts its
reporting loop (the top of the custom app's module) or after (the top of a graph module, which the
platform loads once its lifespan has started the reference
``metadata_loop``). After, it takes over: on the event loop's thread, it
cancels the reference loop's task, moves the counts that loop had not sent
yet into beacon-meter's meter, and starts beacon-meter's ``metadata_loop``
in its place, in the platform's lifespan task group (so that the platform's
shutdown cancels and awaits it, and the final window is delivered before
uvicorn ends the process), so nothing more is sent by the reference, not even a zero
report, and nothing counted is lost. (A report the reference loop was
sending at that very moment is cancelled with it: it is lost if the send
had not reached the server.)

The reporter is configured from the environment by beacon-meter's rules
(``BEACON_URL``, ``BEACON_SPOOL_DIR``, ``BEACON_INTERVAL_SECS``, ...), with
the credentials and auth endpoint the platform itself resolved
(``langgraph_api.config``). Reports use the published Beacon format.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from importlib import metadata as _metadata
from typing import Any, Callable, Dict, Optional

from . import Meter, Reporter

__all__ = ["incr_runs", "incr_nodes", "metadata_loop", "install", "meter", "SUPPORTED_VERSIONS"]

#: Seconds ``metadata_loop()`` gives the reporter, when cancelled, to spool
#: the open window and deliver what it can (the rest stays spooled).
SHUTDOWN_TIMEOUT = 10.0

logger = logging.getLogger("beacon_meter.langgraph")

#: The langgraph-api versions whose call sites ``install()`` was checked
#: against (by reading the installed package: ``worker.py`` imports
#: ``incr_runs``, ``stream.py`` imports ``incr_nodes`` by name, and the
#: runtime's lifespan imports ``metadata_loop`` from
#: ``langgraph_api.metadata`` when it starts).
SUPPORTED_VERSIONS = ("0.16.7",)

#: Module → the names ``install()`` replaces in it.
_SITES: Dict[str, tuple] = {
    "langgraph_api.metadata": ("incr_runs", "incr_nodes", "metadata_loop"),
    "langgraph_api.worker": ("incr_runs",),
    "langgraph_api.stream": ("incr_nodes",),
}

#: Dependency versions the reference reports as custom tags.
_DEPENDENCY_TAGS = {
    "langgraph_checkpoint.version": "langgraph-checkpoint",
    "langgraph_checkpoint_postgres.version": "langgraph-checkpoint-postgres",
    "deepagents.version": "deepagents",
    "starlette.version": "starlette",
}


def _graphs(js: bool) -> int:
    """Graphs loaded (Python or JS), as the reference counts them; 0 while
    the platform has not loaded its graph registry."""
    graph = sys.modules.get("langgraph_api.graph")
    if graph is None:
        return 0
    return sum(1 for g in graph.GRAPHS if bool(graph.is_js_graph(g)) == js)


#: The meter the drop-in records into (one per process; a forked worker
#: starts from zero with its own reporter).
meter = Meter(
    gauges={
        "langgraph.platform.py_graphs": lambda: _graphs(js=False),
        "langgraph.platform.js_graphs": lambda: _graphs(js=True),
    }
)

#: ``incr_runs(*, incr=1)``: native, no Python frame on the hot path.
incr_runs: Callable[..., None] = meter.incr_runs
#: ``incr_nodes(_, *, incr=1)``: native, no Python frame on the hot path.
incr_nodes: Callable[..., None] = meter.incr_nodes


def _version(dist: str) -> str:
    try:
        return _metadata.version(dist)
    except _metadata.PackageNotFoundError:
        return ""


def _usage_tag(name: str) -> Callable[[], str]:
    """A dynamic tag read from the platform's own usage metadata."""

    def value() -> str:
        from langgraph_api import metadata  # noqa: PLC0415

        tags, _ = metadata._lang_usage_metadata()
        return str(tags.get(name, ""))

    return value


def _reporter_kwargs() -> Optional[Dict[str, Any]]:
    """The reporter's settings from the platform's configuration, or None
    when the reference would not report at all."""
    from langgraph_api import config, metadata  # noqa: PLC0415

    license_key = config.LANGGRAPH_CLOUD_LICENSE_KEY or None
    api_key = config.LANGSMITH_CONTROL_PLANE_API_KEY or None
    if not license_key and not api_key:
        logger.info("No license key or control plane API key set, skipping metadata loop")
        return None
    if license_key and "agent_builder_enabled" in (config.LANGSMITH_LICENSE_REQUIRED_CLAIMS or ()):
        logger.info("Skipping metadata loop for self-hosted Agent Builder")
        return None
    try:
        from langgraph_api import __version__ as api_version  # noqa: PLC0415
    except ImportError:
        api_version = ""
    tags: Dict[str, Any] = {k: _version(d) for k, d in _DEPENDENCY_TAGS.items()}
    # The platform computes this flag at each report ("True", "False" or
    # "unknown" as graphs load): call its own function, as its reporter does.
    uses_delta_channel = getattr(metadata, "_uses_delta_channel", None)
    if uses_delta_channel is not None:
        tags["user_app.uses_delta_channel"] = uses_delta_channel
    for name in (
        "langgraph.platform.uses_custom_auth",
        "langgraph.platform.uses_js_custom_auth",
        "langgraph.platform.uses_js_proxy_middleware",
    ):
        tags[name] = _usage_tag(name)
    return dict(
        # The platform decides its plan itself (PLAN, from
        # plus_features_enabled()); the reference reports that value.
        plan=getattr(metadata, "PLAN", None),
        license_key=license_key,
        api_key=api_key,
        auth_endpoint=config.LANGSMITH_AUTH_ENDPOINT or None,
        langgraph_version=_version("langgraph"),
        api_version=api_version or "",
        user_app={
            "uses_indexing": bool(config.USES_INDEXING),
            "uses_custom_app": bool(config.USES_CUSTOM_APP),
            "uses_custom_auth": bool(config.USES_CUSTOM_AUTH),
            "uses_thread_ttl": bool(config.USES_THREAD_TTL),
            "uses_store_ttl": bool(config.USES_STORE_TTL),
        },
        tags=tags,
    )


async def metadata_loop() -> None:
    """The reference's reporting coroutine, on beacon-meter's reporter.

    Starts the reporter (its own thread; nothing runs on the event loop)
    and waits until cancelled; then shuts it down, which closes the open
    window, spools it and delivers what it can within the reporter's
    shutdown timeout. Without credentials it returns at once, like the
    reference. An offline license (no ``lcl_`` prefix) spools windows for
    ``beacon-meter spool export`` instead of skipping them.
    """
    kwargs = _reporter_kwargs()
    if kwargs is None:
        return
    reporter = Reporter.from_env(meter, start=False, shutdown_timeout=SHUTDOWN_TIMEOUT, **kwargs)
    await asyncio.get_running_loop().run_in_executor(None, reporter.start)
    logger.info("beacon-meter reporter started: %r", reporter)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, reporter.shutdown)


#: beacon-meter's loop, when ``install()`` started it in place of a running
#: reference loop (kept so that the task is not garbage-collected).
_TAKEN_OVER: Optional["asyncio.Task[None]"] = None


def _running_loops() -> list:
    """The event loops running in this process (one, in the platform). Read
    from the garbage collector's objects, so that a graph module loaded on
    an executor thread finds the loop too."""
    import gc  # noqa: PLC0415

    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _reference_tasks(code: Any) -> list:
    """Tasks, not finished, running the coroutine function whose code is
    ``code``, with their loops."""
    found = []
    for loop in _running_loops():
        for task in asyncio.all_tasks(loop):
            if getattr(task.get_coro(), "cr_code", None) is code and not task.done():
                found.append((loop, task))
    return found


def _move_counts(reference: Any) -> tuple:
    """Moves the reference module's unsent counts into the meter; returns
    them (runs, nodes)."""
    runs, nodes = reference.RUN_COUNTER, reference.NODE_COUNTER
    reference.RUN_COUNTER = reference.NODE_COUNTER = 0
    if runs:
        meter.incr_runs(incr=runs)
    if nodes:
        meter.incr_nodes(None, incr=nodes)
    return runs, nodes


def _owning_group(task: "asyncio.Task[None]") -> Any:
    """The task group (the platform's lifespan ``SimpleTaskGroup``) whose
    ``tasks`` hold ``task``, or None. Its tasks are cancelled and awaited
    when the lifespan shuts down; a task outside it is not, and
    ``uvicorn`` then ends the process by re-raising SIGTERM, with no
    ``atexit``."""
    import gc  # noqa: PLC0415

    for obj in gc.get_referrers(task):
        if not isinstance(obj, set):
            continue
        for owner in gc.get_referrers(obj):
            # The set is the group's `tasks` attribute: referred to by the
            # group itself or by its __dict__.
            for group in [owner, *(o for o in gc.get_referrers(owner) if isinstance(owner, dict))]:
                if getattr(group, "tasks", None) is obj and callable(getattr(group, "create_task", None)):
                    return group
    return None


def _take_over(reference: Any, task: "asyncio.Task[None]") -> None:
    """On the loop's thread: stops the reference loop's task, moves its
    unsent counts into the meter and starts beacon-meter's loop. Runs
    between two awaits of the reference loop, so it never sees half of
    that loop's read-and-reset of its counters."""
    global _TAKEN_OVER
    task.cancel()
    runs, nodes = _move_counts(reference)
    if _TAKEN_OVER is None or _TAKEN_OVER.done():
        group = _owning_group(task)
        if group is not None:
            _TAKEN_OVER = group.create_task(metadata_loop())
        else:
            _TAKEN_OVER = asyncio.get_running_loop().create_task(metadata_loop())
            logger.warning(
                "beacon_meter.langgraph.install(): the task group that ran the platform's reporting "
                "loop was not found, so beacon-meter's loop is not part of the platform's shutdown: "
                "the window open at shutdown stays in the spool's checkpoint and is delivered by the "
                "next start, not at shutdown"
            )
    logger.warning(
        "beacon_meter.langgraph.install() ran after the platform had started its own reporting "
        "loop: took over from it (its %d unsent runs and %d nodes moved to beacon-meter). "
        "Install at the top of the custom app module (langgraph.json http.app) to start first.",
        runs,
        nodes,
    )


def install() -> None:
    """Replaces ``incr_runs``, ``incr_nodes`` and ``metadata_loop`` in a
    running ``langgraph_api`` (see the module docs). Idempotent, and safe
    wherever it is called: before ``langgraph_api.metadata`` is imported
    (a ``sitecustomize``), it defers to the moment the platform starts its
    loop, as ``BEACON_METER_LANGGRAPH=1`` does; after the platform started
    its own loop, it takes over from it.

    Raises ``RuntimeError`` on a ``langgraph_api`` version not in
    ``SUPPORTED_VERSIONS``, or if a call site is not what that version
    ships (someone else patched it), changing nothing.
    """
    import importlib  # noqa: PLC0415

    import langgraph_api  # noqa: PLC0415

    version = getattr(langgraph_api, "__version__", None)
    if version not in SUPPORTED_VERSIONS:
        raise RuntimeError(
            f"beacon_meter.langgraph.install() knows langgraph-api {', '.join(SUPPORTED_VERSIONS)}, "
            f"not {version}: its call sites may have moved, so nothing was replaced. Check that "
            f"{', '.join(_SITES)} still import incr_runs/incr_nodes by name, then add the version "
            "to SUPPORTED_VERSIONS."
        )
    if "langgraph_api.metadata" not in sys.modules:
        # Too early to replace anything (a sitecustomize, or a module
        # imported before the platform): importing the platform's modules
        # now would read its configuration before its launcher (`langgraph
        # dev`) has set the environment. The zero-code switch's import hook
        # installs at the moment the platform starts its loop instead.
        from . import _autoinstall  # noqa: PLC0415

        _autoinstall.activate()
        logger.info("langgraph_api is not loaded yet: beacon-meter installs when the platform starts its loop")
        return
    modules = {name: importlib.import_module(name) for name in _SITES}
    reference = modules["langgraph_api.metadata"]
    ours = {"incr_runs": incr_runs, "incr_nodes": incr_nodes, "metadata_loop": metadata_loop}
    for mod_name, names in _SITES.items():
        for name in names:
            current = getattr(modules[mod_name], name, None)
            if current is not getattr(reference, name) and current != ours[name]:
                raise RuntimeError(
                    f"{mod_name}.{name} is neither langgraph_api.metadata.{name} nor beacon-meter's: "
                    "something else replaced it, so nothing was replaced"
                )
    still_reference = reference.metadata_loop is not metadata_loop
    running = _reference_tasks(reference.metadata_loop.__code__) if still_reference else []
    for mod_name, names in _SITES.items():
        for name in names:
            setattr(modules[mod_name], name, ours[name])
    if still_reference and not running:
        # No reference loop reads the counters: what the platform counted
        # before now (nothing, in a server whose lifespan has not started)
        # moves into the meter.
        _move_counts(reference)
    for loop, task in running:
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            _take_over(reference, task)
        else:
            loop.call_soon_threadsafe(_take_over, reference, task)
