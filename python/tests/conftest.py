"""Shared fixtures: a real `beacon-meter sink` on a free loopback port.

The sink binary is the repository's own (`target/debug/beacon-meter`, built
by `python/ci.sh`), or `BEACON_METER_BIN`. Tests fail, not skip, without it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
API_KEY = "lsv2_pt_0123456789abcdef0123456789abcdef_test"
LICENSE = "lcl_test_license_0123456789"


def sink_binary() -> Path:
    path = Path(os.environ.get("BEACON_METER_BIN", REPO / "target" / "debug" / "beacon-meter"))
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build --bin beacon-meter` (python/ci.sh does)")
    return path


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """`beacon-meter sink` on 127.0.0.1; `stop()` returns its final summary."""

    def __init__(self, port: int = 0, db: Optional[Path] = None) -> None:
        store = ["--db", str(db)] if db is not None else []
        self.proc = subprocess.Popen(
            [str(sink_binary()), "sink", "--bind", f"127.0.0.1:{port}", "--json", "--api-key", API_KEY, *store],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        assert first["event"] == "listening", first
        self.url: str = first["url"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def summary(self) -> Dict[str, Any]:
        with urllib.request.urlopen(self.url + "/v1/summary", timeout=10) as r:
            return json.loads(r.read())

    def measure(self, name: str) -> int:
        return int(self.summary()["measures"].get(name, 0))

    def wait_for(self, name: str, value: int, timeout: float = 60.0) -> None:
        """Waits until measure `name` reaches `value` (fails past `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.measure(name) < value:
            if time.monotonic() > deadline:
                pytest.fail(f"the sink did not reach {name} = {value}: {self.summary()}")
            time.sleep(0.05)

    def stop(self) -> Optional[Dict[str, Any]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        for line in out.splitlines():
            event = json.loads(line)
            if event.get("event") == "summary":
                return event["summary"]
        return None


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


def reporter_env(sink_url: str, spool: Path) -> Dict[str, str]:
    """Reporter keywords: API-key destination at the sink, 1 s windows."""
    return dict(
        api_key=API_KEY,
        auth_endpoint=sink_url,
        spool_dir=str(spool),
        interval_secs=1,
        checkpoint_secs=1,
    )


#: Lines tests ask to be shown after the run (tables of what they measured),
#: whatever pytest captured.
SUMMARY: List[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)
