"""The sink's OTLP/HTTP metrics intake against real exporters, nothing
written here on the sending side: the OpenTelemetry Python SDK's
`OTLPMetricExporter` (opentelemetry-exporter-otlp-proto-http 1.45.2, what
langgraph-api 0.16.7 resolves) with the platform's header, and the
platform's own `langgraph_api.self_hosted_metrics`. Every point exported
is compared with the rows the sink stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

from conftest import LICENSE, Sink, sink_binary

Row = Tuple[Any, ...]


def exported_rows(exports: List[Any]) -> List[Row]:
    """The points of the SDK's MetricsData objects, as comparable rows."""
    rows = []
    for data in exports:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = type(m.data).__name__.lower()
                    for p in m.data.data_points:
                        attrs = dict(p.attributes)
                        instance = str(attrs.pop("instance_id", ""))
                        if kind == "histogram":
                            value, count = float(p.sum), int(p.count)
                        else:
                            value, count = float(p.value), None
                        rows.append((m.name, kind, instance, p.time_unix_nano, json.dumps(attrs, sort_keys=True), value, count))
    return sorted(rows)


def stored_rows(db: Path) -> List[Row]:
    with sqlite3.connect(db) as c:
        got = c.execute("SELECT name, kind, instance, time_ns, attributes, value, count FROM metric_points").fetchall()
    return sorted((n, k, i, t, json.dumps(json.loads(a), sort_keys=True), v, c) for n, k, i, t, a, v, c in got)


