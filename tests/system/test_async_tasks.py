"""``async def`` tasks on the solo, threads and prefork pools, run to their end on a loop
of their own (never stored as a coroutine), and on the asyncio pool's loop: errors as for
any task, the awaitable client usable inside them; a soft time limit reaches the coroutine
where it waits and the task fails with SoftTimeLimitExceeded."""
from __future__ import annotations

import asyncio

import pytest

from multiq.exceptions import SoftTimeLimitExceeded

APP = '''
import asyncio
import os
import threading

from multiq import MultiQ
from multiq.exceptions import SoftTimeLimitExceeded

app = MultiQ("aiot", broker=os.environ["MULTIQ_BROKER_URL"],
             backend=os.environ["MULTIQ_RESULT_BACKEND"])


@app.task
def add(x, y):
    return x + y


@app.task
async def nap_add(x, y, seconds=0.05):
    await asyncio.sleep(seconds)
    return x + y


@app.task
async def loop_id():
    return [id(asyncio.get_running_loop()), threading.get_ident()]


@app.task
async def broken():
    await asyncio.sleep(0)
    raise KeyError("broken")


@app.task
async def chained(x):
    res = await add.adelay(x, 1)  # the awaitable client inside an async task
    return await res.aget(timeout=20)


@app.task(soft_time_limit=0.3)
async def too_slow():
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:  # the coroutine is cancelled where it waits
        raise SoftTimeLimitExceeded("cancelled at its await") from None
    return "slept"
'''

pytestmark = pytest.mark.system


@pytest.fixture(params=["solo", "threads", "prefork", "asyncio"])
def aiot(request, tmp_path, make_app, start_worker):
    (tmp_path / "aiot.py").write_text(APP)
    app = make_app("aiot")
    names = ("add", "nap_add", "loop_id", "broken", "chained", "too_slow")
    tasks = {n: app.task(name=f"aiot.{n}")(lambda *a, **k: None) for n in names}
    start_worker("aiot", "-c", "2", pool=request.param, cwd=tmp_path)
    return request.param, app, tasks


@pytest.mark.timeout(90)
def test_async_def_tasks_run_to_their_value(aiot):
    pool, app, t = aiot
    assert t["nap_add"].delay(2, 3).get(timeout=30) == 5
    assert [r.get(timeout=30) for r in [t["nap_add"].delay(i, i) for i in range(10)]] == \
        [2 * i for i in range(10)]
    with pytest.raises(KeyError):
        t["broken"].delay().get(timeout=30)
    if pool != "solo":  # (solo's one slot would wait for itself)
        assert t["chained"].delay(41).get(timeout=30) == 42
    # one loop per thread or process, kept from task to task
    seen = [tuple(t["loop_id"].delay().get(timeout=30)) for _ in range(6)]
    assert len(set(seen)) <= 2, seen


@pytest.mark.timeout(90)
def test_a_soft_time_limit_reaches_the_coroutine(aiot):
    pool, app, t = aiot
    if pool not in ("prefork", "asyncio"):
        pytest.skip("soft time limits are enforced by the prefork pool (SIGALRM in its "
                    "child) and the asyncio pool")
    with pytest.raises(SoftTimeLimitExceeded):
        t["too_slow"].delay().get(timeout=30)
    # the child's loop is still usable afterwards
    assert t["nap_add"].delay(1, 1).get(timeout=30) == 2


@pytest.mark.timeout(30)
def test_eager_async_task_in_sync_and_async_callers(make_app):
    app = make_app("aiot-eager", task_always_eager=True)

    @app.task(name="aiot.twice")
    async def twice(x):
        await asyncio.sleep(0)
        return 2 * x

    assert twice.delay(4).get() == 8

    async def caller():
        return twice.delay(5).get()

    assert asyncio.run(caller()) == 10
