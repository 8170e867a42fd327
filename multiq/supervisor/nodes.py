"""The model of ``multiq multi`` command lines: parsing, node names, templates, node argv.

Pure: no processes and no I/O apart from ``socket.gethostname()``, which is injectable.
Two expansion stages (SPEC §4): here ``%n %N %h %p %d %%``; ``%i``/``%I`` are left for
each worker process.  Host names (``w1@%h``, ``-n``) use the host meanings instead:
``%h`` full host, ``%n`` its first label, ``%d`` its domain.
"""
from __future__ import annotations

import re
import shlex
import signal
import socket
import sys
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from multiq.exceptions import MultiQError

DEFAULT_PIDFILE = "/var/run/multiq/%n.pid"
DEFAULT_LOGFILE = "/var/log/multiq/%n%I.log"
DEFAULT_RANGE_PREFIX = "multiq"

#: Global app options: placed before the ``worker`` sub-command in each node's argv.
HOISTED = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--config",
                     "--workdir", "-C"})
#: Multi-level options taking a value → the ``MultiArgs`` field they set.
_MULTI_VALUES = {
    "--range-prefix": "range_prefix", "-n": "hostname", "--hostname": "hostname",
    "--prefix": "prefix", "--suffix": "suffix", "--cmd": "cmd", "--append": "append",
    "--executable": "executable", "-p": "pidfile", "--pidfile": "pidfile",
    "-f": "logfile", "--logfile": "logfile", "--timeout": "timeout",
    "--kill-after": "kill_after",
}
#: Multi-level flags (never take a value, never passed to nodes).
_MULTI_FLAGS = {"--verbose": "verbose", "-q": "quiet", "--quiet": "quiet",
                "--nosplash": "nosplash", "--no-color": "no_color"}
#: Multi-level options that may also be given per node (``--pidfile:w1=...``).
_PER_NODE_FILES = {"-p": "--pidfile", "--pidfile": "--pidfile",
                   "-f": "--logfile", "--logfile": "--logfile"}

_PLACEHOLDER = re.compile(r"%([%\w])")
_SIGNAL_TOKEN = re.compile(r"-(?:([0-9]+)|([A-Z][A-Z0-9]*))")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_NUMBER = re.compile(r"[0-9]+")
_SIGTERM = int(signal.SIGTERM)

Options = Dict[str, Optional[str]]


class MultiUsageError(MultiQError, ValueError):
    """A ``multi`` command line that cannot be understood (bad option, selector, template)."""


class NodeOption(NamedTuple):
    """A per-node option: ``-c:1-3 4`` is ``NodeOption("1-3", "-c", "4")``."""

    selector: str
    option: str
    value: Optional[str]


@dataclass
class MultiArgs:
    """A tokenised ``multi`` command line (what follows the sub-command)."""

    names: List[str] = field(default_factory=list)
    options: Options = field(default_factory=dict)
    per_node: List[NodeOption] = field(default_factory=list)
    passthrough: List[str] = field(default_factory=list)
    signal: int = _SIGTERM
    range_prefix: str = DEFAULT_RANGE_PREFIX
    hostname: Optional[str] = None
    prefix: str = ""
    suffix: Optional[str] = None
    cmd: Optional[str] = None
    append: str = ""
    executable: str = field(default_factory=lambda: sys.executable)
    pidfile: str = DEFAULT_PIDFILE
    logfile: str = DEFAULT_LOGFILE
    timeout: Optional[float] = None
    kill_after: Optional[float] = None
    verbose: bool = False
    quiet: bool = False
    nosplash: bool = False
    no_color: bool = False

    def shift(self) -> Tuple[str, MultiArgs]:
        """Split off the first positional (``get NAME ...``, ``expand TEMPLATE ...``)."""
        if not self.names:
            raise MultiUsageError("missing argument before the node names")
        return self.names[0], replace(self, names=self.names[1:])


