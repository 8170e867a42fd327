"""The Redis broker: queues as streams with consumer groups (see :mod:`multiq.keys`)."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import redis

from multiq.broker import order, scripts
from multiq.broker.waiters import SlotWaiters
from multiq.broker.wire import Command, Exchange, Sender
from multiq.exceptions import ImproperlyConfigured
from multiq.keys import GROUP, Keys, band_of
from multiq.redisconn import connect, is_cluster

Pipeline = Any
logger = logging.getLogger("multiq.broker")


@dataclass
class Delivery:
    """One stream entry handed to this node."""

    queue: str
    band: int
    entry_id: bytes
    data: bytes
    redeliveries: int = 0


@dataclass
class LostEntry:
    """An early-ack entry whose task had started on a node that died."""

    queue: str
    band: int
    entry_id: bytes
    data: bytes


class RedisBroker:
    """Publishes, fetches, acknowledges and recovers messages in one Redis."""

    def __init__(self, url: str, transport_options: Optional[Dict[str, Any]] = None) -> None:
        options = dict(transport_options or {})
        self.url = url
        self.keys = Keys(options.pop("global_keyprefix", None) or "multiq")
        self.max_deliveries = int(options.pop("max_deliveries", 5))
        options.pop("visibility_timeout", None)  # accepted; redelivery follows liveness
        self.wait_replicas = int(options.pop("wait_replicas", 0) or 0)
        self.wait_timeout = int(options.pop("wait_timeout", 1000))
        #: how a node on several queues orders them, fetch after fetch (see broker.order)
        self.queue_order = order.strategy_of(options.pop("queue_order_strategy", None))
        self._options = options
        self.client: Any = connect(url, options)
        self.cluster = is_cluster(self.client)
        self._beat_client: Any = None  # (see heartbeat)
        if self.wait_replicas and self.cluster:
            raise ImproperlyConfigured(
                "wait_replicas is not available on a Redis Cluster (WAIT must follow the "
                "write on the same shard connection); see the README's Cluster section")
        self._waiters: Optional[SlotWaiters] = None
        self._fetch = self.client.register_script(scripts.FETCH)
        self._promote = self.client.register_script(scripts.PROMOTE)
        self._recover = self.client.register_script(scripts.RECOVER)
        self._handback = self.client.register_script(scripts.HANDBACK)
        self._retire = self.client.register_script(scripts.RETIRE)
        self._set_aside = self.client.register_script(scripts.SET_ASIDE)
        self._known_queues: Set[str] = set()
        self._band_keys: Dict[str, List[str]] = {}
        self._wire: Optional[Sender] = None if self.cluster else Sender.for_client(self.client)

    # -- producing ---------------------------------------------------------------------

    def publish(
        self,
        queue: str,
        data: bytes,
        *,
        priority: Optional[int] = None,
        eta: Optional[float] = None,
        member: str = "",
        pipe: Optional[Pipeline] = None,
    ) -> None:
        """Enqueue ``data``; with ``eta`` in the future it waits in the delayed set. A send
        of its own that meets a key of ``queue`` holding another type (garbage) sets that
        key aside (see :meth:`heal`) and is sent again."""
        for attempt in (1, 2):
            own = pipe is None
            p: Any = self.client.pipeline(transaction=False) if own else pipe
            band = band_of(priority)
            if queue not in self._known_queues:
                self.note_queue(p, queue)
            if eta is not None and eta > time.time():
                self.add_delayed(p, queue, band, member, data, eta)
            else:
                p.xadd(self.keys.stream(queue, band), {"m": data, "n": 0})
            if not own:
                return
            self.seal(p)
            try:
                p.execute()
                return
            except redis.ResponseError as exc:
                if attempt == 2 or "WRONGTYPE" not in str(exc) or not self.heal(queue):
                    raise

    def note_queue(self, p: Any, queue: str) -> None:
        """Add ``queue`` to the set of queue names (once per process)."""
        if queue not in self._known_queues:
            # on a cluster the set has its own slot, outside the queue's transaction
            (self.client if self.cluster else p).sadd(self.keys.queues, queue)
            self._known_queues.add(queue)

    def seal(self, p: Pipeline) -> None:
        """End a pipeline of publishes with ``WAIT`` when ``wait_replicas`` asks for it: the
        send returns once that many replicas have the messages (or the timeout passed)."""
        if self.wait_replicas:
            p.execute_command("WAIT", self.wait_replicas, self.wait_timeout)

    def add_delayed(
        self, p: Pipeline, queue: str, band: int, member: str, data: bytes, eta: float,
        redeliveries: int = 0,
    ) -> None:
        # body first: the promoter never sees a member whose body is not there yet
        p.hset(self.keys.delayed_bodies(queue), member, b"%d,%d|" % (band, redeliveries) + data)
        p.zadd(self.keys.delayed(queue), {member: eta})

    # -- consuming ---------------------------------------------------------------------

    def declare(self, queues: Iterable[str]) -> None:
        """Create the consumer group of every band stream of ``queues`` (a band key that
        holds another type is set aside and the stream made anew, see :meth:`set_aside`)."""
        p = self.client.pipeline(transaction=False)
        if self._wire is not None:  # its first fetch (EVALSHA) then meets no NOSCRIPT
            p.script_load(scripts.FETCH)
        streams: List[Optional[str]] = [None] if self._wire is not None else []
        for queue in queues:
            p.sadd(self.keys.queues, queue)
            streams.append(None)
            for stream in self.keys.streams(queue):
                p.xgroup_create(stream, GROUP, id="0", mkstream=True)
                streams.append(stream)
        garbage: List[str] = []
        for key, result in zip(streams, p.execute(raise_on_error=False)):
            if not isinstance(result, Exception) or "BUSYGROUP" in str(result):
                continue
            if key is None or not str(result).startswith("WRONGTYPE"):
                raise result
            garbage.append(key)
        self.set_aside(garbage)  # (its group is made with the stream)

    def fetch(self, consumer: str, queues: Sequence[str], count: int) -> List[Delivery]:
        """Take up to ``count`` new entries without blocking: the queues in the order given,
        higher priority bands first within each. One call on one server; one per queue on
        a cluster (a script cannot span slots)."""
        out: List[Delivery] = self.waiting()
        count -= len(out)
        if count <= 0 or not queues:
            return out
        if self._wire is not None:
            rows = self._run(self._fetch, self._stream_keys(queues), [GROUP, consumer, count])
            return out + self._deliveries(queues, rows)
        for queue in queues:
            if count <= 0:
                break
            rows = self._run(self._fetch, self._stream_keys([queue]), [GROUP, consumer, count])
            got = self._deliveries([queue], rows)
            out += got
            count -= len(got)
        return out

    def _stream_keys(self, queues: Sequence[str]) -> List[str]:
        """The band streams of ``queues``, queue after queue (the FETCH script's keys)."""
        if len(queues) == 1:
            keys = self._band_keys.get(queues[0])
            if keys is not None:
                return keys
        out: List[str] = []
        for queue in queues:
            keys = self._band_keys.get(queue)
            if keys is None:
                keys = self._band_keys[queue] = self.keys.streams(queue)
            out += keys
        return out

    def _deliveries(self, queues: Sequence[str], rows: Any) -> List[Delivery]:
        """The FETCH script's reply as deliveries. A queue whose group is missing is
        declared, a band key that holds garbage is set aside (their entries come on a
        later fetch)."""
        out: List[Delivery] = []
        missing: List[str] = []
        unreadable: List[str] = []
        for index, entries in rows:
            i = int(index)
            if i < 0:
                queue, band = queues[(-i - 1) // 10], 9 - (-i - 1) % 10
                error = entries.decode() if isinstance(entries, bytes) else str(entries)
                if error.startswith("NOGROUP"):
                    missing.append(queue)
                elif error.startswith("WRONGTYPE"):
                    unreadable.append(self.keys.stream(queue, band))
                else:
                    logger.error("Cannot read %s: %s", self.keys.stream(queue, band), error)
                continue
            queue, band = queues[(i - 1) // 10], 9 - (i - 1) % 10
            for entry_id, fields in entries:
                out.append(_delivery(queue, band, entry_id, fields))
        if missing:
            self.declare(list(dict.fromkeys(missing)))
        if unreadable:
            self.set_aside(unreadable)
        return out

    def set_aside(self, streams: Sequence[str]) -> List[str]:
        """Move what each of ``streams`` holds, when it is not a stream (garbage some other
        program wrote there), to a key of its own, and make the stream again: the node
        reads its other queues meanwhile, and this one from then on. Returns the keys
        moved to (each is logged as an error)."""
        return self._set_aside_all([(stream, "stream", GROUP) for stream in streams])

    def heal(self, queue: str) -> List[str]:
        """:meth:`set_aside` for every key of ``queue`` that holds another type than
        multiq keeps there (its streams, start markers, dead letters and delayed
        messages): called when a write to them failed with ``WRONGTYPE``."""
        k = self.keys
        return self._set_aside_all([
            *[(stream, "stream", GROUP) for stream in k.streams(queue)],
            (k.started(queue), "hash", ""), (k.deadletter(queue), "stream", ""),
            (k.delayed(queue), "zset", ""), (k.delayed_bodies(queue), "hash", "")])

    def _set_aside_all(self, keys: Sequence[Tuple[str, str, str]]) -> List[str]:
        moved: List[str] = []
        for key, kind, group in keys:
            target = self.keys.set_aside(key, int(time.time() * 1000))
            found = self._set_aside(keys=[key, target], args=[kind, group])
            if found:
                found = found.decode() if isinstance(found, bytes) else found
                logger.error("The key %s held a %s, not a %s: moved it to %s (kept there to "
                             "look at)%s", key, found, kind, target,
                             " and made the stream again" if group else "")
                moved.append(target)
        return moved

    def fetch_after(self, commands: Sequence[Command], consumer: str, queues: Sequence[str],
                    count: int) -> Tuple[List[Any], List[Delivery]]:
        """Write ``commands``, then :meth:`fetch`, in one exchange where one connection
        can carry both (a plain or Sentinel client); returns the commands' replies (error
        replies in place, never raised: what was fetched must not be lost) and the
        deliveries."""
        return self.post_fetch(commands, consumer, queues, count).result()

    def post_fetch(self, commands: Sequence[Command], consumer: str, queues: Sequence[str],
                   count: int) -> PostedFetch:
        """:meth:`fetch_after` in two halves: send now, read the replies later with
        :meth:`PostedFetch.result` (the caller works meanwhile)."""
        if self._wire is None or not queues:
            raise TypeError("fetch_after needs a plain or Sentinel client (see .wire)")
        keys = self._stream_keys(queues)
        command = ("EVALSHA", self._fetch.sha, len(keys), *keys, GROUP, consumer, count)
        return PostedFetch(self, self._wire.post([*commands, command]), consumer,
                           queues, count)

    @property
    def wire(self) -> Optional[Sender]:
        """The sender of the hot path (None on a cluster)."""
        return self._wire

    def _sent(self, *command: Any) -> Any:
        """One command's raw reply, through the sender (on a plain or Sentinel client).
        What a consumer sends while it waits goes this way, as its fetches do: a prefork
        child then never runs redis-py's command layer, whose pages each child would
        otherwise copy from the node (idle memory)."""
        assert self._wire is not None
        return self._wire.execute([command])[0]

    def _run(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered script; on a plain client through the sender (the hot path)."""
        if self._wire is None:
            return script(keys=keys, args=args)
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self._wire.execute([command])[0]
        except redis.exceptions.NoScriptError:  # a restarted or flushed server
            self.client.script_load(script.script)
            return self._wire.execute([command])[0]

    def wait(
        self, consumer: str, queues: Sequence[str], count: int, block_ms: int
    ) -> List[Delivery]:
        """Block up to ``block_ms`` for new entries on any band of any queue.

        ``COUNT`` applies per stream: a read where several streams hold entries returns
        some of each (no queue is starved), in the order the streams are named: the
        order of ``queues``, bands high to low. On a cluster, queues on different slots
        are waited on by one thread per slot (see :mod:`multiq.broker.waiters`); what
        they read comes back here or from :meth:`fetch`.
        """
        groups = self._slot_groups(queues)
        if len(groups) == 1:
            return self._wait_one(consumer, groups[0], count, block_ms)
        if self._waiters is None:
            self._waiters = SlotWaiters(
                lambda qs, n, ms: self._wait_one(consumer, qs, n, ms))
        return self._waiters.wait(groups, count, block_ms)

    def _slot_groups(self, queues: Sequence[str]) -> List[List[str]]:
        if not self.cluster or len(queues) < 2:
            return [list(queues)]
        by_slot: Dict[int, List[str]] = {}
        for q in queues:
            by_slot.setdefault(self.client.keyslot(self.keys.stream(q, 0)), []).append(q)
        return list(by_slot.values())

    def waiting(self) -> List[Delivery]:
        """Entries the slot waiters read after the last :meth:`wait` returned."""
        return self._waiters.take() if self._waiters is not None else []

    def stop_waiting(self) -> List[Delivery]:
        """Stop the slot waiters; returns what they still read, for the caller to hand back."""
        waiters, self._waiters = self._waiters, None
        return waiters.close() if waiters is not None else []

    def _wait_one(
        self, consumer: str, queues: Sequence[str], count: int, block_ms: int
    ) -> List[Delivery]:
        keys = list(dict.fromkeys(self._stream_keys(queues)))
        try:
            if self._wire is not None:  # (see _sent)
                reply = self._sent("XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
                                   "BLOCK", block_ms, "STREAMS", *keys, *[">"] * len(keys))
            else:
                reply = self.client.xreadgroup(GROUP, consumer, dict.fromkeys(keys, ">"),
                                               count=count, block=block_ms)
        except redis.ResponseError as exc:
            if str(exc).startswith("NOGROUP"):  # a send after a flush made the stream
                self.declare(queues)
            elif str(exc).startswith("UNBLOCKED"):  # deleted while waited on
                pass  # (the next wait meets what is there now)
            elif not (str(exc).startswith("WRONGTYPE") and self.set_aside(keys)):
                raise
            return []
        out = []
        for stream, entries in reply.items() if isinstance(reply, dict) else reply or ():
            queue, band = self._parse_stream(stream)
            for entry_id, fields in entries:
                out.append(_delivery(queue, band, entry_id, fields))
        return out

    def own_pending(self, consumer: str, queues: Sequence[str],
                    page: int = 500) -> List[Delivery]:
        """Entries delivered to ``consumer`` and never acknowledged, oldest first per band
        (those whose body is gone are skipped)."""
        out: List[Delivery] = []
        for queue in queues:
            for band, stream in zip(range(9, -1, -1), self.keys.streams(queue)):
                start: Any = "0"
                while True:
                    try:
                        reply = self.client.xreadgroup(GROUP, consumer, {stream: start},
                                                       count=page)
                    except redis.ResponseError as exc:  # no group, or garbage: none held
                        if str(exc).startswith("WRONGTYPE"):
                            self.set_aside([stream])
                        elif not str(exc).startswith("NOGROUP"):
                            raise
                        break
                    pairs = list(reply.items()) if isinstance(reply, dict) else reply or []
                    entries = pairs[0][1] if pairs else []
                    for entry_id, fields in entries:
                        if fields:
                            out.append(_delivery(queue, band, entry_id, fields))
                    if len(entries) < page:
                        break
                    start = entries[-1][0]
        return out

    def _parse_stream(self, stream: Any) -> Tuple[str, int]:
        name = stream.decode() if isinstance(stream, bytes) else stream
        head, _, band = name.rpartition(":")
        queue = head[head.index("{") + 1: head.rindex("}")]
        return queue, int(band)

    def mark_started(self, p: Pipeline, d: Delivery, consumer: str) -> None:
        p.hset(self.keys.started(d.queue), d.entry_id, consumer)

    def started_owners(self, deliveries: Sequence[Delivery]) -> Dict[bytes, str]:
        """Entry id -> the consumer that marked it started, for those of ``deliveries``
        that carry a start marker."""
        by_queue: Dict[str, List[bytes]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d.entry_id)
        if not by_queue:
            return {}
        p = self.client.pipeline(transaction=False)
        for queue, ids in by_queue.items():
            p.hmget(self.keys.started(queue), ids)
        out: Dict[bytes, str] = {}
        for ids, owners in zip(by_queue.values(), p.execute()):
            for entry_id, owner in zip(ids, owners):
                if owner is not None:
                    out[entry_id] = owner.decode() if isinstance(owner, bytes) else owner
        return out

    def ack(self, p: Pipeline, d: Delivery, started: bool = False) -> None:
        stream = self.keys.stream(d.queue, d.band)
        p.xack(stream, GROUP, d.entry_id)
        p.xdel(stream, d.entry_id)
        if started:
            p.hdel(self.keys.started(d.queue), d.entry_id)

    def ack_many(self, p: Pipeline, items: Sequence[Tuple[Delivery, bool]]) -> None:
        """Acknowledge many deliveries with one XACK and one XDEL per stream."""
        by_stream: Dict[str, List[bytes]] = {}
        started: Dict[str, List[bytes]] = {}
        for d, marked in items:
            by_stream.setdefault(self.keys.stream(d.queue, d.band), []).append(d.entry_id)
            if marked:
                started.setdefault(self.keys.started(d.queue), []).append(d.entry_id)
        for stream, ids in by_stream.items():
            p.xack(stream, GROUP, *ids)
            p.xdel(stream, *ids)
        for key, ids in started.items():
            p.hdel(key, *ids)

    def requeue_delayed(
        self, p: Pipeline, d: Delivery, data: bytes, eta: float, member: str
    ) -> None:
        """Put a new version of ``d`` in the delayed set (or its stream); the caller acks."""
        if eta > time.time():
            self.add_delayed(p, d.queue, d.band, member, data, eta)
        else:
            p.xadd(self.keys.stream(d.queue, d.band), {"m": data, "n": 0})

    def dead_letter(self, p: Pipeline, d: Delivery, reason: str) -> None:
        """Copy ``d`` to its queue's dead-letter stream; the caller acks."""
        p.xadd(
            self.keys.deadletter(d.queue),
            {"m": d.data, "reason": reason, "band": d.band, "time": time.time()},
            maxlen=100_000, approximate=True,
        )

    def handback(self, deliveries: Sequence[Delivery]) -> int:
        """Give fetched, never started entries back to their streams; returns how many."""
        by_queue: Dict[str, List[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        total = 0
        for queue, items in by_queue.items():
            args: List[Any] = [GROUP]
            for d in items:
                args += [d.band, d.entry_id]
            keys = [*self.keys.streams(queue), self.keys.started(queue)]
            total += int(self._handback(keys=keys, args=args))
        return total

    # -- delays, liveness and recovery -------------------------------------------------

    def promote(self, queue: str, now: float, limit: int = 500) -> Tuple[int, Optional[float]]:
        """Move due delayed messages of ``queue`` into its streams; returns how many members
        were taken off the delayed set and the next due time. Malformed ones are
        dead-lettered (see ``scripts.PROMOTE``) and logged."""
        k = self.keys
        keys = [*k.streams(queue), k.delayed(queue), k.delayed_bodies(queue),
                k.deadletter(queue)]
        try:
            try:
                moved, nxt, bad, bodiless = self._promote(keys=keys, args=[now, limit])
            except redis.ResponseError as exc:  # a key of another type: set aside, again
                if "WRONGTYPE" not in str(exc) or not self.heal(queue):
                    raise
                moved, nxt, bad, bodiless = self._promote(keys=keys, args=[now, limit])
        except redis.ResponseError as exc:  # still: skip this queue
            logger.warning("Cannot promote the delayed messages of queue %r (%s, %s): %s",
                           queue, k.delayed(queue), k.delayed_bodies(queue), exc)
            return 0, None
        for member in bad:
            logger.warning("Malformed delayed message %r in %s: moved to %s", member,
                           k.delayed_bodies(queue), k.deadletter(queue))
        for member in bodiless:
            logger.warning("Delayed member %r of %s has no body in %s: dropped", member,
                           k.delayed(queue), k.delayed_bodies(queue))
        return int(moved), (float(nxt) if nxt else None)

    def heartbeat(self, consumer: str, info: Dict[str, Any], ttl: float,
                  timeout: Optional[float] = None, others: Sequence[str] = ()) -> None:
        """Renew ``consumer``'s liveness key for ``ttl`` seconds, and those of ``others``
        (its prefork children's consumer names: alive while it is, not listed as nodes).
        With ``timeout``, on a connection of its own that gives up after that long (a
        stalled server is an error within about a heartbeat, not a hang)."""
        client = self.client if timeout is None else self._beats(timeout)
        p = client.pipeline(transaction=False)
        data, px = json.dumps(info), int(ttl * 1000)
        p.set(self.keys.node(consumer), data, px=px)
        for other in others:
            p.set(self.keys.node(other), data, px=px)
        if consumer not in others:
            p.zadd(self.keys.nodes, {consumer: time.time()})
        p.execute()

    def _beats(self, timeout: float) -> Any:
        if self._beat_client is None:
            self._beat_client = connect(self.url, self._options, timeout=timeout)
        return self._beat_client

    def retire(self, consumer: str, queues: Sequence[str]) -> None:
        """Remove a node that stops cleanly from the consumer groups (entries it still
        holds keep it there, for recovery to find)."""
        for queue in queues:
            self._retire(keys=self.keys.streams(queue), args=[GROUP, consumer])

    def forget_node(self, consumer: str) -> None:
        p = self.client.pipeline(transaction=False)
        p.delete(self.keys.node(consumer))
        p.zrem(self.keys.nodes, consumer)
        p.execute()

    def live_nodes(self) -> Dict[str, Dict[str, Any]]:
        """Info of every node whose heartbeat has not expired, keyed by consumer name
        (records that are not a JSON object are skipped with a warning)."""
        names = _texts(self.client.zrange(self.keys.nodes, 0, -1), self.keys.nodes)
        if not names:
            return {}
        p = self.client.pipeline(transaction=False)  # one slot per key on a cluster
        for n in names:
            p.get(self.keys.node(n))
        out: Dict[str, Dict[str, Any]] = {}
        for name, value in zip(names, p.execute(raise_on_error=False)):
            if value is None:  # expired: a node that is gone
                continue
            info = _json_object(value)
            if info is None:
                logger.warning("Skipping node record %s: not a JSON object: %r",
                               self.keys.node(name), _clip(value))
            else:
                out[name] = info
        return out

    def holders(self, queue: str) -> Set[str]:
        """Consumers that hold pending entries of ``queue``."""
        p = self.client.pipeline(transaction=False)
        for stream in self.keys.streams(queue):
            p.xpending(stream, GROUP)
        found: Set[str] = set()
        for summary in p.execute(raise_on_error=False):
            if isinstance(summary, dict):
                for c in summary.get("consumers") or ():
                    name = c["name"]
                    found.add(name.decode() if isinstance(name, bytes) else name)
        return found

    def is_alive(self, consumers: Sequence[str]) -> List[bool]:
        """Whether each consumer's liveness key exists."""
        p = self.client.pipeline(transaction=False)
        for c in consumers:
            p.exists(self.keys.node(c))
        return [bool(x) for x in p.execute()]

    def server_info(self) -> Tuple[str, float]:
        """The server's ``run_id`` (it changes with a restart, and with the master after a
        failover) and its uptime in seconds; on a cluster, every primary's run id and the
        shortest uptime."""
        if self.cluster:
            reply = self.client.info("server", target_nodes=self.client.PRIMARIES)
        else:
            reply = self.client.info("server")
        infos = [reply] if "run_id" in reply else \
            [v for v in reply.values() if isinstance(v, dict) and "run_id" in v]
        if not infos:
            raise redis.ResponseError("INFO server names no run_id")
        run_ids = sorted(str(i["run_id"]) for i in infos)
        return ",".join(run_ids), min(float(i.get("uptime_in_seconds", 0)) for i in infos)

    def recover(self, queue: str, consumer: str) -> Tuple[int, int, List[LostEntry]]:
        """Hand back a dead consumer's entries of ``queue``; returns (requeued, dead, lost).

        On one server the script checks once more, atomically, that the consumer's
        liveness key is still absent (it does nothing if the node beat meanwhile); on a
        cluster that key lives in another slot, so the caller's check is the last.
        """
        keys = [*self.keys.streams(queue), self.keys.started(queue), self.keys.deadletter(queue)]
        if not self.cluster:
            keys.append(self.keys.node(consumer))
        requeued, dead, lost = self._recover(
            keys=keys, args=[GROUP, consumer, self.max_deliveries, time.time()]
        )
        return int(requeued), int(dead), [
            LostEntry(queue, int(band), entry_id, data) for band, entry_id, data in lost
        ]

    def ack_lost(self, entries: Sequence[LostEntry]) -> None:
        p = self.client.pipeline(transaction=False)
        for e in entries:
            stream = self.keys.stream(e.queue, e.band)
            p.xack(stream, GROUP, e.entry_id)
            p.xdel(stream, e.entry_id)
            p.hdel(self.keys.started(e.queue), e.entry_id)
        p.execute()

    # -- revokes ---------------------------------------------------------------------

    def revoke(self, task_ids: Sequence[str], expires: float, payload: Dict[str, Any]) -> None:
        p = self.client.pipeline(transaction=False)
        until = time.time() + expires
        p.zadd(self.keys.revoked, {t: until for t in task_ids})
        p.zremrangebyscore(self.keys.revoked, "-inf", time.time())
        p.execute()
        self.client.publish(self.keys.revoked_channel,
                            json.dumps({**payload, "ids": list(task_ids)}))

    def revoked_ids(self) -> Set[str]:
        """Ids revoked and not yet expired. A member that is not UTF-8 cannot be a task id:
        it is removed, with a warning."""
        key = self.keys.revoked
        try:
            members = self._sent("ZRANGEBYSCORE", key, time.time(), "+inf") \
                if self._wire is not None else self.client.zrangebyscore(key, time.time(), "+inf")
        except redis.ResponseError as exc:  # not a sorted set
            logger.warning("Cannot read the revoked ids in %s: %s", key, exc)
            return set()
        ids: Set[str] = set()
        bad: List[bytes] = []
        for member in members:
            try:
                ids.add(member.decode())
            except UnicodeDecodeError:
                bad.append(member)
        if bad:
            logger.warning("Removing %d undecodable member(s) of %s: %s", len(bad), key,
                           ", ".join(repr(_clip(b)) for b in bad))
            self.client.zrem(key, *bad)
        return ids

    # -- administration ------------------------------------------------------------------

    def queue_names(self) -> List[str]:
        """The queues ever published to (members that are not UTF-8 are skipped)."""
        return sorted(_texts(self.client.smembers(self.keys.queues), self.keys.queues))

    def queue_length(self, queue: str) -> int:
        p = self.client.pipeline(transaction=False)
        for stream in self.keys.streams(queue):
            p.xlen(stream)
        p.zcard(self.keys.delayed(queue))
        # a key that holds another type (garbage) counts as empty
        return sum(x for x in p.execute(raise_on_error=False) if isinstance(x, int))

    def batch(self) -> Pipeline:
        """A pipeline for writes across queues: a transaction on one Redis; on a cluster,
        where a transaction must stay in one slot, a plain pipeline (each command still
        runs in order on its shard)."""
        return self.client.pipeline(transaction=not self.cluster)

    def close(self) -> None:
        self.stop_waiting()
        if self._wire is not None:
            self._wire.close()
        if self._beat_client is not None:
            self._beat_client.close()
        self.client.close()


def _texts(members: Iterable[bytes], key: str) -> List[str]:
    """Decoded members of a set; one that is not UTF-8 is skipped with a warning."""
    out: List[str] = []
    for member in members:
        try:
            out.append(member.decode())
        except UnicodeDecodeError:
            logger.warning("Skipping undecodable member %r of %s", _clip(member), key)
    return out


def _json_object(value: Any) -> Optional[Dict[str, Any]]:
    """``value`` decoded as a JSON object, or None."""
    if isinstance(value, Exception):
        return None
    try:
        doc = json.loads(value)
    except ValueError:  # UnicodeDecodeError included
        return None
    return doc if isinstance(doc, dict) else None


def _clip(value: Any, size: int = 80) -> Any:
    """A garbage value short enough for a log line."""
    return value[:size] + b"..." if isinstance(value, bytes) and len(value) > size else value


def _delivery(queue: str, band: int, entry_id: bytes, fields: Any) -> Delivery:
    if isinstance(fields, dict):
        data, n = fields.get(b"m", b""), fields.get(b"n", b"0")
    else:  # Lua replies come back as flat lists
        f = dict(zip(fields[::2], fields[1::2]))
        data, n = f.get(b"m", b""), f.get(b"n", b"0")
    try:
        redeliveries = int(n)
    except ValueError:
        redeliveries = 0
    return Delivery(queue, band, entry_id, data, redeliveries)


class PostedFetch:
    """A commit-and-fetch exchange sent by :meth:`RedisBroker.post_fetch`."""

    def __init__(self, broker: RedisBroker, exchange: Exchange, consumer: str,
                 queues: Sequence[str], count: int) -> None:
        self.broker = broker
        self.exchange = exchange
        self.consumer, self.queues, self.count = consumer, queues, count

    def result(self) -> Tuple[List[Any], List[Delivery]]:
        """The commands' replies (errors in place) and the deliveries fetched."""
        replies = self.exchange.replies(raise_errors=False)
        rows = replies.pop()
        broker, queues, count = self.broker, self.queues, self.count
        if isinstance(rows, Exception):  # no script yet (a flushed server): the usual way
            return replies, broker.fetch(self.consumer, queues, count)
        return replies, broker._deliveries(queues, rows)

    def abandon(self) -> None:
        """Never read the reply (the caller failed meanwhile): the connection is closed.
        What the fetch took stays pending for this node (see ``Consumer._reclaim``)."""
        self.exchange.abandon()
