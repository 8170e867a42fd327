"""Unit tests for multiq.supervisor.nodes: the ``multi`` command-line model.

The command lines are the examples of Celery's own multi documentation with
``multiq`` for ``celery``, expanded and checked exactly.
"""
from __future__ import annotations

import shlex
import signal
import sys
from typing import List

import pytest

from multiq.exceptions import MultiQError
from multiq.supervisor.nodes import (
    Cluster,
    MultiArgs,
    MultiUsageError,
    Node,
    NodeOption,
    find,
    host_format,
    parse_argv,
)

HOST = "myhost.example.com"
PY = sys.executable


def nodes(line: str) -> List[Node]:
    return Cluster(gethostname=lambda: HOST).nodes_from(parse_argv(shlex.split(line)))


def names(line: str) -> List[str]:
    return [node.name for node in nodes(line)]


def opts(node: Node) -> List[str]:
    """The node's own options in its argv: between ``--detach`` and ``-n``."""
    argv = node.argv
    return argv[argv.index("--detach") + 1:argv.index("-n")]


# -- the examples of Celery's multi documentation ------------------------------------------


def test_single_named_node_full_argv() -> None:
    (node,) = nodes("Leslie -E")
    assert node.name == f"Leslie@{HOST}"
    assert node.argv == [
        PY, "-m", "multiq", "worker", "--detach", "-E", "-n", f"Leslie@{HOST}",
        "--pidfile=/var/run/multiq/Leslie.pid", "--logfile=/var/log/multiq/Leslie%I.log",
    ]


def test_pidfile_and_logfile_templates() -> None:
    (node,) = nodes("Leslie -E --pidfile=/var/run/multiq/%n.pid "
                    "--logfile=/var/log/multiq/%n%I.log")
    assert node.pidfile == "/var/run/multiq/Leslie.pid"
    assert node.logfile == "/var/log/multiq/Leslie%I.log"
    assert opts(node) == ["-E"]


def test_count_with_concurrency() -> None:
    result = nodes("3 -c 3")
    assert [n.name for n in result] == [f"multiq{i}@{HOST}" for i in (1, 2, 3)]
    assert all(opts(n) == ["-c", "3"] for n in result)


def test_named_nodes() -> None:
    result = nodes("image video data -c 3")
    assert [n.name for n in result] == [f"{s}@{HOST}" for s in ("image", "video", "data")]
    assert all(opts(n) == ["-c", "3"] for n in result)


def test_custom_hostname_with_count() -> None:
    result = nodes("2 --hostname=worker.example.com -c 3")
    assert [n.name for n in result] == ["multiq1@worker.example.com",
                                        "multiq2@worker.example.com"]
    assert all(opts(n) == ["-c", "3"] for n in result)


def test_fully_qualified_names() -> None:
    result = nodes("foo@worker.example.com bar@worker.example.com -c 3")
    assert [n.name for n in result] == ["foo@worker.example.com", "bar@worker.example.com"]
    assert result[0].short_name == "foo"
    assert result[0].hostname == "worker.example.com"


def test_fully_qualified_names_on_current_host() -> None:
    assert names("foo@%h bar@%h") == [f"foo@{HOST}", f"bar@{HOST}"]
    assert names("w1@%h") == [f"w1@{HOST}"]


def test_advanced_ten_nodes() -> None:
    result = nodes("10 -l INFO -Q:1-3 images,video -Q:4,5 data -Q default -L:4,5 DEBUG")
    assert [n.short_name for n in result] == [f"multiq{i}" for i in range(1, 11)]
    for node in result[:3]:
        assert opts(node) == ["-l", "INFO", "-Q", "images,video"]
    for node in result[3:5]:
        assert opts(node) == ["-l", "INFO", "-Q", "data", "-L", "DEBUG"]
    for node in result[5:]:
        assert opts(node) == ["-l", "INFO", "-Q", "default"]


def test_one_node_overridden_by_index() -> None:
    result = nodes("3 -c 3 -c:1 10")
    assert [opts(n) for n in result] == [["-c", "10"], ["-c", "3"], ["-c", "3"]]


