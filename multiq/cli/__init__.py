"""The ``multiq`` command line (click)."""
from __future__ import annotations

from typing import Any

import click

from multiq import __version__
from multiq.cli.base import global_options, merge_globals
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


def main() -> None:
    cli(prog_name="multiq")
