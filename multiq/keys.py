"""Every Redis key multiq uses, and why the layout is what it is.

Broker (one Redis, ``broker_url``; all names start with the prefix, default ``multiq``)::

    multiq:q:{<queue>}:<band>       STREAM   ready messages of <queue> with priority <band>
                                             (0..9, 9 is read first). Field ``m`` holds the
                                             envelope, ``n`` how often it was delivered before.
                                             Consumer group ``multiq``; its pending-entries list
                                             is the record of what each node holds.
    multiq:q:{<queue>}:delayed      ZSET     countdown / eta / retry messages, score = due time
    multiq:q:{<queue>}:delayed:m    HASH     their bodies: member -> "<band>,<n>|<envelope>"
    multiq:q:{<queue>}:started      HASH     entry id -> consumer, for early-ack messages whose
                                             task has started (at most once: not redelivered)
    multiq:queues                   SET      names of the queues ever published to
    multiq:node:<consumer>          STRING   a live node's info (JSON: hostname, consumer, pid,
                                             pool, concurrency, queues, started, ready, active
                                             tasks, time), expires unless renewed
                                             by its heartbeat: this key *is* the liveness
                                             (see "Who may declare a node gone" below)
    multiq:nodes                    ZSET     consumer -> time of its last heartbeat
    multiq:revoked                  ZSET     task id -> time the revoke expires
    multiq:revoked:channel          PUBSUB   revoked ids, so live nodes learn at once
    multiq:control                  PUBSUB   remote-control commands broadcast to every node
    multiq:reply:<ticket>           LIST     replies to one command; expires after 10 s
    multiq:events                   STREAM   task and node events (capped), when enabled
    multiq:beat:lock                STRING   the beat leader's lease (expires unless renewed)
    multiq:beat:last                HASH     periodic task name -> time of its last run
    multiq:beat:entries             HASH     the dynamic beat table (``app.beat.add``)
    multiq:q:{<queue>}:deadletter   STREAM   messages of <queue> that cannot be run, with why
    multiq:q:{<queue>}:<key>:garbage:<ms>    what one of the keys above held when a node
                                             found another type there (written by some
                                             other program): moved aside at that time
                                             (Unix ms), kept to look at; a band stream is
                                             made again
    multiq:metrics:tasks            HASH     tasks finished by every node, by outcome: field
                                             ``["<name>","<state>","<queue>"]`` (a JSON array)
                                             -> count; state SUCCESS, FAILURE, RETRY, REVOKED
                                             or REJECTED (multiq.metrics.families)
    multiq:metrics:runtime          HASH     run time histogram per task and queue: field
                                             ``["<name>","<queue>","<le>"]`` -> how many runs
                                             took at most <le> seconds and more than the
                                             bucket below (``+Inf`` the rest; the count is
                                             their sum), ``["<name>","<queue>","sum_us"]``
                                             -> total microseconds
    multiq:metrics:wait             HASH     the same for the time from a message's ``sent``
                                             (or later eta) to the start of its run
    multiq:beat:disabled            HASH     dynamic beat entries switched off from the
                                             dashboard (same JSON as ``beat:entries``; beat
                                             does not read it)

Dashboard (``multiq dashboard``, on the broker's Redis; written only by the process holding
``dash:feeder``, which reads ``events`` and keeps the read position with every batch)::

    multiq:dash:feeder              STRING   lease of the dashboard that feeds the index
                                             (expires unless renewed)
    multiq:dash:pos                 STRING   last ``events`` entry id folded into the index:
                                             a restarted dashboard resumes after it
    multiq:dash:tasks               ZSET     task id -> time first seen (the history's order)
    multiq:dash:ids                 ZSET     task ids, all scored 0 (prefix search by id)
    multiq:dash:names               ZSET     task name -> time last seen
    multiq:dash:by:<kind>:<value>   ZSET     task id -> time first seen, for <kind> ``name``,
                                             ``state`` and ``node`` (search filters)
    multiq:dash:t:<task id>         HASH     the task as its events tell: ``name``, ``state``,
                                             ``hostname``, ``pid``, ``args``, ``kwargs``
                                             (reprs), ``result``, ``exception``,
                                             ``traceback``, ``runtime``, ``retries``,
                                             ``queue``, ``parent_id``, ``root_id``,
                                             ``group_id``, ``chord_id``,
                                             ``first``, ``t_<event>`` (time of each kind),
                                             ``t_state`` (of the event that set ``state``),
                                             ``origin`` (the sender), ``waited`` (queue
                                             wait sampled), ``resent_as`` / ``resent_from``
    multiq:dash:t:<task id>:log     LIST     its timeline: JSON {type, timestamp, hostname,
                                             pid}, oldest first (at most 100)
    multiq:dash:t:<task id>:kids    SET      ids of the tasks whose parent_id is this task
    multiq:dash:rate:<minute>       HASH     "<second>:s" / "<second>:f" -> tasks succeeded /
                                             failed in that second; expires after 20 minutes
    multiq:dash:samples:<kind>      LIST     the latest 1,000 ``runtime`` / ``wait`` (queue
                                             wait: started minus sent, or received) seconds
    multiq:dash:search:<digest>     ZSET     a search's intersection of filters; expires
                                             after 10 s

The index is bounded by ``dashboard_history_max_tasks`` and ``dashboard_history_max_age``:
the feeder deletes the oldest tasks' keys past either bound.

Result store (``result_backend``, may be another Redis or database)::

    multiq-task-meta-<task id>      STRING   JSON result document, expires after result_expires;
                                             each write is also PUBLISHed on a channel of the
                                             same name, so ``get()`` is woken, not polling.
    multiq-taskset-meta-<group id>  STRING   a saved GroupResult (``save()``): its member ids
                                             as result tuples; expires like results.
    multiq-chord-{<chord id>}       HASH     a chord's state (multiq.chordstate), made when
                                             sent: ``n`` header size, ``k`` body messages as
                                             ``s<i>`` stream key, ``m<i>`` envelope, ``q<i>``
                                             queue, and ``fired`` once the body was sent (the
                                             index of the header task that sent it).
    multiq-chord-{<chord id>}:r     HASH     header task index -> its result document. The
                                             count is HLEN: a redelivered task overwrites its
                                             own field, never counted twice. Both chord keys
                                             carry the hash tag ``{<chord id>}`` (one slot on
                                             a cluster) and expire with the results.
    multiq-django-task-<task id>    HASH     a ``django.tasks`` task's side of its result
                                             (multiq.contrib.django.tasks): what was enqueued
                                             and its attempts; expires with the result.

Why streams: one ``XADD`` enqueues; one blocking ``XREADGROUP`` waits on all of a node's
queues and bands; the pending-entries list records what a node holds without a second write;
``XACK`` + ``XDEL`` acknowledge in one pipeline. A consumer name is ``<node name>|<incarnation>``,
so entries held by a previous life of the same node are told apart and recovered. A prefork
child consumes under ``<node name>|<incarnation>/<child>.<generation>``: a name of its own
(its pending entries are its own, settled by its node at once when it dies), with a
``node`` key of its own that its node writes before the child fetches and renews with its
own heartbeat (the child is alive while its node is; it is not listed in ``nodes``). Redelivery
follows liveness: a node's entries are handed back only once its ``node`` key has expired —
never because a message was held for a long time, so a healthy long task runs once.

Who may declare a node gone: only a node that has itself been in steady contact with Redis
for a full liveness period (the ``node`` key's time to live) since its own last outage —
a failed heartbeat or fetch, or a beat or answer that came late (a paused server or
process) — and since the server started (``INFO server`` uptime; a new ``run_id``, i.e. a
restart or a failover, counts as an outage). An outage longer than the period lets every
key expire at once, healthy nodes' too; each live node beats as soon as Redis answers
again, so one full period later only the gone have no key. On one server the recovery
script checks the key once more, atomically. The WorkerLostError then recorded for a gone
node's started task never replaces a final result (SUCCESS, FAILURE, REVOKED).

How a chord completes: each header task's outcome is written by one script that stores its
document in the chord's results hash and checks the count (and, where results and broker
share a server, also writes its result key and sends the body's messages to their streams,
selecting the broker's database: one atomic step inside the worker's result write, so the
body is sent exactly once). Elsewhere (a cluster, or results on another server) the script
hands the body's messages back and the worker sends them right after: at least once.
The body's worker reads the results hash in one command.

Slot layout on a Redis Cluster (``redis+cluster://``): every key of one queue carries the
hash tag ``{<queue>}``, so a queue's bands, delayed set, started hash and dead-letter stream
share one slot and one shard, while different queues spread over the shards. Every Lua
script and every transaction touches one queue's keys only. What spans queues is sent as a
plain pipeline, which runs each command in order on its own shard: the worker's batch of
acknowledgements, ``multiq:queues``, ``nodes``, ``node:*`` (one slot each), the revoked
set, and the ``metrics:*`` hashes (each a single key: a node's counts for a batch are
one HINCRBY per field it changes, right after the batch's acknowledgements). A node that
consumes queues on several slots blocks on each slot from its own thread (one
``XREADGROUP`` cannot span slots). Results (``multiq-task-meta-<id>``) spread over
all shards and are announced with ``SPUBLISH`` on the key's own shard; the control and
revoke channels are cluster-wide ``PUBLISH`` (few, small messages). ``events``,
``beat:lock``, ``beat:last`` and ``beat:entries`` are single keys, each on one shard; the
beat scripts touch one key each.
"""
from __future__ import annotations

