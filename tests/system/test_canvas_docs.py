"""The examples of Celery's canvas user guide ("Canvas: Designing Work-flows": signatures,
partials, immutability, callbacks, chains, groups, chords and their errors, map, starmap,
chunks), as printed there with the names changed, each with its documented result, run by a
real node. Where the guide's example cannot run as printed (a chord with no body, a 10 s
countdown), the test says what it changed. Also from the tasks guide: ``self.replace`` and
``self.request.chain`` / ``self.request.callbacks``.

One node at a time for the whole module: ``python -m multiq -A sysq_canvas worker -P threads
-c 4`` (apps/sysq_canvas.py) on the session's redis-server, flushed when the node starts; no
per-test fixture here flushes it again. The module runs twice: results in db 2 of that
server, then on a redis-server of their own. The test process uses its own copy of the app.
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import (  # noqa: E402
    ProcessTracker,
    RedisServer,
    find_redis_server,
    start_worker_process,
    wait_until,
)
from sysq_canvas import (  # noqa: E402
    add,
    create_user,
    echo,
    fail,
    gate,
    identity,
    import_contact,
    import_contacts,
    log_error,
    log_error_id,
    log_result,
    mul,
    notify_complete,
    on_chord_error,
    raising_task,
    replace_with_chain,
    replace_with_group,
    replace_with_mul,
    request_info,
    reset_buffers,
    send_welcome_email,
    subtract,
    tsum,
    xsum,
)
from sysq_canvas_support import (  # noqa: E402
    APPS,
    env_for,
    errback_runs,
    errbacks,
    point_app,
    runs,
)

from multiq import chain, chord, group, signature  # noqa: E402
from multiq.exceptions import ChordError  # noqa: E402
from multiq.result import AsyncResult, GroupResult, result_from_tuple  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]

T = 10  # seconds any one result may take
DOUBLES = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
CHUNKS = [[2 * i for i in range(start, start + 10)] for start in range(0, 100, 10)]


@pytest.fixture(scope="module", params=["shared", "own"],
                ids=["backend-db-2", "own-backend-server"])
def app(request, redis_server, tmp_path_factory):
    """The node of the module (running) and the test process's app, pointed at it. Results
    go to db 2 of the broker's server, then (the second round of the module) to a
    redis-server of their own, where chords are counted and fired by the committer."""
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    logs = tmp_path_factory.mktemp("canvas-docs")
    own = None
    if request.param == "own":
        own = RedisServer(find_redis_server(), logs / "results")
        own.start()
    broker = redis_server.url(1)
    backend = own.url(0) if own else redis_server.url(2)
    tracker = ProcessTracker()
    client = point_app(broker, backend)
    try:
        start_worker_process(tracker, "sysq_canvas", "-c", "4", cwd=APPS,
                             env=env_for(broker, backend), pool="threads",
                             hostname="canvas@%h", log_path=logs / "canvas.log", timeout=30)
        yield client
    finally:
        tracker.cleanup()
        client.close()
        if own:
            own.stop()


@pytest.fixture(scope="module")
def rec(redis_server):
    client = redis_server.client(3)
    yield client
    client.close()


def _children(result, count=1):
    """``result.children`` once ``count`` of them are known."""
    return wait_until(lambda: len(result.children or ()) >= count and result.children,
                      timeout=T, message=f"{result.id} has fewer than {count} children")


def _one_errback(rec, task_id, errback):
    """The one call of ``errback`` recorded for ``task_id``; a round trip through the node
    after it shows no second one was on its way."""
    wait_until(lambda: errbacks(rec, task_id), timeout=T,
               message=f"no errback was called for {task_id}")
    add.delay(0, 0).get(timeout=T)
    calls = errbacks(rec, task_id)
    assert [c["errback"] for c in calls] == [errback], calls
    assert errback_runs(rec, task_id) == 1
    return calls[0]


def _elapsed(since):
    return time.monotonic() - since


# -- Signatures ---------------------------------------------------------------------------


def test_signature_by_name_by_method_and_its_fields():
    s = signature("sysq_canvas.add", args=(2, 2), countdown=10)
    assert repr(s) == "sysq_canvas.add(2, 2)"
    assert (s.task, tuple(s.args), s.options) == ("sysq_canvas.add", (2, 2), {"countdown": 10})
    assert repr(add.signature((2, 2), countdown=10)) == "sysq_canvas.add(2, 2)"
    assert repr(add.s(2, 2)) == "sysq_canvas.add(2, 2)"
    assert repr(add.s(2, 2, debug=True)) == "sysq_canvas.add(2, 2, debug=True)"

    s = add.signature((2, 2), {"debug": True}, countdown=10)
    assert tuple(s.args) == (2, 2)
    assert s.kwargs == {"debug": True}
    assert s.options == {"countdown": 10}

    s = add.s(2, 2).set(countdown=1)
    assert repr(s) == "sysq_canvas.add(2, 2)" and s.options == {"countdown": 1}


def test_calling_api_inline_delay_and_apply_async(app):
    assert add(2, 2) == 4
    assert add.s(2, 2)() == 4
    assert add.delay(2, 2).get(timeout=T) == 4
    assert add.signature((2, 2)).delay().get(timeout=T) == 4

    started = time.monotonic()
    later = [
        add.apply_async((2, 2), countdown=1),
        add.signature((2, 2), countdown=1).apply_async(),
        add.signature((2, 2), countdown=1).delay(),
        add.signature((2, 2)).set(countdown=1).delay(),
    ]
    assert [r.get(timeout=T) for r in later] == [4, 4, 4, 4]
    assert _elapsed(started) >= 0.95


# -- Partials -----------------------------------------------------------------------------


def test_partial_args_are_prepended(app):
    started = time.monotonic()
    assert add.s(2, 2).delay().get(timeout=T) == 4
    assert add.s(2, 2).apply_async(countdown=1).get(timeout=T) == 4
    assert _elapsed(started) >= 0.95

    partial = add.s(2)  # incomplete signature
    assert partial.delay(4).get(timeout=T) == 6
    assert partial.apply_async((4,)).get(timeout=T) == 6
    assert tuple(partial.args) == (2,)  # the partial itself is unchanged

    partial = subtract.s(10)  # second argument only
    assert partial.delay(30).get(timeout=T) == 20  # subtract(30, 10)


def test_partial_kwargs_are_merged_the_new_ones_win(app, rec):
    s = add.s(2, 2)
    assert s.delay(debug=True).get(timeout=T) == 4  # -> add(2, 2, debug=True)
    assert s.apply_async(kwargs={"debug": True}).get(timeout=T) == 4  # same
    assert s.kwargs == {}
    assert add.s(3, 3, debug=False).delay(debug=True).get(timeout=T) == 6
    debug = [r for r in runs(rec) if "debug=True" in r]
    assert debug == ["add(2, 2, debug=True)"] * 2 + ["add(3, 3, debug=True)"]


def test_partial_options_are_merged_the_new_ones_win(app):
    s = add.signature((2, 2), countdown=10)
    started = time.monotonic()
    result = s.apply_async(countdown=1)  # countdown is now 1
    assert result.get(timeout=8) == 4
    assert 0.95 <= _elapsed(started) < 8
    assert s.options == {"countdown": 10}


def test_clone_makes_a_derivative(app):
    s = add.s(2)
    assert repr(s) == "sysq_canvas.add(2)"
    derived = s.clone(args=(4,), kwargs={"debug": True})
    assert repr(derived) == "sysq_canvas.add(4, 2, debug=True)"
    assert (tuple(derived.args), derived.kwargs) == ((4, 2), {"debug": True})
    assert (tuple(s.args), s.kwargs) == ((2,), {})
    assert derived.delay().get(timeout=T) == 6


# -- Immutability -------------------------------------------------------------------------


def test_immutable_callback_gets_no_arguments(app):
    """``reset_buffers`` takes none: it returns "reset" only when called without the
    parent's result."""
    for callback in (reset_buffers.signature(immutable=True), reset_buffers.si()):
        res = add.apply_async((2, 2), link=callback)
        assert res.get(timeout=T) == 4
        (child,) = _children(res)
        assert child.get(timeout=T) == "reset"


