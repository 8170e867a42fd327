"""Seed tutorial 000 ("使用 celery 实现任务调度"), done with multiq as a user would.

The tutorial's project ``celery_demo/`` is written into ``tmp_path`` with only the names
changed (``celery`` → ``multiq``, ``Celery(`` → ``MultiQ(``), the broker and backend URLs
pointing at the test Redis (db 1 and db 2, as in the tutorial) and ``time.sleep(3)``
shortened to 0.5 s (but where delay() is timed against it). Workers are started from the
command line as the tutorial does (``multiq -A main worker -l info``, in the project
directory); the client side (the tutorial's ``test.py``) runs either as a script or
imported in this process.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from helpers import WorkerProcess, tail

from multiq.exceptions import BackendNotConfigured, NotRegistered
from multiq.result import AsyncResult

pytestmark = pytest.mark.system

RESULT = "name is 张三, age is 13"
PROJECT_MODULES = ("main", "config", "tasks")
# The fixtures' workers get the test URLs from the environment; here the URLs must come from
# the tutorial's own files (MultiQ(broker=..., backend=...), config.py), so blank them.
OWN_URLS = {"MULTIQ_BROKER_URL": "", "MULTIQ_RESULT_BACKEND": ""}


# -- the tutorial's files, names changed ------------------------------------------------------

MAIN_MY_TASK = '''\
# celery_demo/main.py
import time
from multiq import MultiQ

broker_url = "{broker}"
result_backend = "{backend}"

app = MultiQ(
    "celery_demo",
    broker=broker_url,
    backend=result_backend
)


@app.task
def my_task(name, age):
    print("准备执行任务啦")
    time.sleep(0.5)
    return f"name is {{name}}, age is {{age}}"
'''

TEST_DELAY_TIMING = '''\
# # celery_demo/test.py
import time
from main import my_task

start = time.perf_counter()
my_task.delay("张三", 13)
print(time.perf_counter() - start)
'''

TEST_QUERY_RESULT = '''\
# celery_demo/test.py
from main import my_task


# 调用任务
res = my_task.delay("张三", 13)

# 打印返回值类型
print(type(res))

# 直接打印，显示任务的 id
print(res)

# 获取状态, 显然此刻没有执行完
print(res.status)

# 获取 id，两种方式均可
print(res.task_id)
print(res.id)

# 获取任务执行结束时的时间
print(res.date_done)

# 获取任务的返回值, 可以通过 result 或者 get()
print(res.result)
print(res.get())

# 再次查看状态和执行结束时的时间
print(res.status)
# 但显示的是 UTC 时间
print(res.date_done)
'''

NEW_TASK = '''

@app.task
def new_task(x):
    return f"new {{x}}"
'''

MAIN_TASK_OPTIONS = '''\
# celery_demo/main.py
from multiq import MultiQ

broker_url = "{broker}"
result_backend = "{backend}"

app = MultiQ(
    "celery_demo",
    broker=broker_url,
    backend=result_backend
)


@app.task(name="加法运算")
def add(x, y):
    return x + y


@app.task(name="减法运算", bind=True)
def sub(self, x, y):
    """
    如果 bind=True，则需要多指定一个 self
    这个 self 就是对应的任务工厂
    """
    # self.request 是一个 multiq.task.Context 对象
    # 获取它的属性字典，即可拿到该任务的所有属性
    print(self.request.__dict__)
    return x - y
'''

MAIN_BASE_CLASS = '''\
# celery_demo/main.py
from multiq import MultiQ, Task

broker_url = "{broker}"
result_backend = "{backend}"

app = MultiQ(
    "celery_demo",
    broker=broker_url,
    backend=result_backend
)


class MyTask(Task):
    """
    自定义一个类，继承自multiq.Task
    """
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """任务失败时执行"""

    def on_success(self, retval, task_id, args, kwargs):
        """任务成功时执行"""
        print("任务执行成功")

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        """任务重试时执行"""


# 使用 @app.task 的时候，指定 base 即可
# 然后任务在执行的时候，会触发 MyTask 里面的回调函数
@app.task(name="地灵殿", base=MyTask)
def add(x, y):
    print("加法计算")
    return x + y
'''

CONFIG = '''\
broker_url = "{broker}"
result_backend = "{backend}"
'''

MAIN_TEMPLATE = '''\
from multiq import MultiQ
import config


# 通过 include 指定存放任务的 py 文件
app = MultiQ("celery_demo", include=["tasks.async_task"])

# 其它参数通过加载配置文件的方式指定
app.config_from_object(config)
'''

ASYNC_TASKS = '''\
from main import app


@app.task
def add(x, y):
    return x + y


@app.task
def sub(x, y):
    return x - y


@app.task
def mul(x, y):
    return x * y


@app.task
def div(x, y):
    return x / y
'''

MAIN_NO_BACKEND = '''\
# celery_demo/main.py
import time
from multiq import MultiQ

broker_url = "{broker}"

app = MultiQ(
    "celery_demo",
    broker=broker_url,
)


@app.task
def my_task(name, age):
    print("准备执行任务啦")
    time.sleep(0.5)
    return f"name is {{name}}, age is {{age}}"
'''


# -- fixtures ----------------------------------------------------------------------------------


def _forget_project_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in PROJECT_MODULES:
            del sys.modules[name]


class Project:
    """``celery_demo/`` in tmp_path: write its files, import them here, run scripts there."""

    def __init__(self, root: Path, broker: str, backend: str) -> None:
        self.root = root
        self.broker = broker
        self.backend = backend
        self.imported: List[Any] = []

    def write(self, relative: str, template: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(broker=self.broker, backend=self.backend),
                        encoding="utf-8")
        return path

    def load(self, module: str) -> Any:
        """``import module`` from the project, as the tutorial's test.py does."""
        import importlib

        importlib.invalidate_caches()  # files were just written
        mod = importlib.import_module(module)
        self.imported.append(mod)
        return mod

    def run_script(self, name: str, env: Dict[str, str], timeout: float = 30.0) -> List[str]:
        """``python <name>`` in the project directory; returns its stdout lines."""
        proc = subprocess.run(
            [sys.executable, name], cwd=str(self.root), env=env, capture_output=True,
            timeout=timeout,
        )
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out}\n{tail(err)}"
        return out.splitlines()