from typing import List

GROUP = "multiq"
BANDS = tuple(range(9, -1, -1))  # read order: highest priority first
DEFAULT_PREFIX = "multiq"
RESULT_PREFIX = "multiq-task-meta-"
GROUP_PREFIX = "multiq-taskset-meta-"
DJANGO_TASK_PREFIX = "multiq-django-task-"


class Keys:
    """Names of the broker keys under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix.rstrip(":")
        p = self.prefix
        self.queues = f"{p}:queues"
        self.nodes = f"{p}:nodes"
        self.revoked = f"{p}:revoked"
        self.revoked_channel = f"{p}:revoked:channel"
        self.control = f"{p}:control"
        self.events = f"{p}:events"
        self.beat_lock = f"{p}:beat:lock"
        self.beat_last = f"{p}:beat:last"
        self.beat_entries = f"{p}:beat:entries"
        self.metrics_tasks = f"{p}:metrics:tasks"
        self.metrics_runtime = f"{p}:metrics:runtime"
        self.metrics_wait = f"{p}:metrics:wait"
        self.beat_disabled = f"{p}:beat:disabled"
        self.dash = f"{p}:dash"

    def _q(self, queue: str) -> str:
        return f"{self.prefix}:q:{{{queue}}}"

    def stream(self, queue: str, band: int) -> str:
        return f"{self._q(queue)}:{band}"

    def streams(self, queue: str) -> List[str]:
        """The queue's band streams, highest priority first."""
        base = self._q(queue)
        return [f"{base}:{band}" for band in BANDS]

    def delayed(self, queue: str) -> str:
        return f"{self._q(queue)}:delayed"

    def delayed_bodies(self, queue: str) -> str:
        return f"{self._q(queue)}:delayed:m"

    def started(self, queue: str) -> str:
        return f"{self._q(queue)}:started"

    def deadletter(self, queue: str) -> str:
        return f"{self._q(queue)}:deadletter"

    def set_aside(self, key: str, millis: int) -> str:
        """Where a queue's key that held another type is moved (see the table)."""
        return f"{key}:garbage:{millis}"

    def reply(self, ticket: str) -> str:
        return f"{self.prefix}:reply:{ticket}"

    def node(self, consumer: str) -> str:
        return f"{self.prefix}:node:{consumer}"


