"""Every option of Celery 5.7's ``worker``, ``beat``, ``inspect``, ``control``, ``multi`` and
of the ``celery`` command itself is, on multiq's command of the same name, supported,
accepted with a one-line note of why it does nothing, or refused with a pointer.

Celery's lists are kept here (read once from ``celery <command> --help``), so the test
needs no Celery installed.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import click
import pytest

from multiq.cli import cli
from multiq.cli.multi import USAGE, VERBS
from multiq.supervisor import nodes

CELERY: Dict[str, List[Tuple[str, ...]]] = {
    "worker": [
        ("-n", "--hostname"), ("-D", "--detach"), ("-S", "--statedb"), ("-l", "--loglevel"),
        ("-O", "--optimization"), ("--prefetch-multiplier",), ("--disable-prefetch",),
        ("-c", "--concurrency"), ("-P", "--pool"), ("-E", "--task-events", "--events"),
        ("--time-limit",), ("--soft-time-limit",), ("--max-tasks-per-child",),
        ("--pool-start-method",), ("--max-memory-per-child",), ("--purge", "--discard"),
        ("--queues", "-Q"), ("--exclude-queues", "-X"), ("--include", "-I"),
        ("--without-gossip",), ("--without-mingle",), ("--without-heartbeat",),
        ("--heartbeat-interval",), ("--autoscale",), ("-B", "--beat"),
        ("-s", "--schedule-filename", "--schedule"), ("--scheduler",),
        ("--logfile", "-f"), ("--pidfile",), ("--uid",), ("--gid",), ("--umask",),
        ("--executable",),
    ],
    "beat": [
        ("--detach",), ("-s", "--schedule"), ("-S", "--scheduler"), ("--max-interval",),
        ("--enable-remote-control", "--no-enable-remote-control"), ("-n", "--hostname"),
        ("-l", "--loglevel"), ("--logfile", "-f"), ("--pidfile",), ("--uid",), ("--gid",),
        ("--umask",), ("--executable",),
    ],
    "inspect": [("--list",), ("-t", "--timeout"), ("-d", "--destination"), ("-j", "--json")],
    "control": [("--list",), ("-t", "--timeout"), ("-d", "--destination"), ("-j", "--json")],
    # the celery command's own, which every sub-command takes here too
    "": [("-A", "--app"), ("-b", "--broker"), ("--result-backend",), ("--loader",),
         ("--config",), ("--workdir",), ("-C", "--no-color"), ("-q", "--quiet"),
         ("--version",), ("--skip-checks",)],
}
CELERY_MULTI_OPTIONS = ("--nosplash", "--quiet", "-q", "--verbose", "--no-color",
                        "--pidfile", "-p", "--logfile", "-f", "--executable", "--cmd",
                        "--append", "--hostname", "-n", "--prefix", "--suffix",
                        "--range-prefix")
CELERY_MULTI_VERBS = ("start", "stop", "stopwait", "restart", "kill", "names", "get", "show",
                      "expand", "help")
ACCEPTED, REFUSED = "Accepted, no effect: ", "Not supported: "


def _command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name) if name else cli


def _options(command: click.Command) -> Dict[str, click.Option]:
    return {opt: p for p in command.params if isinstance(p, click.Option)
            for opt in (*p.opts, *p.secondary_opts)}


def _cases() -> List[Tuple[str, str]]:
    return [(name, opt) for name, groups in CELERY.items() for group in groups
            for opt in group]


@pytest.mark.parametrize("name, opt", _cases(), ids=lambda v: v or "multiq")
def test_each_celery_option_is_supported_noted_or_refused(name: str, opt: str) -> None:
    option = _options(_command(name)).get(opt)
    assert option is not None, f"multiq {name} has no {opt}"
    text = option.help or ""
    if text.startswith((ACCEPTED, REFUSED)):
        reason = text.split(": ", 1)[1]
        assert len(reason) > 15 and reason.endswith(".") and "\n" not in reason, text
    else:  # supported: it says what it does (--help and --version are click's own)
        assert text or opt in ("--help", "--version"), f"{name} {opt} has no help"


def _accepted() -> List[Tuple[str, str]]:
    return [(name, opt) for name, opt in _cases() if name in ("worker", "beat")
            and (getattr(_options(_command(name)).get(opt), "help", "") or "").startswith(
                ACCEPTED)]


@pytest.mark.parametrize("name, opt", _accepted())
def test_accepted_options_parse_as_celery_writes_them(name: str, opt: str) -> None:
    option = _options(_command(name))[opt]
    args = [opt] if option.is_flag else [opt, "fork" if opt == "--pool-start-method" else "x"]
    ctx = _command(name).make_context(name, args)  # parsing only: nothing runs
    assert ctx.params.get(opt.lstrip("-").replace("-", "_")) is None  # not passed on


def test_a_start_method_other_than_fork_is_refused_with_the_reason() -> None:
    with pytest.raises(click.BadParameter, match="prefork children are forked"):
        _command("worker").make_context("worker", ["--pool-start-method", "spawn"])


def test_help_lists_the_options_celery_users_type() -> None:
    text = _command("worker").get_help(click.Context(_command("worker")))
    for opt in ("--purge", "-O", "--without-gossip", "--disable-prefetch", "NAME=VALUE"):
        assert opt in text, opt


def test_multi_takes_celery_multis_options_and_verbs() -> None:
    known = {*nodes._MULTI_VALUES, *nodes._MULTI_FLAGS}
    assert [opt for opt in CELERY_MULTI_OPTIONS if opt not in known] == []
    assert [verb for verb in CELERY_MULTI_VERBS if verb not in VERBS] == []
    for opt in ("--nosplash", "--range-prefix", "--pidfile", "--logfile"):
        assert opt in USAGE, opt
