"""Typed use of multiq that mypy must reject, on the lines marked ``# E: <code>``
(checked by tests/unit/test_typing.py)."""
from __future__ import annotations

from typing import Any

from multiq import MultiQ, Task, shared_task

app = MultiQ("typed-bad")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def bound(self: Task[..., Any], x: int) -> int:
    return x


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


@shared_task
def shared(text: str) -> int:
    return len(text)


def use() -> None:
    add.delay(1, "x")  # E: arg-type
    add.delay(1)  # E: call-arg
    add.delay(1, 2, 3)  # E: call-arg
    add.apply_async((1, 2)).get().upper()  # E: attr-defined
    add(1, z=2)  # E: call-arg
    text: str = add.delay(1, 2).get()  # E: assignment
    bound.delay(bound, 1)  # E: call-arg, arg-type
    bound.delay("1")  # E: arg-type
    raw: str = fetch.delay("u").get()  # E: assignment
    fetch.delay(b"u")  # E: arg-type
    shared.delay(1)  # E: arg-type
    count: str = shared.delay("a").get()  # E: assignment
    print(text, raw, count)
