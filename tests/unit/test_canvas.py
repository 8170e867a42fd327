"""Signatures and the canvas primitives: composition (Celery's upgrade rules), the JSON round
trip, freezing, partial arguments, and eager runs."""
from __future__ import annotations

import json
import pickle

import pytest

from multiq import (
    MultiQ,
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    xmap,
    xstarmap,
)
from multiq.canvas import _chain
from multiq.exceptions import ChordError
from multiq.result import AsyncResult, GroupResult, result_from_tuple

pytestmark = pytest.mark.timeout(30)


@pytest.fixture()
def app() -> MultiQ:
    app = MultiQ("cv", broker="redis://127.0.0.1:1/0", backend="redis://127.0.0.1:1/0")
    app.conf.task_always_eager = True

    @app.task(name="cv.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="cv.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="cv.tsum")
    def tsum(xs: list) -> int:
        return sum(xs)

    @app.task(name="cv.fail")
    def fail(*args: object) -> None:
        raise ValueError("no")

    return app


def t(app: MultiQ, name: str):  # noqa: ANN201
    return app.tasks[f"cv.{name}"]


# -- composition ------------------------------------------------------------------------

def test_task_or_task_is_a_chain(app: MultiQ) -> None:
    add = t(app, "add")
    c = add.s(2, 2) | add.s(4)
    assert isinstance(c, _chain)
    assert [s.task for s in c.tasks] == ["cv.add", "cv.add"]
    assert isinstance(c | add.s(8), _chain) and len((c | add.s(8)).tasks) == 3


def test_chain_or_chain_flattens(app: MultiQ) -> None:
    add = t(app, "add")
    c = (add.s(1, 1) | add.s(1)) | (add.s(2) | add.s(3))
    assert len(c.tasks) == 4