def test_immutable_signature_takes_options_not_partial_args(app):
    assert add.signature((2, 2), immutable=True).immutable
    assert add.si(2, 2).immutable and not add.s(2, 2).immutable
    started = time.monotonic()
    assert add.si(2, 2).apply_async((8,), {"debug": True}, countdown=1).get(timeout=T) == 4
    assert _elapsed(started) >= 0.95
    assert add.si(2, 2).delay(8).get(timeout=T) == 4


def test_invert_operator_is_apply_async_get(app):
    sig = add.s(2, 2)
    assert ~sig == 4
    assert ~sig == sig.apply_async().get()


# -- Callbacks ----------------------------------------------------------------------------


def test_link_calls_the_callback_with_the_result_first(app):
    res = add.apply_async((2, 2), link=add.s(8))  # 2 + 2, then 4 + 8
    assert res.get(timeout=T) == 4
    (child,) = _children(res)
    assert child.get(timeout=T) == 12

    sig = add.s(10)
    assert sig.delay(4).get(timeout=T) == 14  # add.apply_async(args=(4, 10))


def test_errback_of_a_chain_is_called_for_the_failed_step(app, rec):
    c = chain(add.s(1, 1), add.s("x"), mul.s(2)).on_error(log_error.s())
    res = c.delay()
    with pytest.raises(TypeError):
        res.get(timeout=T)
    failed = res.parent
    call = _one_errback(rec, failed.id, "log_error")
    assert call["exc"] == "TypeError", call
    assert errbacks(rec, res.id) == [] and errbacks(rec, failed.parent.id) == []


