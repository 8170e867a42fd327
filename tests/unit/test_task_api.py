"""The task API that needs no Redis: Celery's checks on time limits, task loggers,
periodic tasks added by the app, pydantic tasks."""
from __future__ import annotations

from typing import Optional

import pytest

from multiq import MultiQ

pytestmark = pytest.mark.timeout(10)


def _app() -> MultiQ:
    return MultiQ("api", broker="redis://127.0.0.1:1/0", set_as_current=False)


def test_a_soft_limit_above_the_hard_one_is_refused_before_anything_is_sent() -> None:
    app = _app()

    @app.task(soft_time_limit=10, time_limit=5)
    def slow() -> None:
        return None

    with pytest.raises(ValueError, match="soft_time_limit must be less than or equal to "
                                         "time_limit"):
        slow.delay()

    @app.task
    def quick() -> None:
        return None

    with pytest.raises(ValueError, match="soft_time_limit must be less"):
        quick.apply_async(soft_time_limit=3, time_limit=2)
    with pytest.raises(ValueError, match="soft_time_limit must be less"):
        app.send_task("api.quick", soft_time_limit=3, time_limit=2)


def test_equal_or_one_sided_limits_are_fine_in_eager_mode() -> None:
    app = _app()
    app.conf.task_always_eager = True

    @app.task(soft_time_limit=5, time_limit=5)
    def same() -> int:
        return 1

    assert same.delay().get() == 1
    assert same.apply_async(soft_time_limit=1).get() == 1


def test_task_loggers_add_the_running_tasks_id_and_name() -> None:
    import io
    import logging

    from multiq.log import DEFAULT_FORMAT, _Formatter
    from multiq.utils.log import get_task_logger

    app = _app()
    app.conf.task_always_eager = True
    log = get_task_logger("tests.unit.task_api")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(DEFAULT_FORMAT))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        @app.task
        def speak() -> None:
            log.info("inside")

        result = speak.delay()
        log.info("outside")
        logging.getLogger("tests.unit.plain").addHandler(handler)
        logging.getLogger("tests.unit.plain").warning("plain")
    finally:
        log.removeHandler(handler)
        logging.getLogger("tests.unit.plain").removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"api.speak[{result.id}]: inside"), lines
    assert lines[1].endswith("???[???]: outside") and lines[2].endswith("] plain"), lines
    with pytest.raises(RuntimeError, match="reserved"):
        get_task_logger("multiq")


def test_add_periodic_task_from_on_after_configure_lands_in_beat_schedule() -> None:
    from multiq.beat.table import entry_from_config
    from multiq.schedules import crontab

    app = _app()
    seen = []

    @app.task
    def report(kind: str, full: bool = False) -> None:
        return None

    @app.on_after_configure.connect
    def setup(sender: MultiQ, **kwargs: object) -> None:
        seen.append(("configure", kwargs.get("source") is sender.conf))
        sender.add_periodic_task(10.0, report.s("short"), name="every ten")
        sender.add_periodic_task(crontab(minute=0), report.s(), args=("hourly",),
                                 kwargs={"full": True}, queue="reports")

    app.on_after_finalize.connect(lambda sender, **kw: seen.append(("finalize", True)))
    app.finalize()
    app.finalize()  # once only
    assert seen == [("configure", True), ("finalize", True)]
    table = app.conf.beat_schedule
    assert set(table) == {"every ten", repr(report.s("hourly", full=True))}
    ten = entry_from_config("every ten", table["every ten"])
    assert (ten.task, ten.args, ten.schedule.seconds) == (report.name, ["short"], 10.0)
    [hourly] = [entry_from_config(k, v) for k, v in table.items() if k != "every ten"]
    assert (hourly.args, hourly.kwargs, hourly.options) == (["hourly"], {"full": True},
                                                           {"queue": "reports"})


try:  # (module level: the tasks' annotations are resolved in the module's names)
    import pydantic

    class Point(pydantic.BaseModel):
        x: int
        y: int

    class Total(pydantic.BaseModel):
        total: int
except ImportError:  # pragma: no cover - pydantic comes with the test extra (fastapi)
    pydantic = None


@pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")
def test_pydantic_tasks_validate_arguments_and_dump_results() -> None:
    app = _app()
    app.conf.task_always_eager = True
    seen = []

    @app.task(pydantic=True)
    def add(p: Point, shift: Optional[Point] = None, note: str = "") -> Total:
        seen.append((type(p), type(shift), note))
        return Total(total=p.x + p.y + (shift.x if shift else 0))

    assert add.delay(Point(x=1, y=2)).get() == {"total": 3}
    assert add.delay({"x": "4", "y": 5}, shift={"x": 1, "y": 0}, note="n").get() == {"total": 10}
    assert seen == [(Point, type(None), ""), (Point, Point, "n")]
    assert add.__wrapped__.__name__ == "add"

    @app.task(pydantic=True, pydantic_strict=True, bind=True)
    def strict(self, p: Point) -> int:
        return p.x

    assert strict.delay(Point(x=7, y=0)).get() == 7  # a model is dumped, validated back
    with pytest.raises(pydantic.ValidationError):
        strict.delay({"x": "7", "y": 0}).get()

    @app.task(pydantic=True, pydantic_dump_kwargs={"exclude": {"y"}})
    def echo(p: Point) -> Point:
        return p

    assert echo.delay(Point(x=1, y=2)).get() == {"x": 1}
