"""Flask's "background tasks" pattern with multiq: a base task whose ``__call__`` pushes the
Flask app context (``task_cls=``), ``set_default()``, ``config_from_object(app.config[...])``
and ``shared_task`` tasks that read ``flask.current_app``.

The system tests run the example in examples/flask: a real ``multiq -A
make_multiq:multiq_app worker`` of each pool kind, and the Flask test client on the views
that send a task and report its result.
"""
from __future__ import annotations

import secrets
import sys
import threading
from typing import Any, Dict, Iterator, List

import pytest
from helpers import REPO_ROOT, wait_until

import multiq.app as app_mod
from multiq import MultiQ, Task, shared_task
from multiq import _state as state
from multiq.app import current_app
from multiq.exceptions import ImproperlyConfigured
from multiq.result import AsyncResult
from multiq.task import Context
from multiq.trace import trace

EXAMPLE = REPO_ROOT / "examples" / "flask"


@pytest.fixture(autouse=True)
def _own_app_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Apps, shared tasks, the default and the example's modules made here stay here."""
    monkeypatch.setattr(state, "apps", list(state.apps))
    monkeypatch.setattr(state, "chosen", [])
    monkeypatch.setattr(app_mod, "_shared_tasks", list(app_mod._shared_tasks))
    current = getattr(app_mod._state, "current", None)
    modules = set(sys.modules)
    try:
        yield
    finally:
        app_mod._state.current = current
        for name in set(sys.modules) - modules:
            if name == "task_app" or name.startswith("task_app.") or name == "make_multiq":
                del sys.modules[name]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example's ``task_app`` package, importable here."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import task_app
    return task_app


def _in_thread(fun: Any) -> Any:
    """``fun()`` run in a new thread (one with no current app of its own), its value."""
    out: List[Any] = []
    thread = threading.Thread(target=lambda: out.append(fun()))
    thread.start()
    thread.join(10)
    assert out, "the thread did not finish"
    return out[0]


# -- __call__ overrides: worker trace and eager calls --------------------------------