def test_callback_only_when_the_task_succeeded(app, rec):
    """"The callback will only be applied if the task exited successfully"; in a chain,
    a failed step fails the chain's result with its error (it does not hang)."""
    res = add.apply_async((2, "x"), link=log_result.si("after-failure"))
    with pytest.raises(TypeError):
        res.get(timeout=T)
    assert not res.children
    add.delay(0, 0).get(timeout=T)
    assert "log_result:after-failure" not in runs(rec)

    res = (add.s(2, "x") | mul.s(2) | mul.s(3))()
    with pytest.raises(TypeError):
        res.get(timeout=T)
    assert res.failed() and res.parent.parent.failed()


# -- The Primitives: the overview's examples ----------------------------------------------


def test_simple_chain(app):
    res = chain(add.s(2, 2), add.s(4), add.s(8))()  # 2 + 2 + 4 + 8
    assert res.get(timeout=T) == 16
    assert (add.s(2, 2) | add.s(4) | add.s(8))().get(timeout=T) == 16


def test_chain_of_immutable_signatures(app):
    res = (add.si(2, 2) | add.si(4, 4) | add.si(8, 8))()
    assert res.get(timeout=T) == 16
    assert res.parent.get(timeout=T) == 8
    assert res.parent.parent.get(timeout=T) == 4


def test_simple_group(app):
    res = group(add.s(i, i) for i in range(10))()
    assert res.get(timeout=T) == DOUBLES


def test_simple_chord(app):
    res = chord((add.s(i, i) for i in range(10)), tsum.s())()
    assert res.get(timeout=T) == 90


def test_chord_with_an_immutable_body(app, rec):
    contacts, import_id = ["ann", "bob", "cy"], "import-1"
    res = chord((import_contact.s(c) for c in contacts),
                notify_complete.si(import_id)).apply_async()
    assert res.get(timeout=T) == import_id
    done = [r for r in runs(rec) if r.startswith(("import_contact:", "notify_complete:"))]
    assert sorted(done[:3]) == [f"import_contact:{c}" for c in contacts]
    assert done[3:] == [f"notify_complete:{import_id}"]


