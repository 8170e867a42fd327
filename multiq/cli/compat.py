"""Celery's options that mean nothing here: accepted, with the reason in ``--help``, so
Celery's command lines run unchanged; or refused with a pointer to what to use instead."""
from __future__ import annotations

from typing import Any, Callable, Optional

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def accepted(*decls: str, reason: str, flag: bool = False,
             check: Optional[Callable[[Any], Optional[str]]] = None) -> Decorator:
    """An option taken and ignored; ``--help`` says why in one line. ``check(value)`` may
    return a pointer for a value that cannot be ignored (then the command stops with it)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if check is not None and value not in (None, False):
            pointer = check(value)
            if pointer:
                raise click.BadParameter(pointer, ctx=ctx, param=param)
        return value

    return click.option(*decls, is_flag=flag, default=None, expose_value=False,
                        callback=callback, help=f"Accepted, no effect: {reason}.")


def refused(*decls: str, pointer: str, flag: bool = False) -> Decorator:
    """An option Celery has and multiq does not: using it stops with ``pointer``."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            raise click.UsageError(f"{param.opts[0]} is not supported: {pointer}.", ctx=ctx)
        return value

    return click.option(*decls, is_flag=flag, default=None, expose_value=False,
                        callback=callback, help=f"Not supported: {pointer}.")
