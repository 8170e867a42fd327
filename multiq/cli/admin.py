"""``multiq purge``, ``result``, ``call`` and ``report``: administration from the shell."""
from __future__ import annotations

import datetime as dt
import functools
import json
import platform
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from multiq import __version__
from multiq.cli.base import EX_UNAVAILABLE, CLIContext, echo, global_options, merge_globals

CONTEXT = {"help_option_names": ["-h", "--help"]}


# -- shared helpers --------------------------------------------------------------------


def split_names(values: Any) -> List[str]:
    """``-Q a,b -Q c`` -> ``["a", "b", "c"]`` (order kept, duplicates dropped)."""
    names = (n.strip() for value in values or () for n in value.split(","))
    return list(dict.fromkeys(n for n in names if n))


def pluralize(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def redis_errors(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Turn configuration errors into usage errors and an unreachable Redis into exit 69."""

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from multiq.config import mask_url
        from multiq.exceptions import (
            BackendNotConfigured,
            BrokerNotConfigured,
            ImproperlyConfigured,
        )
        from multiq.redisconn import UNAVAILABLE

        try:
            return fun(*args, **kwargs)
        except BrokerNotConfigured:
            raise
        except (ImproperlyConfigured, BackendNotConfigured) as exc:
            raise click.UsageError(str(exc)) from exc
        except UNAVAILABLE as exc:
            click.echo(f"Error: Redis connection failed: {mask_url(str(exc))}", err=True)
            sys.exit(EX_UNAVAILABLE)

    return wrapper


class Progress:
    """One self-overwriting status line, shown only on a terminal and not with ``-q``."""

    def __init__(self, obj: CLIContext) -> None:
        self.enabled = not obj.quiet and sys.stdout.isatty()
        self.shown = False

    def update(self, text: str) -> None:
        if self.enabled:
            click.echo(f"\r\x1b[K{text}", nl=False)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo("\r\x1b[K", nl=False)


def queue_option(help_text: str) -> Callable[..., Any]:
    return click.option("-Q", "--queues", "queues", multiple=True, help=help_text)


# -- purge -----------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@global_options
@queue_option("Only these queues (comma list; default: every known queue).")
@click.option("-X", "--exclude-queues", multiple=True, help="Not these queues (comma list).")
@click.option("-f", "--force", is_flag=True, default=False, help="Do not ask for confirmation.")
@click.pass_context
@redis_errors
def purge(ctx: click.Context, **kwargs: Any) -> None:
    """Erase all waiting and delayed messages from the queues (held ones stay)."""
    from multiq.broker.deadletter import purge_queue

    obj = merge_globals(ctx, kwargs)
    broker = obj.app.broker
    excluded = set(split_names(kwargs["exclude_queues"]))
    queues = [q for q in split_names(kwargs["queues"]) or broker.queue_names()
              if q not in excluded]
    if queues and not kwargs["force"]:
        _confirm_purge(obj, queues)
    progress = Progress(obj)
    total = 0
    for i, queue in enumerate(queues, 1):
        progress.update(f"Purging {queue} ({i}/{len(queues)}), {total} messages so far...")
        total += purge_queue(broker, queue)
    progress.done()
    n = len(queues)
    if total:
        echo(obj, f"Purged {total} {pluralize(total, 'message')} from "
                  f"{n} known task {pluralize(n, 'queue')}.")
    else:
        echo(obj, f"No messages purged from {n} {pluralize(n, 'queue')}.")


def _confirm_purge(obj: CLIContext, queues: Sequence[str]) -> None:
    warning = click.style("WARNING", fg="red") if obj.color else "WARNING"
    click.confirm(
        f"{warning}: This will remove all tasks from queue(s): {', '.join(queues)}.\n"
        "         There is no undo for this operation!\n\n"
        "(to skip this prompt use the -f option)\n"
        "Are you sure?", default=False, abort=True)


# -- result ----------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@global_options
@click.argument("task_id")
@click.option("--traceback", is_flag=True, default=False, help="Print the traceback instead.")
@click.option("-j", "--json", "as_json", is_flag=True, default=False,
              help="Print the whole stored result document as JSON.")
@click.pass_context
@redis_errors
def result(ctx: click.Context, task_id: str, traceback: bool, as_json: bool,
           **kwargs: Any) -> None:
    """Print the result of a task (PENDING when it is not known)."""
    obj = merge_globals(ctx, kwargs)
    doc = obj.app.backend.get_meta(task_id)
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
    elif traceback and doc.get("traceback"):
        click.echo(str(doc["traceback"]).rstrip("\n"))
    else:
        click.echo(format_result(doc))


def format_result(doc: Dict[str, Any]) -> str:
    """``repr`` of a value, ``Type: message`` of an exception, or the state when not done."""
    from multiq import states

    status = doc.get("status", states.PENDING)
    value = doc.get("result")
    if status in states.EXCEPTION_STATES:
        return format_exception(value)
    if status == states.SUCCESS:
        return repr(value)
    return str(status)


def format_exception(info: Any) -> str:
    if not isinstance(info, dict) or "exc_type" not in info:
        return str(info)
    message = info.get("exc_message")
    if isinstance(message, (list, tuple)):
        message = ", ".join(str(m) for m in message)
    return f"{info['exc_type']}: {message}" if message not in (None, "") else info["exc_type"]


# -- call ------------------------------------------------------------------------------


class JSONValue(click.ParamType):
    """A JSON document of one Python type (list for --args, dict for --kwargs)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = f"json {kind.__name__}"

    def convert(self, value: Any, param: Optional[click.Parameter],
                ctx: Optional[click.Context]) -> Any:
        if isinstance(value, self.kind):
            return value
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            self.fail(f"{value!r} is not valid JSON: {exc}", param, ctx)
        if not isinstance(parsed, self.kind):
            self.fail(f"{value!r} is not a JSON {_json_kind(self.kind)}", param, ctx)
        return parsed


def _json_kind(kind: type) -> str:
    return {"list": "array", "dict": "object"}.get(kind.__name__, kind.__name__)


class DateTimeOrSeconds(click.ParamType):
    """An ISO 8601 date-time, or (when ``seconds``) a number of seconds from now."""

    def __init__(self, seconds: bool) -> None:
        self.seconds = seconds
        self.name = "iso8601|seconds" if seconds else "iso8601"

    def convert(self, value: Any, param: Optional[click.Parameter],
                ctx: Optional[click.Context]) -> Any:
        if isinstance(value, (dt.datetime, float)):
            return value
        if self.seconds:
            try:
                return float(value)
            except ValueError:
                pass
        try:
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date-time"
                      + (" or a number of seconds" if self.seconds else ""), param, ctx)


@click.command(context_settings=CONTEXT)
@global_options
@click.argument("name")
@click.option("-a", "--args", "args", type=JSONValue(list), default="[]",
              help='Positional arguments, a JSON array: --args \'[2, 2]\'.')
@click.option("-k", "--kwargs", "task_kwargs", type=JSONValue(dict), default="{}",
              help='Keyword arguments, a JSON object: --kwargs \'{"x": 1}\'.')
@click.option("--countdown", type=float, default=None, help="Run in this many seconds.")
@click.option("--eta", type=DateTimeOrSeconds(seconds=False), default=None,
              help="Run at this ISO 8601 date-time.")
@click.option("--expires", type=DateTimeOrSeconds(seconds=True), default=None,
              help="Expire after this many seconds, or at this ISO 8601 date-time.")
@click.option("--queue", default=None, help="Queue to send to (default: routing).")
@click.option("--priority", type=click.IntRange(0, 9), default=None, help="Priority 0-9.")
@click.option("--serializer", default=None, help="Serializer (json, msgpack, pickle).")
@click.pass_context
@redis_errors
def call(ctx: click.Context, name: str, args: List[Any], task_kwargs: Dict[str, Any],
         **kwargs: Any) -> None:
    """Send a task by name and print its id."""
    from multiq.exceptions import BrokerNotConfigured, MultiQError

    obj = merge_globals(ctx, kwargs)
    if kwargs["countdown"] is not None and kwargs["eta"] is not None:
        raise click.UsageError("Give --countdown or --eta, not both.")
    app = obj.app
    try:
        res = app.send_task(
            name, args, task_kwargs, countdown=kwargs["countdown"], eta=kwargs["eta"],
            expires=kwargs["expires"], queue=kwargs["queue"], priority=kwargs["priority"],
            serializer=kwargs["serializer"], task_type=app.tasks.get(name))
    except BrokerNotConfigured:
        raise
    except (MultiQError, TypeError, ValueError) as exc:
        raise click.UsageError(f"Cannot send {name}: {exc}") from exc
    click.echo(res.id)


# -- report ----------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@global_options
@click.pass_context
def report(ctx: click.Context, **kwargs: Any) -> None:
    """Versions, platform and settings (secrets masked), for bug reports."""
    obj = merge_globals(ctx, kwargs)
    app = obj.app if obj.options.get("app") else None
    click.echo(report_text(app))


def report_text(app: Any) -> str:
    from multiq.config import mask_url

    lines = [
        f"software -> multiq:{__version__} py:{platform.python_version()}",
        f"            redis-py:{_dist_version('redis')} hiredis:{_dist_version('hiredis')}",
        f"            {server_version(app)}",
        f"platform -> system:{platform.system()} arch:{', '.join(platform.architecture())}",
        f"            kernel version:{platform.release()} "
        f"imp:{platform.python_implementation()}",
    ]
    if app is None:
        return "\n".join([*lines, "app      -> (none: give one with -A)"])
    conf = app.conf
    lines += [
        f"app      -> {app.main or '__main__'}",
        f"settings -> transport:{mask_url(str(conf.broker_url or 'not configured'))} "
        f"results:{mask_url(str(conf.result_backend or 'disabled'))}",
        "",
        conf.humanize(with_defaults=False, censored=True) or "(all settings are defaults)",
    ]
    return "\n".join(lines)


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def server_version(app: Any) -> str:
    """``redis-server:7.2.4`` (or valkey), or why it could not be asked; never raises."""
    from multiq.config import mask_url

    if app is None:
        return "server:unknown (no app)"
    try:
        info = app.broker.client.info("server")
    except Exception as exc:
        return f"server:unreachable ({type(exc).__name__}: {mask_url(str(exc))})"
    if info.get("server_name") == "valkey" and info.get("valkey_version"):
        return f"valkey-server:{info['valkey_version']}"
    return f"redis-server:{info.get('redis_version', 'unknown')}"
