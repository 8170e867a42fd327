"""The task API around sending that needs no Redis: Celery's checks on time limits."""
from __future__ import annotations

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
