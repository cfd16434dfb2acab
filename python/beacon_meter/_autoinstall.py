"""The zero-code switch for the LangGraph platform.

With ``BEACON_METER_LANGGRAPH=1`` in a process's environment, the platform
(langgraph-api) reports through beacon-meter without a line of code and
without a custom app: ``beacon_meter_langgraph.pth``, which the wheel puts
in ``site-packages``, imports this module at interpreter start (only when
the variable is set; otherwise it imports nothing), and this module waits
for ``langgraph_api.metadata`` to be imported. Once it is, its
``metadata_loop`` is replaced by one that, when the platform's lifespan
starts it, calls :func:`beacon_meter.langgraph.install` (everything the
platform needs is loaded by then, unlike at interpreter start, where
importing ``langgraph_api.config`` fails before ``langgraph dev`` has set
its environment) and runs beacon-meter's loop in its place.

A ``langgraph_api`` version that ``install()`` refuses keeps the reference
loop, with the refusal logged: the switch never leaves the platform with no
reporting at all.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
from typing import Any, Optional, Sequence

#: The variable that turns the switch on (``1``, ``true``, ``yes``, ``on``).
ENV = "BEACON_METER_LANGGRAPH"

_TARGET = "langgraph_api.metadata"
logger = logging.getLogger("beacon_meter.langgraph")


def enabled() -> bool:
    """Whether :data:`ENV` turns the switch on."""
    return os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _patch(metadata: Any) -> None:
    """Replaces ``metadata.metadata_loop`` with one that installs the
    drop-in when the platform starts it."""
    reference = metadata.metadata_loop

    async def metadata_loop() -> None:
        from . import langgraph as drop_in  # noqa: PLC0415

        try:
            # Ours in place first, so that install() finds no reference
            # loop to take over (this task is the loop).
            metadata.metadata_loop = drop_in.metadata_loop
            drop_in.install()
        except RuntimeError as refused:
            metadata.metadata_loop = reference
            logger.error("%s=1, but %s; the platform's own reporter runs instead", ENV, refused)
            await reference()
            return
        await drop_in.metadata_loop()

    metadata_loop.__doc__ = "beacon-meter's metadata_loop, installed by the zero-code switch."
    metadata.metadata_loop = metadata_loop


class _Loader(importlib.abc.Loader):
    """Runs the real loader of ``langgraph_api.metadata``, then patches it."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[Any]:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)  # type: ignore[attr-defined]
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``langgraph_api.metadata`` the usual way and wraps its loader;
    leaves every other import alone."""

    def find_spec(
        self, name: str, path: Optional[Sequence[str]], target: Any = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)  # once: the module is imported once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def activate() -> None:
    """Patches ``langgraph_api.metadata`` now if it is imported, else when
    it is. Called by the ``.pth`` file when :func:`enabled`."""
    if _TARGET in sys.modules:
        _patch(sys.modules[_TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


if enabled():
    activate()
