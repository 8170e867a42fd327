"""``multiq worker``: start a node in the foreground, with Celery's banner."""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
from typing import Any, Dict, List, Optional, Tuple

import click

from multiq import __version__
from multiq.cli.base import (
    CLIContext,
    global_options,
    hold_pidfile,
    hostname_option,
    merge_globals,
    require_broker,
)
from multiq.cli.compat import accepted


def _concurrency(ctx: click.Context, param: Any, value: Optional[int]) -> Optional[int]:
    """Celery's check: a negative size is refused; 0 means the default (CPU count)."""
    if value is not None and value < 0:
        raise click.BadParameter(f"must be a non-negative integer, got {value!r}")
    return value or None


def _autoscale_option(ctx: click.Context, param: Any, value: Optional[str]) -> Optional[str]:
    """Celery's checks of ``--autoscale MAX[,MIN]`` (the value is parsed by _autoscale)."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) > 2:
        raise click.BadParameter("Expected two comma separated integers or one integer."
                                 f"Got {len(parts)} instead.")
    try:
        [int(p) for p in parts]
    except ValueError:
        if len(parts) == 1:
            raise click.BadParameter(f"Expected an integer. Got {value} instead.") from None
        raise click.BadParameter("Expected two comma separated integers."
                                 f"Got {value} instead.") from None
    return value


def _split(values: Any) -> List[str]:
    out: List[str] = []
    for value in values or ():
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"],
                                case_sensitive=False), help="Logging level.")
@click.option("-c", "--concurrency", type=int, default=None, callback=_concurrency,
              help="Number of pool threads/processes/greenlets/coroutines (default: CPU "
                   "count; with -P gevent, eventlet or asyncio many, e.g. -c 500).")
@click.option("-P", "--pool", type=click.Choice(["prefork", "processes", "solo", "threads",
                                                  "gevent", "eventlet", "asyncio"],
                                                 case_sensitive=False), default=None,
              help="Pool implementation (default prefork).")
@click.option("-Q", "--queues", multiple=True, help="Queues to consume from (comma list).")
@click.option("-X", "--exclude-queues", multiple=True, help="Queues not to consume from.")
@hostname_option()
@click.option("-f", "--logfile", default=None,
              help="Log file (default: stderr); %n %h %d %p %i %I are expanded.")
@click.option("--pidfile", default=None, help="Pid file; %n %h %d %p are expanded.")
@click.option("-D", "--detach", is_flag=True, default=False, help="Run in the background.")
@click.option("--uid", default=None, help="User to run as (name or id), with --detach.")
@click.option("--gid", default=None, help="Group to run as (name or id), with --detach.")
@click.option("--umask", default=None, help="Umask (octal) of the detached process.")
@accepted("--executable", reason="the node runs the Python that runs multiq")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True,
              help="With --detach: how long to wait for the node to be ready.")
@click.option("--prefetch-multiplier", type=int, default=None,
              help="Messages held per pool slot (default 4).")
@click.option("--disable-prefetch", is_flag=True, default=False,
              help="Hold no message beyond the pool's free slots (--prefetch-multiplier 1).")
@click.option("--max-tasks-per-child", type=int, default=None,
              help="Replace a pool child after this many tasks.")
@click.option("--max-memory-per-child", type=int, default=None,
              help="Replace a pool child once its resident memory passes this many KiB.")
@click.option("--time-limit", type=float, default=None, help="Hard time limit (seconds).")
@click.option("--soft-time-limit", type=float, default=None, help="Soft time limit (seconds).")
@click.option("--soft-shutdown-timeout", type=float, default=None,
              help="Bound a warm shutdown: after this many seconds it turns cold.")
@click.option("--autoscale", default=None, callback=_autoscale_option,
              help="MAX,MIN pool processes (prefork).")
@click.option("-E", "--task-events", "--events", "task_events", is_flag=True, default=False,
              help="Send task events.")
@click.option("--without-metrics", is_flag=True, default=False,
              help="Do not count outcomes in Redis for Prometheus (worker_metrics).")
@click.option("-B", "--beat", is_flag=True, default=False,
              help="Also run beat in this node (only one beat sends, whatever runs).")
@click.option("--scheduler", default=None,
              help="With -B: where the periodic tasks come from (as beat's -S).")
@accepted("-s", "--schedule-filename", "--schedule",
          reason="beat's last-run times are kept in Redis, not in a file")
@click.option("-I", "--include", multiple=True, help="Extra modules to import (comma list).")
@click.option("--purge", "--discard", "purge", is_flag=True, default=False,
              help="Erase the waiting messages of the node's queues before it starts "
                   "(no undo).")
@click.option("--heartbeat-interval", type=float, default=None,
              help="Seconds between the node's heartbeats (default 1).")
@accepted("--without-heartbeat", flag=True,
          reason="a node's heartbeat in Redis is its liveness, which redelivery relies on")
@accepted("--without-gossip", flag=True,
          reason="nodes know each other from their heartbeats in Redis, there is no gossip")
@accepted("--without-mingle", flag=True,
          reason="revokes are kept in Redis and read at start, there is no mingle")
@accepted("-O", "--optimization",
          reason="a node hands each message to a free pool slot, as -O fair does")
@accepted("-S", "--statedb",
          reason="revoked ids live in Redis and outlast restarts without a state file")
@accepted("--pool-start-method", check=lambda v: None if v == "fork" else
          "prefork children are forked; there is no other start method",
          reason="prefork children are always forked")
@click.argument("overrides", nargs=-1, metavar="[-- NAME=VALUE...]")
@click.pass_context
def worker(ctx: click.Context, **kwargs: Any) -> None:
    """Start a worker node.

    Settings may follow "--" as NAME=VALUE, each value read as JSON where it parses:
    multiq -A proj worker -- worker_prefetch_multiplier=1 task_acks_late=true"""
    from multiq.supervisor import daemon
    from multiq.task import check_time_limits

    try:
        check_time_limits(kwargs["soft_time_limit"], kwargs["time_limit"])
    except ValueError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from exc
    obj: CLIContext = merge_globals(ctx, kwargs)
    app = obj.app
    _apply_overrides(app, kwargs.pop("overrides", ()))
    require_broker(app)
    if kwargs["disable_prefetch"]:
        kwargs["prefetch_multiplier"] = 1
    if kwargs["heartbeat_interval"] is not None:
        app.conf.worker_heartbeat_interval = kwargs["heartbeat_interval"]
    if kwargs["scheduler"]:
        app.conf.beat_scheduler = kwargs["scheduler"]
    opts = NodeOptions.from_cli(app, kwargs)
    pidfile = opts.pidfile_path()
    if kwargs["detach"] and not os.environ.get(daemon.DAEMON_ENV):
        sys.exit(_detach(obj, opts, pidfile, kwargs))
    sys.exit(run_node(obj, opts, pidfile, daemon.Reporter(None),
                      detached=bool(os.environ.get(daemon.DAEMON_ENV))))


def _apply_overrides(app: Any, overrides: Any) -> None:
    """Settings given after ``--`` as ``name=value`` (a leading ``.`` is allowed)."""
    import json

    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"Expected name=value after --, got {item!r}")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        app.conf[key.lstrip(".")] = parsed


def _detach(obj: CLIContext, opts: NodeOptions, pidfile: Optional[str],
            kwargs: Dict[str, Any]) -> int:
    """In the launcher: check what can be checked here, fork the daemon, wait for READY."""
    from multiq.supervisor import daemon
    from multiq.supervisor.pidfile import Pidfile

    if pidfile:
        owner = Pidfile(pidfile).owner()
        if owner is not None:
            click.echo(f"ERROR: Pidfile ({pidfile}) already exists.\n"
                       f"Seems we're already running? (pid: {owner.pid})", err=True)
            return 73
    try:
        uid = daemon.resolve_uid(kwargs["uid"])
        gid = daemon.resolve_gid(kwargs["gid"], uid)
        umask = daemon.parse_umask(kwargs["umask"])
    except (KeyError, ValueError) as exc:
        raise click.UsageError(f"Bad --uid/--gid/--umask: {exc}") from exc
    logfile = opts.main_logfile()
    log_start = 0
    for path in (logfile, pidfile):
        if path:  # made here, as the launching user, then handed to the node's user
            _make_dir_for(path, uid, gid)
    if logfile:
        with open(logfile, "a") as fh:
            log_start = fh.tell()
        if uid is not None:
            os.chown(logfile, uid, gid if gid is not None else -1)

    def failed(reason: str) -> None:
        click.echo(f"ERROR: node {opts.hostname} did not start: {reason}", err=True)
        if logfile:
            click.echo(tail(logfile, since=log_start), err=True)

    def waiting(reason: str) -> None:
        click.echo(f"node {opts.hostname} is {reason}; retrying for up to "
                   f"{kwargs['ready_timeout']:g}s", err=True)

    return daemon.detach(
        lambda reporter: run_node(obj, opts, pidfile, reporter, detached=True),
        workdir=obj.options.get("workdir") or os.getcwd(), umask=umask, uid=uid, gid=gid,
        timeout=kwargs["ready_timeout"], on_failure=failed, on_waiting=waiting,
    )


def _make_dir_for(path: str, uid: Optional[int], gid: Optional[int]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return
    os.makedirs(directory, exist_ok=True)
    if uid is not None:
        os.chown(directory, uid, gid if gid is not None else -1)


def run_node(obj: CLIContext, opts: NodeOptions, pidfile: Optional[str], reporter: Any,
             detached: bool) -> int:
    """Run the node in this process until it stops; re-exec on a HUP restart."""
    from multiq import log
    from multiq.exceptions import ImproperlyConfigured
    from multiq.worker.worker import Worker

    log.setup(opts.loglevel, opts.main_logfile(), opts.log_format, node=opts.hostname)
    lock = hold_pidfile(pidfile, reporter)
    if isinstance(lock, int):
        return lock
    restarting = False
    try:
        obj.app.import_default_modules()
        try:
            node = Worker(obj.app, on_ready=reporter.ready, on_waiting=reporter.waiting,
                          detached=detached, **opts.worker_kwargs())
        except ImproperlyConfigured as exc:
            reporter.error(str(exc))
            raise click.UsageError(str(exc)) from exc
        if not obj.quiet and not detached:
            click.echo(banner(node))
        elif detached:
            logging.getLogger("multiq.worker").info("\n%s", banner(node))
        if opts.values.get("purge"):
            _purge(obj.app, node.queues)
        conf = obj.app.conf
        # a daemon's stdout is /dev/null, and with a log file it is not the log: what the
        # tasks print would be lost, so it goes to the log (the pool's children inherit it)
        redirect = conf.worker_redirect_stdouts and (detached or opts.main_logfile())
        with log.stdouts_to_log(conf.worker_redirect_stdouts_level) if redirect \
                else contextlib.nullcontext():
            code = node.run()
        restarting = node.restart_requested
    except click.UsageError:
        raise
    except Exception:
        logging.getLogger("multiq.worker").critical("Node %s failed to start", opts.hostname,
                                                    exc_info=True)
        raise
    finally:
        if lock is not None:
            lock.release(keep_argv=restarting)  # a pid file is never left behind
    if node.failure:
        reporter.error(node.failure)
    if restarting:
        _reexec()
    return code


def _purge(app: Any, queues: List[str]) -> None:
    """``--purge``: what waits in the node's queues is erased before it consumes."""
    from multiq.broker.deadletter import purge_queue

    total = sum(purge_queue(app.broker, queue) for queue in queues)
    logging.getLogger("multiq.worker").warning(
        "purge: erased %d %s from %s", total, "message" if total == 1 else "messages",
        ", ".join(queues))


