"""The Python OpenTelemetry SDK's logging handler exports log records to Faultline over OTLP
gRPC and OTLP HTTP from inside a traced request; the records come back from /api/logs by trace
ID with their body, severity, trace and span IDs, attributes and resource."""

import logging
import time
import uuid

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def emit(exporter, service):
    """Logs three lines through the stdlib `logging` module inside a span, and returns the
    span's context and a marker unique to this run."""
    resource = Resource.create({"service.name": service, "deployment.environment": "test"})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    logger = logging.getLogger(f"faultline.pytest.{service}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    marker = uuid.uuid4().hex
    tracer = TracerProvider(resource=resource).get_tracer("faultline.pytest")
    try:
        with tracer.start_as_current_span("GET /checkout") as span:
            logger.info("checkout started %s", marker, extra={"order.id": 1234, "retry": False})
            with tracer.start_as_current_span("charge") as child:
                logger.warning("card declined %s", marker, extra={"amount": 9.5})
                child_ctx = child.get_span_context()
            logger.error("checkout failed %s", marker)
            ctx = span.get_span_context()
        assert logger_provider.force_flush(30_000)
    finally:
        logger.removeHandler(handler)
        logger_provider.shutdown()
    return ctx, child_ctx, marker


def logs_of(server, trace_id, deadline_s=30.0, want=3):
    """Polls /api/logs?traceID= until `want` records are there (export is acknowledged before
    the SDK returns, so this normally answers at once)."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = requests.get(f"{server.api}/api/logs", params={"traceID": trace_id}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        if len(body["data"]) >= want or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def check(server, exporter, service):
    ctx, child_ctx, marker = emit(exporter, service)
    trace_id = format(ctx.trace_id, "032x")
    body = logs_of(server, trace_id)
    assert body["errors"] is None
    assert body["total"] == 3
    records = body["data"]
    # Time order for a trace.
    times = [int(r["timeUnixNano"]) for r in records]
    assert times == sorted(times)
    info, warn, error = records
    assert info["body"] == f"checkout started {marker}"
    assert info["severityText"] == "INFO"
    assert info["severityNumber"] == 9
    assert warn["severityText"] == "WARN" or warn["severityText"] == "WARNING"
    assert warn["severityNumber"] == 13
    assert error["severityNumber"] == 17
    for r in records:
        assert r["traceID"] == trace_id
        assert r["serviceName"] == service
        assert r["resource"]["service.name"] == service
        assert r["resource"]["deployment.environment"] == "test"
    assert info["spanID"] == format(ctx.span_id, "016x")
    assert warn["spanID"] == format(child_ctx.span_id, "016x")
    assert error["spanID"] == format(ctx.span_id, "016x")
    assert info["attributes"]["order.id"] == 1234
    assert info["attributes"]["retry"] is False
    assert warn["attributes"]["amount"] == 9.5

    # The span filter narrows to the child's line.
    r = requests.get(
        f"{server.api}/api/logs",
        params={"traceID": trace_id, "spanID": format(child_ctx.span_id, "016x")},
        timeout=10,
    )
    assert [x["body"] for x in r.json()["data"]] == [f"card declined {marker}"]

    # Search: newest first, by service, minimum severity and text.
    r = requests.get(
        f"{server.api}/api/logs",
        params={"service": service, "severity": "warn", "q": marker, "lookback": "1h"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    found = [x["body"] for x in r.json()["data"]]
    assert found == [f"checkout failed {marker}", f"card declined {marker}"]


def test_grpc_log_exporter(faultline):
    check(faultline, GrpcLogExporter(endpoint=f"http://127.0.0.1:{faultline.grpc_port}", insecure=True), "py-logs-grpc")


def test_http_log_exporter(faultline):
    exporter = HttpLogExporter(endpoint=f"http://127.0.0.1:{faultline.otlp_http_port}/v1/logs")
    check(faultline, exporter, "py-logs-http")


@pytest.mark.parametrize("params", [{"traceID": "not-hex"}, {"severity": "loud"}, {"limit": "many"}])
def test_bad_parameters_answer_400_in_the_jaeger_envelope(faultline, params):
    r = requests.get(f"{faultline.api}/api/logs", params=params, timeout=10)
    assert r.status_code == 400
    body = r.json()
    assert body["data"] is None
    assert body["errors"][0]["code"] == 400
    assert list(params)[0] in body["errors"][0]["msg"]
