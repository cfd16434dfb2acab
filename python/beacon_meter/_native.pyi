"""Type stubs of the Rust extension module ``beacon_meter._native``."""

import os
import pathlib
from types import TracebackType
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Type, Union

_TagValue = Union[str, Callable[[], object]]
_Text = Optional[str]
_Path = Union[str, "os.PathLike[str]", None]
_Seconds = Union[int, float, None]
_Setting = Union[str, int, float, bool, "os.PathLike[str]", None]

class ConfigError(ValueError):
    """A configuration value is wrong; never shows a credential."""

    variable: str
    """The keyword at fault when the value came from one (``interval_secs``),
    else the environment variable (``BEACON_INTERVAL_SECS``) or tag name."""

class ReporterError(RuntimeError):
    """The reporter could not start (spool locked or unwritable, bad CA file)."""

class Window:
    """The counts of one closed window."""

    @property
    def runs(self) -> int: ...
    @property
    def nodes(self) -> int: ...
    @property
    def sequence(self) -> int: ...
    @property
    def measures(self) -> dict[str, int]: ...
    @property
    def gauge_failures(self) -> list[str]: ...

class Meter:
    """Runs, nodes and custom counters on a lock-free hot path."""

    def __init__(
        self,
        counters: Sequence[str] = ...,
        gauges: Optional[Mapping[str, Callable[[], int]]] = None,
    ) -> None: ...
    def record_run(self, nodes: int = 0, **custom: int) -> None:
        """One run of ``nodes`` nodes (and custom counters), one indivisible record."""
    def record_nodes(self, n: int) -> None: ...
    def record(self, name: str, n: int) -> None: ...
    def incr_runs(self, *, incr: int = 1) -> None: ...
    def incr_nodes(self, _node: object, *, incr: int = 1) -> None: ...
    def rotate(self) -> Window: ...
    def peek(self) -> Window: ...
    @property
    def names(self) -> list[str]: ...

class Reporter:
    """The Rust reporter, on its own thread and tokio runtime."""

    def __init__(
        self,
        meter: Meter,
        *,
        tags: Optional[Mapping[str, _TagValue]] = None,
        langgraph_version: Optional[str] = None,
        api_version: Optional[str] = None,
        user_app: Optional[Mapping[str, bool]] = None,
        start: bool = True,
        shutdown_timeout: float = 10.0,
        license_key: _Text = None,
        api_key: _Text = None,
        auth_endpoint: _Text = None,
        beacon_url: _Text = None,
        interval_secs: _Seconds = None,
        timeout_secs: _Seconds = None,
        checkpoint_secs: _Seconds = None,
        offline: Optional[bool] = None,
        spool_dir: _Path = None,
        ca_cert: _Path = None,
        revision: _Text = None,
        variant: _Text = None,
        project_id: _Text = None,
        tenant_id: _Text = None,
        plan: Optional[Literal["enterprise", "developer"]] = None,
    ) -> None: ...
    @classmethod
    def from_env(
        cls,
        meter: Meter,
        *,
        tags: Optional[Mapping[str, _TagValue]] = None,
        langgraph_version: Optional[str] = None,
        api_version: Optional[str] = None,
        user_app: Optional[Mapping[str, bool]] = None,
        start: bool = True,
        shutdown_timeout: float = 10.0,
        **overrides: _Setting,
    ) -> "Reporter": ...
    def start(self) -> None: ...
    def stats(self) -> Optional[dict[str, Any]]: ...
    def shutdown(self, timeout: Optional[float] = None) -> Optional[dict[str, Any]]: ...
    def retry_now(self) -> None: ...
    @property
    def spool_dir(self) -> pathlib.Path: ...
    def __enter__(self) -> "Reporter": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

def after_fork_in_child() -> None: ...
def shutdown_all() -> None: ...
