"""Tasks for tests/system/test_task_outcomes.py: exceptions that cannot be described, a
``BaseException`` that is not an ``Exception``, and tasks that reject their message.

Every run is recorded in db 3 of the broker's server (``RPUSH runs <tag>``, see
``sysq_recorder``), outside the broker's keys; failures seen by ``on_failure`` and the
``task_failure`` signal go to the list ``hooks`` there. The worker gets its URLs from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; ``SYSQ_MAX_DELIVERIES`` and
``SYSQ_REJECT_BACKOFF`` set the transport options ``max_deliveries`` and ``reject_backoff``.

The test process imports this module too (to compare exception types), where the variables
may be unset: the app is then simply not connected.
"""
from __future__ import annotations

import json
import os
import time

from sysq_recorder import recorder

from multiq import MultiQ, Task, signals
from multiq.exceptions import Reject

RUNS = "runs"
HOOKS = "hooks"

_options = {}
if os.environ.get("SYSQ_MAX_DELIVERIES"):
    _options["max_deliveries"] = int(os.environ["SYSQ_MAX_DELIVERIES"])
if os.environ.get("SYSQ_REJECT_BACKOFF"):
    _options["reject_backoff"] = float(os.environ["SYSQ_REJECT_BACKOFF"])

app = MultiQ(
    "sysq_outcomes",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    broker_transport_options=_options,
)


class Opaque:
    """Neither JSON nor a plain ``str`` can describe it."""

    def __str__(self) -> str:
        raise RuntimeError("Opaque has no text")

    def __repr__(self) -> str:
        raise RuntimeError("Opaque has no repr")


class Unprintable(Exception):
    """Its text, its repr and its arguments all fail to be read."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    @property  # type: ignore[override]
    def args(self):
        raise RuntimeError("no args")


class Boom(BaseException):
    """Not an ``Exception``: it must still fail only the task that raises it."""


class Hooked(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        recorder().rpush(HOOKS, f"on_failure:{task_id}:{type(exc).__name__}")


@signals.task_failure.connect
def _on_task_failure(sender=None, task_id=None, exception=None, **kwargs):
    recorder().rpush(HOOKS, f"task_failure:{task_id}:{type(exception).__name__}")


@app.task
def record(tag):
    recorder().rpush(RUNS, tag)
    return tag


@app.task
def unprintable(tag):
    recorder().rpush(RUNS, tag)
    raise Unprintable(Opaque())


@app.task
def opaque_args(tag):
    """An ordinary exception whose arguments hold an object with no text."""
    recorder().rpush(RUNS, tag)
    raise ValueError("bad input", Opaque())


@app.task(base=Hooked)
def boom(tag):
    recorder().rpush(RUNS, tag)
    raise Boom(f"boom {tag}")


@app.task(base=Hooked)
def interrupted(tag):
    recorder().rpush(RUNS, tag)
    raise KeyboardInterrupt(f"interrupted {tag}")


@app.task(bind=True)
def always_reject(self, tag):
    """Records each run (with its delivery details), then rejects with requeue."""
    recorder().rpush(RUNS, json.dumps({
        "tag": tag, "time": time.time(),
        "redelivered": bool(self.request.delivery_info.get("redelivered")),
    }))
    raise Reject(f"not now {tag}", requeue=True)


@app.task(acks_late=True)
def reject_for_good(tag):
    recorder().rpush(RUNS, tag)
    raise Reject(f"unwanted {tag}", requeue=False)


@app.task(bind=True)
def progress(self, steps, gate):
    """Reports PROGRESS after each step and waits at ``gate`` (a list in db 3) before the
    next: the test opens it once it has seen the state."""
    for done in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"done": done, "total": steps})
        if recorder().blpop(gate, timeout=20) is None:
            raise RuntimeError("the gate never opened")
    return {"done": steps}


@app.task(ignore_result=True)
def quiet(tag):
    recorder().rpush(RUNS, f"quiet:{tag}")


from multiq.utils.log import get_task_logger  # noqa: E402

task_log = get_task_logger(__name__)


@app.task
def logs(tag):
    task_log.warning("hello from %s", tag)
    return tag


_PRERUN = {}


@signals.task_prerun.connect
def _prerun_headers(sender=None, task_id=None, task=None, **kwargs):
    _PRERUN[task_id] = (task.request.headers or {}).get("x-trace")


@app.task(bind=True)
def headers_seen(self):
    """What the publish hooks of the sender added, as the task and task_prerun see it."""
    return {"request": (self.request.headers or {}).get("x-trace"),
            "prerun": _PRERUN.pop(self.request.id, None)}


try:
    import pydantic as _pydantic
except ImportError:  # pragma: no cover - the test extra has it (fastapi)
    _pydantic = None

if _pydantic is not None:
    class Order(_pydantic.BaseModel):
        item: str
        quantity: int

    class Receipt(_pydantic.BaseModel):
        item: str
        total: int

    @app.task(pydantic=True)
    def place(order: Order) -> Receipt:
        """Runs with a validated Order; its Receipt is stored as a dict."""
        assert isinstance(order, Order)
        return Receipt(item=order.item, total=order.quantity * 3)


REQUEST_FIELDS = ("id", "task", "args", "kwargs", "retries", "is_eager", "hostname",
                  "delivery_info", "headers", "root_id", "parent_id", "origin", "priority",
                  "ignore_result", "group", "group_index", "chord", "chain", "callbacks",
                  "errbacks", "time_limit", "soft_time_limit", "reply_to", "correlation_id",
                  "replaced_task_nesting", "stamps", "properties")


@app.task(bind=True, time_limit=60, soft_time_limit=50)
def fields(self, *args, **kwargs):
    """The request as the task sees it, field by field (and its eager child's ids)."""
    seen = {name: getattr(self.request, name) for name in REQUEST_FIELDS}
    child = eager_child.apply()
    seen["eager_child"] = child.get()
    return seen


@app.task(bind=True)
def eager_child(self):
    r = self.request
    return {"id": r.id, "root_id": r.root_id, "parent_id": r.parent_id, "is_eager": r.is_eager,
            "time_limit": r.time_limit, "hostname": r.hostname}