def parse_argv(argv: List[str]) -> MultiArgs:
    """Tokenise ``argv`` with the rules of Celery's multi parser (reference §1.1)."""
    args = MultiArgs()
    tokens = [token for token in argv if token]
    pos = 0
    while pos < len(tokens):
        token = tokens[pos]
        pos += 1
        if token == "--":
            args.passthrough = tokens[pos:]
            break
        if not token.startswith("-"):
            args.names.append(token)
            continue
        if token.partition("=")[0] in _MULTI_FLAGS:
            setattr(args, _MULTI_FLAGS[token.partition("=")[0]], True)
            continue
        signum = _signal_of(token)
        if signum is not None:
            args.signal = signum
            continue
        if token == "-":
            raise MultiUsageError("'-' is not an option")
        value: Optional[str] = None
        if token.startswith("--"):
            body, eq, raw = token[2:].partition("=")
            name, value = "--" + body, (raw if eq else None)
        else:
            name = token
            if token != "-C" and pos < len(tokens) and not tokens[pos].startswith("-"):
                value, pos = tokens[pos], pos + 1
        _add_option(args, name, value)
    return args


def _signal_of(token: str) -> Optional[int]:
    """``-9`` / ``-KILL`` / ``-SIGKILL`` → signal number; None if not a signal token."""
    match = _SIGNAL_TOKEN.fullmatch(token)
    if match is None:
        return None
    digits, name = match.groups()
    if digits is not None:
        try:
            return int(signal.Signals(int(digits)))
        except ValueError:
            raise MultiUsageError(f"unknown signal {token!r}") from None
    assert name is not None
    found = getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)
    return int(found) if isinstance(found, signal.Signals) else None


def _add_option(args: MultiArgs, name: str, value: Optional[str]) -> None:
    option, colon, selector = name.partition(":")
    if colon:
        if option in _PER_NODE_FILES:
            option = _PER_NODE_FILES[option]
        elif option in _MULTI_VALUES or option in _MULTI_FLAGS:
            raise MultiUsageError(f"{option} cannot be set per node ({name})")
        if not selector:
            raise MultiUsageError(f"empty node selector in {name!r}")
        args.per_node.append(NodeOption(selector, option, value))
    elif option in _MULTI_VALUES:
        _set_multi_value(args, option, value)
    else:
        if option == "-C":
            args.no_color = True
        args.options[option] = value


def _set_multi_value(args: MultiArgs, option: str, value: Optional[str]) -> None:
    attr = _MULTI_VALUES[option]
    if value is None:
        form = f"{option}=VALUE" if option.startswith("--") else f"{option} VALUE"
        raise MultiUsageError(f"{option} needs a value ({form})")
    if attr in ("timeout", "kill_after"):
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            raise MultiUsageError(f"{option} needs a number of seconds, not {value!r}")
        setattr(args, attr, seconds)
    else:
        setattr(args, attr, value)