def _reexec() -> None:
    """HUP: start again in place, same pid, same arguments (already detached)."""
    from multiq.config import mask_argv

    logging.getLogger("multiq.worker").warning("Restarting node with %s", mask_argv(sys.argv))
    logging.shutdown()
    for fd in (0, 1, 2):  # a daemon's std streams are /dev/null; keep them open across exec
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(os.open(os.devnull, os.O_RDWR), fd)
    os.execv(sys.executable, [sys.executable, "-m", "multiq", *sys.argv[1:]])


def tail(path: str, lines: int = 20, since: int = 0) -> str:
    """The last lines of a log file written after byte ``since``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(text)


class NodeOptions:
    """The worker command's options, resolved once (templates, autoscale, logging)."""

    def __init__(self, app: Any, values: Dict[str, Any]) -> None:
        from multiq.naming import nodename

        self.app = app
        self.values = values
        self.hostname = nodename(values.get("hostname") or app.conf.worker_hostname)
        self.loglevel = values.get("loglevel") or "WARNING"
        self.logfile = values.get("logfile")
        self.log_format = getattr(app.conf, "changes", {}).get("worker_log_format")

    @classmethod
    def from_cli(cls, app: Any, values: Dict[str, Any]) -> NodeOptions:
        for module in _split(values.get("include")):
            app.conf.include = [*(app.conf.include or []), module]
        if values.get("task_events"):
            app.conf.worker_send_task_events = True
        if values.get("without_metrics"):
            app.conf.worker_metrics = False
        return cls(app, values)

    def pidfile_path(self) -> Optional[str]:
        from multiq.naming import node_expand
        path = self.values.get("pidfile")
        return os.path.abspath(node_expand(path, self.hostname)) if path else None

    def main_logfile(self) -> Optional[str]:
        return self.child_logfile(0)

    def child_logfile(self, index: int) -> Optional[str]:
        from multiq.naming import node_expand
        if not self.logfile:
            return None
        return os.path.abspath(node_expand(self.logfile, self.hostname, index))

    def worker_kwargs(self) -> Dict[str, Any]:
        from multiq import log
        from multiq.naming import has_index

        v = self.values
        autoscale = _autoscale(v.get("autoscale"))
        concurrency = v.get("concurrency")
        if autoscale and not concurrency:
            concurrency = max(1, autoscale[1])
        kwargs: Dict[str, Any] = dict(
            hostname=self.hostname, concurrency=concurrency, pool=v.get("pool"),
            queues=_split(v.get("queues")) or None,
            exclude_queues=_split(v.get("exclude_queues")),
            prefetch_multiplier=v.get("prefetch_multiplier"),
            max_tasks_per_child=v.get("max_tasks_per_child"),
            max_memory_per_child=v.get("max_memory_per_child"),
            time_limit=v.get("time_limit"), soft_time_limit=v.get("soft_time_limit"),
            soft_shutdown_timeout=v.get("soft_shutdown_timeout"), autoscale=autoscale,
            beat=bool(v.get("beat")),
        )
        if has_index(self.logfile):
            kwargs["setup_child_logging"] = lambda index: log.setup(
                self.loglevel, self.child_logfile(index), self.log_format, node=self.hostname)
        return kwargs


