"""``multiq dashboard``: the web dashboard (needs the ``dashboard`` extra)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

import click

from multiq.cli.admin import CONTEXT, redis_errors
from multiq.cli.base import echo, global_options, merge_globals


@click.command(context_settings=CONTEXT)
@global_options
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (not loopback: only with authentication).")
@click.option("--port", type=int, default=5555, show_default=True, help="Port to listen on.")
@click.option("--url-prefix", default="", help="Serve under this path (behind a proxy).")
@click.option("--basic-auth", "basic_auth", multiple=True, metavar="USER:PASSWORD",
              help="Accept this user and password (repeatable).")
@click.option("--auth-token", default=None, envvar="MULTIQ_DASHBOARD_TOKEN",
              help="Accept 'Authorization: Bearer TOKEN' (and a login with it).")
@click.option("--read-only", is_flag=True, default=False,
              help="Show everything, change nothing (no actions).")
@click.option("--unauthenticated", is_flag=True, default=False,
              help="Allow a non-loopback --address without authentication.")
@click.option("--history-max-tasks", type=click.IntRange(min=1), default=None,
              help="Tasks the history keeps (default: dashboard_history_max_tasks).")
@click.option("--history-max-age", type=click.FloatRange(min=1), default=None,
              help="Seconds the history keeps a task (default: dashboard_history_max_age).")
@click.option("--metric-prefix", default="multiq", show_default=True,
              help="Prefix of the metric names /metrics serves.")
@click.option("-l", "--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.pass_context
@redis_errors
def dashboard(ctx: click.Context, address: str, port: int, url_prefix: str,
              basic_auth: Tuple[str, ...], auth_token: Optional[str], read_only: bool,
              unauthenticated: bool, history_max_tasks: Optional[int],
              history_max_age: Optional[float], metric_prefix: str, loglevel: str,
              **kwargs: Any) -> None:
    """Serve the web dashboard: nodes, queues, tasks, dead letters, beat; JSON API."""
    try:
        from multiq.dashboard.server import serve
    except ImportError as exc:
        raise click.UsageError(f"the dashboard needs its extra: pip install "
                               f"'multiq[dashboard]' ({exc})") from exc
    from multiq.config import mask_url
    from multiq.dashboard.settings import (
        Credentials,
        DashboardSettings,
        SettingsError,
        parse_basic,
    )

    obj = merge_globals(ctx, kwargs)
    app = obj.app
    try:
        settings = DashboardSettings(
            address=address, port=port, url_prefix=url_prefix,
            credentials=Credentials(parse_basic(list(basic_auth)), auth_token or None),
            read_only=read_only, unauthenticated=unauthenticated,
            history_max_tasks=int(history_max_tasks or app.conf.dashboard_history_max_tasks),
            history_max_age=float(history_max_age or app.conf.dashboard_history_max_age),
            metric_prefix=metric_prefix).check()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    host = f"[{address}]" if ":" in address else address
    echo(obj, f"multiq dashboard for {app.main or 'app'} on {mask_url(str(app.conf.broker_url))}"
              f": http://{host}:{port}{settings.prefix}/"
              + (" (read-only)" if read_only else ""))
    serve(app, settings, log_level=loglevel.lower())