def test_partial_chains_and_chains_of_chains(app):
    c1 = (add.s(4) | mul.s(8))
    assert c1(16).get(timeout=T) == 160  # (16 + 4) * 8
    c2 = (add.s(4, 16) | mul.s(2) | (add.s(4) | mul.s(8)))
    assert c2().get(timeout=T) == 352  # ((4 + 16) * 2 + 4) * 8


def test_group_piped_to_a_task_is_a_chord(app):
    c3 = (group(add.s(i, i) for i in range(10)) | tsum.s())
    assert isinstance(c3, chord)
    assert c3().get(timeout=T) == 90


def test_group_in_a_chain_gets_the_previous_result(app):
    new_user_workflow = (create_user.s() | group(
                         import_contacts.s(),
                         send_welcome_email.s()))
    res = new_user_workflow.delay(username="artv",
                                  first="Art",
                                  last="Vandelay",
                                  email="art@vandelay.com")
    assert res.get(timeout=T) == ["contacts of artv", "welcome artv"]


def test_group_of_immutable_signatures_in_a_chain(app):
    res = (add.s(4, 4) | group(add.si(i, i) for i in range(10)))()
    assert res.get(timeout=T) == DOUBLES
    assert res.parent.get(timeout=T) == 8


# -- Chains -------------------------------------------------------------------------------


def test_linked_task_is_a_child_and_collect_walks_the_graph(app):
    res = add.apply_async((2, 2), link=mul.s(16))
    assert res.get(timeout=T) == 4
    (child,) = _children(res)
    assert isinstance(child, AsyncResult)
    assert res.children[0].get(timeout=T) == 64  # mul(4, 16)
    assert list(res.collect()) == [(res, 4), (child, 64)]
    assert list(res.collect(intermediate=True)) == [(res, 4), (child, 64)]


def test_signature_linked_to_many_callbacks(app, rec):
    s = add.s(2, 2)
    s.link(mul.s(4))
    s.link(log_result.s())
    res = s.delay()
    assert res.get(timeout=T) == 4
    children = _children(res, 2)
    assert sorted(c.get(timeout=T) for c in children) == [4, 16]
    assert "log_result:4" in runs(rec)


def test_on_error_errback_gets_request_exception_and_traceback(app, rec):
    """An errback of ``(request, exc, traceback)`` is called by the worker with the failed
    task's request, its exception and traceback."""
    ok = add.s(2, 2).on_error(log_error.s()).delay()
    assert ok.get(timeout=T) == 4

    failed = [
        add.s(2, "x").on_error(log_error.s()).delay(),
        add.apply_async((2, "y"), link_error=log_error.s()),
        add.signature((2, "z"), link_error=log_error.s()).delay(),
    ]
    for res in failed:
        with pytest.raises(TypeError):
            res.get(timeout=T)
        call = _one_errback(rec, res.id, "log_error")
        assert call["exc"] == "TypeError" and "str" in call["text"], call
        assert isinstance(call["traceback"], str) and "TypeError" in call["traceback"], call
    add.delay(0, 0).get(timeout=T)
    assert errbacks(rec, ok.id) == []


def test_errback_of_one_argument_is_sent_the_failed_task_id(app, rec):
    res = add.apply_async((2, "x"), link_error=log_error_id.s())
    with pytest.raises(TypeError):
        res.get(timeout=T)
    call = _one_errback(rec, res.id, "log_error_id")
    assert call["exc"] == "TypeError", call


def test_chain_called_and_its_parents(app):
    c = chain(add.s(4, 4), mul.s(8), mul.s(10))  # (4 + 4) * 8 * 10
    assert repr(c) == "sysq_canvas.add(4, 4) | sysq_canvas.mul(8) | sysq_canvas.mul(10)"
    res = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert res.get(timeout=T) == 640
    assert res.parent.get(timeout=T) == 64
    assert res.parent.parent.get(timeout=T) == 8
    assert isinstance(res.parent.parent, AsyncResult)
    assert (add.s(2, 2) | mul.s(8) | mul.s(10)).apply_async().get(timeout=T) == 320