def test_one_node_overridden_by_name() -> None:
    result = nodes("image video data -c 3 -c:image 10")
    assert [opts(n) for n in result] == [["-c", "10"], ["-c", "3"], ["-c", "3"]]


@pytest.mark.parametrize("selector", ["1-3", "1,2,3"])
def test_range_and_list_selectors(selector: str) -> None:
    result = nodes(f"5 -c 3 -c:{selector} 10")
    assert [opts(n) for n in result] == [["-c", "10"]] * 3 + [["-c", "3"]] * 2


def test_list_of_named_nodes() -> None:
    result = nodes("foo bar baz xuzzy -c 3 -c:foo,bar,baz 10")
    assert [opts(n) for n in result] == [["-c", "10"]] * 3 + [["-c", "3"]]
    result = nodes("foo bar baz -c:foo,bar,baz 10")
    assert [opts(n) for n in result] == [["-c", "10"]] * 3


def test_docs_joined_short_value_and_count_of_one() -> None:
    (node,) = nodes("1 -A proj -l INFO -c4 --pidfile=/var/run/multiq/%n.pid")
    assert node.name == f"multiq1@{HOST}"
    assert opts(node) == ["-l", "INFO", "-c4"]
    assert node.pidfile == "/var/run/multiq/multiq1.pid"


def test_daemonizing_example_with_per_node_options() -> None:
    line = ("worker1 worker2 worker3 -A proj --pidfile=/var/run/multiq/%n.pid "
            "--logfile=/var/log/multiq/%n%I.log --loglevel=INFO "
            "--time-limit=300 -c 8 -c:worker2 4 -c:worker3 2 -Ofair:worker1")
    w1, w2, w3 = nodes(line)
    assert opts(w1) == ["--loglevel=INFO", "--time-limit=300", "-c", "8", "-Ofair"]
    assert opts(w2) == ["--loglevel=INFO", "--time-limit=300", "-c", "4"]
    assert opts(w3) == ["--loglevel=INFO", "--time-limit=300", "-c", "2"]
    assert w3.argv[:6] == [PY, "-m", "multiq", "-A", "proj", "worker"]
    assert w3.logfile == "/var/log/multiq/worker3%I.log"


# -- names ---------------------------------------------------------------------------------


def test_range_prefix() -> None:
    assert names("3 --range-prefix=worker") == [f"worker{i}@{HOST}" for i in (1, 2, 3)]


def test_two_numbers_are_names_not_a_count() -> None:
    assert names("3 4") == [f"3@{HOST}", f"4@{HOST}"]


def test_hostname_option_sets_the_host_part() -> None:
    assert names("w1 w2 -n example.com") == ["w1@example.com", "w2@example.com"]
    assert names("w1 -n %n.internal") == ["w1@myhost.internal"]


def test_host_expansion_in_names() -> None:
    assert names("a@%n b@x.%d c@%h") == ["a@myhost", "b@x.example.com", f"c@{HOST}"]
    assert host_format("%h|%n|%d|%%", "a.b.c") == "a.b.c|a|b.c|%"


def test_prefix_and_suffix() -> None:
    assert names("w1 w2 --prefix=eu-") == [f"eu-w1@{HOST}", f"eu-w2@{HOST}"]
    assert names("w1 --suffix=other.org -n ignored.org") == ["w1@other.org"]
    assert names("w1 --suffix='\"\"'") == ["w1@"]
    assert names("2 --prefix=eu-") == [f"multiq1@{HOST}", f"multiq2@{HOST}"]


def test_no_names_no_nodes_and_duplicates_refused() -> None:
    assert nodes("-c 3") == []
    with pytest.raises(MultiUsageError, match="more than once"):
        nodes("w1 w1@%h")


# -- tokenising ----------------------------------------------------------------------------


def test_long_option_values_only_with_equals() -> None:
    args = parse_argv(["w1", "--loglevel", "DEBUG"])
    assert args.options == {"--loglevel": None}
    assert args.names == ["w1", "DEBUG"]


