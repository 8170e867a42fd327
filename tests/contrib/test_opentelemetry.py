"""OpenTelemetry tracing (multiq.contrib.opentelemetry) across a real worker process.

The test process instruments with an in-memory exporter and sends; the worker runs
``tests/system/apps/sysq_otel.py``, which instruments at import and writes its finished
spans as JSON lines to a file. A run's span must be the child of its send's span, whose
context crossed processes in the message headers.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

pytest.importorskip("opentelemetry.sdk")

from helpers import REPO_ROOT, wait_until  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from multiq.contrib import opentelemetry as otel  # noqa: E402

APPS = REPO_ROOT / "tests" / "system" / "apps"
sys.path.insert(0, str(APPS))

from sysq_otel import span_record  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]
TASK = "sysq_otel.{}".format
POOLS = ["solo", "prefork"]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """This process traces into memory for the test."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    otel.uninstrument()
    otel.instrument(tracer_provider=provider)
    try:
        yield spans
    finally:
        otel.uninstrument()
        provider.shutdown()


@pytest.fixture
def client(make_app: Any) -> Any:
    return make_app("otel_client")


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return tmp_path / "worker-spans.jsonl"


@pytest.fixture
def worker(start_worker: Any, spans_file: Path, request: pytest.FixtureRequest) -> Any:
    pool = request.param
    args = {"solo": (), "asyncio": ("-c", "6")}.get(pool, ("-c", "2"))
    return start_worker("sysq_otel", *args, cwd=APPS, pool=pool,
                        env={"SYSQ_SPANS": str(spans_file), "PYTHONDONTWRITEBYTECODE": "1"})


