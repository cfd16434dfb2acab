"""beacon-meter for Python: the Rust metering core and durable reporter.

    from beacon_meter import Meter, Reporter
    meter = Meter(counters=["myplatform.tokens"])
    meter.record_run(nodes=3)
    with Reporter.from_env(meter):
        ...

Everything is done by the Rust crate (``beacon_meter._native``); this module
only wires it into the interpreter: a forked child starts from a fresh meter
and its own reporter (``os.register_at_fork``), and running reporters shut
down gracefully at exit (``atexit``).
"""

import atexit as _atexit
import os as _os

from ._native import ConfigError, Meter, Reporter, ReporterError, Window
from ._native import after_fork_in_child as _after_fork_in_child
from ._native import shutdown_all as _shutdown_all

__all__ = ["ConfigError", "Meter", "Reporter", "ReporterError", "Window"]

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)
_atexit.register(_shutdown_all)
