"""``multiq.beat.scheduler.Beat`` against a real Redis, without a worker.

The loop is driven by calling ``Beat.tick()`` by hand. What beat sends is read back from the
queue streams (``multiq:q:{<queue>}:<band>``) and, where the sender matters, recorded by a
wrapper around ``Beat.send``. State lives in Redis: the lease ``multiq:beat:lock``, last-run
times ``multiq:beat:last`` (name -> epoch seconds), the dynamic table ``multiq:beat:entries``.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any, List, Optional, Tuple
from zoneinfo import ZoneInfo

import pytest
from helpers import wait_until

from multiq import signals
from multiq.beat.scheduler import Beat
from multiq.message import Message, decode
from multiq.schedules import crontab, schedule

pytestmark = pytest.mark.timeout(30)

LOCK = "multiq:beat:lock"
LAST = "multiq:beat:last"
TABLE = "multiq:beat:entries"


def stream(queue: str = "multiq", band: int = 0) -> str:
    return f"multiq:q:{{{queue}}}:{band}"


def queued(client: Any, queue: str = "multiq", band: int = 0) -> List[Message]:
    """The messages waiting in one band stream of ``queue``, oldest first."""
    return [decode(fields[b"m"], ["json"]) for _id, fields in client.xrange(stream(queue, band))]


def queued_tasks(client: Any, queue: str = "multiq", band: int = 0) -> List[Tuple[str, list]]:
    return [(m.task, m.args) for m in queued(client, queue, band)]


def all_queued(client: Any) -> int:
    return sum(client.xlen(key) for key in client.scan_iter("multiq:q:*")
               if client.type(key) == b"stream")


def lasts(client: Any) -> dict:
    return {k.decode(): float(v) for k, v in client.hgetall(LAST).items()}


def set_last(client: Any, name: str, epoch: float) -> None:
    client.hset(LAST, name, repr(epoch))


@pytest.fixture
def sends(monkeypatch) -> List[Tuple[str, str, float]]:
    """Every ``Beat.send``: (beat ident, entry name, time); the task is still sent."""
    record: List[Tuple[str, str, float]] = []
    original = Beat.send

    def send(self: Beat, entry: Any) -> None:
        record.append((self.ident, entry.name, time.time()))
        original(self, entry)

    monkeypatch.setattr(Beat, "send", send)
    return record


def make_beat_app(make_app, schedule_: Optional[dict] = None, **settings: Any) -> Any:
    return make_app("beat_it", beat_schedule=dict(schedule_ or {}), **settings)


ADD = {"task": "beat_it.add", "schedule": 10.0, "args": [1, 2]}


# -- first sighting, due runs, missed runs ---------------------------------------------------


def test_first_tick_records_last_run_and_sends_nothing(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app)
    before = time.time()
    wait = beat.tick()
    after = time.time()

    assert beat.leader is True
    assert redis_client.get(LOCK) == beat.ident.encode()
    assert set(lasts(redis_client)) == {"add"}
    assert before <= lasts(redis_client)["add"] <= after
    assert sends == [] and all_queued(redis_client) == 0
    assert 0 < wait <= beat.lease / 3
    # a second tick right away: nothing is due yet, the first sighting is not redone
    first = lasts(redis_client)["add"]
    beat.tick()
    assert lasts(redis_client)["add"] == first
    assert sends == [] and all_queued(redis_client) == 0


def test_due_entry_is_sent_once_and_last_run_updated(make_app, redis_client, sends, caplog):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app)
    set_last(redis_client, "add", time.time() - 11)  # one interval (10 s) ago and a bit
    before = time.time()
    with caplog.at_level(logging.INFO, logger="multiq.beat"):
        beat.tick()
    after = time.time()

    assert queued_tasks(redis_client) == [("beat_it.add", [1, 2])]
    assert [name for _who, name, _at in sends] == ["add"]
    assert before <= lasts(redis_client)["add"] <= after
    assert "Sending due task add (beat_it.add)" in caplog.text
    for _ in range(3):  # the run is done: ticking again sends nothing more
        beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.add", [1, 2])]
    assert len(sends) == 1


def test_not_yet_due_entry_is_not_sent_and_wait_is_the_time_left(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": {**ADD, "schedule": 1.0}})
    beat = Beat(app, max_interval=5, lease=30)  # lease/3 = 10 s: the entry decides the wait
    set_last(redis_client, "add", time.time() - 0.4)
    wait = beat.tick()
    assert sends == [] and all_queued(redis_client) == 0
    assert 0.3 <= wait <= 0.65, wait


def test_many_missed_intervals_are_sent_once(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": {**ADD, "schedule": 1.0}})
    beat = Beat(app)
    set_last(redis_client, "add", time.time() - 3600)  # 3600 runs missed
    beat.tick()
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.add", [1, 2])]
    assert len(sends) == 1
    assert time.time() - lasts(redis_client)["add"] < 1


def test_missed_crontab_run_is_sent_once(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"cron": {"task": "beat_it.cron",
                                            "schedule": crontab(minute="*")}})
    beat = Beat(app)
    set_last(redis_client, "cron", time.time() - 3 * 86400)  # three days of minutes missed
    beat.tick()
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.cron", [])]
    assert len(sends) == 1


# -- two beats: the lease and the claim -----------------------------------------------------


def test_two_beats_ticking_alternately_only_the_lease_holder_sends(make_app, redis_client,
                                                                   sends):
    app_a = make_beat_app(make_app, {"fast": {"task": "beat_it.fast", "schedule": 0.5}})
    app_b = make_beat_app(make_app, {"fast": {"task": "beat_it.fast", "schedule": 0.5}})
    a, b = Beat(app_a), Beat(app_b)
    began = time.time()
    a.tick()
    b.tick()
    assert a.leader and not b.leader
    while time.time() - began < 3.0:
        a.tick()
        b.tick()
        time.sleep(0.05)
    elapsed = time.time() - began

    assert not b.leader and a.leader
    assert {who for who, _n, _t in sends} == {a.ident}
    times = [t for _who, _n, t in sends]
    # each due run once: runs are >= one interval apart, and about elapsed / interval of them
    assert all(y - x >= 0.5 for x, y in zip(times, times[1:])), times
    assert 4 <= len(times) <= elapsed / 0.5, times
    assert redis_client.xlen(stream()) == len(times)


def test_claim_stops_a_second_sender_even_if_both_believe_they_lead(make_app, redis_client,
                                                                     sends, monkeypatch):
    """The last-run compare-and-set: a beat that wrongly believes it leads (a stale lease,
    a paused process) cannot send a run the other one already sent."""
    app = make_beat_app(make_app, {"add": ADD})
    a, b = Beat(app), Beat(app)
    monkeypatch.setattr(b, "hold_lease", lambda: True)
    set_last(redis_client, "add", time.time() - 60)
    a.tick()
    b.tick()
    a.tick()
    assert [who for who, _n, _t in sends] == [a.ident]
    assert redis_client.xlen(stream()) == 1


def test_lease_is_renewed_by_each_tick(make_app, redis_client):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app, lease=2.0)
    beat.tick()
    assert 1500 < redis_client.pttl(LOCK) <= 2000
    time.sleep(0.6)  # about time: the lease runs down between ticks...
    assert redis_client.pttl(LOCK) <= 1450
    beat.tick()  # ...and the next tick renews it to the whole lease
    assert redis_client.pttl(LOCK) > 1500
    assert redis_client.get(LOCK) == beat.ident.encode()


def test_lease_expiry_lets_the_other_beat_take_over(make_app, redis_client, sends, caplog):
    app = make_beat_app(make_app, {"add": ADD})
    a, b = Beat(app, lease=0.5), Beat(app, lease=0.5)
    a.tick()
    b.tick()
    assert a.leader and not b.leader
    stopped = time.monotonic()  # a stops ticking (hung, or dead without releasing)

    with caplog.at_level(logging.INFO, logger="multiq.beat"):
        wait_until(lambda: (b.tick(), b.leader)[1], timeout=3, interval=0.02,
                   message="b did not take the lease after it expired")
        took = time.monotonic() - stopped
        assert 0.35 <= took <= 1.2, took
        assert redis_client.get(LOCK) == b.ident.encode()
        assert f"this process ({b.ident}) now sends the periodic tasks" in caplog.text

        # b now sends what is due; a, when it wakes up, finds it has lost the lease
        set_last(redis_client, "add", time.time() - 60)
        b.tick()
        a.tick()
        assert not a.leader
        assert "lost the leader lease" in caplog.text
    assert [who for who, _n, _t in sends] == [b.ident]
    assert redis_client.xlen(stream()) == 1


def test_release_lets_the_other_beat_lead_at_once(make_app, redis_client):
    app = make_beat_app(make_app, {"add": ADD})
    a, b = Beat(app), Beat(app)
    a.tick()
    b.release()  # not the holder: does nothing
    assert redis_client.get(LOCK) == a.ident.encode()
    b.leader = True  # even believing it leads, it does not delete another's lease
    b.release()
    assert redis_client.get(LOCK) == a.ident.encode()
    assert b.leader is False

    a.release()
    assert a.leader is False
    assert redis_client.exists(LOCK) == 0
    b.tick()
    assert b.leader and redis_client.get(LOCK) == b.ident.encode()


def test_run_releases_the_lease_on_stop(make_app, redis_client):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app, max_interval=0.2)
    seen = {}

    def first_tick() -> None:
        seen["lock"] = redis_client.get(LOCK)
        beat.stop()

    thread = threading.Thread(target=beat.run, kwargs={"on_first_tick": first_tick},
                              daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert seen["lock"] == beat.ident.encode()  # it led while running
    assert redis_client.exists(LOCK) == 0       # and let go when stopped
    assert beat.leader is False


def test_restart_keeps_last_run_times(make_app, redis_client, sends):
    """A new beat (after a restart) goes by the last-run times in Redis: a run sent just
    before the restart is not sent again, and the next one comes one interval after it."""
    app = make_beat_app(make_app, {"add": {**ADD, "schedule": 1.0}})
    old = Beat(app)
    set_last(redis_client, "add", time.time() - 5)
    old.tick()
    assert len(sends) == 1
    sent_at = lasts(redis_client)["add"]
    old.release()

    new = Beat(app)
    new.tick()
    assert new.leader
    assert len(sends) == 1                     # not repeated
    assert lasts(redis_client)["add"] == sent_at
    wait_until(lambda: (new.tick(), len(sends) == 2)[1], timeout=3,
               message="the next run did not come after the restart")
    assert 1.0 <= sends[1][2] - sent_at <= 1.5, sends  # not skipped either: one interval on
    assert redis_client.xlen(stream()) == 2


# -- the dynamic table and changes to beat_schedule ------------------------------------------


def test_dynamic_add_list_remove_picked_up_on_the_next_tick(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app)
    beat.tick()
    assert set(app.beat.list()) == {"add"}

    entry = app.beat.add("mul", "beat_it.mul", 1.0, args=[2, 3], kwargs={"z": 1})
    assert entry.schedule == schedule(1.0)
    listed = app.beat.list()
    assert set(listed) == {"add", "mul"}
    assert listed["mul"].task == "beat_it.mul"
    assert (listed["mul"].args, listed["mul"].kwargs) == ([2, 3], {"z": 1})
    assert listed["mul"].schedule == schedule(1.0)
    # visible to any process: another app object on the same broker sees it
    other = make_beat_app(make_app, {})
    assert set(other.beat.list()) == {"mul"}

    beat.tick()  # first sighting: recorded, not sent
    assert "mul" in lasts(redis_client) and sends == []
    set_last(redis_client, "mul", time.time() - 1.5)
    beat.tick()
    msgs = queued(redis_client)
    assert [(m.task, m.args, m.kwargs) for m in msgs] == [("beat_it.mul", [2, 3], {"z": 1})]

    assert app.beat.remove("mul") is True
    assert app.beat.remove("mul") is False
    assert set(app.beat.list()) == {"add"}
    set_last(redis_client, "mul", time.time() - 60)  # would be due, were it still there
    beat.tick()
    assert redis_client.xlen(stream()) == 1
    assert set(lasts(redis_client)) == {"add"}  # the removed entry's last-run is forgotten

    # added again later: a new entry, first sighting again (not sent at once)
    app.beat.add("mul", "beat_it.mul", 1.0)
    beat.tick()
    assert redis_client.xlen(stream()) == 1 and "mul" in lasts(redis_client)


def test_dynamic_entry_with_a_task_object_and_a_crontab(make_app, redis_client, sends):
    app = make_beat_app(make_app, {})

    @app.task(name="beat_it.hello")
    def hello(who):
        return who

    app.beat.add("hi", hello, crontab(minute="*/5"), args=["x"])
    listed = app.beat.list()
    assert listed["hi"].task == "beat_it.hello"
    assert listed["hi"].schedule == crontab(minute="*/5")
    beat = Beat(app)
    beat.tick()
    set_last(redis_client, "hi", time.time() - 301)  # more than five minutes ago
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.hello", ["x"])]


def test_dynamic_entry_replaces_an_app_entry_of_the_same_name(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": ADD})
    app.beat.add("add", "beat_it.other", 10.0, args=[9])
    assert app.beat.list()["add"].task == "beat_it.other"
    beat = Beat(app)
    set_last(redis_client, "add", time.time() - 11)
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.other", [9])]


def test_broken_table_entry_is_skipped(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": ADD})
    redis_client.hset(TABLE, "bad", "{not json")
    redis_client.hset(TABLE, "worse", '{"task": "t", "schedule": {"type": "solar"}}')
    assert set(app.beat.list()) == {"add"}
    beat = Beat(app)
    set_last(redis_client, "add", time.time() - 11)
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.add", [1, 2])]


def test_options_queue_and_priority_are_used(make_app, redis_client, sends):
    app = make_beat_app(make_app, {
        "prio": {"task": "beat_it.prio", "schedule": 10.0, "args": ["p"],
                 "options": {"queue": "q2", "priority": 7, "expires": 60}},
    })
    app.beat.add("dyn", "beat_it.dyn", 10.0, options={"queue": "q2", "priority": 3})
    beat = Beat(app)
    now = time.time()
    set_last(redis_client, "prio", now - 11)
    set_last(redis_client, "dyn", now - 11)
    beat.tick()

    [msg] = queued(redis_client, "q2", 7)
    assert (msg.task, msg.args, msg.queue, msg.priority) == ("beat_it.prio", ["p"], "q2", 7)
    assert msg.expires is not None and now + 55 <= msg.expires <= time.time() + 61
    assert queued_tasks(redis_client, "q2", 3) == [("beat_it.dyn", [])]
    assert redis_client.xlen(stream()) == 0  # nothing in the default queue
    assert all_queued(redis_client) == 2


def test_registered_task_keeps_its_own_routing(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"own": {"task": "beat_it.own", "schedule": 10.0}})

    @app.task(name="beat_it.own", queue="q3")
    def own():
        return 1

    beat = Beat(app)
    set_last(redis_client, "own", time.time() - 11)
    beat.tick()
    assert queued_tasks(redis_client, "q3", 0) == [("beat_it.own", [])]


def test_beat_schedule_changed_on_the_app_between_ticks(make_app, redis_client, sends):
    app = make_beat_app(make_app, {"add": ADD, "old": {"task": "beat_it.old", "schedule": 5}})
    beat = Beat(app)
    beat.tick()
    assert set(lasts(redis_client)) == {"add", "old"}

    # "add" now every second (its last-run is kept), "old" gone, "new" added
    app.conf.beat_schedule = {
        "add": {**ADD, "schedule": 1.0, "args": [5, 5]},
        "new": {"task": "beat_it.new", "schedule": dt.timedelta(seconds=30)},
    }
    set_last(redis_client, "add", time.time() - 1.5)
    beat.tick()
    assert queued_tasks(redis_client) == [("beat_it.add", [5, 5])]
    assert set(lasts(redis_client)) == {"add", "new"}

    # changed in place (the same dict object) is seen too
    app.conf.beat_schedule["new"]["args"] = [7]
    set_last(redis_client, "new", time.time() - 31)
    beat.tick()
    assert queued_tasks(redis_client)[-1] == ("beat_it.new", [7])
    assert redis_client.xlen(stream()) == 2


# -- time zone -------------------------------------------------------------------------------


def _wall(zone: str, epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, ZoneInfo(zone))


@pytest.mark.parametrize(("settings", "zone"), [
    pytest.param({}, "UTC", id="default-utc"),
    pytest.param({"timezone": "Europe/Berlin", "enable_utc": False}, "Europe/Berlin",
                 id="berlin-enable_utc-off"),
    # as in Celery: enable_utc (on by default) is about message times; an explicit
    # timezone is still the wall clock crontabs are read on
    pytest.param({"timezone": "Europe/Berlin"}, "Europe/Berlin", id="berlin-enable_utc-on"),
])
def test_crontab_entries_follow_the_app_time_zone(make_app, redis_client, sends, settings,
                                                  zone):
    """A crontab for the wall-clock minute that has just passed in the app's zone is due;
    the same fields read in another zone (1-2 h away) are not."""
    other = "Asia/Kolkata" if zone == "UTC" else "UTC"  # 5:30 h / 1-2 h from the zone
    now = time.time()
    here = _wall(zone, now - 60).replace(second=0, microsecond=0)
    there = _wall(other, now - 60).replace(second=0, microsecond=0)
    app = make_beat_app(make_app, {
        "here": {"task": "beat_it.here", "schedule": crontab(minute=here.minute,
                                                             hour=here.hour)},
        "there": {"task": "beat_it.there", "schedule": crontab(minute=there.minute,
                                                               hour=there.hour)},
    }, **settings)
    beat = Beat(app)
    set_last(redis_client, "here", now - 125)
    set_last(redis_client, "there", now - 125)
    beat.tick()
    assert [name for _who, name, _t in sends] == ["here"]
    assert queued_tasks(redis_client) == [("beat_it.here", [])]


# -- beat_init -------------------------------------------------------------------------------


def test_beat_init_signal_fires_on_run(make_app, redis_client):
    app = make_beat_app(make_app, {"add": ADD})
    beat = Beat(app, max_interval=0.2)
    calls = []

    def receiver(sender=None, **kwargs):
        calls.append((sender, redis_client.exists(LOCK)))

    signals.beat_init.connect(receiver)
    try:
        thread = threading.Thread(target=beat.run, kwargs={"on_first_tick": beat.stop},
                                  daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        signals.beat_init.disconnect(receiver)
    assert len(calls) == 1
    sender, lock_existed = calls[0]
    assert sender is beat
    assert lock_existed == 0  # sent at start-up, before the first tick took the lease