@pytest.fixture
def project(tmp_path: Path, redis_url: str, backend_url: str) -> Iterator[Project]:
    root = tmp_path / "celery_demo"
    root.mkdir()
    _forget_project_modules()
    sys.path.insert(0, str(root))
    proj = Project(root, redis_url, backend_url)
    try:
        yield proj
    finally:
        sys.path.remove(str(root))
        for mod in proj.imported:
            app = getattr(mod, "app", None)
            if app is not None and callable(getattr(app, "close", None)):
                app.close()
        _forget_project_modules()


@pytest.fixture
def script_env(worker_env: Dict[str, str]) -> Dict[str, str]:
    """The environment of a user's ``python test.py``: nothing multiq-specific set."""
    env = dict(worker_env)
    env.pop("MULTIQ_BROKER_URL", None)
    env.pop("MULTIQ_RESULT_BACKEND", None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture
def backend_client(redis_server: Any, backend_url: str) -> Iterator[Any]:
    """A redis client on the result db (db 2, as in the tutorial)."""
    client = redis_server.client(int(backend_url.rsplit("/", 1)[1]), decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def multiq_cli(worker_env: Dict[str, str], process_tracker: Any) -> Callable[..., WorkerProcess]:
    """Start ``multiq <args>`` (the console script, as typed in the tutorial) in a directory
    and wait for "ready"."""

    def start(*args: str, cwd: Path, timeout: float = 20.0) -> WorkerProcess:
        exe = Path(sys.executable).parent / "multiq"
        argv = [str(exe), *args]
        env = {k: v for k, v in worker_env.items() if k not in OWN_URLS}
        log_path = cwd.parent / "multiq-cli.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        process_tracker.track(proc)
        worker = WorkerProcess(proc, log_path, argv)
        worker.wait_for_log("ready", timeout=timeout)
        return worker

    return start


def _result_doc(backend_client: Any, task_id: str) -> Dict[str, Any]:
    raw = backend_client.get(f"multiq-task-meta-{task_id}")
    assert raw is not None, f"no result document for {task_id}"
    return json.loads(raw)


def _as_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:  # Celery shows a naive UTC datetime; an aware one is fine too
        return value.replace(tzinfo=dt.timezone.utc)
    assert value.utcoffset() == dt.timedelta(0), f"date_done {value!r} is not UTC"
    return value


# -- 最简易代码示例: my_task ---------------------------------------------------------------------


def test_delay_returns_at_once_and_worker_runs_the_task(
    project: Project, start_worker: Any, script_env: Dict[str, str]
) -> None:
    # the tutorial's own 3 s task: delay() must return long before it is done, even when
    # its first call also imports and connects on a busy machine
    project.write("main.py", MAIN_MY_TASK.replace("time.sleep(0.5)", "time.sleep(3)"))
    project.write("test.py", TEST_DELAY_TIMING)
    # multiq -A main worker -l info
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    banner = worker.log()
    assert "main.my_task" in banner.split("[tasks]", 1)[-1]

    lines = project.run_script("test.py", script_env)
    elapsed = float(lines[-1])
    assert elapsed < 1.5, f"delay() took {elapsed:.3f}s: it must not wait for the task"

    log = worker.wait_for_log("succeeded", timeout=10)
    assert "main.my_task[" in log and "] received" in log
    assert "准备执行任务啦" in log
    assert "succeeded in " in log and repr(RESULT) in log


def test_query_script_prints_what_the_tutorial_shows(
    project: Project, start_worker: Any, script_env: Dict[str, str], backend_client: Any
) -> None:
    project.write("main.py", MAIN_MY_TASK)
    project.write("test.py", TEST_QUERY_RESULT)
    start_worker("main", cwd=project.root, env=OWN_URLS)

    before = dt.datetime.now(dt.timezone.utc)
    lines = project.run_script("test.py", script_env)
    after = dt.datetime.now(dt.timezone.utc)
    assert len(lines) == 10, lines
    (kind, printed, status, task_id, id_, date_before, result_before, got, status_after,
     date_after) = lines
    assert kind == "<class 'multiq.result.AsyncResult'>"
    uuid.UUID(printed)  # the id is a uuid
    assert task_id == id_ == printed
    assert status == "PENDING"
    assert date_before == "None"
    assert result_before == "None"
    assert got == RESULT
    assert status_after == "SUCCESS"
    done = _as_utc(dt.datetime.fromisoformat(date_after))
    assert before - dt.timedelta(seconds=1) <= done <= after + dt.timedelta(seconds=1)
    doc = _result_doc(backend_client, printed)
    assert doc["status"] == "SUCCESS"


def test_async_result_api_and_the_result_document(
    project: Project, start_worker: Any, backend_client: Any
) -> None:
    project.write("main.py", MAIN_MY_TASK)
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    main = project.load("main")
    start = time.perf_counter()
    res = main.my_task.delay("张三", 13)
    sent_in = time.perf_counter() - start
    status, date_done, result = res.status, res.date_done, res.result
    assert sent_in < 0.5
    assert type(res) is AsyncResult
    assert str(res) == res.id == res.task_id
    assert status == "PENDING"
    assert date_done is None
    assert result is None

    before = dt.datetime.now(dt.timezone.utc)
    assert res.get(timeout=10) == RESULT
    assert res.status == "SUCCESS"
    assert res.successful() and res.ready() and not res.failed()
    done = _as_utc(res.date_done)
    assert before - dt.timedelta(seconds=1) <= done <= dt.datetime.now(dt.timezone.utc)
    assert res.result == RESULT

    # 4) Redis 中存储的信息: db 2 holds one key per task, JSON, expiring in about a day
    # (on a Cluster, db 0 also holds the broker's keys, under another prefix).
    keys = [k for k in backend_client.scan_iter() if not k.startswith("multiq:")]
    assert keys == [f"multiq-task-meta-{res.id}"]
    doc = _result_doc(backend_client, res.id)
    assert {"status", "result", "traceback", "children", "date_done", "task_id"} <= set(doc)
    assert doc["status"] == "SUCCESS"
    assert doc["result"] == RESULT
    assert doc["traceback"] is None
    assert doc["children"] == []
    assert doc["task_id"] == res.id
    stored_done = _as_utc(dt.datetime.fromisoformat(doc["date_done"]))
    assert abs((stored_done - done).total_seconds()) < 1
    ttl = backend_client.ttl(f"multiq-task-meta-{res.id}")
    assert 86400 - 60 <= ttl <= 86400

    log = worker.wait_for_log(f"main.my_task[{res.id}] succeeded", timeout=10)
    assert f"main.my_task[{res.id}] received" in log


def test_apply_async_with_task_id_and_countdown(
    project: Project, start_worker: Any, backend_client: Any
) -> None:
    project.write("main.py", MAIN_MY_TASK)
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    main = project.load("main")

    start = time.monotonic()
    res = main.my_task.apply_async(['张三'], {"age": 13}, task_id="小家伙", countdown=2)
    assert res.id == "小家伙"
    assert res.get(timeout=15) == RESULT
    elapsed = time.monotonic() - start
    assert elapsed >= 2.0, f"the result came {elapsed:.2f}s after sending; countdown was 2"
    assert elapsed < 2.0 + 5.0
    assert _result_doc(backend_client, "小家伙")["task_id"] == "小家伙"
    log = worker.wait_for_log("main.my_task[小家伙] succeeded", timeout=10)
    assert "main.my_task[小家伙] received" in log


def test_a_task_the_worker_does_not_know_fails_until_the_worker_restarts(
    project: Project, start_worker: Any
) -> None:
    """The tutorial's tip: a new task factory needs a worker restart; until then the worker
    refuses it (Celery: KeyError) and goes on."""
    project.write("main.py", MAIN_MY_TASK)
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    project.write("main.py", MAIN_MY_TASK + NEW_TASK)  # edited while the worker runs
    main = project.load("main")

    res = main.new_task.delay(1)
    with pytest.raises(KeyError) as caught:  # NotRegistered is a KeyError, as in Celery
        res.get(timeout=10)
    assert isinstance(caught.value, NotRegistered)
    assert "main.new_task" in str(caught.value)
    assert res.status == "FAILURE"
    worker.wait_for_log("main.new_task", timeout=10)
    assert worker.alive
    assert main.my_task.delay("张三", 13).get(timeout=10) == RESULT

    assert worker.stop() == 0  # 先停止 worker 进程，然后再重新启动
    restarted = start_worker("main", cwd=project.root, env=OWN_URLS)
    assert "main.new_task" in restarted.log().split("[tasks]", 1)[-1]
    assert main.new_task.delay(2).get(timeout=10) == "new 2"


# -- Task 对象的一些参数: name / bind / base ----------------------------------------------------


def test_task_name_and_bind_with_ten_threads(project: Project, start_worker: Any) -> None:
    project.write("main.py", MAIN_TASK_OPTIONS)
    # multiq -A main worker -l info -c 10
    worker = start_worker("main", "-c", "10", cwd=project.root, pool="threads", env=OWN_URLS)
    banner = worker.log()
    task_list = banner.split("[tasks]", 1)[-1]
    assert "加法运算" in task_list and "减法运算" in task_list
    assert "concurrency: 10" in banner

    main = project.load("main")
    assert main.add.name == "加法运算" and main.sub.name == "减法运算"
    added = main.add.delay(111, 222)
    assert added.get(timeout=10) == 333
    subbed = main.sub.delay(111, 222)
    assert subbed.get(timeout=10) == -111

    log = worker.wait_for_log(f"减法运算[{subbed.id}] succeeded", timeout=10)
    assert f"加法运算[{added.id}] received" in log
    assert f"加法运算[{added.id}] succeeded" in log
    # print(self.request.__dict__) in the worker: the request of this very call.
    printed = [line for line in log.splitlines() if f"'id': '{subbed.id}'" in line]
    assert printed, f"the request dict was not printed:\n{tail(log)}"
    assert "111" in printed[0] and "222" in printed[0]


def test_base_class_hooks_run_in_the_worker(project: Project, start_worker: Any) -> None:
    project.write("main.py", MAIN_BASE_CLASS)
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    assert "地灵殿" in worker.log().split("[tasks]", 1)[-1]

    main = project.load("main")
    assert isinstance(main.add, main.MyTask)
    res = main.add.delay(1, 2)
    assert res.get(timeout=10) == 3
    log = worker.wait_for_log("任务执行成功", timeout=10)
    assert "加法计算" in log
    assert log.index("加法计算") < log.index("任务执行成功")


# -- 实战化模板: config.py + include ---------------------------------------------------------------


def test_practical_template_with_config_and_include(
    project: Project, multiq_cli: Any, backend_client: Any
) -> None:
    project.write("config.py", CONFIG)
    project.write("main.py", MAIN_TEMPLATE)
    project.write("tasks/async_task.py", ASYNC_TASKS)  # no __init__.py, as in the tutorial
    worker = multiq_cli("-A", "main", "worker", "-l", "info", cwd=project.root)
    task_list = worker.log().split("[tasks]", 1)[-1]
    for name in ("add", "sub", "mul", "div"):
        assert f"tasks.async_task.{name}" in task_list

    tasks = project.load("tasks.async_task")
    assert tasks.add.name == "tasks.async_task.add"
    assert tasks.add.delay(1, 2).get(timeout=10) == 3
    assert tasks.sub.delay(1, 2).get(timeout=10) == -1
    assert tasks.mul.delay(3, 4).get(timeout=10) == 12
    assert tasks.div.delay(6, 3).get(timeout=10) == 2.0

    failed = tasks.div.delay(1, 0)
    with pytest.raises(ZeroDivisionError):
        failed.get(timeout=10)
    assert failed.status == "FAILURE"
    assert isinstance(failed.result, ZeroDivisionError)
    doc = _result_doc(backend_client, failed.id)
    assert doc["status"] == "FAILURE"
    assert "ZeroDivisionError" in (doc["traceback"] or "")
    worker.wait_for_log(f"tasks.async_task.div[{failed.id}]", timeout=10)
    assert worker.alive  # a failing task never stops the worker
    assert tasks.add.delay(2, 2).get(timeout=10) == 4


def test_get_without_backend_raises_a_clear_error(
    project: Project, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MULTIQ_RESULT_BACKEND", raising=False)
    project.write("main.py", MAIN_NO_BACKEND)
    worker = start_worker("main", cwd=project.root, env=OWN_URLS)
    main = project.load("main")
    res = main.my_task.delay("张三", 13)
    with pytest.raises(Exception) as caught:
        res.get(timeout=5)
    exc = caught.value
    assert isinstance(exc, BackendNotConfigured) or "backend" in str(exc).lower(), repr(exc)
    # the worker still runs the task; there is just nowhere to keep its result
    worker.wait_for_log(f"main.my_task[{res.id}] succeeded", timeout=10)
    assert worker.alive

