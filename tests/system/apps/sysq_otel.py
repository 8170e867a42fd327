"""Tasks for tests/contrib/test_opentelemetry.py: a worker that traces with OpenTelemetry.

The SDK's tracer provider (set as the global one) writes every finished span as a JSON
line to the file ``SYSQ_SPANS`` names (``name``, ``kind``, ``trace_id``, ``span_id``,
``parent_id``, ``attributes``, ``status``, ``events``; ids in hex), at once or, when
``SYSQ_SPANS_BATCH`` is set, through a batch processor. The module
instruments at import, before a prefork worker forks. The test process imports it too
(for :func:`span_record`), where ``SYSQ_SPANS`` is unset: nothing is then set up.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Dict, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from multiq import MultiQ
from multiq.contrib.opentelemetry import instrument

app = MultiQ(
    "sysq_otel",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
)


def span_record(span: ReadableSpan) -> Dict[str, Any]:
    """What the test compares of a span, as plain JSON values."""
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})}
                   for e in span.events],
    }


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to a file, one JSON object a line (one write a span, so
    the lines of pool children never interleave)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for span in spans:
                os.write(fd, (json.dumps(span_record(span)) + "\n").encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


if os.environ.get("SYSQ_SPANS"):
    provider = TracerProvider()
    _exporter = JsonLinesExporter(os.environ["SYSQ_SPANS"])
    # SYSQ_SPANS_BATCH: buffered, exported only when flushed (OTEL_BSP_SCHEDULE_DELAY long)
    provider.add_span_processor(BatchSpanProcessor(_exporter) if os.environ.get(
        "SYSQ_SPANS_BATCH") else SimpleSpanProcessor(_exporter))
    trace.set_tracer_provider(provider)
    instrument()


@app.task
def add(x, y):
    return x + y


@app.task
def fail(tag):
    raise ValueError(f"bad {tag}")


@app.task(bind=True, default_retry_delay=0.1)
def flaky(self, tag):
    """Fails its first run with a retry; the second succeeds."""
    if self.request.retries < 1:
        raise self.retry(exc=KeyError(tag))
    return tag


@app.task
def spawn(x):
    """Sends ``add(x, 1)`` and returns its id."""
    return add.delay(x, 1).id


@app.task
def nap_then_spawn(x):
    """Runs alongside others on a threads pool (it waits a little), then sends ``add(x, 1)``."""
    time.sleep(0.2)
    return add.delay(x, 1).id


@app.task
async def anap_then_spawn(x):
    """:func:`nap_then_spawn` as a coroutine: on the asyncio pool several wait at once in
    one thread."""
    await asyncio.sleep(0.2)
    return add.delay(x, 1).id