def _autoscale(value: Optional[str]) -> Optional[Tuple[int, int]]:
    if not value:
        return None
    parts = [int(p) for p in str(value).split(",") if p.strip()]
    if len(parts) == 1:
        parts.append(0)
    return max(parts[0], parts[1]), min(parts[0], parts[1])


def banner(node: Any) -> str:
    """The start-up banner: node, app, broker (password masked), pool, queues, tasks."""
    from multiq.config import mask_url

    app = node.app
    conf = app.conf
    tasks = sorted(app.tasks.regular())
    lines = [
        f" -------------- {node.hostname} v{__version__}",
        f"--- ***** ----- {_platform()} {_now()}",
        "-- ******* ---- ",
        "- *** --- * --- [config]",
        f"- ** ---------- .> app:         {app.main or '__main__'}:{id(app):#x}",
        f"- ** ---------- .> transport:   {mask_url(str(conf.broker_url))}",
        f"- ** ---------- .> results:     {mask_url(str(conf.result_backend or 'disabled://'))}",
        f"- *** --- * --- .> concurrency: {node.concurrency} ({node.pool_kind})",
        f"-- ******* ---- .> task events: {'ON' if conf.worker_send_task_events else 'OFF'}",
        "--- ***** ----- ",
        " -------------- [queues]",
    ]
    lines += [f"                .> {q:<16} priorities 0-9" for q in node.queues]
    lines += ["", "[tasks]"] + [f"  . {name}" for name in tasks] + [""]
    return "\n".join(lines)


def _platform() -> str:
    """``platform.platform()`` without its processor lookup, which runs ``uname -p`` in a
    subprocess (milliseconds of a node's start-up, for the banner only)."""
    u = platform.uname()
    name = "-".join(part for part in (u.system, u.release, u.machine) if part)
    if u.system == "Linux":
        libc, version = platform.libc_ver()
        if libc:
            name += f"-with-{libc}{version}"
    return name.replace(" ", "_")


def _now() -> str:
    import datetime as dt
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
