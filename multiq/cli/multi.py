"""``multiq multi``: start, stop and restart many named nodes (Celery's syntax)."""
from __future__ import annotations

import re
import shlex
import sys
from typing import Any, List, Sequence

import click

from multiq import __version__
from multiq.cli.base import CLIContext

USAGE = """\
multiq multi: start, stop and restart named worker nodes on this host.

  multiq multi start w1 w2 -A proj -l INFO       two nodes, w1@<host> and w2@<host>
  multiq multi start 3 -A proj -c:1-2 4          multiq1..3, the first two with -c 4
  multiq multi start 10 -A proj -Q:1-3 images,video -Q:4,5 data -Q default
  multiq multi start w1 -A proj --pidfile=/run/multiq/%n.pid --logfile=/var/log/multiq/%n%I.log
  multiq multi stop w1 w2 [-KILL]                signal (TERM by default), do not wait
  multiq multi stopwait w1 w2 --timeout=60 --kill-after=10
  multiq multi restart w1 w2                     rolling: one node at a time
  multiq multi kill w1 w2                        KILL each node and its pool children
  multiq multi status w1 w2                      pid, state, uptime, memory; exit 1 unless all run
  multiq multi show|dry-run w1 w2 -A proj        the commands start would run
  multiq multi names 3 | expand %n.pid w1 w2 | get w1@<host> w1 w2

Templates: %n node name, %h full node name, %d host, %p full node name; %i / %I are
expanded by each pool process (%n%I.log gives w1.log, w1-1.log, w1-2.log).
Anything after -- is passed to every node.

multi's own options: --pidfile / -p, --logfile / -f (defaults /var/run/multiq/%n.pid,
/var/log/multiq/%n%I.log; give the same ones to every verb), -n / --hostname (host part
of the names), --range-prefix (for counts), --prefix, --suffix, --executable, --cmd,
--append, --timeout, --kill-after, --verbose, -q / --quiet, --nosplash, --no-color.
Every other option goes to the nodes' `multiq worker`.
"""

VERBS = ("start", "stop", "stopwait", "stop_verify", "restart", "kill", "status", "show",
         "names", "expand", "get", "dry-run", "help")


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def shell_line(words: Sequence[str]) -> str:
    """``words`` as one shell command line; leading ``NAME=value`` words stay assignments."""
    head: List[str] = []
    rest = list(words)
    while rest and _ASSIGNMENT.match(rest[0]):
        name, _, value = rest.pop(0).partition("=")
        head.append(f"{name}={shlex.quote(value)}")
    return " ".join([*head, shlex.join(rest)])


class Printer:
    """Prints the supervisor's reports like ``celery multi`` (colour only on a terminal)."""

    def __init__(self, quiet: bool, color: bool, verbose: bool) -> None:
        self.quiet, self.color, self.verbose = quiet, color, verbose

    def _style(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

    def say(self, text: str) -> None:
        if not self.quiet:
            click.echo(text)

    def progress(self, text: str) -> None:
        if not self.quiet and sys.stdout.isatty():
            click.echo(text)

    def command(self, argv: Sequence[str]) -> None:
        if self.verbose and not self.quiet:
            click.echo(self._style("\t> " + shell_line(argv), dim=True))

    def node(self, node: Any, status: str, ok: bool = True, detail: str = "") -> None:
        if self.quiet and ok:
            return
        colour = {"fg": "green"} if ok and status in ("OK",) else (
            {} if ok else {"fg": "red", "bold": True})
        click.echo(f"\t> {node.name}: {self._style(status, **colour)}")
        if detail:
            click.echo(detail)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "allow_interspersed_args": False,
                                 "help_option_names": []})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def multi(ctx: click.Context, argv: Sequence[str]) -> None:
    """Start, stop and restart many named worker nodes (see `multiq multi help`)."""
    from multiq.supervisor.nodes import Cluster, MultiUsageError, find, parse_argv

    obj = ctx.ensure_object(CLIContext)
    if not argv or argv[0] in ("help", "--help", "-h") or "--help" in argv[1:] \
            or ("-h" in argv[1:] and "--" not in argv[1:argv.index("-h") + 1]):
        click.echo(USAGE)
        sys.exit(0 if argv else 1)
    verb, tokens = argv[0], _with_globals(obj, list(argv[1:]))
    if verb not in VERBS:
        click.echo(USAGE, err=True)
        click.echo(f"Invalid command: {verb}", err=True)
        sys.exit(1)
    try:
        args = parse_argv(tokens)
        target = None
        if verb in ("expand", "get"):
            target, args = args.shift()
        nodes = Cluster().nodes_from(args)
    except MultiUsageError as exc:
        click.echo(f"multiq multi: {exc}", err=True)
        sys.exit(64)
    printer = Printer(args.quiet or obj.quiet, not (args.no_color or obj.options.get(
        "no_color")) and sys.stdout.isatty(), args.verbose)
    if verb in ("names", "show", "expand", "get", "dry-run"):
        sys.exit(_print_only(verb, nodes, target, find))
    if not args.nosplash and not printer.quiet:
        click.echo(f"multiq multi v{__version__}")
    sys.exit(_act(verb, nodes, args, printer, tokens))


