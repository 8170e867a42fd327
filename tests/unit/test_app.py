"""Unit tests for the MultiQ app: task registration, configuration, laziness and routing.

No Redis is needed: sending is observed through a stand-in broker (see ``sent``).
"""
from __future__ import annotations

import socket
import sys
import types
import uuid
import warnings
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from helpers import free_port

from multiq import MultiQ, Task, shared_task
from multiq.config import UnknownSettingWarning
from multiq.exceptions import OperationalError
from multiq.message import decode

# -- helpers -----------------------------------------------------------------------------------


def make_app(**settings: Any) -> MultiQ:
    settings.setdefault("broker", "redis://127.0.0.1:1/0")
    return MultiQ("unit", **settings)


def named(fun: Any, module: str) -> Any:
    """``fun`` as if it were defined in ``module``."""
    fun.__module__ = module
    return fun


class StubBroker:
    """Records what the app publishes instead of talking to Redis."""

    def __init__(self) -> None:
        self.published: List[Tuple[str, bytes, Dict[str, Any]]] = []

    def publish(self, queue: str, data: bytes, **options: Any) -> None:
        self.published.append((queue, data, options))

    def close(self) -> None:
        pass


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> StubBroker:
    stub = StubBroker()
    monkeypatch.setattr(MultiQ, "broker", property(lambda self: stub))
    return stub


def sent(broker: StubBroker) -> List[Tuple[str, Any]]:
    """(queue, decoded message) of everything published so far."""
    return [(queue, decode(data, ["json"])) for queue, data, _ in broker.published]


# -- task naming and options ---------------------------------------------------------------------


def test_default_task_name_is_module_dot_function() -> None:
    app = make_app()

    def add(x: int, y: int) -> int:
        return x + y

    task = app.task(named(add, "proj.tasks"))
    assert task.name == "proj.tasks.add"
    assert app.tasks["proj.tasks.add"] is task
    assert isinstance(task, Task)
    assert task(2, 3) == 5  # calling the task runs the function here


def test_task_of_main_module_is_named_after_the_app() -> None:
    app = MultiQ("celery_demo", broker="redis://127.0.0.1:1/0")

    def ping() -> str:
        return "pong"

    assert app.task(named(ping, "__main__")).name == "celery_demo.ping"


def test_name_option() -> None:
    app = make_app()

    @app.task(name="加法运算")
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == "加法运算"
    assert app.tasks["加法运算"] is add
    assert add(1, 2) == 3


def test_task_options_become_attributes() -> None:
    app = make_app()

    @app.task(max_retries=7, default_retry_delay=5, rate_limit="10/s", ignore_result=True,
              queue="images", acks_late=True)
    def job() -> None:
        pass

    assert job.max_retries == 7
    assert job.default_retry_delay == 5
    assert job.rate_limit == "10/s"
    assert job.ignore_result is True
    assert job.queue == "images"
    assert job.acks_late is True


def test_task_defaults_follow_the_spec() -> None:
    app = make_app()

    @app.task
    def job() -> None:
        pass

    assert job.max_retries == 3
    assert job.default_retry_delay == 180


def test_bind_passes_the_task_as_self() -> None:
    app = make_app()
    seen: Dict[str, Any] = {}

    @app.task(bind=True, name="减法运算")
    def sub(self: Task, x: int, y: int) -> int:
        seen["self"] = self
        seen["id"] = self.request.id
        seen["args"] = list(self.request.args)
        return x - y

    assert sub(5, 3) == 2
    assert seen["self"] is sub
    result = sub.apply((111, 222), task_id="t-1")
    assert result.get() == -111
    assert seen["self"] is sub
    assert seen["id"] == "t-1"
    assert seen["args"] == [111, 222]


def test_base_class_hooks_are_used() -> None:
    app = make_app()
    calls: List[Tuple[str, Any]] = []

    class MyTask(Task):
        custom = "yes"

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("success", retval))

        def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                       einfo: Any) -> None:
            calls.append(("failure", type(exc)))

    @app.task(name="地灵殿", base=MyTask)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(base=MyTask)
    def boom() -> None:
        raise KeyError("x")

    assert isinstance(add, MyTask) and add.custom == "yes"
    assert add.apply((1, 2)).get() == 3
    boom.apply()
    assert calls == [("success", 3), ("failure", KeyError)]