def _format(template: str, keys: Dict[str, str]) -> str:
    def resolve(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in keys:
            raise MultiUsageError(f"unknown placeholder %{key} in {template!r}")
        return keys[key]

    return _PLACEHOLDER.sub(resolve, template)


def host_format(template: str, host: str) -> str:
    """Expand a node name with host meanings: ``%h`` host, ``%n`` first label, ``%d`` domain."""
    label, _, domain = host.partition(".")
    return _format(template, {"h": host, "n": label, "d": domain, "%": "%"})


def _format_opt(option: str, value: Optional[str]) -> List[str]:
    if value is None:
        return [option]
    return [f"{option}={value}"] if option.startswith("--") else [option, value]


@dataclass
class Node:
    """One worker node of a ``multi`` command line."""

    name: str
    options: Options = field(default_factory=dict)
    pidfile_template: str = DEFAULT_PIDFILE
    logfile_template: str = DEFAULT_LOGFILE
    executable: str = field(default_factory=lambda: sys.executable)
    cmd: Optional[str] = None
    passthrough: List[str] = field(default_factory=list)
    append: str = ""

    @property
    def short_name(self) -> str:
        return self.name.partition("@")[0]

    @property
    def hostname(self) -> str:
        return self.name.partition("@")[2]

    @property
    def pidfile(self) -> str:
        return self.expand(self.pidfile_template)

    @property
    def logfile(self) -> str:
        """The log file after multi's stage: ``%I``/``%i`` are still in it."""
        return self.expand(self.logfile_template)

    def expand(self, template: str) -> str:
        """Expand ``%n %N %h %p %d %%`` with multi's meanings; keep ``%i %I``."""
        short, full = self.short_name, self.name
        keys = {"n": short, "N": short, "h": full, "p": full, "d": self.hostname,
                "i": "%i", "I": "%I", "%": "%"}
        return _format(template, keys)

    @property
    def argv(self) -> List[str]:
        """The command that starts this node, executable first."""
        hoisted: List[str] = []
        rest: List[str] = []
        for option, value in self.options.items():
            expanded = None if value is None else self.expand(value)
            (hoisted if option in HOISTED else rest).extend(_format_opt(option, expanded))
        if self.cmd is None:
            head = ["-m", "multiq", *hoisted, "worker", "--detach"]
        else:
            head = [self.expand(token) for token in shlex.split(self.cmd)]
            at = head.index("multiq") + 1 if "multiq" in head else len(head)
            head[at:at] = hoisted
        argv = [self.executable, *head, *rest, "-n", self.name,
                f"--pidfile={self.pidfile}", f"--logfile={self.logfile}"]
        if self.passthrough:
            argv += ["--", *self.passthrough]
        return argv + [self.expand(token) for token in shlex.split(self.append)]


class Cluster:
    """Turns ``MultiArgs`` into nodes: the name rules (§1.3) and per-node options (§1.4)."""

    def __init__(self, gethostname: Callable[[], str] = socket.gethostname) -> None:
        self.gethostname = gethostname

    def nodes_from(self, args: MultiArgs) -> List[Node]:
        count = len(args.names) == 1 and _NUMBER.fullmatch(args.names[0]) is not None
        keys = [str(i) for i in range(1, int(args.names[0]) + 1)] if count else args.names
        prefix = args.range_prefix if count else args.prefix
        names = [self._nodename(key, prefix, args) for key in keys]
        seen = set()
        for name in names:
            if name in seen:
                raise MultiUsageError(f"node {name} is given more than once")
            seen.add(name)
        options: List[Options] = [dict(args.options) for _ in names]
        for selector, option, value in args.per_node:
            for index in self._select(selector, keys, names, count):
                options[index][option] = value
        return [
            Node(name=name, options=opts,
                 pidfile_template=opts.pop("--pidfile", None) or args.pidfile,
                 logfile_template=opts.pop("--logfile", None) or args.logfile,
                 executable=args.executable, cmd=args.cmd,
                 passthrough=list(args.passthrough), append=args.append)
            for name, opts in zip(names, options)
        ]

    def _nodename(self, key: str, prefix: str, args: MultiArgs) -> str:
        if "@" in key:
            return host_format(key, self.gethostname())
        if args.suffix in ('""', "''"):
            host = ""
        elif args.suffix:
            host = args.suffix
        else:
            host = args.hostname if args.hostname is not None else self.gethostname()
        return host_format(f"{prefix}{key}@{host}", self.gethostname())

    def _select(self, selector: str, keys: List[str], names: List[str], count: bool) -> List[int]:
        """Indexes of the nodes chosen by ``selector`` (names, 1-based indexes, ranges)."""
        chosen: List[int] = []
        for item in selector.split(","):
            if "@" in item and "%" in item:
                item = host_format(item, self.gethostname())
            matches = [i for i, (key, name) in enumerate(zip(keys, names))
                       if item in (key, name, name.partition("@")[0])]
            span = _RANGE.fullmatch(item)
            if matches:
                chosen += matches
            elif _NUMBER.fullmatch(item):
                chosen.append(_index(item, len(names)))
            elif count and span:
                first, last = _index(span[1], len(names)), _index(span[2], len(names))
                if first > last:
                    raise MultiUsageError(f"empty node range {item!r}")
                chosen += range(first, last + 1)
            elif span:
                raise MultiUsageError(f"node range {item!r} only works with a node count")
            else:
                raise MultiUsageError(f"no node named {item!r} (nodes: {', '.join(names)})")
        return chosen


def _index(text: str, total: int) -> int:
    number = int(text)
    if not 1 <= number <= total:
        raise MultiUsageError(
            f"no node at index {text!r}: indexes run from 1 to {total}")
    return number - 1


def find(nodes: List[Node], name: str,
         gethostname: Callable[[], str] = socket.gethostname) -> Optional[Node]:
    """The node whose full or short name is ``name`` (``multi get``), or None."""
    if "@" in name and "%" in name:
        name = host_format(name, gethostname())
    for node in nodes:
        if name in (node.name, node.short_name):
            return node
    return None
