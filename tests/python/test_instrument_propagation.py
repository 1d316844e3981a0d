"""Propagation round-trips between faultline-instrument and the Python OpenTelemetry SDK.

The Rust side is the `propagation_echo` example of faultline-instrument: it continues whatever
context the Python client sends and writes its own SERVER span context back in the requested
format, which the Python propagator must then read.
"""

import os
import pathlib
import subprocess

import pytest
import requests
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ROOT = pathlib.Path(__file__).resolve().parents[2]

FORMATS = {
    "tracecontext": CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]),
    "b3": B3SingleFormat(),
    "b3multi": B3MultiFormat(),
    "jaeger": JaegerPropagator(),
}


@pytest.fixture(scope="module")
def echo_service():
    # --workspace keeps cargo's feature unification the same as `cargo test --workspace`, so
    # the example reuses that build instead of recompiling its dependencies.
    build = subprocess.run(
        ["cargo", "build", "-q", "--workspace", "--example", "propagation_echo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    proc = subprocess.Popen(
        [str(target / "debug" / "examples" / "propagation_echo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # The example prints its address only once it is accepting connections.
        line = proc.stdout.readline()
        assert line.startswith("listening on "), f"unexpected first line {line!r}"
        yield "http://" + line.split("listening on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tracer():
    return TracerProvider().get_tracer("faultline-propagation-test")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip(echo_service, tracer, fmt):
    propagator = FORMATS[fmt]
    ctx = baggage.set_baggage("tenant", "acme")
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("client") as span:
            sent = span.get_span_context()
            headers = {}
            propagator.inject(headers)
    finally:
        context.detach(token)

    response = requests.get(f"{echo_service}/echo", params={"format": fmt}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()

    # Rust read the Python headers: its server span continues the Python trace.
    assert body["trace_id"] == format(sent.trace_id, "032x")
    assert body["sampled"] is True
    assert body["span_id"] != format(sent.span_id, "016x")
    if fmt == "tracecontext":
        assert body["baggage"] == {"tenant": "acme"}
        assert response.headers["traceresponse"] == f"00-{body['trace_id']}-{body['span_id']}-01"
    assert response.headers["x-trace-id"] == body["trace_id"]

    # Python reads the Rust headers: the extracted parent is the Rust server span.
    extracted = trace.get_current_span(propagator.extract(body["headers"])).get_span_context()
    assert extracted.is_valid
    assert extracted.is_remote
    assert format(extracted.trace_id, "032x") == body["trace_id"]
    assert format(extracted.span_id, "016x") == body["span_id"]
    assert extracted.trace_flags.sampled
    if fmt == "tracecontext":
        assert baggage.get_baggage("tenant", propagator.extract(body["headers"])) == "acme"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_unsampled_decision_is_honoured(echo_service, tracer, fmt):
    propagator = FORMATS[fmt]
    parent = trace.SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0xEEE19B7EC3C1B174,
        is_remote=False,
        trace_flags=trace.TraceFlags(0),
    )
    headers = {}
    propagator.inject(headers, context=trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    body = requests.get(f"{echo_service}/echo", params={"format": fmt}, headers=headers, timeout=10).json()
    assert body["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert body["sampled"] is False
    # The dropped server span still has an id of its own, and that is what it propagates.
    assert body["span_id"] != "eee19b7ec3c1b174"
    extracted = trace.get_current_span(propagator.extract(body["headers"])).get_span_context()
    assert extracted.is_valid
    assert format(extracted.trace_id, "032x") == body["trace_id"]
    assert format(extracted.span_id, "016x") == body["span_id"]
    assert not extracted.trace_flags.sampled


def test_no_context_starts_a_new_root(echo_service):
    body = requests.get(f"{echo_service}/echo", timeout=10).json()
    assert len(body["trace_id"]) == 32 and body["trace_id"] != "0" * 32
    extracted = trace.get_current_span(FORMATS["tracecontext"].extract(body["headers"])).get_span_context()
    assert format(extracted.trace_id, "032x") == body["trace_id"]
