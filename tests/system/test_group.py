"""``group``: many task calls sent in pipelined round trips, results gathered in order."""
from __future__ import annotations

import time

import pytest

from multiq import group

APP = '''
import os
from multiq import MultiQ

app = MultiQ("grp", broker=os.environ["MULTIQ_BROKER_URL"],
             backend=os.environ["MULTIQ_RESULT_BACKEND"])


@app.task
def add(x, y):
    return x + y


@app.task
def fail(x):
    raise ValueError(f"no {x}")
'''

pytestmark = pytest.mark.system


@pytest.fixture
def grp_app(tmp_path, make_app):
    (tmp_path / "grp.py").write_text(APP)
    app = make_app("grp")

    @app.task(name="grp.add")
    def add(x, y):
        return x + y

    @app.task(name="grp.fail")
    def fail(x):
        raise ValueError(f"no {x}")

    return app, add, fail


@pytest.mark.timeout(60)
def test_group_sends_all_and_gets_results_in_order(grp_app, start_worker, redis_client):
    app, add, _ = grp_app
    started = time.perf_counter()
    result = group(add.s(i, i) for i in range(2500)).apply_async()
    took = time.perf_counter() - started
    assert len(result) == 2500
    queued = sum(redis_client.xlen(f"multiq:q:{{multiq}}:{band}") for band in range(10))
    assert queued == 2500  # all sent before any worker runs
    print(f"GROUP-ENQUEUE 2500 tasks in {took:.3f}s = {2500 / took:,.0f}/s")
    start_worker("grp", "-P", "threads", "-c", "4")
    assert result.get(timeout=45) == [2 * i for i in range(2500)]
    assert result.ready() and result.successful() and result.completed_count() == 2500


@pytest.mark.timeout(30)
def test_group_keeps_each_call_options_and_failures(grp_app, start_worker):
    app, add, fail = grp_app
    start_worker("grp")
    result = group([add.s(1, 2), fail.s("x"), add.si(5, 5).set(priority=9)]).apply_async()
    values = result.get(timeout=20, propagate=False)
    assert values[0] == 3 and values[2] == 10
    assert isinstance(values[1], ValueError) and "no x" in str(values[1])
    assert result.failed() and not result.successful()
    with pytest.raises(ValueError):
        result.get(timeout=5)


def test_group_eager_runs_in_place(make_app):
    app = make_app("grp_eager", task_always_eager=True)

    @app.task
    def mul(x, y):
        return x * y

    assert group(mul.s(i, 3) for i in range(4)).apply_async().get() == [0, 3, 6, 9]
