"""Jaeger's `/api/dependencies` counts a call once when its two spans land in different blocks.

The Python SDK exports each span when it ends (SimpleSpanProcessor), one request per span. The
server cuts its head every 200 ms, and the test waits for a block to be written between the
caller's span and the callee's, so every call here is split across two blocks: with the
callee exported first (the usual order: a child ends before its parent) and with the caller
first. Calls whose caller names no peer are counted only if the two blocks' spans are paired;
calls whose caller also names its callee in `peer.service` would show up twice if counted both
as a parent->child pair and as a call to a peer. Compaction is held off (maintenance once an
hour), so no merge of the two blocks can pair them instead.
"""

import time

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from conftest import Faultline

CALLS = 3


@pytest.fixture(scope="module")
def faultline():
    server = Faultline(extra_args=["--max-head-age", "200ms", "--maintenance-interval", "1h"])
    yield server
    server.stop()


def wait_for_block(server, before, timeout=30):
    """Polls until more heads than `before` have been written as blocks and nothing waits in
    memory; returns the new count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flushed = server.metric("faultline_store_blocks_flushed_total")
        if (
            flushed > before
            and server.metric("faultline_store_head_spans") == 0
            and server.metric("faultline_store_flushing_heads") == 0
        ):
            return flushed
        time.sleep(0.05)
    raise AssertionError(f"no block written within {timeout}s:\n{server.logs()}")


def provider(server, service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = f"http://127.0.0.1:{server.otlp_http_port}/v1/traces"
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return p


def split_call(server, caller, callee, callee_first, peer):
    """One call from `caller` (a CLIENT span, naming `callee` as its peer if `peer`) to `callee`
    (a SERVER span), whose two spans are exported on either side of a block write."""
    front, back = provider(server, caller), provider(server, callee)
    client = front.get_tracer("test").start_span(
        f"call {callee}",
        kind=SpanKind.CLIENT,
        attributes={"peer.service": callee} if peer else {},
    )
    handler = back.get_tracer("test").start_span(
        "handle", kind=SpanKind.SERVER, context=set_span_in_context(client)
    )
    flushed = server.metric("faultline_store_blocks_flushed_total")
    first, second = (handler, client) if callee_first else (client, handler)
    first.end()
    flushed = wait_for_block(server, flushed)
    second.end()
    wait_for_block(server, flushed)
    front.shutdown()
    back.shutdown()


def dependencies(server):
    now_ms = int(time.time() * 1000)
    r = requests.get(
        f"{server.api}/api/dependencies",
        params={"endTs": now_ms + 60_000, "lookback": 3_600_000},
        timeout=5,
    )
    r.raise_for_status()
    return {(d["parent"], d["child"]): d["callCount"] for d in r.json()["data"]}


def test_calls_split_across_blocks_are_counted_once(faultline):
    for _ in range(CALLS):
        split_call(faultline, "web", "cart", callee_first=True, peer=False)
        split_call(faultline, "api", "stock", callee_first=False, peer=False)
        split_call(faultline, "shop", "pay", callee_first=True, peer=True)
        split_call(faultline, "app", "mail", callee_first=False, peer=True)
    assert dependencies(faultline) == {
        ("web", "cart"): CALLS,
        ("api", "stock"): CALLS,
        ("shop", "pay"): CALLS,
        ("app", "mail"): CALLS,
    }
    # Two blocks per call, none merged.
    assert faultline.metric("faultline_store_blocks") >= 2 * 4 * CALLS
    assert faultline.metric("faultline_store_compactions_total") == 0
    assert faultline.metric("faultline_store_dependency_orphans_expired_total") == 0
