"""Typed use of multiq that mypy must accept (checked by tests/unit/test_typing.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

from multiq import MultiQ, Signature, Task, shared_task
from multiq.result import AsyncResult
from multiq.task import AsyncTask

if TYPE_CHECKING:  # only mypy reads this file
    from typing_extensions import assert_type

app = MultiQ("typed", broker="redis://localhost:6379/0", backend="redis")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="typed.greet", queue="greetings", max_retries=5)
def greet(name: str, punctuation: str = "!") -> str:
    return f"Hello, {name}{punctuation}"


@app.task(bind=True)
def retried(self: Task[..., Any], attempts: int) -> List[int]:
    return [self.request.retries, attempts]


@app.task(bind=True, max_retries=2)
def bound_untyped_self(self, value: float) -> float:
    return value * 2


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


@app.task(bind=True)
async def afetch(self: Task[..., Any], url: str) -> int:
    return len(url)


@app.task
async def anything_in(value: Any) -> int:
    return 1


class Hooked(Task):
    """A base class with a hook of its own."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        pass


class Doubler(Task):
    """A task written as a class: ``run`` is its body."""

    name = "typed.doubler"

    def run(self, x: int) -> int:
        return 2 * x


@app.task(base=Hooked)
def hooked(x: int) -> int:
    return x


@shared_task
def shared(text: str) -> int:
    return len(text)


@shared_task(bind=True)
def shared_bound(self: Task[..., Any], text: str) -> str:
    return text


def use() -> None:
    total: int = add.delay(1, 2).get() + 1
    total += add.apply_async((1, 2), countdown=5).get(timeout=10)
    total += add(3, 4)
    result: AsyncResult[int] = add.delay(x=1, y=2)
    total += result.get()
    text: str = greet.delay("Ann").get().upper() + greet("Bob", punctuation="?")
    pair: List[int] = retried.delay(3).get()
    doubled: float = bound_untyped_self.delay(1.5).get()
    body: bytes = fetch.delay("https://example.org").get()
    size: int = afetch.delay("https://example.org").get()
    total += hooked.delay(1).get() + shared.delay("abc").get()
    text += shared_bound.delay("x").get()
    untyped: AsyncResult = app.AsyncResult("some-id")  # a bare AsyncResult is AsyncResult[Any]
    anything = AsyncResult("some-id").get()
    sig: Signature = add.s(1) | add.s(2)
    assert_type(add.delay(1, 2), AsyncResult[int])
    assert_type(add.delay(1, 2).get(), int)
    assert_type(add.apply(args=(1, 2)).get(), int)
    assert_type(add.AsyncResult("some-id").get(), int)
    assert_type(retried.delay(3).get(), List[int])
    assert_type(bound_untyped_self.delay(1.5).get(), float)
    assert_type(fetch.delay("u").get(), bytes)
    assert_type(afetch.delay("u").get(), int)
    assert_type(hooked.delay(1).get(), int)
    assert_type(shared.delay("abc").get(), int)
    assert_type(shared_bound.delay("x").get(), str)
    assert_type(untyped.get(), Any)
    assert_type(anything_in.delay(object()).get(), int)
    print(Doubler().delay(2).get(), Doubler()(3))
    print(total, text, pair, doubled, body, size, untyped, anything, sig)


async def use_async() -> None:
    length: int = (await afetch.adelay("https://example.org")).get()
    assert_type(await fetch.delay("x").aget(), bytes)
    body: bytes = await fetch("https://example.org")  # called directly: the coroutine
    value: bytes = await fetch.delay("x").aget()
    task: AsyncTask[[str], bytes] = fetch
    typed: Task[[int, int], int] = add
    print(length, body, value, task, typed)
