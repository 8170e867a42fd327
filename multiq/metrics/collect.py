"""What a scrape reads from Redis, in a fixed number of pipelined round trips.

The first exchange reads the known queues (``queues``), the listed nodes (``nodes``) and
the three ``metrics:*`` hashes; the second one script call per queue (its waiting messages
per band, what nodes hold, its delayed and dead-lettered messages: one queue's keys, so one
slot on a cluster) and every listed node's liveness key. A node whose key has expired is
gone: it is counted as ``lost`` until recovery forgets it, and never as up.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from redis.exceptions import NoScriptError, ResponseError

from multiq.keys import BANDS, GROUP, Keys
from multiq.metrics import families

# KEYS: the 10 band streams (band 9 first), the delayed set, the dead-letter stream.
# ARGV: the consumer group. Returns, per band, its waiting and its held (pending) entries,
# then the delayed and the dead-lettered counts. A stream without the group holds nothing.
QUEUE_STATS = """
local out = {}
for i = 1, 10 do
  local n = redis.call('XLEN', KEYS[i])
  local held = 0
  if n > 0 then
    local ok, summary = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[1])
    if ok then held = summary[1] end
  end
  out[#out + 1] = n - held
  out[#out + 1] = held
end
out[#out + 1] = redis.call('ZCARD', KEYS[11])
out[#out + 1] = redis.call('XLEN', KEYS[12])
return out
"""
logger = logging.getLogger("multiq.metrics")
QUEUE_STATS_SHA = hashlib.sha1(QUEUE_STATS.encode()).hexdigest()


@dataclass
class Histogram:
    """One series' buckets (bound text -> non-cumulative count) and sum."""

    buckets: Dict[str, int] = field(default_factory=dict)
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.buckets.values())

    def cumulative(self) -> List[Tuple[str, int]]:
        """``(le, count)`` for every bound, ``+Inf`` last, as Prometheus has them."""
        out, total = [], 0
        for bound in families.BOUNDS:
            total += self.buckets.get(bound, 0)
            out.append((bound, total))
        return out


@dataclass
class QueueStats:
    name: str
    waiting: Dict[int, int]  # band -> messages not yet delivered
    reserved: int  # delivered to a node, not yet acknowledged
    delayed: int
    deadletters: int


@dataclass
class NodeStats:
    hostname: str
    consumer: str
    ready: bool
    active: int


@dataclass
class Snapshot:
    """Everything one scrape shows."""

    tasks: Dict[Tuple[str, str, str], int] = field(default_factory=dict)  # name, state, queue
    runtime: Dict[Tuple[str, str], Histogram] = field(default_factory=dict)  # name, queue
    wait: Dict[Tuple[str, str], Histogram] = field(default_factory=dict)
    queues: List[QueueStats] = field(default_factory=list)
    nodes: List[NodeStats] = field(default_factory=list)
    lost: int = 0  # listed nodes whose liveness key has expired


def collect(broker: Any) -> Snapshot:
    """Read a :class:`Snapshot` through ``broker``'s client."""
    client, keys = broker.client, broker.keys
    p = client.pipeline(transaction=False)
    p.smembers(keys.queues)
    p.zrange(keys.nodes, 0, -1)
    for key in (keys.metrics_tasks, keys.metrics_runtime, keys.metrics_wait):
        p.hgetall(key)
    members, names, tasks, runtime, wait = p.execute()
    snap = Snapshot(tasks=counters(tasks), runtime=histograms(runtime),
                    wait=histograms(wait))
    queues = sorted(_texts(members))
    consumers = _texts(names)
    replies = _live(client, keys, queues, consumers)
    failed = []
    for queue, reply in zip(queues, replies):
        stats = queue_stats(queue, reply)
        if stats is None:
            failed.append((queue, reply))
        else:
            snap.queues.append(stats)
    if failed:  # (its series are left out, not shown as zeros)
        logger.warning("Could not read %d queue(s), e.g. %s: %s", len(failed), *failed[0])
    for consumer, raw in zip(consumers, replies[len(queues):]):
        node = node_stats(consumer, raw)
        if node is None:
            snap.lost += 1
        else:
            snap.nodes.append(node)
    return snap


_READ_ONLY = [True]  # whether the server has EVALSHA_RO / EVAL_RO (Redis 7 has)


def _live(client: Any, keys: Keys, queues: List[str], consumers: List[str]) -> List[Any]:
    """The second exchange: each queue's script reply, then each node's key. The script is
    called read-only where the server can (a read-only ACL user may run it), by its body
    when the server does not have it yet (so no SCRIPT LOAD right is needed)."""
    replies = _exchange(client, keys, queues, consumers, by_sha=True)
    errors = [r for r in replies[:len(queues)] if isinstance(r, ResponseError)]
    if _READ_ONLY[0] and any("unknown command" in str(e).lower() for e in errors):
        _READ_ONLY[0] = False  # Redis 6.2
        replies = _exchange(client, keys, queues, consumers, by_sha=True)
        errors = [r for r in replies[:len(queues)] if isinstance(r, ResponseError)]
    if any(isinstance(e, NoScriptError) for e in errors):
        replies = _exchange(client, keys, queues, consumers, by_sha=False)
    return replies


def _exchange(client: Any, keys: Keys, queues: List[str], consumers: List[str],
              by_sha: bool) -> List[Any]:
    call = ("EVALSHA" if by_sha else "EVAL") + ("_RO" if _READ_ONLY[0] else "")
    script = QUEUE_STATS_SHA if by_sha else QUEUE_STATS
    p = client.pipeline(transaction=False)
    for queue in queues:
        p.execute_command(call, script, 12, *keys.streams(queue), keys.delayed(queue),
                          keys.deadletter(queue), GROUP)
    for consumer in consumers:
        p.get(keys.node(consumer))
    return list(p.execute(raise_on_error=False))


def counters(raw: Dict[bytes, bytes]) -> Dict[Tuple[str, str, str], int]:
    """The tasks hash by (name, state, queue); malformed fields are skipped."""
    out: Dict[Tuple[str, str, str], int] = {}
    for f, value in raw.items():
        labels = families.labels(f, 3)
        n = _number(value, int)
        if labels is not None and n is not None:
            out[labels] = n  # type: ignore[index]
    return out


def histograms(raw: Dict[bytes, bytes]) -> Dict[Tuple[str, str], Histogram]:
    """A histogram hash by (name, queue); malformed or unknown fields are skipped."""
    out: Dict[Tuple[str, str], Histogram] = {}
    bounds = set(families.BOUNDS)
    for f, value in raw.items():
        labels = families.labels(f, 3)
        if labels is None:
            continue
        name, queue, part = labels
        if part == families.SUM:
            us = _number(value, int)
            if us is not None:
                out.setdefault((name, queue), Histogram()).sum = us / 1e6
        elif part in bounds:
            n = _number(value, int)
            if n is not None:
                out.setdefault((name, queue), Histogram()).buckets[part] = n
    return out


def queue_stats(queue: str, reply: Any) -> Optional[QueueStats]:
    """One queue's script reply; None when it failed."""
    if not isinstance(reply, list) or len(reply) != 22:
        return None
    values = [int(v) for v in reply]
    waiting = {band: max(0, values[2 * i]) for i, band in enumerate(BANDS)}
    reserved = sum(values[2 * i + 1] for i in range(len(BANDS)))
    return QueueStats(queue, waiting, reserved, values[20], values[21])


def node_stats(consumer: str, raw: Any) -> Optional[NodeStats]:
    """A listed node from its liveness key; None when the key is gone (or not a node's)."""
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if type(info) is not dict:
        return None
    active = info.get("active")
    return NodeStats(str(info.get("hostname") or consumer.split("|")[0]), consumer,
                     bool(info.get("ready", True)),
                     active if type(active) is int else 0)


def _texts(members: Any) -> List[str]:
    out = []
    for m in members or ():
        try:
            out.append(m.decode() if isinstance(m, bytes) else str(m))
        except UnicodeDecodeError:
            continue
    return out


def _number(value: Any, kind: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None