def _with_globals(obj: CLIContext, tokens: List[str]) -> List[str]:
    """Global options given before ``multi`` go to every node, as if given after it.

    Values that came from the environment (``MULTIQ_APP``...) are not copied: the nodes
    inherit the environment, and a URL with a password stays out of ``ps``."""
    import os

    extra: List[str] = []
    for name, flag, env in (("app", "-A", "MULTIQ_APP"), ("broker", "-b", "MULTIQ_BROKER_URL"),
                            ("result_backend", "--result-backend", "MULTIQ_RESULT_BACKEND"),
                            ("config", "--config", None), ("workdir", "--workdir", None)):
        value = obj.options.get(name)
        if not value or flag in tokens or (env and os.environ.get(env) == value):
            continue
        extra += [f"{flag}={value}"] if flag.startswith("--") else [flag, value]
    if "--" in tokens:
        at = tokens.index("--")
        return tokens[:at] + extra + tokens[at:]
    return tokens + extra


def _print_only(verb: str, nodes: List[Any], target: Any, find: Any) -> int:
    """``names``, ``show``, ``dry-run``, ``expand``, ``get``: passwords masked."""
    from multiq.config import mask_argv, mask_url
    from multiq.supervisor.launch import Launch

    if verb == "names":
        for node in nodes:
            click.echo(node.name)
    elif verb == "show":
        for node in nodes:
            click.echo(shell_line(Launch.of(node).shown()))
    elif verb == "dry-run":
        for node in nodes:
            click.echo(f"> {node.name}: {shell_line(Launch.of(node).shown())}")
    elif verb == "expand":
        for node in nodes:
            click.echo(mask_url(node.expand(target)))
    else:
        node = find(nodes, target)
        if node is None:
            click.echo(f"multiq multi: no node named {target!r}", err=True)
            return 1
        click.echo(shlex.join(mask_argv(node.argv[1:])))
    return 0


def _act(verb: str, nodes: List[Any], args: Any, printer: Printer, tokens: List[str]) -> int:
    from multiq.supervisor.multi import Supervisor

    reuse = verb == "restart" and not args.options and not args.per_node \
        and not args.passthrough
    sup = Supervisor(nodes, printer, timeout=args.timeout, kill_after=args.kill_after,
                     signum=args.signal, use_saved_argv=reuse)
    if verb == "start":
        return sup.start()
    if verb == "stop":
        return sup.stop(wait=False)
    if verb in ("stopwait", "stop_verify"):
        return sup.stop(wait=True)
    if verb == "restart":
        return sup.restart()
    if verb == "kill":
        return sup.kill()
    return _status(sup, printer)


def _status(sup: Any, printer: Printer) -> int:
    rows = sup.status()
    for row in rows:
        if row.state == "running":
            detail = (f"pid {row.pid}, up {_duration(row.uptime)}, "
                      f"{row.children} {'child' if row.children == 1 else 'children'}, "
                      f"{row.memory / 1048576:.1f} MiB")
        elif row.state == "stale":
            detail = f"stale pid file {row.node.pidfile} (pid {row.pid} is not a live node)"
        else:  # a node started with another --pidfile is not found here: say where we looked
            detail = f"not running (no pid file at {row.node.pidfile})"
        click.echo(f"\t> {row.node.name}: {row.state.upper()}  {detail}")
    return 0 if all(r.state == "running" for r in rows) else 1


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