def test_app_task_cls_is_the_default_base() -> None:
    class Base(Task):
        marker = True

    app = MultiQ("unit", broker="redis://127.0.0.1:1/0", task_cls=Base)

    @app.task
    def job() -> None:
        pass

    assert isinstance(job, Base)


# -- shared_task ---------------------------------------------------------------------------------


@pytest.fixture
def forget_shared_tasks() -> Iterator[None]:
    """Shared tasks go to every app made later in this process: drop ours afterwards so
    that other tests' apps do not carry them."""
    import multiq.app as app_module

    registry = getattr(app_module, "_shared_tasks", None)
    saved = list(registry) if isinstance(registry, list) else None
    yield
    if saved is not None and isinstance(registry, list):
        registry[:] = saved


@pytest.mark.usefixtures("forget_shared_tasks")
def test_shared_task_registers_in_apps_made_before_and_after() -> None:
    before = make_app()
    unique = f"shared_{uuid.uuid4().hex}"

    def shared(x: int) -> int:
        return x * 2

    shared.__name__ = shared.__qualname__ = unique
    proxy = shared_task(named(shared, "libpkg.tasks"))
    name = f"libpkg.tasks.{unique}"
    assert name in before.tasks

    after = make_app()
    assert name in after.tasks
    assert before.tasks[name] is not after.tasks[name]
    assert before.tasks[name].app is before and after.tasks[name].app is after
    # the proxy stands for the task of the current (latest) app
    assert proxy.name == name
    assert proxy.app is after
    assert proxy(21) == 42


@pytest.mark.usefixtures("forget_shared_tasks")
def test_shared_task_with_options() -> None:
    unique = f"lib.shared.{uuid.uuid4().hex}"

    @shared_task(name=unique, bind=True, max_retries=1)
    def job(self: Task) -> str:
        return self.name

    app = make_app()
    assert app.tasks[unique].max_retries == 1
    assert app.tasks[unique].apply().get() == unique


# -- configuration -------------------------------------------------------------------------------


def test_constructor_settings_and_conf_update() -> None:
    app = MultiQ("proj", broker="redis://h:1/1", backend="redis://h:1/2",
                 task_default_queue="work")
    assert app.conf.broker_url == "redis://h:1/1"
    assert app.conf.result_backend == "redis://h:1/2"
    assert app.conf.task_default_queue == "work"
    app.conf.update(task_serializer="msgpack", result_expires=60)
    app.conf.update({"worker_concurrency": 3})
    assert app.conf.task_serializer == "msgpack"
    assert app.conf["result_expires"] == 60
    assert app.conf.worker_concurrency == 3
    assert app.conf.accept_content == ["json"]  # untouched defaults stay


def test_config_from_object_with_an_object() -> None:
    class Config:
        broker_url = "redis://cfg:1/1"
        result_backend = "redis://cfg:1/2"
        task_always_eager = True

    app = MultiQ("proj")
    app.config_from_object(Config)
    assert app.conf.broker_url == "redis://cfg:1/1"
    assert app.conf.result_backend == "redis://cfg:1/2"
    assert app.conf.task_always_eager is True


