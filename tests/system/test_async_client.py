"""The awaitable client against a real node: ``await task.adelay()``, ``await
app.asend_task()``, ``await result.aget()`` and ``await group_result.aget()``, woken by the
result's notification; many awaited at once share one subscriber connection."""
from __future__ import annotations

import asyncio
import time

import pytest

from multiq import group
from multiq.exceptions import TimeoutError

APP = '''
import os
from multiq import MultiQ

app = MultiQ("aioq", broker=os.environ["MULTIQ_BROKER_URL"],
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
def aio_app(tmp_path, make_app, start_worker):
    (tmp_path / "aioq.py").write_text(APP)
    app = make_app("aioq")

    @app.task(name="aioq.add")
    def add(x, y):
        return x + y

    @app.task(name="aioq.fail")
    def fail(x):
        raise ValueError(f"no {x}")

    start_worker("aioq", "-c", "4", pool="threads", cwd=tmp_path)
    return app, add, fail


@pytest.mark.timeout(60)
def test_send_and_await_results(aio_app):
    app, add, fail = aio_app

    async def scenario():
        res = await add.adelay(2, 3)
        assert await res.aget(timeout=20) == 5
        later = await app.asend_task("aioq.add", (1, 1), countdown=0.5)
        started = time.monotonic()
        assert await later.aget(timeout=20) == 2
        assert time.monotonic() - started >= 0.4
        with pytest.raises(ValueError, match="no 7"):
            await (await fail.adelay(7)).aget(timeout=20)
        failed = await fail.aapply_async((8,))
        assert isinstance(await failed.aget(timeout=20, propagate=False), ValueError)
        # the same result awaited twice at once, and a result read twice
        twice = await add.adelay(4, 4)
        assert await asyncio.gather(twice.aget(timeout=20), twice.aget(timeout=20)) == [8, 8]
        assert await twice.aget() == 8 and twice.get() == 8

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_many_awaited_at_once_and_a_group(aio_app):
    app, add, _ = aio_app

    async def scenario():
        results = await asyncio.gather(*(add.adelay(i, i) for i in range(300)))
        values = await asyncio.gather(*(r.aget(timeout=30) for r in results))
        assert values == [2 * i for i in range(300)]
        g = group(add.s(i, 1) for i in range(100)).delay()
        assert await g.aget(timeout=30) == [i + 1 for i in range(100)]

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_a_result_nobody_writes_times_out(aio_app):
    app, add, _ = aio_app

    async def scenario():
        res = await add.aapply_async((1, 1), queue="nobody-consumes-this")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await res.aget(timeout=0.5)
        assert time.monotonic() - started < 3

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_eager_adelay_runs_here(make_app):
    app = make_app("aioq-eager", task_always_eager=True)

    @app.task(name="aioq.mul")
    def mul(x, y):
        return x * y

    async def scenario():
        res = await mul.adelay(3, 4)
        assert await res.aget() == 12

    asyncio.run(scenario())


@pytest.mark.timeout(60)
@pytest.mark.cluster
def test_on_a_cluster_the_blocking_client_runs_in_a_thread(cluster_url, make_app):
    from multiq.backends.base import make_doc

    app = make_app("aioq-cluster", broker=cluster_url, backend=cluster_url)

    @app.task(name="aioq.add")
    def add(x, y):
        return x + y

    async def scenario():
        res = await add.adelay(1, 2)
        assert app.broker.queue_length("multiq") == 1
        app.backend.store(res.id, make_doc(res.id, "SUCCESS", 3))
        assert await res.aget(timeout=10) == 3

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_channels_of_awaited_results_are_left_once_read(aio_app, redis_client):
    """No subscription outlives its waiters: channels are left after the result came back,
    many at once, and a result awaited again subscribes again."""
    app, add, _ = aio_app

    async def subscribed(results: list) -> list:
        ours = {app.backend.key(r.id).encode() for r in results}
        for _ in range(200):  # the leaving is sent after the results went back
            channels = ours & set(redis_client.pubsub_channels(f"{app.backend.key('')}*"))
            if not channels:
                return []
            await asyncio.sleep(0.01)
        return sorted(channels)

    async def scenario():
        one_by_one = []
        for i in range(50):
            one_by_one.append(await add.adelay(i, 1))
            assert await one_by_one[-1].aget(timeout=20) == i + 1
        assert await subscribed(one_by_one) == []
        results = await asyncio.gather(*(add.adelay(i, 2) for i in range(100)))
        assert await asyncio.gather(*(r.aget(timeout=30) for r in results)) == \
            [i + 2 for i in range(100)]
        assert await subscribed(results) == []
        assert await results[0].aget(timeout=5) == 2

    asyncio.run(scenario())
