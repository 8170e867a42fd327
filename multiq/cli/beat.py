"""``multiq beat``: send periodic tasks (one leader among any number of beats)."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

import click

from multiq import __version__
from multiq.cli.base import (
    CLIContext,
    global_options,
    hold_pidfile,
    merge_globals,
    require_broker,
)
from multiq.cli.compat import accepted


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option("-l", "--loglevel", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"],
                                case_sensitive=False), help="Logging level.")
@click.option("-f", "--logfile", default=None, help="Log file (default: stderr).")
@click.option("--pidfile", default=None, help="Pid file.")
@click.option("-D", "--detach", is_flag=True, default=False, help="Run in the background.")
@click.option("--max-interval", type=float, default=None,
              help="Longest sleep between two checks of the schedule (seconds).")
@click.option("-s", "--schedule", "schedule_file", default=None,
              help="Accepted for compatibility; state is kept in Redis, not in a file.")
@click.option("-S", "--scheduler", default=None,
              help="Where the periodic tasks come from: 'redis' (default: beat_schedule and "
                   "app.beat), 'django' (the models of multiq.contrib.django.beat) or "
                   "module:Class. Default: the beat_scheduler setting.")
@click.option("--uid", default=None, help="User to run as (name or id), with --detach.")
@click.option("--gid", default=None, help="Group to run as (name or id), with --detach.")
@click.option("--umask", default=None, help="Umask (octal) of the detached process.")
@accepted("-n", "--hostname",
          reason="beat has no node name; its leader holds a lease in Redis")
@accepted("--enable-remote-control/--no-enable-remote-control", flag=True,
          reason="beat takes no remote control commands; control the nodes instead")
@accepted("--executable", reason="beat runs the Python that runs multiq")
@click.pass_context
def beat(ctx: click.Context, loglevel: str, logfile: Optional[str], pidfile: Optional[str],
         detach: bool, max_interval: Optional[float], schedule_file: Optional[str],
         scheduler: Optional[str], uid: Any, gid: Any, umask: Any, **kwargs: Any) -> None:
    """Start beat: sends the tasks of beat_schedule (and app.beat) when they are due."""
    from multiq.supervisor import daemon

    obj: CLIContext = merge_globals(ctx, kwargs)
    app = obj.app
    require_broker(app)
    pidfile = os.path.abspath(pidfile) if pidfile else None
    logfile = os.path.abspath(logfile) if logfile else None
    if detach and not os.environ.get(daemon.DAEMON_ENV):
        code = daemon.detach(
            lambda reporter: _run(obj, app, loglevel, logfile, pidfile, max_interval, scheduler,
                                  reporter),
            workdir=obj.options.get("workdir") or os.getcwd(),
            umask=daemon.parse_umask(umask), uid=daemon.resolve_uid(uid),
            gid=daemon.resolve_gid(gid, daemon.resolve_uid(uid)), timeout=30,
            on_failure=lambda reason: click.echo(f"ERROR: beat did not start: {reason}",
                                                 err=True))
        sys.exit(code)
    sys.exit(_run(obj, app, loglevel, logfile, pidfile, max_interval, scheduler,
                  daemon.Reporter(None)))


def _run(obj: CLIContext, app: Any, loglevel: str, logfile: Optional[str],
         pidfile: Optional[str], max_interval: Optional[float], scheduler: Optional[str],
         reporter: Any) -> int:
    import signal

    from multiq import log
    from multiq.beat.scheduler import Beat
    from multiq.beat.source import load_source
    from multiq.exceptions import ImproperlyConfigured
    from multiq.worker.worker import set_title

    log.setup(loglevel, logfile, node="beat")
    lock = hold_pidfile(pidfile, reporter)
    if isinstance(lock, int):
        return lock
    try:
        set_title("multiq beat")
        try:  # before the task modules: a database source sets Django up first
            source = load_source(app, scheduler or app.conf.get("beat_scheduler"))
        except ImproperlyConfigured as exc:
            reporter.error(str(exc))
            raise click.UsageError(str(exc)) from exc
        app.import_default_modules()
        app.finalize()  # on_after_configure: where add_periodic_task is often called
        runner = Beat(app, max_interval, source=source)
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        signal.signal(signal.SIGINT, lambda *_: runner.stop())
        if not obj.quiet:
            banner = _banner(app, runner, loglevel, logfile)
            if logfile or reporter.fd is not None:
                import logging
                logging.getLogger("multiq.beat").info("\n%s", banner)
            else:
                click.echo(banner)
        runner.run(on_first_tick=reporter.ready)  # waits out a Redis that is not up yet
    finally:
        if lock is not None:
            lock.release()
    return 0


def _count_entries(runner: Any) -> str:
    try:
        return str(len(runner.source.list()))
    except Exception as exc:  # Redis not up yet: beat waits for it
        return f"unknown ({type(exc).__name__}: Redis not reachable yet)"


def _banner(app: Any, runner: Any, loglevel: str, logfile: Optional[str]) -> str:
    from multiq.beat.source import describe
    from multiq.config import mask_url

    return "\n".join([
        f"multiq beat v{__version__} is starting.",
        "Configuration ->",
        f"    . broker -> {mask_url(str(app.conf.broker_url))}",
        f"    . scheduler -> {describe(runner.source)}",
        f"    . logfile -> {logfile or '[stderr]'}@%{loglevel.upper()}",
        f"    . maxinterval -> {runner.max_interval:g} seconds",
        f"    . entries -> {_count_entries(runner)}",
    ])
