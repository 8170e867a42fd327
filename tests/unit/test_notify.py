"""The sd_notify client, driven against datagram sockets the tests bind themselves."""
from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from multiq.supervisor.notify import Notifier

Listener = Tuple[socket.socket, str]


def _receive(sock: socket.socket) -> bytes:
    return sock.recv(65536)


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    """A bound datagram socket on the filesystem and its ``NOTIFY_SOCKET`` value."""
    directory = tmp_path
    cleanup = None
    if len(str(tmp_path / "notify.sock")) > 100:  # sun_path is 108 bytes
        cleanup = directory = Path(tempfile.mkdtemp(prefix="mq", dir="/tmp"))
    path = str(directory / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    """A bound datagram socket in Linux's abstract namespace, as ``@name``."""
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract Unix sockets are Linux only")
    name = f"multiq-test-{os.getpid()}-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Listener:
    fixture = "path_listener" if request.param == "path" else "abstract_listener"
    result: Listener = request.getfixturevalue(fixture)
    return result


def test_messages_arrive_exactly(listener: Listener) -> None:
    sock, address = listener
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    assert notifier.enabled

    assert notifier.ready() is True
    assert _receive(sock) == b"READY=1"
    assert notifier.status("consuming from celery") is True
    assert _receive(sock) == b"STATUS=consuming from celery"
    assert notifier.watchdog() is True
    assert _receive(sock) == b"WATCHDOG=1"
    assert notifier.stopping() is True
    assert _receive(sock) == b"STOPPING=1"


def test_status_can_ride_along_and_stays_one_line(path_listener: Listener) -> None:
    sock, address = path_listener
    notifier = Notifier(address)
    notifier.ready(status="w1@host ready")
    assert _receive(sock) == b"READY=1\nSTATUS=w1@host ready"
    notifier.stopping(status="warm shutdown\n2 tasks running")
    assert _receive(sock) == b"STOPPING=1\nSTATUS=warm shutdown 2 tasks running"
    notifier.status("caf\u00e9")
    assert _receive(sock) == "STATUS=caf\u00e9".encode()


def test_reads_os_environ_and_can_unset_it(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = path_listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    notifier = Notifier.from_environ(unset=True)
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        assert name not in os.environ
    assert notifier.watchdog_interval == 5.0
    notifier.ready()
    assert _receive(sock) == b"READY=1"
    assert Notifier.from_environ().enabled is False


def test_disabled_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("no socket may be created when disabled")

    monkeypatch.setattr(socket, "socket", no_socket)
    for env in ({}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "relative/path"}):
        notifier = Notifier.from_environ(dict(env))
        assert notifier.enabled is False
        assert notifier.ready() is False
        assert notifier.stopping() is False
        assert notifier.status("x") is False
        assert notifier.watchdog() is False
        assert notifier.watchdog_interval is None


def test_send_errors_are_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="multiq.supervisor.notify")
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<self>"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<other>"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": "<self>"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: Dict[str, str], interval: object) -> None:
    pids = {"<self>": str(os.getpid()), "<other>": str(os.getpid() + 1)}
    environ = {key: pids.get(value, value) for key, value in env.items()}
    environ["NOTIFY_SOCKET"] = "/run/systemd/notify"
    assert Notifier.from_environ(environ).watchdog_interval == interval


def test_watchdog_interval_needs_a_socket() -> None:
    assert Notifier.from_environ({"WATCHDOG_USEC": "30000000"}).watchdog_interval is None


def test_forked_child_does_not_own_the_watchdog(path_listener: Listener) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    _, address = path_listener
    notifier = Notifier.from_environ(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert notifier.watchdog_interval == 1.0
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write_end, b"none" if notifier.watchdog_interval is None else b"set")
        os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 16) == b"none"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