@pytest.fixture
def config_module(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"unit_cfg_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    module.broker_url = "redis://mod:1/1"  # type: ignore[attr-defined]
    module.result_backend = "redis://mod:1/2"  # type: ignore[attr-defined]
    module.MULTIQ_BROKER_URL = "redis://ns:1/1"  # type: ignore[attr-defined]
    module.MULTIQ_TASK_DEFAULT_QUEUE = "ns-queue"  # type: ignore[attr-defined]

    class Settings:
        broker_url = "redis://attr:1/1"
        task_acks_late = True

    module.Settings = Settings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return name


def test_config_from_object_with_a_module_name(config_module: str) -> None:
    app = MultiQ("proj")
    app.config_from_object(config_module)
    assert app.conf.broker_url == "redis://mod:1/1"
    assert app.conf.result_backend == "redis://mod:1/2"


def test_config_from_object_with_module_and_attribute(config_module: str) -> None:
    app = MultiQ("proj")
    app.config_from_object(f"{config_module}:Settings")
    assert app.conf.broker_url == "redis://attr:1/1"
    assert app.conf.task_acks_late is True


def test_config_from_object_with_a_namespace(config_module: str) -> None:
    app = MultiQ("proj")
    app.config_from_object(config_module, namespace="MULTIQ")
    assert app.conf.broker_url == "redis://ns:1/1"
    assert app.conf.task_default_queue == "ns-queue"
    assert app.conf.result_backend is None  # un-prefixed names are not read


def test_config_from_object_with_a_missing_module() -> None:
    app = MultiQ("proj")
    with pytest.raises(ImportError):
        app.config_from_object(f"no_such_module_{uuid.uuid4().hex}")
    app.config_from_object(f"no_such_module_{uuid.uuid4().hex}", silent=True)


def test_unknown_setting_warns_with_the_closest_name() -> None:
    with pytest.warns(UnknownSettingWarning, match="did you mean 'result_backend'"):
        MultiQ("proj", result_backed="redis://h/2")
    app = MultiQ("proj")
    with pytest.warns(UnknownSettingWarning, match="did you mean 'task_serializer'"):
        app.conf.update(task_serialiser="json")

    class Config:
        task_acks_lates = True

    with pytest.warns(UnknownSettingWarning, match="did you mean 'task_acks_late'"):
        app.config_from_object(Config)


def test_known_settings_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = MultiQ("proj", broker="redis://h/1", backend="redis://h/2",
                     task_routes={"a": "b"}, worker_prefetch_multiplier=1)
        app.conf.update(task_always_eager=True)


# -- laziness --------------------------------------------------------------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """Addresses that sockets were asked to connect to (the connection still happens)."""
    seen: List[Any] = []
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def test_creating_an_app_and_tasks_opens_no_connection(connects: List[Any]) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/1"
    app = MultiQ("lazy", broker=url, backend=f"redis://127.0.0.1:{port}/2",
                 task_publish_retry=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True, name="lazy.bound")
    def bound(self: Task) -> None:
        pass

    assert app.conf.broker_url == url
    sig = add.s(1, 2)
    assert sig.task == add.name
    handle = app.AsyncResult("some-id")
    assert handle.id == "some-id"
    assert add(1, 2) == 3
    assert add.apply((1, 2)).get() == 3
    assert connects == []

    with pytest.raises(OperationalError):
        add.delay(1, 2)
    assert connects, "sending must have tried to connect"
    assert any(getattr(a, "__getitem__", None) and a[1] == port for a in connects)


# -- routing ---------------------------------------------------------------------------------


def _app_with_tasks(**settings: Any) -> Tuple[MultiQ, Any, Any, Any]:
    app = make_app(**settings)

    def resize() -> None:
        pass

    def send_mail() -> None:
        pass

    def other() -> None:
        pass

    return (app, app.task(named(resize, "proj.images")), app.task(named(send_mail, "proj.mail")),
            app.task(named(other, "proj.misc")))


def test_routes_dict_exact_and_glob(broker: StubBroker) -> None:
    app, resize, send_mail, other = _app_with_tasks(task_routes={
        "proj.images.*": {"queue": "images"},
        "proj.mail.send_mail": "mail",
    })
    resize.delay()
    send_mail.delay()
    other.delay()
    queues = [(q, m.task) for q, m in sent(broker)]
    assert queues == [
        ("images", "proj.images.resize"),
        ("mail", "proj.mail.send_mail"),
        ("multiq", "proj.misc.other"),
    ]
    assert [m.queue for _, m in sent(broker)] == ["images", "mail", "multiq"]


def test_explicit_queue_beats_the_route(broker: StubBroker) -> None:
    app, resize, _, other = _app_with_tasks(task_routes={"proj.images.*": "images"})
    resize.apply_async(queue="urgent")
    app.send_task("proj.images.resize")  # by name, from a client without the code
    other.apply_async(queue="urgent")
    assert [q for q, _ in sent(broker)] == ["urgent", "images", "urgent"]


def test_routes_callable_and_list_first_match_wins(broker: StubBroker) -> None:
    calls: List[Tuple[Any, ...]] = []

    def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
                   **kw: Any) -> Any:
        calls.append((name, args, kwargs, task))
        if name.startswith("proj.mail"):
            return {"queue": "mail", "priority": 7}
        return None

    app, resize, send_mail, other = _app_with_tasks(task_routes=[
        route_task,
        {"proj.*": "fallback"},
    ])
    send_mail.apply_async(("a@b",), {"subject": "hi"})
    resize.delay()
    queues = [(q, m.task, m.priority) for q, m in sent(broker)]
    assert queues == [("mail", "proj.mail.send_mail", 7),
                      ("fallback", "proj.images.resize", None)]
    assert calls[0][:3] == ("proj.mail.send_mail", ("a@b",), {"subject": "hi"})
    assert calls[0][3] is send_mail