def test_chain_takes_the_task_id_for_its_last_task(app):
    """"A chain will inherit the task id of the last task in the chain"."""
    res = chain(add.s(4, 4), mul.s(8)).apply_async(task_id="chain-last-task")
    assert res.id == "chain-last-task"
    assert res.get(timeout=T) == 64
    assert app.AsyncResult("chain-last-task").get(timeout=T) == 64


def _chain_graph():
    res = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert res.get(timeout=T) == 640
    _children(res.parent)  # the whole graph is formed
    return res


def test_chain_result_graph(app):
    res = _chain_graph()
    first, second = res.parent.parent, res.parent
    graph = res.parent.parent.graph
    assert len(graph) == 3
    assert all(r in graph for r in (first, second, res))
    assert first.get_leaf() == 640


def test_results_travel_as_tuples_with_their_parents(app):
    res = (add.s(4, 4) | group(add.si(i, i) for i in range(3)))()
    again = result_from_tuple(json.loads(json.dumps(res.as_tuple())), app=app)
    assert isinstance(again, GroupResult) and again.id == res.id
    assert again.get(timeout=T) == [0, 2, 4]
    assert again.parent.id == res.parent.id and again.parent.get(timeout=T) == 8
    res = chain(add.s(4, 4), mul.s(8))()
    again = result_from_tuple(json.loads(json.dumps(res.as_tuple())), app=app)
    assert (again.get(timeout=T), again.parent.get(timeout=T)) == (64, 8)


def test_chain_result_graph_to_dot(app):
    res = _chain_graph()
    dot = io.StringIO()
    res.parent.parent.graph.to_dot(dot)
    assert all(r.id in dot.getvalue() for r in (res.parent.parent, res.parent, res)), \
        dot.getvalue()


# -- Groups -------------------------------------------------------------------------------


def test_group_called(app):
    g = group(add.s(2, 2), add.s(4, 4))
    res = g()
    assert isinstance(res, GroupResult)
    assert res.get(timeout=T) == [4, 8]
    assert group(add.s(i, i) for i in range(100))().get(timeout=T) == \
        [2 * i for i in range(100)]


def test_group_link_is_passed_down_not_given_the_group_result(app):
    """The linked ``add.s()`` does not get the group's results: it runs in the background
    and fails for want of its two arguments."""
    g = group(add.s(2, 2), add.s(4, 4))
    g.link(add.s())
    res = g()
    assert res.get(timeout=T) == [4, 8]
    wait_until(lambda: any(r.children for r in res.results), timeout=T,
               message="the linked signature was never sent")
    callbacks = [c for r in res.results for c in (r.children or ())]
    for c in callbacks:
        c.get(timeout=T, propagate=False)
        assert isinstance(c.result, TypeError), (c.state, c.result)


def test_group_errback_is_called_for_each_failed_task(app, rec):
    g = group(fail.s(), fail.s())
    g.link_error(log_error.s())
    res = g()
    res.join(timeout=T, propagate=False)
    assert res.failed() and not res.successful()
    for r in res.results:
        call = _one_errback(rec, r.id, "log_error")
        assert (call["exc"], call["text"]) == ("ValueError", "fail"), call


def test_group_result_operations(app):
    job = group([
        add.s(2, 2),
        add.s(4, 4),
        add.s(8, 8),
        add.s(16, 16),
        add.s(32, 32),
    ])
    result = job.apply_async()
    assert result.join(timeout=T) == [4, 8, 16, 32, 64]
    assert result.ready()  # have all subtasks completed?
    assert result.successful()  # were all subtasks successful?
    assert result.get(timeout=T) == [4, 8, 16, 32, 64]
    assert not result.failed() and not result.waiting()
    assert result.completed_count() == 5
    assert result.join_native(timeout=T) == [4, 8, 16, 32, 64]