def test_short_option_does_not_take_a_dash_token() -> None:
    args = parse_argv(["w1", "-E", "-c", "3", "-B"])
    assert args.options == {"-E": None, "-c": "3", "-B": None}


def test_per_node_option_forms() -> None:
    args = parse_argv(["w1", "w2", "w3", "-c:1-3", "4", "--concurrency:w2=8",
                       "-Q:w1,w3", "images"])
    assert args.per_node == [NodeOption("1-3", "-c", "4"), NodeOption("w2", "--concurrency", "8"),
                             NodeOption("w1,w3", "-Q", "images")]
    w1, w2, w3 = nodes("w1 w2 w3 --concurrency:w2=8 -Q:w1,w3 images")
    assert (opts(w1), opts(w2), opts(w3)) == (["-Q", "images"], ["--concurrency=8"],
                                              ["-Q", "images"])


def test_selector_by_full_name_and_later_wins() -> None:
    w1, w2 = nodes("w1 w2 -c 1 -c:w2@%h 5 -c:1,2 7 -c:w1 9")
    assert (opts(w1), opts(w2)) == (["-c", "9"], ["-c", "7"])


def test_passthrough_after_double_dash() -> None:
    (node,) = nodes("w1 -c 3 -- .disable_rate_limits=1 -x")
    assert node.argv[-3:] == ["--", ".disable_rate_limits=1", "-x"]
    assert opts(node) == ["-c", "3"]


@pytest.mark.parametrize(("token", "expected"), [
    ("-9", signal.SIGKILL), ("-KILL", signal.SIGKILL), ("-SIGKILL", signal.SIGKILL),
    ("-TERM", signal.SIGTERM), ("-QUIT", signal.SIGQUIT), ("-15", signal.SIGTERM),
])
def test_trailing_signal(token: str, expected: int) -> None:
    args = parse_argv(["w1", "w2", "--pidfile=/tmp/%n.pid", token])
    assert args.signal == int(expected) and isinstance(args.signal, int)
    assert args.options == {} and args.names == ["w1", "w2"]


def test_default_signal_and_bad_signal_number() -> None:
    assert parse_argv(["w1"]).signal == signal.SIGTERM
    with pytest.raises(MultiUsageError, match="unknown signal"):
        parse_argv(["w1", "-999"])


def test_multi_level_options_are_consumed() -> None:
    args = parse_argv(shlex.split(
        "w1 -q --verbose --nosplash --no-color --timeout=30 --kill-after=5.5 "
        "--executable=/opt/py -p /run/%n.pid -f /log/%n.log --append='-E -B' --cmd='-m x'"))
    assert args.options == {} and args.names == ["w1"]
    assert (args.quiet, args.verbose, args.nosplash, args.no_color) == (True,) * 4
    assert (args.timeout, args.kill_after) == (30.0, 5.5)
    assert (args.executable, args.pidfile) == ("/opt/py", "/run/%n.pid")
    assert args.logfile == "/log/%n.log"
    assert (args.append, args.cmd) == ("-E -B", "-m x")
    assert MultiArgs().executable == sys.executable
    assert (MultiArgs().pidfile, MultiArgs().logfile) == ("/var/run/multiq/%n.pid",
                                                          "/var/log/multiq/%n%I.log")


@pytest.mark.parametrize("line", ["w1 --timeout=soon", "w1 --kill-after=-1", "w1 --prefix",
                                  "w1 -n", "w1 --prefix:w1=x", "w1 -"])
def test_bad_multi_level_options(line: str) -> None:
    with pytest.raises(MultiUsageError):
        parse_argv(shlex.split(line))


def test_shift_takes_the_first_positional() -> None:
    template, rest = parse_argv(["%n.pid", "3", "-c", "2"]).shift()
    assert template == "%n.pid" and rest.names == ["3"] and rest.options == {"-c": "2"}
    with pytest.raises(MultiUsageError):
        MultiArgs().shift()


