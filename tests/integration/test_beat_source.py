"""Beat with an entry source of its own (``Beat(app, source=...)``), against a real Redis.

A source lists the entries and is told of each run; the lease and run claims stay in Redis.
Ticks are driven by hand; what is sent is read back from the queue stream.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from multiq.beat.scheduler import Beat
from multiq.beat.source import load_source
from multiq.beat.table import BeatTable, Entry
from multiq.exceptions import ImproperlyConfigured
from multiq.schedules import crontab, schedule

pytestmark = pytest.mark.timeout(30)

STREAM = "multiq:q:{multiq}:0"


class ListSource:
    """A source holding a list of entries, recording the runs it is told of."""

    def __init__(self, app: Any, entries: Optional[List[Entry]] = None) -> None:
        self.app = app
        self.entries = list(entries or [])
        self.runs: List[Tuple[str, float]] = []
        self.fail = False

    def list(self) -> Dict[str, Entry]:
        return {entry.name: entry for entry in self.entries}

    def ran(self, entry: Entry, at: float) -> None:
        if self.fail:
            raise RuntimeError("database away")
        self.runs.append((entry.name, at))


def _sent(client: Any) -> List[list]:
    import json
    return [json.loads(fields[b"m"])["args"] for _id, fields in client.xrange(STREAM)]


def test_a_source_of_its_own_is_asked_for_entries_and_told_of_runs(make_app, redis_client):
    app = make_app("src")
    source = ListSource(app, [Entry("job", "src.job", schedule(60.0), [1])])
    beat = Beat(app, source=source)
    redis_client.hset("multiq:beat:last", "job", repr(time.time() - 120))
    beat.tick()
    assert _sent(redis_client) == [[1]]
    assert [name for name, _at in source.runs] == ["job"]
    beat.tick()  # not due again for a minute
    assert len(_sent(redis_client)) == 1 and len(source.runs) == 1


def test_the_last_run_a_source_knows_is_used_when_redis_has_none(make_app, redis_client):
    app = make_app("src")
    known = Entry("known", "src.job", schedule(60.0), ["known"], last_run_at=time.time() - 600)
    fresh = Entry("fresh", "src.job", schedule(60.0), ["fresh"])
    source = ListSource(app, [known, fresh])
    beat = Beat(app, source=source)
    beat.tick()
    beat.tick()
    assert _sent(redis_client) == [["known"]]  # the missed run, once; fresh waits a period
    assert redis_client.hexists("multiq:beat:last", "fresh")


def test_a_failing_source_is_logged_and_beat_goes_on(make_app, redis_client, caplog):
    app = make_app("src")
    source = ListSource(app, [Entry("job", "src.job", schedule(0.2), [1],
                                    last_run_at=time.time() - 10)])
    source.fail = True
    beat = Beat(app, source=source)
    with caplog.at_level(logging.ERROR, logger="multiq.beat"):
        beat.tick()
    assert _sent(redis_client) == [[1]] and beat.leader
    assert "could not record the run of 'job'" in caplog.text


def test_a_schedule_with_its_own_zone_keeps_it(make_app, redis_client):
    app = make_app("src", timezone="Europe/Paris")
    own = crontab(minute=0, hour=9, tz="Asia/Shanghai")
    plain = crontab(minute=0, hour=9)
    beat = Beat(app, source=ListSource(app, [Entry("own", "src.job", own),
                                              Entry("plain", "src.job", plain)]))
    beat.tick()
    assert own.tz == "Asia/Shanghai" and plain.tz == "Europe/Paris"
    due = own.next_after(dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc))
    assert due == dt.datetime(2024, 5, 1, 1, 0, tzinfo=dt.timezone.utc)  # 09:00 in Shanghai


@pytest.mark.parametrize("name", [None, "", "redis", "celery.beat:PersistentScheduler"])
def test_the_default_names_are_the_redis_table(make_app, name):
    assert isinstance(load_source(make_app("src"), name), BeatTable)


def test_a_scheduler_is_found_by_module_and_class(make_app):
    source = load_source(make_app("src"), f"{__name__}:ListSource")
    assert type(source).__name__ == "ListSource"


@pytest.mark.parametrize("name", ["nosuch", "nosuch.module:Thing", "multiq.beat:Nothing"])
def test_an_unknown_scheduler_is_refused(make_app, name):
    with pytest.raises(ImproperlyConfigured, match="Unknown beat scheduler"):
        load_source(make_app("src"), name)


def test_the_beat_scheduler_setting_chooses_the_source(make_app):
    app = make_app("src", beat_scheduler=f"{__name__}:ListSource")
    assert type(Beat(app).source).__name__ == "ListSource"