def test_group_result_while_a_task_is_waiting(app, rec):
    result = group(add.s(1, 1), gate.s("waiting")).apply_async()
    wait_until(lambda: result.completed_count() == 1, timeout=T,
               message="add(1, 1) did not complete")
    assert result.waiting() and not result.ready()
    assert not result.successful() and not result.failed()
    rec.rpush("gate:waiting", "open")
    assert result.join(timeout=T) == [2, "waiting"]
    assert result.ready() and not result.waiting() and result.completed_count() == 2


def test_group_result_with_a_failed_task(app):
    result = group(add.s(1, 1), raising_task.s(), add.s(2, 2)).apply_async()
    values = result.join(timeout=T, propagate=False)
    assert values[0] == 2 and values[2] == 4 and isinstance(values[1], ValueError)
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 2  # "complete" means successful here
    with pytest.raises(ValueError, match="something something"):
        result.get(timeout=T)


def test_group_result_revoke_revokes_every_task(app):
    from multiq.exceptions import TaskRevokedError

    result = group(add.s(i, i) for i in range(3)).apply_async(countdown=2)
    result.revoke()
    values = result.join(timeout=T, propagate=False)
    assert all(isinstance(v, TaskRevokedError) for v in values), values
    assert [r.state for r in result.results] == ["REVOKED"] * 3


def test_group_result_save_and_restore(app):
    result = group(add.s(i, i) for i in range(3)).apply_async()
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored.id == result.id
    assert [r.id for r in restored.results] == [r.id for r in result.results]
    assert restored.get(timeout=T) == [0, 2, 4]


def test_group_of_one_is_unrolled_in_a_chain(app):
    assert repr(chain(add.s(2, 2), group(add.s(1)), add.s(1))) == \
        "sysq_canvas.add(2, 2) | sysq_canvas.add(1) | sysq_canvas.add(1)"
    assert repr(chain(group(add.s(1, 1)), add.s(2))) == "sysq_canvas.add(1, 1) | sysq_canvas.add(2)"
    assert chain(add.s(2, 2), group(add.s(1)), add.s(1))().get(timeout=T) == 6
    assert chain(group(add.s(1, 1)), add.s(2))().get(timeout=T) == 4


def test_group_of_two_in_a_chain_passes_a_list(app):
    res = chain(add.s(2, 2), group(add.s(1), add.s(2)), add.s(1))()  # add([5, 6], 1)
    with pytest.raises(TypeError, match="list"):
        res.get(timeout=T)
    assert chain(add.s(2, 2), group(add.s(1), add.s(2)), tsum.s())().get(timeout=T) == 11


# -- Chords -------------------------------------------------------------------------------


def test_chord_sums_a_hundred_additions(app):
    assert chord(add.s(i, i)
                 for i in range(100))(tsum.s()).get(timeout=T) == 9900

    callback = tsum.s()
    header = [add.s(i, i) for i in range(100)]
    result = chord(header)(callback)
    assert result.get(timeout=T) == 9900
    assert sum(i + i for i in range(100)) == 9900


def test_chord_error_names_the_failed_task(app):
    """The guide's chord has no body (Celery cannot run it either): ``tsum.s()`` is added.
    The rest of the header still runs."""
    c = chord([add.s(4, 4), raising_task.s(), add.s(8, 8)], tsum.s())
    result = c()
    with pytest.raises(ChordError) as raised:
        result.get(timeout=T)
    header = result.parent
    failed_id = header.results[1].id
    assert failed_id in str(raised.value), str(raised.value)
    assert "ValueError('something something')" in str(raised.value), str(raised.value)
    assert result.failed() and isinstance(result.result, ChordError)
    assert result.traceback
    assert header.results[0].get(timeout=T) == 8
    assert header.results[2].get(timeout=T) == 16  # still executed