def worker_spans(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_span(path: Path, name: str, task_id: str, count: int = 1) -> List[Dict[str, Any]]:
    """The worker's ``count`` spans ``name`` of task ``task_id``, once they are written."""

    def found() -> List[Dict[str, Any]]:
        hits = [s for s in worker_spans(path) if s["name"] == name
                and s["attributes"].get("messaging.message.id") == task_id]
        return hits if len(hits) >= count else []

    return wait_until(found, timeout=15, message=f"{name} of {task_id}: {worker_spans(path)}")


def sent(exporter: InMemorySpanExporter, name: str, task_id: str) -> Dict[str, Any]:
    """The span of this process's send of ``task_id``."""
    hits = [span_record(s) for s in exporter.get_finished_spans()
            if s.name == name and (s.attributes or {}).get("messaging.message.id") == task_id]
    assert len(hits) == 1, [s.name for s in exporter.get_finished_spans()]
    return hits[0]


def assert_child(child: Dict[str, Any], parent: Dict[str, Any]) -> None:
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_id"] == parent["span_id"]


@pytest.mark.parametrize("worker", POOLS, indirect=True)
def test_a_run_is_the_child_of_its_send_across_processes(exporter, client, worker, spans_file):
    r = client.send_task(TASK("add"), args=[2, 3])
    assert r.get(timeout=15) == 5
    producer = sent(exporter, f"send {TASK('add')}", r.id)
    (consumer,) = wait_span(spans_file, f"process {TASK('add')}", r.id)

    assert_child(consumer, producer)
    assert producer["kind"] == "PRODUCER" and consumer["kind"] == "CONSUMER"
    assert producer["attributes"] == {
        "messaging.system": "multiq", "messaging.operation.type": "send",
        "messaging.operation.name": "send", "messaging.destination.name": "multiq",
        "messaging.message.id": r.id, "multiq.task.name": TASK("add")}
    attrs = consumer["attributes"]
    assert {k: attrs[k] for k in ("messaging.system", "messaging.operation.type",
                                  "messaging.destination.name", "multiq.task.name",
                                  "multiq.task.state", "multiq.task.retries")} == {
        "messaging.system": "multiq", "messaging.operation.type": "process",
        "messaging.destination.name": "multiq", "multiq.task.name": TASK("add"),
        "multiq.task.state": "SUCCESS", "multiq.task.retries": 0}
    assert attrs["messaging.client.id"].startswith("w")
    assert (producer["status"], consumer["status"]) == ("UNSET", "UNSET")


@pytest.mark.parametrize("worker", POOLS, indirect=True)
def test_a_failing_run_has_status_error_and_the_exception(exporter, client, worker,
                                                          spans_file):
    r = client.send_task(TASK("fail"), args=["x"])
    with pytest.raises(Exception, match="bad x"):
        r.get(timeout=15)
    (consumer,) = wait_span(spans_file, f"process {TASK('fail')}", r.id)

    assert_child(consumer, sent(exporter, f"send {TASK('fail')}", r.id))
    assert consumer["status"] == "ERROR"
    assert consumer["attributes"]["multiq.task.state"] == "FAILURE"
    (event,) = consumer["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == "bad x"


@pytest.mark.parametrize("worker", POOLS, indirect=True)
def test_a_retried_run_has_a_retry_event_and_the_next_run_follows(exporter, client, worker,
                                                                  spans_file):
    r = client.send_task(TASK("flaky"), args=["once"])
    assert r.get(timeout=15) == "once"
    first, second = wait_span(spans_file, f"process {TASK('flaky')}", r.id, count=2)

    producer = sent(exporter, f"send {TASK('flaky')}", r.id)
    assert_child(first, producer)
    assert_child(second, producer)  # the retried message keeps the send's context
    assert [e["name"] for e in first["events"]] == ["retry"]
    assert "KeyError" in first["events"][0]["attributes"]["multiq.retry.reason"]
    assert (first["attributes"]["multiq.task.state"], first["status"]) == ("RETRY", "UNSET")
    assert (second["attributes"]["multiq.task.state"],
            second["attributes"]["multiq.task.retries"]) == ("SUCCESS", 1)


@pytest.mark.parametrize("worker", POOLS, indirect=True)
def test_a_task_sent_by_a_running_task_is_its_child(exporter, client, worker, spans_file):
    r = client.send_task(TASK("spawn"), args=[4])
    child_id = r.get(timeout=15)
    assert client.AsyncResult(child_id).get(timeout=15) == 5
    (outer,) = wait_span(spans_file, f"process {TASK('spawn')}", r.id)
    (send,) = wait_span(spans_file, f"send {TASK('add')}", child_id)
    (inner,) = wait_span(spans_file, f"process {TASK('add')}", child_id)

    assert_child(outer, sent(exporter, f"send {TASK('spawn')}", r.id))
    assert_child(send, outer)
    assert_child(inner, send)
    assert send["kind"] == "PRODUCER"


@pytest.mark.parametrize("worker", ["threads", "asyncio"], indirect=True)
def test_concurrent_runs_keep_their_own_spans(exporter, client, worker, spans_file):
    name = TASK("anap_then_spawn" if "asyncio" in worker.argv else "nap_then_spawn")
    results = [client.send_task(name, args=[n]) for n in range(6)]
    child_ids = [r.get(timeout=15) for r in results]
    for r, child_id in zip(results, child_ids):
        (outer,) = wait_span(spans_file, f"process {name}", r.id)
        (send,) = wait_span(spans_file, f"send {TASK('add')}", child_id)
        assert_child(outer, sent(exporter, f"send {name}", r.id))
        assert_child(send, outer)


def test_prefork_children_flush_buffered_spans_when_they_exit(exporter, client, start_worker,
                                                             spans_file):
    worker = start_worker("sysq_otel", "-c", "2", cwd=APPS, pool="prefork", env={
        "SYSQ_SPANS": str(spans_file), "SYSQ_SPANS_BATCH": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "600000", "PYTHONDONTWRITEBYTECODE": "1"})
    r = client.send_task(TASK("add"), args=[1, 1])
    assert r.get(timeout=15) == 2
    assert worker_spans(spans_file) == []  # still buffered in the child
    worker.stop()
    (consumer,) = wait_span(spans_file, f"process {TASK('add')}", r.id)
    assert_child(consumer, sent(exporter, f"send {TASK('add')}", r.id))
