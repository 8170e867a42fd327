"""The ``multiq`` command line (click)."""
from __future__ import annotations

from typing import Any

import click

from multiq import __version__
from multiq.cli.admin import call, purge, report, result
from multiq.cli.base import global_options, merge_globals
from multiq.cli.beat import beat
from multiq.cli.control import control, inspect, status
from multiq.cli.deadletter import deadletter
from multiq.cli.events import events
from multiq.cli.multi import multi
from multiq.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(__version__, "--version", prog_name="multiq")
@click.pass_context
def cli(ctx: click.Context, **kwargs: Any) -> None:
    """multiq: a distributed task queue with a Redis broker and a process supervisor."""
    merge_globals(ctx, kwargs)


cli.add_command(worker)
cli.add_command(multi)
cli.add_command(purge)
cli.add_command(result)
cli.add_command(call)
cli.add_command(report)
cli.add_command(deadletter)
cli.add_command(inspect)
cli.add_command(control)
cli.add_command(status)
cli.add_command(events)
cli.add_command(beat)


def main() -> None:
    import sys

    from multiq.redisconn import UNAVAILABLE

    try:
        cli(prog_name="multiq")
    except UNAVAILABLE as exc:
        from multiq.config import mask_url
        click.echo(f"Error: cannot reach Redis: {mask_url(str(exc))}", err=True)
        sys.exit(69)
