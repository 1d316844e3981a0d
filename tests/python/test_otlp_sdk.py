"""The Python OpenTelemetry SDK exports traces to Faultline over OTLP gRPC and OTLP HTTP;
the traces come back through the Jaeger and api_v3 query APIs field by field."""

import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def emit_trace(exporter, service):
    """Emits one three-span trace through `exporter` and returns the SDK's finished spans."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test", "k8s.pod.replicas": 3})
    )
    collected = []

    class Collect(SimpleSpanProcessor):
        def on_end(self, span):
            collected.append(span)
            super().on_end(span)

    provider.add_span_processor(Collect(exporter))
    tracer = provider.get_tracer("faultline.pytest", "1.2.3")
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "GET")
        root.set_attribute("http.response.status_code", 500)
        root.set_attribute("sample.ratio", 0.25)
        root.set_attribute("cache.hit", False)
        root.set_attribute("items", ["a", "b"])
        root.add_event("cart.loaded", {"cart.size": 2})
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
            child.set_attribute("peer.service", "payment-provider")
            child.set_status(Status(StatusCode.ERROR, "card declined"))
            child.record_exception(ValueError("declined"))
            # Linking to a sibling, not the parent: a link to the parent would restate the
            # parent reference (Jaeger then types it FOLLOWS_FROM).
            link_ctx = child.get_span_context()
        with tracer.start_as_current_span("audit", kind=SpanKind.INTERNAL, links=[Link(link_ctx, {"why": "audit"})]):
            pass
        root.set_status(Status(StatusCode.ERROR))
    assert provider.force_flush(30_000)
    provider.shutdown()
    return collected


def tags(obj):
    return {t["key"]: (t["type"], t["value"]) for t in obj["tags"]}


def check_jaeger_trace(server, sdk_spans, service):
    trace_id = format(sdk_spans[0].context.trace_id, "032x")
    r = requests.get(f"{server.api}/api/traces/{trace_id}", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] is None
    [trace] = body["data"]
    assert trace["traceID"] == trace_id
    by_id = {s["spanID"]: s for s in trace["spans"]}
    assert len(by_id) == len(sdk_spans) == 3
    for sdk in sdk_spans:
        sid = format(sdk.context.span_id, "016x")
        got = by_id[sid]
        assert got["traceID"] == trace_id
        assert got["operationName"] == sdk.name
        assert got["startTime"] == sdk.start_time // 1000
        assert got["duration"] == (sdk.end_time - sdk.start_time) // 1000
        process = trace["processes"][got["processID"]]
        assert process["serviceName"] == service
        ptags = tags(process)
        assert ptags["deployment.environment"] == ("string", "test")
        assert ptags["k8s.pod.replicas"] == ("int64", 3)
        t = tags(got)
        assert t["span.kind"] == ("string", sdk.kind.name.lower())
        refs = [r for r in got["references"] if r["refType"] == "CHILD_OF"]
        if sdk.parent is None:
            assert refs == []
        else:
            assert refs == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": format(sdk.parent.span_id, "016x")}]
        if sdk.status.status_code == StatusCode.ERROR:
            assert t["otel.status_code"] == ("string", "ERROR")
            assert t["error"] == ("bool", True)
        for key, value in sdk.attributes.items():
            if isinstance(value, bool):
                assert t[key] == ("bool", value)
            elif isinstance(value, int):
                assert t[key] == ("int64", value)
            elif isinstance(value, float):
                assert t[key] == ("float64", value)
            elif isinstance(value, str):
                assert t[key] == ("string", value)
        assert len(got["logs"]) == len(sdk.events)
        for log, event in zip(sorted(got["logs"], key=lambda l: l["timestamp"]), sdk.events):
            assert log["timestamp"] == event.timestamp // 1000
            fields = {f["key"]: f["value"] for f in log["fields"]}
            assert fields["event"] == event.name
        follows = [r for r in got["references"] if r["refType"] == "FOLLOWS_FROM"]
        assert len(follows) == len(sdk.links)
    root = next(s for s in sdk_spans if s.parent is None)
    assert tags(by_id[format(root.context.span_id, "016x")])["items"][1] in ('["a","b"]', '["a", "b"]')
    return trace_id


def check_v3_trace(server, trace_id, sdk_spans, service):
    r = requests.get(f"{server.api}/api/v3/traces/{trace_id}", timeout=10)
    assert r.status_code == 200, r.text
    rs = r.json()["result"]["resourceSpans"]
    spans = [s for r_ in rs for ss in r_["scopeSpans"] for s in ss["spans"]]
    assert {s["spanId"] for s in spans} == {format(s.context.span_id, "016x") for s in sdk_spans}
    assert all(s["traceId"] == trace_id for s in spans)
    names = {a["key"]: a["value"] for a in rs[0]["resource"]["attributes"]}
    assert names["service.name"] == {"stringValue": service}
    scope = rs[0]["scopeSpans"][0]["scope"]
    assert scope["name"] == "faultline.pytest" and scope["version"] == "1.2.3"


def test_grpc_exporter_round_trip(faultline):
    spans = emit_trace(GrpcExporter(endpoint=f"127.0.0.1:{faultline.grpc_port}", insecure=True), "py-grpc")
    trace_id = check_jaeger_trace(faultline, spans, "py-grpc")
    check_v3_trace(faultline, trace_id, spans, "py-grpc")


def test_http_exporter_round_trip(faultline):
    spans = emit_trace(HttpExporter(endpoint=f"http://127.0.0.1:{faultline.otlp_http_port}/v1/traces"), "py-http")
    trace_id = check_jaeger_trace(faultline, spans, "py-http")
    check_v3_trace(faultline, trace_id, spans, "py-http")


def test_services_operations_and_search(faultline):
    emit_trace(GrpcExporter(endpoint=f"127.0.0.1:{faultline.grpc_port}", insecure=True), "py-search")
    services = requests.get(f"{faultline.api}/api/services", timeout=10).json()["data"]
    assert "py-search" in services
    ops = requests.get(f"{faultline.api}/api/services/py-search/operations", timeout=10).json()["data"]
    assert set(ops) == {"GET /checkout", "charge", "audit"}
    kinds = requests.get(
        f"{faultline.api}/api/operations", params={"service": "py-search", "spanKind": "server"}, timeout=10
    ).json()["data"]
    assert kinds == [{"name": "GET /checkout", "spanKind": "server"}]
    found = requests.get(
        f"{faultline.api}/api/traces",
        params={"service": "py-search", "operation": "charge", "tags": '{"peer.service":"payment-provider"}', "lookback": "1h"},
        timeout=10,
    ).json()
    assert len(found["data"]) == 1
    none = requests.get(
        f"{faultline.api}/api/traces",
        params={"service": "py-search", "tags": '{"peer.service":"nobody"}', "lookback": "1h"},
        timeout=10,
    ).json()
    assert none["data"] == []


def test_bad_query_parameters_get_400(faultline):
    r = requests.get(f"{faultline.api}/api/traces/not-hex", timeout=10)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == 400
    r = requests.get(f"{faultline.api}/api/traces", params={"service": "x", "minDuration": "fast"}, timeout=10)
    assert r.status_code == 400
    assert "minDuration" in r.json()["errors"][0]["msg"]
    r = requests.get(f"{faultline.api}/api/traces/0123456789abcdef0123456789abcdef", timeout=10)
    assert r.status_code == 404


def test_span_metrics_follow_the_ingest_stream(faultline):
    """Spans sent by the SDK show up at once in the Prometheus span metrics on /metrics."""
    emit_trace(GrpcExporter(endpoint=f"127.0.0.1:{faultline.grpc_port}", insecure=True), "py-metrics")
    r = requests.get(f"{faultline.api}/metrics", timeout=10)
    assert r.status_code == 200
    lines = [l for l in r.text.splitlines() if not l.startswith("#") and 'service="py-metrics"' in l]
    calls = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith("traces_spanmetrics_calls_total")}
    key = 'traces_spanmetrics_calls_total{service="py-metrics",span_name="charge",span_kind="SPAN_KIND_CLIENT",status_code="STATUS_CODE_ERROR"}'
    assert calls[key] == 1.0
    assert len(calls) == 3
