"""The Python API over the Rust core: records, windows, errors, secrets."""

from __future__ import annotations

import inspect
import logging
import os
import threading

import pytest

import beacon_meter
from beacon_meter import ConfigError, Meter, Reporter

SECRET = "lcl_VERY_SECRET_license_value_42"


def test_record_run_is_one_record_with_custom_counters():
    meter = Meter(counters=["myplatform.tokens"], gauges={"langgraph.platform.py_graphs": lambda: 4})
    meter.record_run(nodes=3)
    meter.record_nodes(2)
    meter.record_run(nodes=1, tokens=512)
    meter.record_run(nodes=0, **{"myplatform.tokens": 8})
    w = meter.rotate()
    assert (w.runs, w.nodes) == (3, 6)
    assert w.measures == {
        "langgraph.platform.runs": 3,
        "langgraph.platform.nodes": 6,
        "myplatform.tokens": 520,
        "langgraph.platform.py_graphs": 4,
    }
    assert w.sequence == 0
    empty = meter.rotate()
    assert (empty.runs, empty.nodes, empty.sequence) == (0, 0, 1)


def test_bad_records_raise_and_record_nothing():
    meter = Meter(counters=["myplatform.tokens"])
    with pytest.raises(TypeError, match="tokenz"):
        meter.record_run(nodes=1, tokenz=5)
    with pytest.raises(OverflowError):
        meter.record_run(nodes=-1)
    with pytest.raises(ValueError, match="not a counter"):
        meter.record("nope", 1)
    with pytest.raises(ValueError, match="invalid"):
        Meter(counters=["has space"])
    w = meter.rotate()
    assert (w.runs, w.nodes, w.measures["myplatform.tokens"]) == (0, 0, 0)


def test_reference_signatures():
    meter = Meter()
    meter.incr_runs()
    meter.incr_runs(incr=2)
    meter.incr_nodes(None)
    meter.incr_nodes("node-info", incr=4)
    with pytest.raises(TypeError):
        meter.incr_runs(2)  # keyword-only, like the reference
    w = meter.rotate()
    assert (w.runs, w.nodes) == (3, 5)