def test_chord_errback_runs_when_the_header_fails(app, rec):
    c = (group(add.s(i, i) for i in range(10)) |
         tsum.s().on_error(on_chord_error.s())).delay()
    assert c.get(timeout=T) == 90
    add.delay(0, 0).get(timeout=T)
    assert errbacks(rec, c.id) == []

    c = (group([add.s(1, 1), raising_task.s(), add.s(2, 2)]) |
         tsum.s().on_error(on_chord_error.s())).delay()
    with pytest.raises(ChordError):
        c.get(timeout=T)
    call = _one_errback(rec, c.id, "on_chord_error")
    assert call["exc"] == "ChordError", call
    assert c.parent.results[1].id in call["text"], call


def test_chord_errback_of_one_argument_is_sent_the_callback_id(app, rec):
    c = (group([add.s(1, 1), raising_task.s()]) |
         tsum.s().on_error(log_error_id.s())).delay()
    with pytest.raises(ChordError):
        c.get(timeout=T)
    call = _one_errback(rec, c.id, "log_error_id")
    assert call["exc"] == "ChordError", call


def test_chord_link_and_link_error_are_called_once(app, rec):
    c = chord([add.s(i, i) for i in range(7)], tsum.s())
    c.link(log_result.s())
    res = c()
    assert res.get(timeout=T) == 42
    (child,) = _children(res)
    assert child.get(timeout=T) == 42
    assert runs(rec).count("log_result:42") == 1

    c = chord([raising_task.s(), fail.s(), add.s(1, 1)], tsum.s())
    c.link_error(on_chord_error.s())
    res = c()
    with pytest.raises(ChordError):
        res.get(timeout=T)
    _one_errback(rec, res.id, "on_chord_error")  # once, though two header tasks failed

    c = chord([add.s(1, 1), add.s(2, 2)], raising_task.si())  # the body fails
    c.link_error(on_chord_error.s())
    res = c()
    with pytest.raises(ValueError, match="something something"):
        res.get(timeout=T)
    call = _one_errback(rec, res.id, "on_chord_error")
    assert call["exc"] == "ValueError", call


def test_empty_group_and_empty_chord(app):
    app.set_current()  # a group of nothing has no task to take its app from
    assert group([])().get(timeout=T) == []
    assert chord([], tsum.s())().get(timeout=T) == 0  # the body gets []


# -- Combinations -------------------------------------------------------------------------


def test_chain_of_groups(app):
    """group | group: each task of the second gets the list of the first's results."""
    res = chain(group(add.s(1, 1), add.s(2, 2)), group(xsum.s(), tsum.s()))()
    assert res.get(timeout=T) == [6, 6]
    res = (group(add.s(1, 1), add.s(2, 2)) | group(xsum.s(), tsum.s()) | tsum.s())()
    assert res.get(timeout=T) == 12


def test_group_of_chains_and_chord_of_chains(app):
    chains = [add.s(i, i) | mul.s(10) for i in (1, 2, 3)]
    assert group(chains)().get(timeout=T) == [20, 40, 60]
    assert chord([add.s(i, i) | mul.s(10) for i in (1, 2, 3)], tsum.s())().get(timeout=T) == 120


def test_chord_in_a_chain(app):
    res = (add.s(1, 1) | chord([add.s(1), add.s(2)], tsum.s()) | mul.s(10))()
    assert res.get(timeout=T) == 70  # (2 + 1) + (2 + 2), times 10


def test_chord_with_a_chain_as_body(app):
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s() | mul.s(10))().get(timeout=T) == 60


def test_chord_fails_when_a_chain_in_its_header_fails(app):
    """The failed step may be the chain's last or one whose next steps never run: the
    chord fails with ChordError either way, it does not wait for them."""
    for failing in (add.s(1, 1) | raising_task.si(), add.s(1, "x") | mul.s(2) | mul.s(3)):
        res = chord([failing, add.s(2, 2)], tsum.s())()
        with pytest.raises(ChordError):
            res.get(timeout=T)


