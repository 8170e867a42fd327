"""Unit tests for multiq.supervisor.launch: how ``multi`` launches a node without putting
its passwords on the node's command line or in the command line it saves for ``restart``
(they go to a separate 0600 file). The system tests drive real nodes."""
from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path
from typing import Iterator

import pytest

from multiq.supervisor import launch
from multiq.supervisor.launch import Launch, SecretUnknown
from multiq.supervisor.nodes import Cluster, Node, parse_argv

BROKER = "redis://:hunter2@10.0.0.5:6379/1"
BACKEND = "redis://app:hunter3@10.0.0.5:6379/2?sentinel_password=hunter4"


def node_of(line: str, tmp_path: Path) -> Node:
    args = parse_argv([f"--pidfile={tmp_path}/%n.pid", *shlex.split(line)])
    return Cluster(gethostname=lambda: "host").nodes_from(args)[0]


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_urls_with_passwords_go_to_the_environment_not_the_command_line(tmp_path) -> None:
    node = node_of(f"w1 -A proj -b {BROKER} --result-backend={BACKEND} -c 2", tmp_path)
    started = Launch.of(node)
    assert started.env == {"MULTIQ_BROKER_URL": BROKER, "MULTIQ_RESULT_BACKEND": BACKEND}
    assert not any("hunter" in word for word in started.argv), started.argv
    assert started.argv[started.argv.index("-A"):started.argv.index("worker") + 1] == \
        ["-A", "proj", "worker"]
    assert "hunter" not in " ".join(started.shown())


def test_urls_without_secrets_and_words_after_double_dash_stay(tmp_path) -> None:
    node = node_of("w1 -A proj -b redis://10.0.0.5/1 -- broker_url=" + BROKER, tmp_path)
    started = Launch.of(node)
    assert started.env == {}
    at = started.argv.index("-b")
    assert started.argv[at:at + 2] == ["-b", "redis://10.0.0.5/1"]
    assert started.argv[-1] == "broker_url=" + BROKER  # the user's own words, untouched
    assert started.shown()[-1] == "broker_url=redis://:**@10.0.0.5:6379/1"


def test_another_program_keeps_its_options(tmp_path) -> None:
    node = node_of(f"w1 --cmd='other-tool run' -b {BROKER}", tmp_path)
    assert Launch.of(node).env == {}


def test_saved_files_are_private_and_only_the_secret_file_holds_secrets(
        tmp_path, umask_zero) -> None:
    node = node_of(f"w1 -A proj -b {BROKER} -- broker_password=hunter5", tmp_path)
    argv_file, secret_file = Path(launch.argv_path(node)), Path(launch.secret_path(node))
    argv_file.write_text(json.dumps(["old", BROKER]))
    argv_file.chmod(0o644)
    launch.save(node, Launch.of(node))
    for path in (argv_file, secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    text = argv_file.read_text()
    assert "hunter" not in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.pid.argv", "w1.pid.secret"]
    saved = launch.load(node)
    assert saved is not None
    assert saved.env == {"MULTIQ_BROKER_URL": "redis://:**@10.0.0.5:6379/1"}
    assert [saved.argv[i] for i in saved.masked] == ["broker_password=**"]
    launch.forget(node)
    assert list(tmp_path.iterdir()) == []


def test_restart_puts_the_secrets_back(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MULTIQ_BROKER_URL", raising=False)
    node = node_of(f"w1 -A proj -b {BROKER} -- broker_password=hunter5", tmp_path)
    first = Launch.of(node)
    launch.save(node, first)
    saved = launch.load(node)
    assert saved is not None and saved.resolve(node.name) == first


def test_no_secret_file_no_secret_saved(tmp_path) -> None:
    node = node_of("w1 -A proj -b redis://10.0.0.5/1", tmp_path)
    Path(launch.secret_path(node)).write_text("{}")  # from an earlier start
    launch.save(node, Launch.of(node))
    assert not Path(launch.secret_path(node)).exists()


def test_without_the_secret_file_our_environment_or_a_clear_error(
        tmp_path, monkeypatch) -> None:
    node = node_of(f"w1 -A proj -b {BROKER}", tmp_path)
    launch.save(node, Launch.of(node))
    os.unlink(launch.secret_path(node))
    saved = launch.load(node)
    assert saved is not None
    monkeypatch.delenv("MULTIQ_BROKER_URL", raising=False)
    with pytest.raises(SecretUnknown, match="give the options again") as info:
        saved.resolve(node.name)
    assert "hunter2" not in str(info.value)
    monkeypatch.setenv("MULTIQ_BROKER_URL", "redis://10.0.0.5:6379/1")  # another shape
    with pytest.raises(SecretUnknown):
        saved.resolve(node.name)
    # the same user, host and database: a password changed since is taken as it is now
    monkeypatch.setenv("MULTIQ_BROKER_URL", "redis://:rotated@10.0.0.5:6379/1")
    assert saved.resolve(node.name).env == {
        "MULTIQ_BROKER_URL": "redis://:rotated@10.0.0.5:6379/1"}


def test_an_unreadable_or_older_saved_file(tmp_path) -> None:
    node = node_of("w1 -A proj", tmp_path)
    path = Path(launch.argv_path(node))
    assert launch.load(node) is None
    path.write_text("{not json")
    assert launch.load(node) is None
    path.write_text(json.dumps({"argv": ["python"], "masked": [5], "env": {}}))
    assert launch.load(node) is None
    path.write_text(json.dumps(node.argv))  # what an older multiq wrote
    saved = launch.load(node)
    assert saved is not None and saved.resolve(node.name) == Launch(node.argv)