def test_the_recording_methods_take_arguments_as_python_does():
    """The hot methods parse their own arguments (`fastcall.rs`): every
    way of passing them, and every wrong one, behaves like a Python def."""
    meter = Meter(counters=["myplatform.tokens"])
    meter.record_run(3)
    meter.record_run(**{"no" + "des": 2})  # a keyword name built at run time
    meter.record_run()
    meter.record_nodes(n=4)
    meter.record_nodes(1)
    meter.incr_nodes(object())
    meter.incr_nodes(_node=None, incr=2)
    for bad in (
        lambda: meter.record_run(1, 2),
        lambda: meter.record_run(1, nodes=1),
        lambda: meter.record_run(nodes="3"),
        lambda: meter.record_nodes(),
        lambda: meter.record_nodes(1, n=1),
        lambda: meter.incr_runs(incr=1, other=2),
        lambda: meter.incr_nodes(),
        lambda: meter.incr_nodes(None, None),
        lambda: meter.incr_nodes(None, _node=None),
        lambda: type(meter).record_run(object(), 1),
    ):
        with pytest.raises(TypeError):
            bad()
    w = meter.rotate()
    assert (w.runs, w.nodes, w.measures["myplatform.tokens"]) == (3, 13, 0)
    # `self` is positional-only in every method written in C.
    assert str(inspect.signature(Meter.record_run)) == "(self, /, nodes=0, **custom)"
    assert str(inspect.signature(Meter.incr_nodes)) == "(self, /, _node, *, incr=1)"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_custom_counters_in_a_forked_child():
    """A forked child builds a fresh core, whose counter ids are its own:
    its custom counters record (they used to be the parent's ids)."""
    meter = Meter(counters=["myplatform.tokens"])
    meter.record_run(nodes=1, tokens=3)  # the parent's, never the child's
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            meter.record_run(nodes=2, tokens=5)
            meter.record("tokens", 1)
            win = meter.rotate()
            os.write(w, repr((win.runs, win.nodes, win.measures["myplatform.tokens"])).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    got = os.read(r, 100)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == b"(1, 2, 6)"
    parent = meter.rotate()
    assert (parent.runs, parent.nodes, parent.measures["myplatform.tokens"]) == (1, 1, 3)


def test_a_raising_gauge_is_logged_and_skipped(caplog):
    meter = Meter(gauges={"good": lambda: 7, "bad": lambda: 1 // 0})
    meter.record_run(nodes=2)
    with caplog.at_level(logging.WARNING, logger="beacon_meter"):
        w = meter.rotate()
    assert w.measures == {"langgraph.platform.runs": 1, "langgraph.platform.nodes": 2, "good": 7}
    assert w.gauge_failures == ["bad"]
    assert any("'bad'" in r.getMessage() and r.exc_info for r in caplog.records)


def test_exact_totals_from_four_threads():
    meter = Meter(counters=["t.tokens"])
    per_thread, threads = 50_000, 4
    windows = []
    stop = threading.Event()

    def rotator():
        while not stop.is_set():
            windows.append(meter.rotate())

    def writer():
        for _ in range(per_thread):
            meter.record_run(nodes=3, tokens=2)

    r = threading.Thread(target=rotator)
    r.start()
    ws = [threading.Thread(target=writer) for _ in range(threads)]
    for t in ws:
        t.start()
    for t in ws:
        t.join()
    stop.set()
    r.join()
    windows.append(meter.rotate())
    runs = sum(w.runs for w in windows)
    assert runs == per_thread * threads
    assert sum(w.nodes for w in windows) == 3 * runs
    assert sum(w.measures["t.tokens"] for w in windows) == 2 * runs
    assert len(windows) > 1


@pytest.mark.parametrize(
    "kwargs, variable",
    [
        (dict(interval_secs=0), "interval_secs"),
        (dict(interval_secs="60"), "interval_secs"),
        (dict(timeout_secs=-1), "timeout_secs"),
        (dict(checkpoint_secs=True), "checkpoint_secs"),
        (dict(beacon_url="http://example.com"), "beacon_url"),
        (dict(offline="maybe"), "offline"),
        (dict(tenant_id="not-a-uuid"), "tenant_id"),
        (dict(license_key="lcl_has space"), "license_key"),
    ],
)
def test_config_errors_name_the_variable_and_never_the_key(kwargs, variable, tmp_path):
    with pytest.raises(ConfigError) as e:
        Reporter(Meter(), license_key=kwargs.pop("license_key", SECRET), spool_dir=tmp_path, **kwargs)
    assert isinstance(e.value, ValueError)
    assert e.value.variable == variable
    assert str(e.value).startswith(variable + " "), str(e.value)
    assert "ConfigBuilder" not in str(e.value)
    assert SECRET not in str(e.value) and SECRET not in repr(e.value)
    assert "has space" not in str(e.value)


def test_a_key_pasted_into_another_variable_is_not_shown(tmp_path):
    with pytest.raises(ConfigError) as e:
        Reporter(Meter(), license_key=SECRET, beacon_url=SECRET, spool_dir=tmp_path)
    assert e.value.variable == "beacon_url"
    assert SECRET not in str(e.value)


def test_from_env_reads_the_environment_and_keywords_override(monkeypatch, tmp_path):
    monkeypatch.setenv("BEACON_INTERVAL_SECS", "0")
    with pytest.raises(ConfigError) as e:
        Reporter.from_env(Meter(), spool_dir=tmp_path, offline=True)
    assert e.value.variable == "BEACON_INTERVAL_SECS"
    r = Reporter.from_env(Meter(), spool_dir=tmp_path, offline=True, interval_secs=60, start=False)
    assert "idle" in repr(r)


def test_unknown_setting_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="intervall"):
        Reporter(Meter(), intervall=5, spool_dir=tmp_path)


def test_the_plan_is_the_platforms_when_given_else_follows_the_credential(tmp_path):
    with pytest.raises(ConfigError) as e:
        Reporter(Meter(), api_key="lsv2_plan_test_0123456789", plan="gold", spool_dir=tmp_path, start=False)
    assert e.value.variable == "plan"
    for plan, want in ((None, "developer"), ("enterprise", "enterprise")):
        spool = tmp_path / str(plan)
        meter = Meter()
        with Reporter(meter, api_key="lsv2_plan_test_0123456789", offline=True, plan=plan, spool_dir=spool):
            meter.record_run(nodes=1)
        spooled = "".join(p.read_text() for p in spool.rglob("*.json"))
        assert f'"langgraph.platform.plan": "{want}"' in spooled, spooled


def test_offline_reporter_spools_and_never_shows_the_key(tmp_path, capfd):
    meter = Meter()
    with Reporter(meter, license_key="offline-license-XYZZY-123", spool_dir=tmp_path, checkpoint_secs=1) as r:
        assert "XYZZY" not in repr(r)
        meter.record_run(nodes=3)
        assert r.stats()["offline"] is True
    stats = r.stats()
    assert stats["windows_closed"] >= 1
    assert stats["windows_sent"] == 0
    spooled = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert '"langgraph.platform.runs": 1' in spooled
    assert "XYZZY" not in spooled
    out, err = capfd.readouterr()
    assert "XYZZY" not in out + err


def test_package_exports_and_stubs():
    import importlib.resources as res

    assert set(beacon_meter.__all__) == {"ConfigError", "Meter", "Reporter", "ReporterError", "Window"}
    files = {p.name for p in res.files("beacon_meter").iterdir()}
    assert {"py.typed", "__init__.pyi", "_native.pyi"} <= files
    # The public classes show under the package a user imports, not under
    # the extension module that defines them.
    for name in beacon_meter.__all__:
        cls = getattr(beacon_meter, name)
        assert f"{cls.__module__}.{cls.__qualname__}" == f"beacon_meter.{name}", cls


def test_the_installed_distribution_carries_its_metadata():
    from importlib.metadata import metadata

    meta = metadata("beacon-meter")
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Lock-free usage metering" in meta.get_payload()
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(f.endswith("LICENSE") for f in meta.get_all("License-File"))