def test_the_python_otlp_exporter_with_the_platforms_header(tmp_path):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    db = tmp_path / "sink.db"
    sink = Sink(db=db)
    exports: List[Any] = []

    class Recording(OTLPMetricExporter):
        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            assert result.name == "SUCCESS", result
            exports.append(metrics_data)
            return result

    exporter = Recording(endpoint=sink.url + "/v1/metrics", headers={"X-Langchain-License-Key": LICENSE})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "LGP_Self_Hosted"}))
    meter = provider.get_meter("conformance")
    who = {"instance_id": "pod-a"}
    meter.create_observable_gauge("lg_api_num_pending_runs", callbacks=[lambda _: [Observation(3, who)]], unit="1")
    meter.create_observable_gauge("lg_api_pending_runs_wait_time_max", callbacks=[lambda _: [Observation(1.25, who)]], unit="s")
    requests = meter.create_counter("lg_api_http_requests_total", unit="1")
    latency = meter.create_histogram("lg_api_http_requests_latency_seconds", unit="s")
    for i in range(20):
        attrs = {"method": "GET", "path": "/ok", "status": "200" if i % 5 else "500", **who}
        requests.add(1, attrs)
        latency.record(0.001 * (i + 1), attrs)
    provider.force_flush()
    requests.add(5, {"method": "POST", "path": "/runs", "status": "200", **who})
    provider.shutdown()
    summary = sink.stop()
    sent = exported_rows(exports)
    assert len(exports) == 2 and len(sent) >= 8, sent
    assert stored_rows(db) == sent
    assert summary["metric_exports"] == 2 and summary["metric_points"] == len(sent), summary
    # The operator's view of the same rows.
    out = subprocess.run(
        [str(sink_binary()), "sink", "metrics", "--db", str(db), "--name", "lg_api_http_requests_total", "--json"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    series = {json.dumps(s["attributes"], sort_keys=True): s for s in json.loads(out.stdout)}
    get_500 = series[json.dumps({"method": "GET", "path": "/ok", "status": "500"}, sort_keys=True)]
    assert get_500["latest"] == 4 and get_500["instance"] == "pod-a" and get_500["kind"] == "sum"


def test_a_wrong_or_missing_license_header_and_bad_bodies_are_refused(tmp_path):
    import urllib.error
    import urllib.request

    sink = Sink(db=tmp_path / "sink.db")

    def post(body: bytes, headers: Dict[str, str]) -> int:
        req = urllib.request.Request(sink.url + "/v1/metrics", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    proto = {"Content-Type": "application/x-protobuf"}
    assert post(b"", proto) == 401
    assert post(b"", {**proto, "X-Langchain-License-Key": "not-a-license"}) == 403
    assert post(b"\xff\xff\xff", {**proto, "X-Langchain-License-Key": LICENSE}) == 400
    assert post(b"{}", {"Content-Type": "application/json", "X-Langchain-License-Key": LICENSE}) == 415
    assert post(b"", {**proto, "X-Langchain-License-Key": LICENSE}) == 200  # an empty export
    summary = sink.stop()
    assert summary["metric_exports"] == 1 and summary["metric_points"] == 0, summary


def test_the_platforms_own_self_hosted_metrics(tmp_path):
    """langgraph_api.self_hosted_metrics, as the platform initializes it
    (LANGGRAPH_METRICS_ENABLED, LANGGRAPH_METRICS_ENDPOINT, the license key,
    HOSTNAME), in a process that imports the platform. The in-memory runtime
    never calls initialize_self_hosted_metrics() (only the licensed
    runtimes do), so the test calls it, then records HTTP requests through
    the platform's record_http_request() and flushes."""
    db = tmp_path / "sink.db"
    sink = Sink(db=db)
    dump = tmp_path / "exported.json"
    script = textwrap.dedent(
        f"""
        import json, os
        os.environ.update(
            REDIS_URI="redis://127.0.0.1:1", DATABASE_URI="postgres://127.0.0.1:1/none",
            LANGGRAPH_RUNTIME_EDITION="inmem", LANGSMITH_TRACING="false",
            LANGGRAPH_METRICS_ENABLED="true", LANGGRAPH_METRICS_ENDPOINT={sink.url + "/v1/metrics"!r},
            LANGGRAPH_METRICS_EXPORT_INTERVAL_MS="3600000", LANGGRAPH_CLOUD_LICENSE_KEY={LICENSE!r},
            HOSTNAME="lg-pod-0", N_JOBS_PER_WORKER="4",
        )
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_otlp import exported_rows
        exports = []
        original = OTLPMetricExporter.export
        def export(self, data, *a, **k):
            result = original(self, data, *a, **k)
            assert result.name == "SUCCESS", result
            exports.append(data)
            return result
        OTLPMetricExporter.export = export
        from langgraph_api import self_hosted_metrics as shm
        shm.initialize_self_hosted_metrics()
        assert shm._meter_provider is not None, "self-hosted metrics did not start"
        for i in range(12):
            shm.record_http_request("GET", "/ok", 200 if i % 4 else 503, 0.002 * (i + 1))
        shm._meter_provider.force_flush()
        shm.shutdown_self_hosted_metrics()
        open({str(dump)!r}, "w").write(json.dumps(exported_rows(exports)))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = sink.stop()
    sent = sorted(tuple(r) for r in json.loads(dump.read_text()))
    names = {r[0] for r in sent}
    assert {"lg_api_num_pending_runs", "lg_api_http_requests_total", "lg_api_http_requests_latency_seconds"} <= names, names
    assert {r[2] for r in sent} == {"lg-pod-0"}
    assert stored_rows(db) == sent
    assert summary["metric_points"] == len(sent), summary


def test_the_python_bindings_reporter_exports_its_metrics(tmp_path):
    """Reporter.from_env with the platform's metrics variables: the
    binding's reporter exports to the sink, and the last export carries
    the runs and nodes it recorded."""
    db = tmp_path / "sink.db"
    sink = Sink(db=db)
    script = textwrap.dedent(
        f"""
        import os
        os.environ.update(
            LANGGRAPH_CLOUD_LICENSE_KEY={LICENSE!r}, BEACON_URL={sink.url!r},
            LANGGRAPH_METRICS_ENABLED="true", LANGGRAPH_METRICS_ENDPOINT={sink.url + "/v1/metrics"!r},
            LANGGRAPH_METRICS_EXPORT_INTERVAL_MS="1000", HOSTNAME="py-pod",
            BEACON_SPOOL_DIR={str(tmp_path / "spool")!r}, BEACON_INTERVAL_SECS="1",
        )
        from beacon_meter import Meter, Reporter
        m = Meter()
        r = Reporter.from_env(m)
        for _ in range(7):
            m.record_run(nodes=3)
        stats = r.shutdown()
        assert stats["metrics_export"]["exports"] >= 1, stats
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = sink.stop()
    assert summary["metric_exports"] >= 1, summary
    with sqlite3.connect(db) as c:
        last = dict(
            c.execute(
                "SELECT name, value FROM metric_points WHERE name IN (?, ?) AND instance = 'py-pod' ORDER BY id",
                ("langgraph.platform.runs", "langgraph.platform.nodes"),
            ).fetchall()
        )
    assert last == {"langgraph.platform.runs": 7.0, "langgraph.platform.nodes": 21.0}, last
