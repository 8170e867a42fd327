"""Which command lines patch the standard library for the green pools (gevent, eventlet),
and that the others import nothing of either (a node's start-up time is mostly imports)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from multiq import patching
from multiq.patching import requested_pool
from multiq.supervisor.nodes import Cluster, parse_argv

#: On PYTHONPATH, hides eventlet from a subprocess, as if it were not installed.
WITHOUT_EVENTLET = Path(__file__).resolve().parents[1] / "system" / "apps" / "without_eventlet"
needs_eventlet = pytest.mark.skipif(not patching._installed("eventlet"),
                                    reason="eventlet is not installed")


def pool_of(line: str) -> object:
    return requested_pool(["multiq", *shlex.split(line)])


@pytest.mark.parametrize("line", [
    "-A tasks worker -l info -P gevent -c 500",
    "worker -A tasks -P gevent",
    "worker -Pgevent",
    "worker --pool gevent",
    "worker --pool=gevent",
    "worker --pool=GEVENT",
    "-A proj.tasks:app -b redis://h/0 --workdir /srv worker --detach -P gevent -n w1@%h",
    "--app=tasks worker -c 10 --pool gevent",
    "-C -q worker -P gevent",
])
def test_the_worker_asking_for_gevent(line: str) -> None:
    assert pool_of(line) == "gevent"


@pytest.mark.parametrize("line", [
    "-A tasks worker -l info -P eventlet -c 500",
    "worker -A tasks -P eventlet",
    "worker -Peventlet",
    "worker -P=eventlet",
    "worker --pool eventlet",
    "worker --pool=eventlet",
    "worker --pool EVENTLET",
    "-A proj.tasks:app -b redis://h/0 --workdir /srv worker --detach -P eventlet -n w1@%h",
    "--app=tasks worker -c 10 --pool eventlet",
])
def test_the_worker_asking_for_eventlet(line: str) -> None:
    assert pool_of(line) == "eventlet"


@pytest.mark.parametrize("line", [
    "-A tasks worker -- worker_pool=eventlet",  # a setting: no early patch
    "-A tasks multi start w1 -P eventlet",
    "-A tasks inspect stats --pool eventlet",
    "-A eventlet worker",  # an app called eventlet
])
def test_eventlet_elsewhere_on_the_command_line(line: str) -> None:
    assert pool_of(line) is None


@pytest.mark.parametrize("line,expected", [
    ("-A tasks worker -l info -P eventlet", "eventlet"),
    ("-A tasks worker -P solo", "solo"),
    ("-A tasks worker -P threads -c 4", "threads"),
    ("-A tasks worker", None),
    ("-A tasks worker -P", None),
    ("-A tasks worker -- worker_pool=gevent", None),  # a setting: no early patch
    ("-A tasks multi start w1 -P gevent", None),  # multi passes it on to its nodes
    ("-A tasks inspect stats -P gevent", None),
    ("-A worker inspect stats", None),  # an app called worker
    ("-A tasks", None),
    ("", None),
])
def test_other_command_lines(line: str, expected: object) -> None:
    assert pool_of(line) == expected


def test_multi_passes_the_pool_to_its_nodes_which_patch() -> None:
    args = parse_argv(shlex.split("start 2 -A tasks -P gevent -c 500 -l info"))
    nodes = Cluster(gethostname=lambda: "host").nodes_from(args)
    assert len(nodes) == 2
    for node in nodes:
        argv = node.argv
        assert argv[argv.index("-P") + 1] == "gevent", argv
        assert requested_pool(argv[2:]) == "gevent", argv  # after ``python -m``


def test_a_missing_eventlet_is_refused_with_the_way_out(monkeypatch) -> None:
    monkeypatch.setattr(patching, "_installed", lambda name: name != "eventlet")
    why = patching.refusal("eventlet")
    assert why is not None and "deprecated" in why and "-P gevent" in why
    assert "pip install 'multiq[gevent]'" in why and "-P asyncio" in why
    assert patching.refusal("solo") is None


def test_a_missing_gevent_is_named_with_its_install_line(monkeypatch) -> None:
    monkeypatch.setattr(patching, "_installed", lambda name: False)
    assert patching.refusal("gevent") == patching.GEVENT_MISSING
    assert "pip install 'multiq[gevent]'" in patching.GEVENT_MISSING


@needs_eventlet
def test_an_installed_eventlet_is_not_refused() -> None:
    assert patching.refusal("eventlet") is None


def _run(code: str, *argv: str, path: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                          text=True, timeout=60, env=env)


def test_worker_gevent_patches_before_click_redis_or_threading_users() -> None:
    code = (
        "import sys\n"
        "from multiq.patching import maybe_patch_concurrency\n"
        "before = sorted(m for m in ('click', 'redis', 'multiq.app', 'multiq._state')"
        " if m in sys.modules)\n"
        "assert maybe_patch_concurrency() == 'gevent'\n"
        "from gevent import monkey\n"
        "import multiq.cli, socket, threading, time\n"
        "print(before, monkey.is_module_patched('socket'),"
        " monkey.is_module_patched('threading'), monkey.is_module_patched('time'))\n"
    )
    out = _run(code, "-A", "tasks", "worker", "-P", "gevent")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "True", "True"], out.stdout


@needs_eventlet
def test_worker_eventlet_patches_before_click_redis_or_threading_users() -> None:
    code = (
        "import sys\n"
        "from multiq.patching import maybe_patch_concurrency\n"
        "before = sorted(m for m in ('click', 'redis', 'multiq.app', 'multiq._state')"
        " if m in sys.modules)\n"
        "assert maybe_patch_concurrency() == 'eventlet'\n"
        "from eventlet import patcher\n"
        "import multiq.cli, socket, threading, time\n"
        "print(before, patcher.is_monkey_patched('socket'),"
        " patcher.is_monkey_patched('thread'), patcher.is_monkey_patched('time'),"
        " 'gevent' in sys.modules)\n"
    )
    out = _run(code, "-A", "tasks", "worker", "-P", "eventlet", "-c", "100")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True", "True", "True", "False"], out.stdout
    assert "deprecated" not in out.stderr.lower()  # (the pool says it, in one line)


def test_the_entry_point_imports_only_the_patching_module_first() -> None:
    code = ("import sys\n"
            "import multiq, multiq.patching\n"
            "print(sorted(m for m in sys.modules if m.startswith(('multiq', 'click', 'redis',"
            " 'gevent'))))")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['multiq', 'multiq.patching']"


def test_a_solo_worker_never_imports_gevent() -> None:
    code = ("import sys\n"
            "from multiq.patching import maybe_patch_concurrency\n"
            "assert maybe_patch_concurrency() is None\n"
            "import multiq.cli, multiq.cli.worker, multiq.worker.worker\n"
            "print(any(m.startswith('gevent') for m in sys.modules))")
    out = _run(code, "-A", "tasks", "worker", "-P", "solo")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_solo_worker_never_imports_eventlet() -> None:
    code = ("import sys\n"
            "from multiq.patching import maybe_patch_concurrency\n"
            "assert maybe_patch_concurrency() is None\n"
            "import multiq.cli, multiq.cli.worker, multiq.worker.worker\n"
            "print(any(m.startswith('eventlet') for m in sys.modules))")
    out = _run(code, "-A", "tasks", "worker", "-P", "solo")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_missing_eventlet_on_the_command_line_ends_with_one_line() -> None:
    code = "from multiq.patching import maybe_patch_concurrency\nmaybe_patch_concurrency()"
    out = _run(code, "worker", "-P", "eventlet", path=str(WITHOUT_EVENTLET))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"Error: {patching.EVENTLET_REFUSED}"]
    assert "gevent" not in out.stdout


def test_public_names_still_import_from_the_package() -> None:
    import multiq

    assert multiq.MultiQ.__name__ == "MultiQ"
    from multiq import Task, chain, shared_task  # noqa: F401

    with pytest.raises(AttributeError):
        multiq.NoSuchName  # noqa: B018
    assert {"MultiQ", "Task", "group"} <= set(dir(multiq))