# -- templates -----------------------------------------------------------------------------


def test_expand_with_multis_meanings() -> None:
    (node,) = nodes("w1")
    assert node.expand("%n.pid") == "w1.pid"
    assert node.expand("%h|%p|%d|%N") == f"w1@{HOST}|w1@{HOST}|{HOST}|w1"
    assert node.expand("%n%I-%i.log 100%%") == "w1%I-%i.log 100%"


def test_unknown_placeholder_raises_value_error() -> None:
    (node,) = nodes("w1")
    with pytest.raises(ValueError, match="%x"):
        node.expand("/tmp/%x.pid")


def test_default_and_relative_files() -> None:
    (node,) = nodes("w1")
    assert node.pidfile == "/var/run/multiq/w1.pid"
    assert node.logfile == "/var/log/multiq/w1%I.log"
    (node,) = nodes("w1 --pidfile=./run/%n.pid --logfile=./log/%p.log")
    assert node.pidfile == "./run/w1.pid"
    assert node.argv[-2:] == ["--pidfile=./run/w1.pid", f"--logfile=./log/w1@{HOST}.log"]


def test_per_node_pidfile() -> None:
    w1, w2, w3 = nodes("w1 w2 w3 --pidfile=/run/%n.pid --pidfile:w1=/a/%n.pid -p:w2 /b/%n.pid")
    assert [w1.pidfile, w2.pidfile, w3.pidfile] == ["/a/w1.pid", "/b/w2.pid", "/run/w3.pid"]
    assert opts(w1) == []


# -- the rebuilt argv ----------------------------------------------------------------------


def test_argv_short_long_and_flags() -> None:
    (node,) = nodes("w1 -c 4 --loglevel=DEBUG -E --statedb=/var/run/multiq/%n.state")
    assert opts(node) == ["-c", "4", "--loglevel=DEBUG", "-E",
                          "--statedb=/var/run/multiq/w1.state"]


def test_global_options_hoisted_before_worker() -> None:
    (node,) = nodes("w1 -c 2 -A proj --broker=redis://localhost/1 --result-backend=redis:// -C")
    assert node.argv[:9] == [PY, "-m", "multiq", "-A", "proj", "--broker=redis://localhost/1",
                             "--result-backend=redis://", "-C", "worker"]
    assert opts(node) == ["-c", "2"]
    assert parse_argv(["w1", "-C"]).no_color


def test_cmd_executable_and_append() -> None:
    (node,) = nodes("w1 -A proj --executable=/opt/py --cmd='-m multiq worker' --append='-E %n'")
    assert node.argv == ["/opt/py", "-m", "multiq", "-A", "proj", "worker", "-n", f"w1@{HOST}",
                         "--pidfile=/var/run/multiq/w1.pid",
                         "--logfile=/var/log/multiq/w1%I.log", "-E", "w1"]


def test_node_constructed_directly() -> None:
    node = Node(f"w9@{HOST}", {"-c": "1"})
    assert node.short_name == "w9" and node.hostname == HOST
    assert node.argv[0] == PY and node.pidfile == "/var/run/multiq/w9.pid"


# -- get and selector errors ---------------------------------------------------------------


def test_find_for_get() -> None:
    result = nodes("w1 w2")
    assert find(result, f"w2@{HOST}") is result[1]
    assert find(result, "w1") is result[0]
    assert find(result, "w1@%h", gethostname=lambda: HOST) is result[0]
    assert find(result, "w3@host") is None


@pytest.mark.parametrize(("line", "message"), [
    ("3 -c:7 10", "index '7'"),
    ("3 -c:0 10", "index '0'"),
    ("3 -c:2-9 10", "index '9'"),
    ("3 -c:3-1 10", "empty node range"),
    ("a b -c:1-2 10", "only works with a node count"),
    ("a b -c:zed 10", "no node named 'zed'"),
])
def test_unknown_selector(line: str, message: str) -> None:
    with pytest.raises(MultiUsageError, match=message) as info:
        nodes(line)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MultiQError)