def test_chord_of_chords(app):
    inner = [chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
             chord([add.s(3, 3), add.s(4, 4)], tsum.s())]
    assert chord(inner, tsum.s())().get(timeout=T) == 20


# -- Map & Starmap, Chunks ----------------------------------------------------------------


def test_map_is_one_task_applying_each_item(app):
    assert ~tsum.map([list(range(10)), list(range(100))]) == [45, 4950]
    res = tsum.map([list(range(10)), list(range(100))]).delay()
    assert not isinstance(res, GroupResult)
    assert res.get(timeout=T) == [45, 4950]


def test_starmap_applies_star_args_and_takes_options(app):
    assert ~add.starmap(zip(range(10), range(10))) == DOUBLES
    started = time.monotonic()  # the guide's countdown is 10 s; 1 s shows the same
    res = add.starmap(zip(range(10), range(10))).apply_async(countdown=1)
    assert res.get(timeout=T) == DOUBLES
    assert _elapsed(started) >= 0.95


def test_chunks_called_applied_and_as_a_group(app):
    res = add.chunks(zip(range(100), range(100)), 10)()
    assert res.get(timeout=T) == CHUNKS
    res = add.chunks(zip(range(100), range(100)), 10).apply_async()
    assert res.get(timeout=T) == CHUNKS
    g = add.chunks(zip(range(100), range(100)), 10).group()
    assert isinstance(g, group) and len(g.tasks) == 10
    assert g().get(timeout=T) == CHUNKS


def test_chunks_group_skewed(app):
    group = add.chunks(zip(range(100), range(100)), 10).group()
    group.skew(start=1, stop=10)
    countdowns = [t.options["countdown"] for t in group.tasks]
    assert countdowns[:3] == [1, 2, 3] and countdowns == sorted(countdowns)
    started = time.monotonic()  # a tenth of the guide's skew keeps the module fast
    assert group.skew(start=0.1, step=0.1)().get(timeout=T) == CHUNKS
    assert _elapsed(started) >= 0.95


# -- From the tasks guide: the request's chain and callbacks, replace ---------------------


def test_request_chain_holds_the_next_tasks_reversed(app):
    res = (request_info.s() | identity.s() | echo.s())()
    assert res.get(timeout=T) == {"chain": ["sysq_canvas.echo", "sysq_canvas.identity"],
                                  "callbacks": []}


def test_request_callbacks_hold_the_linked_signatures(app):
    res = request_info.apply_async(link=identity.s())
    assert res.get(timeout=T) == {"chain": [], "callbacks": ["sysq_canvas.identity"]}


def test_replace_with_a_signature_or_a_chain(app):
    assert replace_with_mul.delay(3, 4).get(timeout=T) == 12
    assert (add.s(1, 1) | replace_with_mul.s(10) | add.s(1))().get(timeout=T) == 21
    assert replace_with_chain.delay(4).get(timeout=T) == 10  # (4 + 1) * 2
    assert (replace_with_chain.s(4) | mul.s(10))().get(timeout=T) == 100


def test_replace_keeps_the_callbacks_and_works_in_a_chord_header(app):
    res = replace_with_mul.apply_async((3, 4), link=log_result.s())
    assert res.get(timeout=T) == 12
    (child,) = _children(res)
    assert child.get(timeout=T) == 12
    assert chord([replace_with_mul.s(2, 3), add.s(1, 1)], tsum.s())().get(timeout=T) == 8


def test_replace_with_a_group(app):
    assert replace_with_group.delay(4).get(timeout=T) == [0, 2, 4, 6]
    assert (replace_with_group.s(3) | tsum.s())().get(timeout=T) == 6


def test_signature_travels_as_a_dict(app):
    """A signature "can be passed to functions or even serialized and sent across the
    wire": the dict it is rebuilds it."""
    sig = signature(json.loads(json.dumps(add.s(2, 2).set(countdown=0))), app=app)
    assert repr(sig) == "sysq_canvas.add(2, 2)"
    assert sig.delay().get(timeout=T) == 4