def test_group_or_task_is_a_chord(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = group(add.s(1, 1), add.s(2, 2)) | tsum.s()
    assert isinstance(c, chord)
    assert c.body.task == "cv.tsum" and len(c.header.tasks) == 2


def test_chain_ending_in_group_then_task_ends_in_a_chord(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s()
    assert isinstance(c, _chain)
    assert isinstance(c.tasks[-1], chord) and c.tasks[-1].body.task == "cv.tsum"


def test_chain_function_applies_the_same_upgrades(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s())
    assert isinstance(c.tasks[-1], chord)
    # a group then a task alone makes a chord, as in Celery
    assert isinstance(chain(group(add.s(1, 1), add.s(2, 2)), tsum.s()), chord)


def test_chord_or_task_goes_to_the_body(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = chord([add.s(1, 1)], tsum.s()) | add.s(10)
    assert isinstance(c, chord)
    assert isinstance(c.body, _chain) and [s.task for s in c.body.tasks] == ["cv.tsum", "cv.add"]


def test_task_or_one_member_group_unrolls(app: MultiQ) -> None:
    add = t(app, "add")
    c = add.s(1, 1) | group(add.s(1))
    assert [type(s) for s in c.tasks] == [Signature, Signature]


def test_chain_then_group_then_task_after_chord_merges_bodies(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = chord([add.s(1, 1)], tsum.s()) | group(add.s(1), add.s(2))
    assert isinstance(c, _chain)  # chord | group of two: a chain (Celery's rule)


def test_or_with_something_else_is_a_type_error(app: MultiQ) -> None:
    with pytest.raises(TypeError):
        t(app, "add").s(1, 1) | 5


# -- signatures --------------------------------------------------------------------------

def test_partial_args_go_first_and_kwargs_merge(app: MultiQ) -> None:
    add = t(app, "add")
    s = add.s(2)
    assert s.clone(args=(8,)).args == [8, 2]
    assert add.s(x=1).clone(kwargs={"y": 2}).kwargs == {"x": 1, "y": 2}
    assert s.delay(8).get() == 10


def test_immutable_signature_ignores_partial_args(app: MultiQ) -> None:
    add = t(app, "add")
    assert add.si(2, 2).clone(args=(100,)).args == [2, 2]
    assert (add.s(1, 1) | add.si(5, 5)).delay().get() == 10


def test_set_options_and_calling_runs_here(app: MultiQ) -> None:
    add = t(app, "add")
    s = add.s(2, 2).set(countdown=10, queue="q")
    assert s.options == {"countdown": 10, "queue": "q"}
    assert s() == 4
    assert add.s(2)(3) == 5


def test_signature_by_name_with_options(app: MultiQ) -> None:
    s = signature("cv.add", args=(2, 2), countdown=10, app=app)
    assert s.task == "cv.add" and s.args == [2, 2] and s.options == {"countdown": 10}
    assert s.apply().get() == 4


def test_freeze_fixes_the_id_once(app: MultiQ) -> None:
    s = t(app, "add").s(1, 1)
    first = s.freeze()
    assert isinstance(first, AsyncResult) and s.id == first.id
    assert s.freeze().id == first.id


def test_links_and_on_error_are_kept(app: MultiQ) -> None:
    add, fail = t(app, "add"), t(app, "fail")
    s = add.s(1, 1)
    s.link(add.s(10))
    assert s.on_error(fail.si()) is s
    assert [x.task for x in s.options["link"]] == ["cv.add"]
    assert [x.task for x in s.options["link_error"]] == ["cv.fail"]
    assert [x.task for x in s.flatten_links()] == ["cv.add", "cv.add"]


@pytest.mark.parametrize("make", [
    lambda a: a["add"].s(1, 2),
    lambda a: a["add"].si(1, 2).set(queue="x"),
    lambda a: a["add"].s(1, 1) | a["add"].s(2) | a["mul"].s(3),
    lambda a: group(a["add"].s(i, i) for i in range(3)),
    lambda a: chord([a["add"].s(1, 1), a["add"].s(2, 2)], a["tsum"].s()),
    lambda a: a["add"].s(1, 1) | group(a["add"].s(1), a["add"].s(2)) | a["tsum"].s(),
    lambda a: group(a["add"].s(1, 1) | a["add"].s(1), chord([a["add"].s(1, 1)], a["tsum"].s())),
    lambda a: xmap(a["add"].s(), [1, 2]),
    lambda a: xstarmap(a["add"].s(), [(1, 2)]),
    lambda a: chunks(a["add"].s(), [(1, 2), (3, 4), (5, 6)], 2),
])
def test_json_round_trip_gives_the_same_type_back(app: MultiQ, make) -> None:  # noqa: ANN001
    tasks = {k.split(".")[-1]: v for k, v in app.tasks.items()}
    sig = make(tasks)
    back = signature(json.loads(json.dumps(sig)), app=app)
    assert type(back) is type(sig)
    assert back == sig
    assert repr(back) == repr(sig)
    assert pickle.loads(pickle.dumps(sig)) == sig
    assert type(maybe_signature(dict(sig), app)) is type(sig)


def test_clone_is_deep(app: MultiQ) -> None:
    c = t(app, "add").s(1, 1) | t(app, "add").s(2)
    copy = c.clone()
    copy.tasks[0].set(queue="other")
    assert "queue" not in c.tasks[0].options


# -- freezing work-flows -----------------------------------------------------------------

def test_frozen_chain_links_parents_back(app: MultiQ) -> None:
    add = t(app, "add")
    c = add.s(1, 1) | add.s(2) | add.s(3)
    res = c.freeze()
    ids = [s.id for s in c.tasks]
    assert res.id == ids[2] and res.parent.id == ids[1] and res.parent.parent.id == ids[0]


def test_frozen_chord_marks_each_header_task_with_its_place(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = chord([add.s(1, 1), add.s(2, 2) | add.s(1), add.s(3, 3)], tsum.s())
    res = c.freeze()
    gid = c.header.id
    assert isinstance(res.parent, GroupResult) and res.parent.id == gid
    places = [s._tails()[0].options["chord"] for s in c.header.tasks]
    assert places == [{"id": gid, "i": 0}, {"id": gid, "i": 1}, {"id": gid, "i": 2}]
    # the chain's first step is not a member: only its last one counts
    assert "chord" not in c.header.tasks[1].tasks[0].options


def test_nested_groups_are_flattened(app: MultiQ) -> None:
    add = t(app, "add")
    g = group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3))
    assert len(g.freeze().results) == 3


# -- eager runs --------------------------------------------------------------------------

def test_eager_chain_group_and_chord(app: MultiQ) -> None:
    add, mul, tsum = t(app, "add"), t(app, "mul"), t(app, "tsum")
    assert (add.s(4, 4) | mul.s(8)).delay().get() == 64
    res = chain(add.s(4, 4), mul.s(8), mul.s(10)).delay()
    assert res.get() == 640 and res.parent.get() == 64 and res.parent.parent.get() == 8
    assert group(add.s(i, i) for i in range(5))().get() == [0, 2, 4, 6, 8]
    assert chord(add.s(i, i) for i in range(10))(tsum.s()).get() == 90
    assert (group(add.s(1, 1), add.s(2, 2)) | tsum.s()).delay().get() == 6
    assert chord([], tsum.s())().get() == 0


def test_eager_map_starmap_chunks(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    assert tsum.map([[1, 2], [3]]).delay().get() == [3, 3]
    assert add.starmap(zip(range(3), range(3))).delay().get() == [0, 2, 4]
    assert add.chunks(zip(range(5), range(5)), 2).delay().get() == [[0, 2], [4, 6], [8]]
    assert len(add.chunks(zip(range(5), range(5)), 2).group()) == 3


def test_eager_failure_stops_the_chain(app: MultiQ) -> None:
    add, fail = t(app, "add"), t(app, "fail")
    app.conf.task_eager_propagates = False
    with pytest.raises(ValueError):
        (add.s(1, 1) | fail.s() | add.s(1)).delay().get()


def test_chord_needs_a_body(app: MultiQ) -> None:
    with pytest.raises(ValueError, match="body"):
        chord([t(app, "add").s(1, 1)]).apply_async()


# -- results ------------------------------------------------------------------------------

def test_result_tuples_round_trip(app: MultiQ) -> None:
    child = AsyncResult("b", app=app, parent=AsyncResult("a", app=app))
    back = result_from_tuple(json.loads(json.dumps(child.as_tuple())), app)
    assert back.id == "b" and back.parent.id == "a"
    g = GroupResult("g", [AsyncResult("x", app=app), AsyncResult("y", app=app)], app=app)
    back = result_from_tuple(json.loads(json.dumps(g.as_tuple())), app)
    assert isinstance(back, GroupResult) and back.id == "g" and back.ids() == ["x", "y"]


def test_chord_error_is_a_multiq_error() -> None:
    from multiq.exceptions import MultiQError
    assert issubclass(ChordError, MultiQError)


def test_sending_a_work_flow_again_gives_new_ids(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    for make in (lambda: add.s(1, 1) | add.s(2), lambda: group(add.s(1, 1), add.s(2, 2)),
                 lambda: chord([add.s(1, 1)], tsum.s())):
        sig = make()
        first, second = sig.freeze(), make().freeze()
        assert first.id != second.id
        frozen = sig.freeze()
        assert frozen.id == first.id  # frozen once: kept, as Celery does


def test_app_signature_and_links_given_to_a_chain_send(app: MultiQ) -> None:
    sig = app.signature("cv.add", (2, 2))
    assert sig.apply().get() == 4
    add, tsum = t(app, "add"), t(app, "tsum")
    c = add.s(1, 1) | add.s(2)
    fresh = c._fresh()
    from multiq.canvas import _attach_links
    _attach_links(fresh, {"link": tsum.s(), "link_error": [add.si(0, 0)]})
    assert [s.task for s in fresh.tasks[-1].options["link"]] == ["cv.tsum"]
    assert all(len(s.options["link_error"]) == 1 for s in fresh.tasks)
    assert "link" not in c.tasks[-1].options  # the original is untouched


def test_chain_or_group_ends_the_chain_with_the_group(app: MultiQ) -> None:
    add = t(app, "add")
    c = (add.s(1, 1) | add.s(1)) | group(add.s(1), add.s(2))
    assert isinstance(c, _chain) and isinstance(c.tasks[-1], group) and len(c.tasks) == 3
    # an empty chain followed by a group is that group
    assert type(_chain() | group(add.s(1), add.s(2))) is group


def test_chain_ending_in_a_chord_gives_what_follows_to_its_body(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s())
    then_task = c | add.s(5)
    assert len(then_task.tasks) == 2 and isinstance(then_task.tasks[-1], chord)
    assert [s.task for s in then_task.tasks[-1].body.tasks] == ["cv.tsum", "cv.add"]
    then_group = c | group(add.s(1), add.s(2))
    assert isinstance(then_group.tasks[-1], chord)
    assert isinstance(then_group.tasks[-1].body, _chain)


def test_a_group_after_a_chord_in_a_chain_merges_into_its_body(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = add.s(1, 1) | chord([add.s(1)], tsum.s()) | group(add.s(1), add.s(2)) | tsum.s()
    # chord, group, task: the group and task become a chord appended to the first's body
    assert len(c.tasks) == 2 and isinstance(c.tasks[-1], chord)
    body = c.tasks[-1].body
    assert isinstance(body, _chain) and isinstance(body.tasks[-1], chord)


def test_chain_steps_upgrade_a_group_followed_by_anything_when_sent(app: MultiQ) -> None:
    add, tsum = t(app, "add"), t(app, "tsum")
    c = _chain(add.s(1, 1), group(add.s(1), add.s(2)), group(add.s(3), add.s(4)), tsum.s())
    steps = c._steps()
    assert [type(s).__name__ for s in steps] == ["Signature", "chord", "Signature"]
    assert type(steps[1].body) is group


def test_eager_errbacks_and_group_link_error(app: MultiQ) -> None:
    add, fail = t(app, "add"), t(app, "fail")
    calls = []

    @app.task(name="cv.on_error")
    def on_error(request, exc, traceback):  # noqa: ANN001, ANN202
        calls.append((request.id, type(exc).__name__))

    app.conf.task_eager_propagates = False
    g = group(fail.s(), add.s(1, 1))
    g.link_error(on_error.s())
    res = g.apply()
    assert [r.state for r in res] == ["FAILURE", "SUCCESS"]
    assert calls == [(res[0].id, "ValueError")]
