"""A real Prometheus (Debian's) scrapes Faultline's `/metrics`.

Spans sent with the Python SDK must come out of Prometheus's own query API under Tempo's metric
names (span metrics and the service graph), and, since Prometheus asks for OpenMetrics when its
exemplar storage is on, with exemplars carrying the trace IDs of the spans that were sent. Our
own parser in crates/faultline-analysis/tests/exposition_format.rs checks the text; this checks
that the scraper people actually run accepts it.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from conftest import Faultline, free_port

TRACES = 5


@pytest.fixture(scope="module")
def faultline():
    """This module's server splits span metrics by two dimensions (a span attribute and a
    resource attribute), so the labels Prometheus stores are checked too."""
    server = Faultline(extra_args=["--red-dimensions", "http.response.status_code,deployment.environment"])
    yield server
    server.stop()


def send_calls(server, count):
    """`count` traces of shopfront (SERVER, then CLIENT) calling pricing (SERVER); their IDs."""

    def provider(service):
        p = TracerProvider(
            resource=Resource.create({"service.name": service, "deployment.environment": "staging"})
        )
        endpoint = f"http://127.0.0.1:{server.otlp_http_port}/v1/traces"
        p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return p

    front, pricing = provider("shopfront"), provider("pricing")
    ids = []
    for _ in range(count):
        tracer = front.get_tracer("test")
        with tracer.start_as_current_span("GET /price", kind=SpanKind.SERVER) as root:
            with tracer.start_as_current_span("call pricing", kind=SpanKind.CLIENT) as client:
                with pricing.get_tracer("test").start_as_current_span(
                    "GET /quote", kind=SpanKind.SERVER, context=set_span_in_context(client)
                ) as quote:
                    quote.set_attribute("http.response.status_code", 200)
        ids.append(format(root.get_span_context().trace_id, "032x"))
    front.shutdown()
    pricing.shutdown()
    return ids


@pytest.fixture(scope="module")
def prometheus(faultline):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed; scripts/test.sh installs Debian's package")
    work = tempfile.mkdtemp(prefix="faultline-prometheus-")
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n"
            "  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: faultline\n"
            "    scrape_interval: 1s\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{faultline.http_port}']\n"
        )
    port = free_port()
    log = open(os.path.join(work, "prometheus.log"), "w+")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={os.path.join(work, 'data')}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def logs():
        log.flush()
        log.seek(0)
        return log.read()

    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{logs()}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus not ready after 60 s:\n{logs()}")
        time.sleep(0.1)
    yield url, logs
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(work, ignore_errors=True)


def poll(what, fetch, done, logs, timeout=90):
    """Calls `fetch` until `done(result)` holds; fails with the last result and Prometheus's log."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not seen within {timeout} s; last answer: {last}\n{logs()}")


def prom_query(url, q):
    """The result vector of an instant PromQL query."""
    r = requests.get(f"{url}/api/v1/query", params={"query": q}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def value(result):
    """The sum of a result vector's samples."""
    return sum(float(s["value"][1]) for s in result)


def test_prometheus_scrapes_span_metrics_service_graph_and_exemplars(faultline, prometheus):
    url, logs = prometheus
    ids = send_calls(faultline, TRACES)

    def query(q):
        return prom_query(url, q)

    # The scrape itself succeeds: a format error would show here as the target's lastError.
    def target():
        r = requests.get(f"{url}/api/v1/targets", timeout=5)
        r.raise_for_status()
        active = r.json()["data"]["activeTargets"]
        return active[0] if active else None

    up = poll("a healthy scrape", target, lambda t: t is not None and t["health"] == "up", logs)
    assert up["lastError"] == ""

    calls = poll(
        "pricing's server calls",
        lambda: query('traces_spanmetrics_calls_total{service="pricing"}'),
        lambda r: value(r) >= TRACES,
        logs,
    )
    assert value(calls) == TRACES
    labels = calls[0]["metric"]
    assert labels["span_name"] == "GET /quote"
    assert labels["span_kind"] == "SPAN_KIND_SERVER"
    assert labels["status_code"] == "STATUS_CODE_UNSET"
    # The configured dimensions, from the span and from the resource.
    assert labels["http_response_status_code"] == "200"
    assert labels["deployment_environment"] == "staging"
    # shopfront's spans lack the status code: an empty label, which Prometheus drops.
    front = query('traces_spanmetrics_calls_total{service="shopfront",deployment_environment="staging"}')
    assert value(front) == 2 * TRACES
    assert all("http_response_status_code" not in s["metric"] for s in front)

    edge = poll(
        "the shopfront -> pricing edge",
        lambda: query('traces_service_graph_request_total{client="shopfront",server="pricing"}'),
        lambda r: value(r) >= TRACES,
        logs,
    )
    assert value(edge) == TRACES

    # Histograms arrive whole: the +Inf bucket counts every call.
    inf = query('traces_spanmetrics_latency_bucket{service="pricing",le="+Inf"}')
    assert value(inf) == TRACES

    def exemplars():
        now = time.time()
        r = requests.get(
            f"{url}/api/v1/query_exemplars",
            params={
                "query": 'traces_spanmetrics_latency_bucket{service="pricing"}',
                "start": now - 600,
                "end": now + 60,
            },
            timeout=5,
        )
        r.raise_for_status()
        return [
            e["labels"].get("trace_id")
            for series in r.json()["data"]
            for e in series["exemplars"]
        ]

    seen = poll("exemplars with trace IDs", exemplars, lambda found: len(found) > 0, logs)
    assert set(seen) <= set(ids), f"exemplar trace IDs {seen} are not among those sent {ids}"


def test_prometheus_scrapes_the_servers_own_counters(faultline, prometheus):
    """Receiver and store counters come out of Prometheus with their types: the numbers a
    platform team alerts on when the backend falls behind."""
    url, logs = prometheus

    def query(q):
        return prom_query(url, q)

    before = faultline.metric("faultline_receiver_accepted_spans_total")
    send_calls(faultline, TRACES)
    accepted = poll(
        "the accepted span counter",
        lambda: query("faultline_receiver_accepted_spans_total"),
        lambda r: value(r) >= before + 3 * TRACES,
        logs,
    )
    # SimpleSpanProcessor sends one span per request; nothing else sends to this server.
    assert value(accepted) == before + 3 * TRACES
    assert value(query("faultline_receiver_requests_total")) >= 3 * TRACES
    # Every acknowledged span went through a durable WAL write.
    assert value(query("faultline_store_wal_syncs_total")) >= 1
    assert value(query("faultline_store_wal_records_total")) >= 3 * TRACES
    assert value(query("faultline_receiver_malformed_requests_total")) == 0

    r = requests.get(f"{url}/api/v1/metadata", timeout=5)
    r.raise_for_status()
    metadata = r.json()["data"]

    def kind(name):
        # Scraped as OpenMetrics (for exemplars), a counter's family drops its `_total`.
        entry = metadata.get(name) or metadata.get(name.removesuffix("_total"))
        assert entry, f"no metadata for {name}: {sorted(metadata)}"
        return entry[0]["type"]

    assert kind("faultline_receiver_accepted_spans_total") == "counter"
    assert kind("faultline_store_wal_syncs_total") == "counter"
    assert kind("faultline_store_head_spans") == "gauge"
    assert kind("faultline_store_flushing_heads") == "gauge"
