"""``multiq deadletter list|show|requeue|purge``: messages that could not be run."""
from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import click

from multiq.cli.admin import CONTEXT, pluralize, queue_option, redis_errors, split_names
from multiq.cli.base import EX_FAILURE, CLIContext, echo, global_options, merge_globals

QUEUE_HELP = "Only these queues (comma list; default: all)."


def _letters(obj: CLIContext) -> Any:
    from multiq.broker.deadletter import DeadLetters

    return DeadLetters(obj.app.broker)


def _when(ts: Optional[float]) -> str:
    if ts is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # not a time a message can carry
        return "-"


@click.group(context_settings=CONTEXT)
@global_options
@click.pass_context
def deadletter(ctx: click.Context, **kwargs: Any) -> None:
    """List, show, requeue or purge dead-lettered messages."""
    merge_globals(ctx, kwargs)


@deadletter.command("list", context_settings=CONTEXT)
@global_options
@queue_option(QUEUE_HELP)
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="At most this many entries, oldest first (0: all).")
@click.option("-j", "--json", "as_json", is_flag=True, default=False, help="Print JSON.")
@click.pass_context
@redis_errors
def list_(ctx: click.Context, limit: int, as_json: bool, **kwargs: Any) -> None:
    """One line per entry: entry id, queue, task, task id, reason, time."""
    obj = merge_globals(ctx, kwargs)
    letters = _letters(obj)
    queues = split_names(kwargs["queues"]) or letters.queues()
    entries = letters.list(queues, limit or None)
    if as_json:
        click.echo(json.dumps([e.summary() for e in entries], indent=2))
        return
    rows = [_row(e.summary()) for e in entries]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(5)]
    for row in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), *row[5:]]))
    total = sum(letters.count(queues).values())
    if total > len(entries):
        echo(obj, f"({len(entries)} of {total} shown; use --limit)", err=True)
    elif not entries:
        echo(obj, "No dead-lettered messages.", err=True)


def _row(s: Dict[str, Any]) -> Tuple[str, ...]:
    return (s["entry"], s["queue"], s["task"] or "<undecodable>", s["id"] or "-",
            s["reason"] or "-", _when(s["time"]))


@deadletter.command(context_settings=CONTEXT)
@global_options
@click.argument("entry")
@queue_option("Search a bare entry id in these queues only.")
@click.option("-j", "--json", "as_json", is_flag=True, default=False, help="Print JSON.")
@click.pass_context
@redis_errors
def show(ctx: click.Context, entry: str, as_json: bool, **kwargs: Any) -> None:
    """Everything about one entry (ENTRY is queue/entryid or a bare entry id)."""
    obj = merge_globals(ctx, kwargs)
    letter = _get(_letters(obj), entry, split_names(kwargs["queues"]))
    fields = entry_details(letter, obj.app.conf.accept_content)
    if as_json:
        click.echo(json.dumps(fields, indent=2, default=repr))
        return
    for key, value in fields.items():
        text = value if isinstance(value, str) else _dump(value)
        click.echo(f"{key + ':':<10} {text}")


def _get(letters: Any, ref: str, queues: List[str]) -> Any:
    from multiq.broker.deadletter import AmbiguousDeadLetter, DeadLetterNotFound

    try:
        return letters.get(ref, queues or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ENTRY") from exc
    except (DeadLetterNotFound, AmbiguousDeadLetter) as exc:
        click.echo(f"Error: {exc.args[0]}", err=True)
        sys.exit(EX_FAILURE)


def entry_details(letter: Any, accept: Any) -> Dict[str, Any]:
    """The entry's fields, then the envelope's (args/kwargs decoded when possible)."""
    out: Dict[str, Any] = {"entry": letter.ref, "reason": letter.reason,
                           "time": _when(letter.time), "band": letter.band}
    env = letter.envelope()
    if env is None:
        out["data"] = repr(letter.data)
        return out
    out.update(task=env["task"], id=env["id"])
    out.update(_arguments(env, accept))
    skip = {"task", "id", "args", "kwargs", "body", "ct", "ce", "v"}
    out.update({k: _field(k, v) for k, v in sorted(env.items()) if k not in skip})
    return out


def _field(key: str, value: Any) -> Any:
    """Times of the envelope (epoch seconds) also as local dates."""
    if key in ("sent", "eta", "expires") and isinstance(value, (int, float)):
        return f"{_when(value)} ({value})"
    return value


def _arguments(env: Dict[str, Any], accept: Any) -> Dict[str, Any]:
    from multiq.message import from_envelope

    try:
        message = from_envelope(env, accept)
    except Exception as exc:  # whatever a broken envelope makes the decoder raise
        size = len(str(env.get("body", "")))
        return {"body": f"{env.get('ct', '?')}, {size} base64 chars (not decoded: {exc})"}
    return {"args": message.args, "kwargs": message.kwargs}


def _dump(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


@deadletter.command(context_settings=CONTEXT)
@global_options
@click.argument("entries", nargs=-1)
@click.option("--all", "all_", is_flag=True, default=False, help="Requeue every entry.")
@queue_option("With --all, or to search bare ids: only these queues.")
@click.pass_context
@redis_errors
def requeue(ctx: click.Context, entries: Tuple[str, ...], all_: bool, **kwargs: Any) -> None:
    """Put entries back in their queues (delivery count reset) and drop them from here."""
    from multiq.broker.deadletter import parse_ref

    obj = merge_globals(ctx, kwargs)
    if bool(entries) == all_:
        raise click.UsageError("Give entry ids or --all (not both).")
    for ref in entries:
        try:
            parse_ref(ref)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="ENTRIES") from exc
    letters = _letters(obj)
    queues = split_names(kwargs["queues"]) or None
    missing: List[str] = []
    if all_:
        moved = letters.requeue_all(queues)
    else:
        moved, missing = letters.requeue(entries, queues)
    for ref in missing:
        click.echo(f"Error: no dead-letter entry {ref} with a message to requeue", err=True)
    echo(obj, f"Requeued {moved} {pluralize(moved, 'message')}.")
    if missing:
        sys.exit(EX_FAILURE)


@deadletter.command("purge", context_settings=CONTEXT)
@global_options
@queue_option(QUEUE_HELP)
@click.option("-f", "--force", is_flag=True, default=False, help="Do not ask for confirmation.")
@click.pass_context
@redis_errors
def purge_(ctx: click.Context, force: bool, **kwargs: Any) -> None:
    """Delete dead-lettered messages for good."""
    obj = merge_globals(ctx, kwargs)
    letters = _letters(obj)
    queues = split_names(kwargs["queues"]) or letters.queues()
    counts = letters.count(queues)
    if counts and not force:
        click.confirm(
            f"WARNING: This will delete {sum(counts.values())} dead-lettered "
            f"{pluralize(sum(counts.values()), 'message')} of queue(s): "
            f"{', '.join(counts)}.\n         There is no undo for this operation!\n\n"
            "(to skip this prompt use the -f option)\nAre you sure?",
            default=False, abort=True)
    total = letters.purge(list(counts))
    echo(obj, f"Purged {total} dead-lettered {pluralize(total, 'message')} from "
              f"{len(counts)} {pluralize(len(counts), 'queue')}.")