class _Marking(Task):
    """Runs the task with a marker in its request; the task returns what it saw."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.request.marked = True
        return super().__call__(*args, **kwargs)


class _Inherits(_Marking):
    """A subclass of an overriding base: the override still applies."""


class _Mixin:
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.request.marked = True
        return self.run(*args, **kwargs)  # type: ignore[attr-defined]


class _Mixed(_Mixin, Task):
    """An override from a mixin before Task in the MRO."""


@pytest.mark.timeout(20)
@pytest.mark.parametrize("base", [_Marking, _Inherits, _Mixed])
def test_worker_runs_a_task_through_its_base_class_call(base: type) -> None:
    app = MultiQ("flask_unit", set_as_current=False)

    @app.task(base=base, bind=True)
    def seen(self: Task, x: int) -> Any:
        return (x, self.request.get("marked", False))

    outcome = trace(seen, Context(id="t1", task=seen.name, args=[7], kwargs={},
                                  called_directly=False))
    assert (outcome.state, outcome.retval) == ("SUCCESS", (7, True))


@pytest.mark.timeout(20)
def test_plain_task_is_run_without_going_through_call(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hooked(Task):  # hooks, but no __call__ of its own
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            self.request.hooked = True

    app = MultiQ("flask_unit", set_as_current=False)

    @app.task(base=Hooked, bind=True)
    def plain(self: Task) -> Any:
        return self.request.get("hooked", False)

    calls: List[Any] = []

    def spy(self: Task, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return self.run(*args, **kwargs)

    monkeypatch.setattr(Task, "__call__", spy)
    outcome = trace(plain, Context(id="t2", task=plain.name, args=[], kwargs={},
                                   called_directly=False))
    assert (outcome.state, outcome.retval) == ("SUCCESS", True)
    assert plain.apply().get() is True
    assert calls == []


@pytest.mark.timeout(20)
def test_eager_calls_run_the_flask_task_inside_the_app_context(example: Any) -> None:
    import flask

    web = flask.Flask("eager_web")
    web.config.from_mapping(MULTIQ={"task_always_eager": True}, GREETING="Salut")
    multiq_app = example.multiq_init_app(web)
    from task_app import tasks

    assert web.extensions["multiq"] is multiq_app
    assert tasks.greet.app is multiq_app
    assert tasks.greet.delay("Ana").get() == "Salut, Ana!"
    assert tasks.greet.apply(("Bo",)).get() == "Salut, Bo!"
    assert not flask.has_app_context()


# -- task_cls, app.Task, set_default -------------------------------------------------


@pytest.mark.timeout(20)
def test_task_cls_by_name_is_the_base_of_the_apps_tasks(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flask_unit_bases.py").write_text(
        "from multiq import Task\n\n"
        "class Base(Task):\n"
        "    def __call__(self, *args, **kwargs):\n"
        "        return ('base', self.run(*args, **kwargs))\n\n"
        "class Other(Task):\n"
        "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = MultiQ("flask_unit", task_cls="flask_unit_bases:Base", set_as_current=False)
    import flask_unit_bases

    assert issubclass(app.Task, flask_unit_bases.Base) and app.Task.app is app

    @app.task
    def double(x: int) -> int:
        return 2 * x

    @shared_task
    def triple(x: int) -> int:
        return 3 * x

    made = app.tasks[triple.name]
    assert isinstance(double, app.Task) and isinstance(made, app.Task)
    assert double.apply((2,)).get() == ("base", 4)
    assert made.apply((2,)).get() == ("base", 6)

    app.Task = flask_unit_bases.Other

    @app.task
    def plain(x: int) -> int:
        return x

    assert isinstance(plain, flask_unit_bases.Other) and plain.apply((5,)).get() == 5


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("task_cls", "error", "text"), [
    ("multiq.app:MultiQ", ImproperlyConfigured, "not a subclass of multiq.Task"),
    (dict, ImproperlyConfigured, "not a subclass of multiq.Task"),
    ("Base", ImproperlyConfigured, "is not 'module:Class'"),
    ("no_such_module_here:Base", ImproperlyConfigured, "cannot be imported.*no_such_module"),
    ("multiq.task:NoSuchClass", ImproperlyConfigured, "cannot be imported.*NoSuchClass"),
])
def test_task_cls_that_is_no_task_class_is_a_clear_error(task_cls: Any, error: type,
                                                         text: str) -> None:
    with pytest.raises(error, match=text):  # at the first task, or at once if shared
        app = MultiQ("flask_unit", task_cls=task_cls, set_as_current=False)  # tasks exist
        app.task(lambda: None)


@pytest.mark.timeout(20)
def test_set_default_chooses_the_app_of_threads_without_one_of_their_own() -> None:
    @shared_task(name="flask_unit.ping")
    def ping() -> str:
        return "pong"

    chosen = MultiQ("flask_chosen")
    later = MultiQ("flask_later")  # made last: current here, and elsewhere by default
    assert _in_thread(current_app) is later

    chosen.set_default()
    assert _in_thread(current_app) is chosen
    assert _in_thread(lambda: ping.app) is chosen
    assert _in_thread(lambda: AsyncResult("some-id").app) is chosen
    assert current_app() is later  # this thread's own current app still comes first


# -- the example against real workers --------------------------------------------------


@pytest.fixture
def web(example: Any, monkeypatch: pytest.MonkeyPatch, redis_url: str,
        backend_url: str) -> Iterator[Any]:
    """The example's Flask app, configured (as its README says) through FLASK_ variables."""
    monkeypatch.setenv("FLASK_MULTIQ__broker_url", redis_url)
    monkeypatch.setenv("FLASK_MULTIQ__result_backend", backend_url)
    monkeypatch.setenv("FLASK_GREETING", "Hello from the web process")
    flask_app = example.create_app()
    try:
        yield flask_app
    finally:
        flask_app.extensions["multiq"].close()


def _result(client: Any, result_id: str) -> Dict[str, Any]:
    def ready() -> Any:
        body = client.get(f"/tasks/result/{result_id}").get_json()
        return body if body["ready"] else None
    return wait_until(ready, timeout=45, interval=0.1,
                      message=f"task {result_id} has no result through the view")


@pytest.mark.system
@pytest.mark.timeout(120)
@pytest.mark.parametrize("pool", ["solo", "prefork", "threads"])
def test_flask_views_send_tasks_a_worker_runs_in_the_app_context(
        pool: str, web: Any, start_worker: Any, redis_url: str, backend_url: str) -> None:
    greeting = f"Bonjour-{secrets.token_hex(4)}"  # the worker's own configuration
    worker = start_worker(
        "make_multiq:multiq_app", "-c", "2", cwd=EXAMPLE, pool=pool, timeout=60,
        env={"FLASK_MULTIQ__broker_url": redis_url, "FLASK_MULTIQ__result_backend": backend_url,
             "FLASK_GREETING": greeting, "PYTHONDONTWRITEBYTECODE": "1",
             # empty: the URLs can only come from the Flask configuration
             "MULTIQ_BROKER_URL": "", "MULTIQ_RESULT_BACKEND": ""})
    client = web.test_client()

    greet = client.post("/tasks/greet", data={"name": "Ada"}).get_json()
    add = client.post("/tasks/add", data={"a": "2", "b": "3"}).get_json()

    assert _result(client, greet["result_id"]) == {
        "ready": True, "successful": True, "value": f"{greeting}, Ada!", "error": None}, \
        worker.log()
    assert _result(client, add["result_id"]) == {
        "ready": True, "successful": True, "value": 5, "error": None}, worker.log()
