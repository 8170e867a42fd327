"""``multiq events``: watch task and node events live (``--dump``: one line per event)."""
from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, Iterator, Optional

import click

from multiq.cli.base import CLIContext, global_options, merge_globals


def format_event(body: Dict[str, Any]) -> str:
    """One line: ``host [time] type: name[uuid] details``."""
    stamp = dt.datetime.fromtimestamp(body.get("timestamp", 0), dt.timezone.utc)
    head = f"{body.get('hostname', '?')} [{stamp:%Y-%m-%d %H:%M:%S.%f}] {body.get('type')}"
    if "uuid" in body:
        head += f": {body.get('name') or ''}[{body['uuid']}]"
    details = []
    for key in ("args", "kwargs", "result", "exception", "runtime", "active", "processed",
                "expired", "terminated"):
        if body.get(key) not in (None, ""):
            value = body[key]
            details.append(f"{key}={value:.6f}" if isinstance(value, float)
                           else f"{key}={value}")
    return head + (" " + " ".join(details) if details else "")


class Monitor:
    """The live view's state: nodes, counts per task and state, rate, latest failures."""

    def __init__(self) -> None:
        self.nodes: Dict[str, float] = {}
        self.counts: Counter = Counter()
        self.failures: Deque[str] = deque(maxlen=5)
        self.done: Deque[float] = deque()
        self.names: Dict[str, str] = {}

    def feed(self, body: Dict[str, Any]) -> None:
        kind, host = body.get("type", ""), body.get("hostname", "?")
        if kind == "worker-offline":
            self.nodes.pop(host, None)
        elif kind.startswith("worker-"):
            self.nodes[host] = body.get("timestamp", time.time())
        uuid = body.get("uuid")
        if uuid and body.get("name"):
            self.names[uuid] = body["name"]
        if kind.startswith("task-") and uuid:
            self.counts[(self.names.get(uuid, "?"), kind[5:])] += 1
        if kind in ("task-succeeded", "task-failed"):
            self.done.append(time.time())
        if kind == "task-failed":
            self.failures.append(f"{self.names.get(uuid or '', '?')}[{uuid}]: "
                                 f"{body.get('exception')}")

    def render(self) -> str:
        now = time.time()
        while self.done and now - self.done[0] > 10:
            self.done.popleft()
        lines = [f"multiq events — {len(self.nodes)} nodes, "
                 f"{len(self.done) / 10:.1f} tasks/s (last 10 s)", "", "Nodes:"]
        lines += [f"  {n} (last seen {now - t:.0f}s ago)" for n, t in sorted(self.nodes.items())]
        lines += ["", f"{'Task':<40} {'State':<12} {'Count':>8}"]
        for (name, state), count in sorted(self.counts.items()):
            lines.append(f"{name[:40]:<40} {state:<12} {count:>8}")
        if self.failures:
            lines += ["", "Latest failures:"] + [f"  {f}" for f in self.failures]
        return "\n".join(lines)


#: seconds without any event before ``multiq events`` says why there may be none
HINT_AFTER = 3.0


def with_hint(receiver: Any, limit: Optional[int], timeout: Optional[float],
              hint_after: float, hint: Callable[[], None]) -> Iterator[Dict[str, Any]]:
    """The receiver's events, as ``itercapture(limit, timeout)`` yields them; ``hint()`` is
    called once if none has come within ``hint_after`` seconds."""
    start, seen, hinted = time.monotonic(), 0, False
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - start)
        if left is not None and left <= 0:
            return
        waiting = not seen and not hinted
        window = left
        if waiting:
            till_hint = hint_after - (time.monotonic() - start)
            window = till_hint if left is None else min(left, till_hint)
        for body in receiver.itercapture(limit=None if limit is None else limit - seen,
                                         timeout=window):
            seen += 1
            yield body
        if (limit is not None and seen >= limit) or not waiting or receiver.should_stop:
            return  # done, or the whole timeout has passed
        if not seen and time.monotonic() - start >= hint_after:
            hint()
            hinted = True


def _hint(app: Any) -> None:
    live = len(app.broker.live_nodes())
    who = "no node is running" if not live else \
        f"{live} {'node is' if live == 1 else 'nodes are'} up"
    click.echo(f"No events yet ({who}): start nodes with -E, or run "
               "`multiq control enable_events`.", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option("--dump", is_flag=True, default=False, help="Print one line per event.")
@click.option("--from-start", is_flag=True, default=False,
              help="Begin with the events kept in Redis, not only new ones.")
@click.option("--limit", type=int, default=None, help="Stop after this many events.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.pass_context
def events(ctx: click.Context, dump: bool, from_start: bool, limit: Optional[int],
           timeout: Optional[float], **kwargs: Any) -> None:
    """Watch task and node events (nodes send them with -E or `control enable_events`)."""
    from multiq.events import EventReceiver

    obj: CLIContext = merge_globals(ctx, kwargs)
    receiver = EventReceiver(obj.app, from_start=from_start)
    monitor, last_draw = Monitor(), 0.0
    live = sys.stdout.isatty()
    try:
        for body in with_hint(receiver, limit, timeout, HINT_AFTER, lambda: _hint(obj.app)):
            if dump:
                click.echo(format_event(body))
                continue
            monitor.feed(body)
            if time.monotonic() - last_draw >= (1.0 if live else 5.0):
                last_draw = time.monotonic()
                if live:
                    click.clear()
                click.echo(monitor.render())
    except KeyboardInterrupt:
        pass
    if not dump:
        click.echo(monitor.render())
