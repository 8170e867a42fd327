"""``multiq inspect``, ``multiq control`` and ``multiq status``."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import click

from multiq.cli.base import (
    EX_FAILURE,
    EX_UNAVAILABLE,
    CLIContext,
    echo,
    global_options,
    merge_globals,
)

INSPECT_COMMANDS = ("stats", "active", "registered", "reserved", "scheduled", "revoked",
                    "ping", "conf", "query_task", "active_queues", "clock", "report")
CONTROL_COMMANDS = ("enable_events", "disable_events", "revoke", "rate_limit", "time_limit",
                    "shutdown", "restart", "pool_grow", "pool_shrink", "add_consumer",
                    "cancel_consumer", "autoscale", "terminate")


def _action(obj: CLIContext, action: str, kind: str, builtin: Sequence[str]) -> Any:
    """None for a built-in command; the description of one the app added (its modules are
    imported by then); else a usage error listing both."""
    if action in builtin:
        return None
    obj.app.import_default_modules()
    from multiq.control.commands import CUSTOM

    custom = CUSTOM.get(action)
    if custom is not None and custom.kind == kind:
        return custom
    known = [*builtin, *sorted(k for k, c in CUSTOM.items() if c.kind == kind)]
    raise click.UsageError(f"Invalid value for 'ACTION': {action!r} is not one of "
                           f"{', '.join(map(repr, known))}.")


def _custom_arguments(action: str, custom: Any, arguments: Sequence[str]) -> Dict[str, Any]:
    """The positional arguments of a command the app added, named and converted as its
    ``args`` and ``variadic`` say."""
    out: Dict[str, Any] = {}
    rest = list(arguments)
    for name, convert in custom.args:
        if not rest:
            break
        text = rest.pop(0)
        try:
            out[name] = convert(text)
        except (TypeError, ValueError) as exc:
            raise click.UsageError(f"{action}: bad {name} {text!r}: {exc}") from exc
    if custom.variadic:
        out[custom.variadic] = rest
    elif rest:
        usage = f"multiq {custom.kind} {action} {custom.signature}".rstrip()
        raise click.UsageError(f"too many arguments; usage: {usage}")
    return out


def _destination(value: Optional[str]) -> Optional[List[str]]:
    if not value:
        return None
    from multiq.naming import nodename
    return [nodename(v.strip()) for v in value.split(",") if v.strip()]


def _list_option(kind: str, builtin: Sequence[str]) -> Any:
    """``--list``: the commands (built in, then the app's own), one a line, and exit."""

    def show(ctx: click.Context, param: Any, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        from multiq.control.commands import CUSTOM

        spec = ctx.params.get("app") or ctx.find_root().params.get("app") \
            or os.environ.get("MULTIQ_APP")
        if spec:  # the app's modules declare its own commands
            from multiq.cli.base import find_app

            find_app(spec).import_default_modules()
        for name in builtin:
            click.echo(name)
        for name, custom in sorted(CUSTOM.items()):
            if custom.kind == kind and name not in builtin:
                click.echo(f"{name} {custom.signature}".rstrip())
        ctx.exit(0)

    return click.option("--list", "list_commands", is_flag=True, expose_value=False,
                        callback=show, help=f"List the {kind} commands and exit.")


def _common(fun: Any) -> Any:
    fun = click.option("-d", "--destination", default=None,
                       help="Comma list of node names to address (default: all).")(fun)
    fun = click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
                       help="Seconds to wait for a node that has not replied.")(fun)
    fun = click.option("-j", "--json", "as_json", is_flag=True, default=False,
                       help="Print one JSON object keyed by node.")(fun)
    return global_options(fun)


def _print_replies(obj: CLIContext, replies: Sequence[Dict[str, Any]], as_json: bool) -> int:
    if not replies:
        click.echo("Error: No nodes replied within time constraint", err=True)
        return EX_UNAVAILABLE
    if as_json:
        merged: Dict[str, Any] = {}
        for reply in replies:
            merged.update(reply)
        click.echo(json.dumps(merged, indent=None, sort_keys=True, default=repr))
        return 0
    for reply in replies:
        for node, body in reply.items():
            status, text = _render(body)
            mark = click.style(status, fg="green" if status == "OK" else "red") \
                if obj.color else status
            echo(obj, f"->  {node}: {mark}")
            if text:
                echo(obj, text)
    n = len(replies)
    echo(obj, f"\n{n} {'node' if n == 1 else 'nodes'} online.")
    return 0


def _render(body: Any) -> tuple:
    if isinstance(body, dict) and set(body) == {"ok"}:
        return "OK", _indent(body["ok"]) if body["ok"] != "pong" else "        pong"
    if isinstance(body, dict) and set(body) == {"error"}:
        return "ERROR", _indent(body["error"])
    return "OK", _indent(body)


def _item(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)


def _indent(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return "    - empty -"
        return "\n".join(f"    * {_item(v)}" for v in value)
    if isinstance(value, dict):
        text = json.dumps(value, indent=4, sort_keys=True, default=repr, ensure_ascii=False)
        return "\n".join("    " + line for line in text.splitlines())
    return f"    {value}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("action", metavar=f"[{'|'.join(INSPECT_COMMANDS)}|<app's own>]")
@click.argument("arguments", nargs=-1)
@click.option("--include", "include", multiple=True,
              help="registered: task attributes to show (e.g. rate_limit).")
@_list_option("inspect", INSPECT_COMMANDS)
@_common
@click.pass_context
def inspect(ctx: click.Context, action: str, arguments: Sequence[str], include: Sequence[str],
            destination: Optional[str], timeout: float, as_json: bool, **kwargs: Any) -> None:
    """Ask the live nodes: stats, active, registered, reserved, scheduled, revoked, ping...
    and the app's own (``@inspect_command``)."""
    obj = merge_globals(ctx, kwargs)
    custom = _action(obj, action, "inspect", INSPECT_COMMANDS)
    inspector = obj.app.control.inspect(destination=_destination(destination), timeout=timeout)
    if custom is not None:
        result = inspector._request(action, **_custom_arguments(action, custom, arguments))
    elif action == "query_task":
        if not arguments:
            raise click.UsageError("query_task needs at least one task id")
        result = inspector.query_task(*arguments)
    elif action == "registered":
        result = inspector.registered(*(list(include) + list(arguments)))
    elif action == "conf":
        result = inspector.conf(with_defaults=bool(arguments and arguments[0] in ("1", "true")))
    else:
        result = getattr(inspector, action)()
    replies = [{node: body} for node, body in (result or {}).items()]
    sys.exit(_print_replies(obj, replies, as_json))


def _control_arguments(action: str, arguments: Sequence[str], terminate: bool,
                       signal: Optional[str]) -> Dict[str, Any]:
    def need(n: int, usage: str) -> None:
        if len(arguments) < n:
            raise click.UsageError(f"usage: multiq control {action} {usage}")

    if action in ("revoke", "terminate"):
        need(1, "TASK_ID..." if action == "revoke" else "SIGNAL TASK_ID...")
        if action == "terminate":
            return {"task_id": list(arguments[1:]), "terminate": True, "signal": arguments[0]}
        return {"task_id": list(arguments), "terminate": terminate,
                "signal": signal or "SIGTERM"}
    if action == "rate_limit":
        need(2, "TASK_NAME RATE (e.g. 10/s, 100/m, 1000/h)")
        return {"task_name": arguments[0], "rate_limit": arguments[1]}
    # numbers go as typed: the node checks them and says what is wrong
    if action == "time_limit":
        need(2, "TASK_NAME SOFT [HARD]")
        hard = arguments[2] if len(arguments) > 2 else None
        return {"task_name": arguments[0], "soft": arguments[1], "hard": hard}
    if action in ("pool_grow", "pool_shrink"):
        return {"n": arguments[0] if arguments else 1}
    if action == "autoscale":
        need(2, "MAX MIN")
        return {"max": arguments[0], "min": arguments[1]}
    if action in ("add_consumer", "cancel_consumer"):
        need(1, "QUEUE")
        return {"queue": arguments[0]}
    return {}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("action", metavar=f"[{'|'.join(CONTROL_COMMANDS)}|<app's own>]")
@click.argument("arguments", nargs=-1)
@click.option("--terminate", is_flag=True, default=False,
              help="revoke: also kill the running task.")
@click.option("--signal", "signal_name", default=None, help="revoke: signal to kill with.")
@_list_option("control", CONTROL_COMMANDS)
@_common
@click.pass_context
def control(ctx: click.Context, action: str, arguments: Sequence[str], terminate: bool,
            signal_name: Optional[str], destination: Optional[str], timeout: float,
            as_json: bool, **kwargs: Any) -> None:
    """Change the live nodes: revoke, rate_limit, time_limit, pool_grow, add_consumer...
    and the app's own (``@control_command``).

    Exits 1 when a node replied with an error."""
    from multiq.control.arguments import BadArgument

    obj = merge_globals(ctx, kwargs)
    custom = _action(obj, action, "control", CONTROL_COMMANDS)
    args = _custom_arguments(action, custom, arguments) if custom is not None \
        else _control_arguments(action, arguments, terminate, signal_name)
    dest = _destination(destination)
    control_api = obj.app.control
    if action in ("revoke", "terminate"):
        try:
            replies = control_api.revoke(args["task_id"], destination=dest,
                                         terminate=args["terminate"], signal=args["signal"],
                                         reply=True, timeout=timeout)
        except BadArgument as exc:
            raise click.UsageError(str(exc)) from exc
    else:
        replies = control_api.broadcast(action, args, destination=dest, reply=True,
                                        timeout=timeout)
    code = _print_replies(obj, replies, as_json)
    failed = any(_render(body)[0] == "ERROR" for reply in replies for body in reply.values())
    sys.exit(code or (EX_FAILURE if failed else 0))


def _node_line(consumer: str, info: Dict[str, Any]) -> str:
    """One node of ``multiq status``; fields of a strange record are shown as they are."""
    name = info.get("hostname")
    started = info.get("started")
    up = f"{int(time.time() - started)}s" if (type(started) is int or type(started) is float) \
        and abs(started) < 1e12 else "?"
    queues = info.get("queues")
    queues = ",".join(map(str, queues)) if isinstance(queues, list) else str(queues or "")
    return (f"->  {name if isinstance(name, str) else consumer.split('|')[0]}: "
            f"{'OK' if info.get('ready') else 'STARTING'} (pid {info.get('pid')}, "
            f"{info.get('pool')} x{info.get('concurrency')}, up {up}, queues {queues})")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option("-j", "--json", "as_json", is_flag=True, default=False)
@click.pass_context
def status(ctx: click.Context, as_json: bool, **kwargs: Any) -> None:
    """The live nodes, from their heartbeats (no broadcast, no waiting)."""
    obj = merge_globals(ctx, kwargs)
    nodes = obj.app.broker.live_nodes()
    if as_json:
        click.echo(json.dumps(nodes, sort_keys=True))
    else:
        for line in sorted(_node_line(consumer, info) for consumer, info in nodes.items()):
            echo(obj, line)
    if not nodes:
        click.echo("Error: No nodes replied within time constraint", err=True)
        sys.exit(EX_UNAVAILABLE)
    if not as_json:
        echo(obj, f"\n{len(nodes)} {'node' if len(nodes) == 1 else 'nodes'} online.")
