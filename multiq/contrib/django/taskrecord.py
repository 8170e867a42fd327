"""The record a ``django.tasks`` task keeps beside its multiq result document.

The result document (``multiq-task-meta-<id>``) says how the task ended; Django also
wants what was enqueued and when each attempt started, so this hash
(``multiq-django-task-<id>``, see :mod:`multiq.keys`) holds:

- ``spec``: JSON of ``path``, ``args``, ``kwargs``, ``backend``, ``queue_name``,
  ``priority`` and ``run_after``, written when the task is enqueued;
- ``enqueued_at``, ``started_at`` (first attempt), ``last_attempted_at`` (ISO 8601, UTC);
- ``worker_ids``: the node of each attempt, one per line.

It lives in the result store and expires with the results (``result_expires``).
Nothing here imports Django.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from multiq.keys import django_task_key
from multiq.serialization import json_dumps

Record = Dict[str, Any]

# KEYS: the record. ARGV: the time, the worker, the expiry in seconds (0: none).
# Records one attempt and returns the whole hash.
ATTEMPT = """
local k = KEYS[1]
redis.call('HSETNX', k, 'started_at', ARGV[1])
local w = redis.call('HGET', k, 'worker_ids')
if w and w ~= '' then w = w .. '\\n' .. ARGV[2] else w = ARGV[2] end
redis.call('HSET', k, 'last_attempted_at', ARGV[1], 'worker_ids', w)
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', k, ARGV[3]) end
return redis.call('HGETALL', k)
"""


def key(store: Any, task_id: str) -> str:
    return django_task_key(task_id, store.prefix)


def write(store: Any, task_id: str, spec: Dict[str, Any], enqueued_at: str) -> None:
    """Record what is enqueued, before its message is sent (so a worker finds it)."""
    name = key(store, task_id)
    pipe = store.client.pipeline(transaction=False)
    pipe.hset(name, mapping={"spec": json_dumps(spec), "enqueued_at": enqueued_at})
    if store.expires:
        pipe.expire(name, store.expires)
    pipe.execute()


def attempt(store: Any, task_id: str, worker: str, now: str, started: Dict[str, Any]) -> Record:
    """Record an attempt by ``worker`` and store ``started`` (a STARTED result document,
    unless the stored one is final), in one round trip; returns the record."""
    pipe = store.client.pipeline(transaction=False)
    pipe.execute_command("EVAL", ATTEMPT, 1, key(store, task_id), now, worker,
                         store.expires or 0)
    store.store_unless_final(task_id, started, pipe)
    replies = pipe.execute()
    return _decode(_pairs(replies[0])) or {}


def read(store: Any, task_id: str) -> Tuple[Optional[Record], Dict[str, Any]]:
    """The record (None when there is none or it cannot be read) and the result document."""
    pipe = store.client.pipeline(transaction=False)
    pipe.hgetall(key(store, task_id))
    pipe.get(store.key(task_id))
    fields, raw = pipe.execute()
    try:
        doc = store.decode(task_id, raw)
    except ValueError:  # not JSON: as if nothing were stored yet
        doc = None
    return _decode(fields), doc if isinstance(doc, dict) else store.decode(task_id, None)


def _pairs(flat: Any) -> Dict[Any, Any]:
    items = list(flat or ())
    return dict(zip(items[::2], items[1::2]))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decode(fields: Any) -> Optional[Record]:
    if not fields:
        return None
    data = {_text(k): _text(v) for k, v in dict(fields).items()}
    record: Record = {name: data.get(name) or None
                      for name in ("enqueued_at", "started_at", "last_attempted_at")}
    workers: List[str] = [w for w in (data.get("worker_ids") or "").split("\n") if w]
    record["worker_ids"] = workers
    record["spec"] = None
    if data.get("spec"):
        try:
            spec = json.loads(data["spec"])
        except ValueError:
            return None
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) \
                or not isinstance(spec.get("args"), list) \
                or not isinstance(spec.get("kwargs"), dict):
            return None
        record["spec"] = spec
    return record
