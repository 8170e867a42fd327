"""``multiq worker``: start a node in the foreground, with Celery's banner."""
from __future__ import annotations

import platform
import sys
from typing import Any, List, Optional

import click

from multiq import __version__
from multiq.cli.base import CLIContext, global_options, hostname_option, merge_globals


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
@click.option("-c", "--concurrency", type=int, default=None,
              help="Number of pool threads/processes (default: CPU count).")
@click.option("-P", "--pool", type=click.Choice(["prefork", "processes", "solo", "threads"],
                                                  case_sensitive=False), default=None,
              help="Pool implementation.")
@click.option("-Q", "--queues", multiple=True, help="Queues to consume from (comma list).")
@click.option("-X", "--exclude-queues", multiple=True, help="Queues not to consume from.")
@hostname_option()
@click.option("-f", "--logfile", default=None, help="Log to this file (default: stderr).")
@click.option("--prefetch-multiplier", type=int, default=None,
              help="Messages held per pool slot (default 4).")
@click.option("-E", "--task-events", "--events", "task_events", is_flag=True, default=False,
              help="Send task events.")
@click.option("-I", "--include", multiple=True, help="Extra modules to import (comma list).")
@click.option("--without-heartbeat", is_flag=True, hidden=True)
@click.option("--without-gossip", is_flag=True, hidden=True)
@click.option("--without-mingle", is_flag=True, hidden=True)
@click.option("-O", "optimization", default=None, hidden=True)
@click.pass_context
def worker(ctx: click.Context, loglevel: str, concurrency: Optional[int], pool: Optional[str],
           queues: Any, exclude_queues: Any, hostname: Optional[str], logfile: Optional[str],
           prefetch_multiplier: Optional[int], task_events: bool, include: Any,
           **kwargs: Any) -> None:
    """Start a worker node."""
    from multiq import log
    from multiq.exceptions import ImproperlyConfigured
    from multiq.worker.worker import Worker

    obj: CLIContext = merge_globals(ctx, kwargs)
    app = obj.app
    for module in _split(include):
        app.conf.include = [*(app.conf.include or []), module]
    if task_events:
        app.conf.worker_send_task_events = True
    log.setup(loglevel, logfile, app.conf.get("worker_log_format"))
    try:
        node = Worker(app, hostname=hostname, concurrency=concurrency, pool=pool,
                      queues=_split(queues) or None, exclude_queues=_split(exclude_queues),
                      prefetch_multiplier=prefetch_multiplier)
    except ImproperlyConfigured as exc:
        raise click.UsageError(str(exc)) from exc
    app.import_default_modules()
    if not obj.quiet:
        click.echo(banner(node), err=bool(logfile) is False and False)
    sys.exit(node.run())


def banner(node: Any) -> str:
    """The start-up banner: node, app, broker (password masked), pool, queues, tasks."""
    from multiq.config import mask_url

    app = node.app
    conf = app.conf
    tasks = sorted(app.tasks.regular())
    lines = [
        f" -------------- {node.hostname} v{__version__}",
        f"--- ***** ----- {platform.platform()} {_now()}",
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


def _now() -> str:
    import datetime as dt
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
