"""Prometheus metrics without Redis: what a batch adds to the counters (aggregated in the
process, one write per field), histogram cumulation, the text format's escaping, and the
names ``--metric-prefix`` gives (``celery``: celery-exporter's)."""
from __future__ import annotations

import json
from typing import Any, Optional

import pytest
from click.testing import CliRunner

from multiq import MultiQ, states
from multiq.broker.redis import Delivery
from multiq.broker.wire import Commands
from multiq.cli import cli
from multiq.keys import Keys
from multiq.message import Message, envelope
from multiq.metrics import families
from multiq.metrics.collect import (
    Histogram,
    NodeStats,
    QueueStats,
    Snapshot,
    counters,
    histograms,
)
from multiq.metrics.exposition import check_prefix, escape_label, render
from multiq.metrics.tally import record, tally
from multiq.trace import Outcome
from multiq.worker.items import Done, Redeliver, Revoked, Started
from multiq.worker.items import Request as Req
from multiq.worker.record import Recorder

pytestmark = pytest.mark.timeout(10)


def _app(**conf: Any) -> MultiQ:
    app = MultiQ("m", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.update(conf)

    @app.task(name="t.add")
    def add() -> None:
        return None

    return app


APP = _app()


def _req(queue: str = "q", task: str = "t.add", start: Optional[float] = 100.0,
         done: Optional[float] = 100.2, sent: float = 99.0,
         eta: Optional[float] = None) -> Req:
    d = Delivery(queue, 0, b"1-0", envelope("id", task, queue, sent, [], {}))
    req = Req(d, Message(id="id", task=task, queue=queue, sent=sent, eta=eta),
              APP.tasks["t.add"], early_ack=True)
    req.time_start, req.time_done = start, done
    return req


def F(*labels: str) -> str:  # noqa: N802 (a field, as the nodes write it)
    return json.dumps(list(labels), separators=(",", ":"))


def test_a_batch_is_counted_once_per_field():
    batch = [Done(_req(), Outcome(states.SUCCESS)) for _ in range(3)]
    batch += [Done(_req(done=103.0), Outcome(states.FAILURE)),
              Done(_req(queue="r"), Outcome(states.RETRY)),
              Revoked(_req(start=None), "revoked"), Redeliver(_req(), True), Started(_req())]
    counts = tally(batch)
    assert counts.tasks == {F("t.add", "SUCCESS", "q"): 3, F("t.add", "FAILURE", "q"): 1,
                            F("t.add", "RETRY", "r"): 1, F("t.add", "REVOKED", "q"): 1}
    # 0.2 s runs fall in the 0.25 bucket, the 3 s one in 5.0; each waited 1 s (sent at 99)
    assert counts.runtime == {F("t.add", "q", "0.25"): 3, F("t.add", "q", "5.0"): 1,
                              F("t.add", "r", "0.25"): 1}
    assert counts.runtime_sum[F("t.add", "q", "sum_us")] == pytest.approx(3.6e6)
    assert counts.wait == {F("t.add", "q", "1.0"): 4, F("t.add", "r", "1.0"): 1}
    assert counts.wait_sum[F("t.add", "q", "sum_us")] == 4_000_000

    pipe = Commands()
    record(pipe, Keys(), counts)
    assert [c[0] for c in pipe.stack] == ["HINCRBY"] * 13  # one per field changed
    assert ("HINCRBY", "multiq:metrics:tasks", F("t.add", "SUCCESS", "q"), 3) in pipe.stack


def test_queue_wait_starts_at_the_eta_and_needs_a_known_send_time():
    later = tally([Done(_req(start=100.0, sent=10.0, eta=99.5), Outcome(states.SUCCESS))])
    assert later.wait_sum == {F("t.add", "q", "sum_us"): 500_000}
    unknown = tally([Done(_req(sent=0.0), Outcome(states.SUCCESS))])
    assert unknown.wait == {} and unknown.runtime  # ran, but when it was due is unknown
    early = tally([Done(_req(start=100.0, sent=101.0), Outcome(states.SUCCESS))])
    assert early.wait == {F("t.add", "q", "0.005"): 1}  # a sender's clock ahead: 0, not < 0


def test_the_recorder_plans_the_counts_beside_the_acks_unless_turned_off():
    batch = [Done(_req(), Outcome(states.SUCCESS))]
    on = Recorder(_app(), "node|1", "node").record(batch)
    assert on.counts is not None
    assert on.counts.stack[0] == ("HINCRBY", "multiq:metrics:tasks",
                                  F("t.add", "SUCCESS", "q"), 1)
    off = Recorder(_app(worker_metrics=False), "node|1", "node").record(batch)
    assert off.counts is None and off.acks.stack == on.acks.stack


def test_bucket_bounds():
    assert families.bucket(0.005) == "0.005"
    assert families.bucket(0.0051) == "0.01"
    assert families.bucket(3600.0) == "3600.0"
    assert families.bucket(1e9) == "+Inf"


def test_histograms_cumulate_and_count_their_buckets():
    h = Histogram({"0.005": 2, "0.1": 1, "+Inf": 1}, 7.5)
    cumulative = dict(h.cumulative())
    assert list(cumulative)[-1] == "+Inf" and len(cumulative) == len(families.BOUNDS)
    assert (cumulative["0.005"], cumulative["0.05"], cumulative["0.1"],
            cumulative["3600.0"], cumulative["+Inf"]) == (2, 2, 3, 3, 4)
    text = render(Snapshot(runtime={("t", "q"): h}))
    assert 'multiq_task_runtime_seconds_bucket{name="t",queue="q",le="0.1"} 3\n' in text
    assert 'multiq_task_runtime_seconds_bucket{name="t",queue="q",le="+Inf"} 4\n' in text
    assert 'multiq_task_runtime_seconds_count{name="t",queue="q"} 4\n' in text
    assert 'multiq_task_runtime_seconds_sum{name="t",queue="q"} 7.5\n' in text
    assert "# TYPE multiq_task_runtime_seconds histogram\n" in text


def test_what_redis_holds_is_read_back_and_garbage_skipped():
    raw = {F("a", "SUCCESS", "q").encode(): b"3", b"not json": b"1",
           F("a", "x").encode(): b"1", F("b", "FAILURE", "q").encode(): b"NaN?"}
    assert counters(raw) == {("a", "SUCCESS", "q"): 3}
    hist = histograms({F("a", "q", "0.1").encode(): b"2",
                       F("a", "q", "sum_us").encode(): b"300000",
                       F("a", "q", "0.123").encode(): b"9"})
    assert hist == {("a", "q"): Histogram({"0.1": 2}, 0.3)}


def test_label_values_are_escaped():
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    text = render(Snapshot(tasks={('we"ird\\na\nme', "SUCCESS", "q"): 1}))
    assert 'multiq_tasks_total{name="we\\"ird\\\\na\\nme",state="SUCCESS",queue="q"} 1\n' \
        in text
    assert text.count("\n") == len(text.splitlines())  # no raw newline inside a sample


def _snapshot() -> Snapshot:
    return Snapshot(
        tasks={("t", "SUCCESS", "q"): 3, ("t", "FAILURE", "q"): 1, ("t", "IGNORED", "q"): 2},
        runtime={("t", "q"): Histogram({"0.1": 4}, 0.2)},
        wait={("t", "q"): Histogram({"1.0": 4}, 2.0)},
        queues=[QueueStats("q", {9: 2, 0: 5}, 1, 4, 6)],
        nodes=[NodeStats("a@h", "a@h|1", True, 2), NodeStats("b@h", "b@h|2", False, 0)],
        lost=1)


def test_multiq_names():
    text = render(_snapshot())
    for line in ['multiq_tasks_total{name="t",state="SUCCESS",queue="q"} 3',
                 'multiq_queue_length{queue="q",band="9"} 2',
                 'multiq_queue_length{queue="q",band="0"} 5',
                 'multiq_queue_reserved{queue="q"} 1', 'multiq_queue_delayed{queue="q"} 4',
                 'multiq_queue_deadletters{queue="q"} 6', 'multiq_workers{state="ready"} 1',
                 'multiq_workers{state="starting"} 1', 'multiq_workers{state="lost"} 1',
                 'multiq_worker_up{hostname="a@h"} 1', 'multiq_worker_up{hostname="b@h"} 1',
                 'multiq_worker_active_tasks{hostname="a@h"} 2',
                 'multiq_task_queue_wait_seconds_count{name="t",queue="q"} 4',
                 "# TYPE multiq_tasks_total counter"]:
        assert line + "\n" in text


def test_celery_prefix_uses_celery_exporter_names():
    text = render(_snapshot(), "celery")
    for line in ['celery_task_succeeded_total{name="t",queue_name="q"} 3',
                 'celery_task_failed_total{name="t",queue_name="q"} 1',
                 'celery_tasks_total{name="t",state="IGNORED",queue="q"} 2',
                 'celery_task_runtime_bucket{name="t",queue_name="q",le="+Inf"} 4',
                 'celery_task_runtime_count{name="t",queue_name="q"} 4',
                 'celery_queue_length{queue_name="q"} 7',  # the bands summed
                 'celery_worker_up{hostname="a@h"} 1',
                 'celery_worker_tasks_active{hostname="a@h"} 2',
                 'celery_task_queue_wait_seconds_count{name="t",queue="q"} 4',
                 'celery_queue_deadletters{queue="q"} 6',
                 "# TYPE celery_task_succeeded_total counter"]:
        assert line + "\n" in text
    assert "multiq_" not in text


def test_other_prefixes_rename_only_the_prefix():
    text = render(_snapshot(), "acme")
    assert 'acme_tasks_total{name="t",state="SUCCESS",queue="q"} 3\n' in text
    assert "multiq_" not in text
    for bad in ("", "9x", "a-b", "a b"):
        with pytest.raises(ValueError):
            check_prefix(bad)


def test_the_command_refuses_a_bad_prefix():
    result = CliRunner().invoke(cli, ["-b", "redis://127.0.0.1:1/0", "metrics",
                                      "--metric-prefix", "no-dashes"])
    assert result.exit_code == 2
    assert "--metric-prefix" in result.output
