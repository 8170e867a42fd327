"""multiq.contrib.opentelemetry without a broker: wiring, idempotence, the receivers on
their own, eager runs, and that ``import multiq`` never loads opentelemetry."""
from __future__ import annotations

import subprocess
import sys
from typing import Any, Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from multiq import MultiQ, signals  # noqa: E402
from multiq.contrib import opentelemetry as otel  # noqa: E402

pytestmark = pytest.mark.timeout(30)
SIGNALS = [signals.before_task_publish, signals.after_task_publish, signals.task_prerun,
           signals.task_postrun, signals.task_failure, signals.task_retry,
           signals.worker_process_shutdown]


@pytest.fixture
def provider() -> Iterator[Any]:
    provider = TracerProvider()
    provider.spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(provider.spans))
    otel.uninstrument()
    try:
        yield provider
    finally:
        otel.uninstrument()
        provider.shutdown()


def ours(signal: signals.Signal) -> int:
    return sum(isinstance(getattr(r, "__self__", None), otel.Tracing) for r in signal.receivers)


MULTIQ_MODULES = "multiq, multiq.app, multiq.trace, multiq.worker.worker, multiq.contrib"

WATCH_IMPORTS = """
import builtins, sys
importers = set()
real_import = builtins.__import__

def watch(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] == "opentelemetry":
        importers.add((globals or {}).get("__name__"))
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = watch
"""

BLOCK_OPENTELEMETRY = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
"""


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_multiq_does_not_import_opentelemetry() -> None:
    # (redis-py imports it for metrics of its own when it is installed: only multiq's
    # modules are looked at)
    out = run_python(WATCH_IMPORTS + f"import {MULTIQ_MODULES}\n"
                     "print(sorted(m for m in importers if m and m.startswith('multiq')))")
    assert out == "[]"


def test_without_opentelemetry_multiq_works_and_the_module_says_what_to_install() -> None:
    out = run_python(BLOCK_OPENTELEMETRY + f"import {MULTIQ_MODULES}\n"
                     "try:\n    import multiq.contrib.opentelemetry\n"
                     "except ImportError as exc:\n    print(exc)\n")
    assert "pip install 'multiq[otel]'" in out


def test_instrument_and_uninstrument_are_idempotent(provider: Any) -> None:
    assert not otel.is_instrumented()
    otel.uninstrument()  # before any instrument(): nothing happens
    otel.instrument(tracer_provider=provider)
    otel.instrument(tracer_provider=provider)
    assert otel.is_instrumented()
    assert [ours(s) for s in SIGNALS] == [1] * len(SIGNALS)
    otel.uninstrument()
    otel.uninstrument()
    assert not otel.is_instrumented()
    assert [ours(s) for s in SIGNALS] == [0] * len(SIGNALS)
    otel.instrument(tracer_provider=provider)  # and again after
    assert [ours(s) for s in SIGNALS] == [1] * len(SIGNALS)


def test_a_send_injects_its_span_into_the_headers(provider: Any) -> None:
    otel.instrument(tracer_provider=provider)
    headers = {"id": "t-1", "task": "proj.add"}
    signals.before_task_publish.send(sender="proj.add", headers=headers, routing_key="q1")
    assert provider.spans.get_finished_spans() == ()
    signals.after_task_publish.send(sender="proj.add", headers=headers, routing_key="q1")
    (span,) = provider.spans.get_finished_spans()
    assert (span.name, span.kind) == ("send proj.add", trace.SpanKind.PRODUCER)
    ctx = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    assert span.attributes["messaging.destination.name"] == "q1"
    assert span.attributes["messaging.message.id"] == "t-1"


def test_spans_whose_end_never_comes_are_bounded(provider: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    otel.instrument(tracer_provider=provider)
    tracing = otel._current
    assert tracing is not None
    monkeypatch.setattr(tracing.producers, "limit", 3)
    for n in range(10):  # sends that raised: no after_task_publish
        signals.before_task_publish.send(sender="proj.add", headers={"id": f"t-{n}"})
    assert len(tracing.producers) == 3
    signals.task_postrun.send(sender=None, task_id="never-started", state="SUCCESS")
    assert provider.spans.get_finished_spans() == ()


def test_an_eager_run_is_the_child_of_the_current_span(provider: Any) -> None:
    app = MultiQ("otel_eager")

    @app.task(bind=True)
    def fails(self: Any) -> None:
        raise ValueError("no")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    otel.instrument(tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        assert add.apply((1, 2)).get() == 3
        fails.apply()
    process_add, process_fails, outer_span = provider.spans.get_finished_spans()
    assert process_add.parent.span_id == outer.get_span_context().span_id
    assert process_add.attributes["multiq.task.state"] == "SUCCESS"
    assert process_fails.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in process_fails.events] == ["exception"]
    assert process_fails.attributes["multiq.task.state"] == "FAILURE"
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached


def test_app_limits_run_spans_to_its_tasks(provider: Any) -> None:
    mine, other = MultiQ("otel_mine"), MultiQ("otel_other")
    mine_task = mine.task(name="otel.mine")(lambda: 1)
    other_task = other.task(name="otel.other")(lambda: 2)
    otel.instrument(app=mine, tracer_provider=provider)
    mine_task.apply()
    other_task.apply()
    assert [s.name for s in provider.spans.get_finished_spans()] == ["process otel.mine"]