def test_default_queue_setting(broker: StubBroker) -> None:
    _, _, _, other = _app_with_tasks(task_default_queue="work")
    other.delay()
    assert [q for q, _ in sent(broker)] == ["work"]


def test_task_queue_option(broker: StubBroker) -> None:
    app = make_app()

    @app.task(queue="images")
    def resize() -> None:
        pass

    resize.delay()
    assert [q for q, _ in sent(broker)] == ["images"]


# -- annotations ---------------------------------------------------------------------------------


def test_task_annotations_star_and_by_name() -> None:
    app = make_app(task_annotations={
        "*": {"rate_limit": "10/s", "max_retries": 9},
        "proj.images.resize": {"rate_limit": "1/m"},
    })

    def resize_fn() -> None:
        pass

    def mail_fn() -> None:
        pass

    resize_fn.__name__ = "resize"
    mail_fn.__name__ = "send_mail"
    a_resize = app.task(named(resize_fn, "proj.images"))
    a_mail = app.task(named(mail_fn, "proj.mail"))
    app.finalize()
    assert a_mail.rate_limit == "10/s" and a_mail.max_retries == 9
    assert a_resize.rate_limit == "1/m"  # the task's own entry beats "*"
    assert a_resize.max_retries == 9

    @app.task
    def later() -> None:  # defined after finalize: annotated too
        pass

    assert later.rate_limit == "10/s"


def test_task_annotations_list_of_mappings() -> None:
    app = make_app(task_annotations=[{"*": {"acks_late": True}},
                                     {"unit.job": {"time_limit": 5}}])

    @app.task(name="unit.job")
    def job() -> None:
        pass

    app.finalize()
    assert job.acks_late is True
    assert job.time_limit == 5



# -- the clients a prefork node builds for its children ------------------------------------


def test_spares_are_built_unconnected_and_adopted_when_settings_are_unchanged() -> None:
    app = make_app(backend="redis://127.0.0.1:1/1")  # nothing listens: no connection made
    spares = app._spares()
    assert spares.broker is not None and spares.broker is not app.broker
    assert spares.backend is not None and spares.backend is not app.backend
    app._reset_connections()  # as a forked child does
    app._adopt(spares)
    assert app.broker is spares.broker and app.backend is spares.backend


def test_spares_are_not_adopted_after_a_settings_change_or_over_a_built_client() -> None:
    app = make_app(backend="redis://127.0.0.1:1/1")
    spares = app._spares()
    app._reset_connections()
    app.conf.broker_transport_options = {"global_keyprefix": "other"}  # a worker_process_init hook
    app._adopt(spares)
    assert app.broker is not spares.broker and app.broker.keys.prefix.startswith("other")
    assert app.backend is not spares.backend

    app = make_app()
    spares = app._spares()
    assert spares.backend is None  # no result backend configured: none built
    app._reset_connections()
    own = app.broker  # made before the spares were offered
    app._adopt(spares)
    assert app.broker is own