class DashboardKeys:
    """Names of the dashboard's keys (``<prefix>:dash:...``), see the table above."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        p = f"{prefix.rstrip(':')}:dash"
        self.feeder = f"{p}:feeder"
        self.pos = f"{p}:pos"
        self.tasks = f"{p}:tasks"
        self.ids = f"{p}:ids"
        self.names = f"{p}:names"
        self._p = p

    def by(self, kind: str, value: str) -> str:
        return f"{self._p}:by:{kind}:{value}"

    def task(self, task_id: str) -> str:
        return f"{self._p}:t:{task_id}"

    def timeline(self, task_id: str) -> str:
        return f"{self._p}:t:{task_id}:log"

    def children(self, task_id: str) -> str:
        return f"{self._p}:t:{task_id}:kids"

    def rate(self, minute: int) -> str:
        return f"{self._p}:rate:{minute}"

    def samples(self, kind: str) -> str:
        return f"{self._p}:samples:{kind}"

    def search(self, digest: str) -> str:
        return f"{self._p}:search:{digest}"


def child_consumer(node: str, index: int, generation: int) -> str:
    """The consumer name of a prefork child of node consumer ``node``."""
    return f"{node}/{index}.{generation}"


def result_key(task_id: str, prefix: str = "") -> str:
    """The key (and notification channel) of a task's result document."""
    return f"{prefix}{RESULT_PREFIX}{task_id}"


def group_key(group_id: str, prefix: str = "") -> str:
    """Where ``GroupResult.save()`` keeps a group's member ids."""
    return f"{prefix}{GROUP_PREFIX}{group_id}"


def django_task_key(task_id: str, prefix: str = "") -> str:
    """The record of a ``django.tasks`` task beside its result document."""
    return f"{prefix}{DJANGO_TASK_PREFIX}{task_id}"


def band_of(priority: object) -> int:
    """Clamp a priority to a band 0..9; None means 0 (the lowest)."""
    if priority is None:
        return 0
    try:
        return min(9, max(0, int(priority)))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
