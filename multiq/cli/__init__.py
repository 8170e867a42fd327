"""The ``multiq`` command line (click).

Sub-commands are imported when they are used, so ``multiq worker`` loads only its own module
(a node's start-up time is mostly imports).
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Dict, List, Optional

import click

from multiq import __version__
from multiq.cli.base import EX_CONFIG, global_options, merge_globals

# command name -> module of multiq.cli that defines it (a function of the same name)
COMMANDS: Dict[str, str] = {
    "worker": "worker", "multi": "multi", "purge": "admin", "result": "admin",
    "call": "admin", "report": "admin", "deadletter": "deadletter", "inspect": "control",
    "control": "control", "status": "control", "events": "events", "beat": "beat",
    "metrics": "metrics",
    "dashboard": "dashboard",
}


class LazyGroup(click.Group):
    """A group whose sub-commands in :data:`COMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module = importlib.import_module(f"multiq.cli.{COMMANDS[cmd_name]}")
            self.add_command(getattr(module, cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(__version__, "--version", prog_name="multiq")
@click.pass_context
def cli(ctx: click.Context, **kwargs: Any) -> None:
    """multiq: a distributed task queue with a Redis broker and a process supervisor."""
    merge_globals(ctx, kwargs)


def main() -> None:
    from multiq.patching import maybe_patch_concurrency

    maybe_patch_concurrency()  # (done already when started by ``multiq.__main__``)
    from multiq.exceptions import BrokerNotConfigured

    try:
        cli(prog_name="multiq")
    except BrokerNotConfigured as exc:  # raised where a command first needs the broker
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EX_CONFIG)
    except Exception as exc:
        if "redis" not in sys.modules:  # not a Redis error: redis-py was never imported
            raise
        from multiq.redisconn import UNAVAILABLE
        if not isinstance(exc, UNAVAILABLE):
            raise
        from multiq.config import mask_url
        click.echo(f"Error: cannot reach Redis: {mask_url(str(exc))}", err=True)
        sys.exit(69)
