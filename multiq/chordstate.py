"""A chord's state in Redis: who finished, with what, and the callback to send (no polling).

When a chord is sent, its callback messages are encoded at once and kept, with the header's
size, in the chord's hash (see :mod:`multiq.keys`). Each header task's result goes into the
chord's results hash in one script with the count (``HSET`` of its index: a redelivered task
overwrites its own field and is never counted twice). The write that completes the header,
or the first that records a failure, marks the chord fired and sends the callback messages:

- when results and broker share a server (not a cluster), inside that same script, as part
  of the worker's result write: exactly once, with no round trip of its own;
- otherwise the committer runs the scripts of a batch in one round trip of their own, and
  the messages they hand back go out in the same transaction as the batch's acks: a task
  that dies in between is not acknowledged, and when it runs again (``acks_late``) the
  script hands the messages back again, to the same member only. On a cluster the acks are
  not one transaction, so there the body runs at least once.

The callback's worker reads the results hash in one command and prepends the values in
header order, or fails the callback with :class:`ChordError` naming the first failed task.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from multiq import states
from multiq.exceptions import ChordError

# KEYS: chord meta hash, chord results hash (one slot: the chord's hash tag).
# ARGV: member document, expiry (0: none), notify command (or '' not to store the result
# key here), member index, '1' when the member failed (or was revoked), the broker's
# database number ('' to return the messages instead of sending them), the broker's set of
# queue names, the member's result key (written only with a notify command: one server,
# never a cluster), and '1' to count the member only if it has no result yet (a lost
# node's task, which may have finished). Returns the messages to send ([stream, envelope,
# queue]...) when the caller must send them, else an empty list.
CHORD_PART = """
if ARGV[3] ~= '' then
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', ARGV[8], ARGV[1], 'EX', ARGV[2])
  else
    redis.call('SET', ARGV[8], ARGV[1])
  end
  redis.call(ARGV[3], ARGV[8], ARGV[1])
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if not n then return {} end
if ARGV[9] == '1' and redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then return {} end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
local fired = redis.call('HGET', KEYS[1], 'fired')
if fired then
  if fired ~= ARGV[4] or ARGV[6] ~= '' then return {} end
elseif ARGV[5] ~= '1' and redis.call('HLEN', KEYS[2]) < n then
  return {}
else
  redis.call('HSET', KEYS[1], 'fired', ARGV[4])
end
local k = tonumber(redis.call('HGET', KEYS[1], 'k')) or 0
local out = {}
for i = 1, k do
  local parts = redis.call('HMGET', KEYS[1], 's' .. i, 'm' .. i, 'q' .. i)
  for j = 1, 3 do out[#out + 1] = parts[j] end
end
if ARGV[6] == '' then return out end
redis.call('SELECT', ARGV[6])
for i = 1, #out, 3 do
  redis.call('XADD', out[i], '*', 'm', out[i + 1], 'n', '0')
  redis.call('SADD', ARGV[7], out[i + 2])
end
return {}
"""


@dataclass(frozen=True)
class Member:
    """A header task's place in its chord: the chord (group) id and its index."""

    chord: str
    index: int

    @classmethod
    def of(cls, options: Dict[str, Any]) -> Optional[Member]:
        """The membership a message's options carry (``chord: {"id", "i"}``), if valid."""
        value = options.get("chord")
        if type(value) is not dict:
            return None
        gid, index = value.get("id"), value.get("i")
        if type(gid) is not str or type(index) is not int:
            return None
        return cls(gid, index)

    def option(self) -> Dict[str, Any]:
        return {"id": self.chord, "i": self.index}


def meta_key(chord_id: str, prefix: str = "") -> str:
    """The chord's hash: size ``n``, ``k`` callback messages ``s<i>``/``m<i>``/``q<i>``
    (stream, envelope, queue), and ``fired`` (the index of the member that fired it)."""
    return f"{prefix}multiq-chord-{{{chord_id}}}"


def results_key(chord_id: str, prefix: str = "") -> str:
    """The chord's results hash: member index -> that member's result document."""
    return f"{meta_key(chord_id, prefix)}:r"


Message = Tuple[str, bytes, str]  # (stream key, envelope, queue name)


def state_commands(pipe: Any, chord_id: str, size: int, messages: Sequence[Message],
                   expires: Optional[int], prefix: str = "") -> None:
    """Record the writes that create a chord's state on ``pipe`` (a pipeline or
    :class:`multiq.broker.wire.Commands` of the result backend)."""
    key, results = meta_key(chord_id, prefix), results_key(chord_id, prefix)
    fields: List[Any] = ["n", size, "k", len(messages)]
    for i, (stream, data, queue) in enumerate(messages, 1):
        fields += [f"s{i}", stream, f"m{i}", data, f"q{i}", queue]
    pipe.execute_command("DEL", key, results)
    pipe.execute_command("HSET", key, *fields)
    if expires:
        pipe.execute_command("EXPIRE", key, expires)


def part_command(pipe: Any, backend: Any, member: Member, task_id: str, doc_bytes: bytes,
                 failed: bool, store: bool, broker_db: Optional[int],
                 queues_key: str, unless_done: bool = False) -> None:
    """Record the script that counts one header task (and, with ``store``, writes its
    result key and notifies its waiters) on ``pipe``; with ``broker_db`` it also sends the
    body, else its reply hands the body's messages back (see :func:`send_commands`)."""
    prefix = backend.prefix
    pipe.execute_command(
        "EVAL", CHORD_PART, 2, meta_key(member.chord, prefix),
        results_key(member.chord, prefix), doc_bytes, backend.expires or 0,
        backend.notify_command if store else "", member.index, "1" if failed else "0",
        "" if broker_db is None else broker_db, queues_key, backend.key(task_id),
        "1" if unless_done else "0")


def send_commands(pipe: Any, broker: Any, reply: Any) -> int:
    """Record on ``pipe`` (broker side) the sends of the messages a :data:`CHORD_PART`
    reply hands back; how many."""
    if not isinstance(reply, list) or not reply:
        return 0
    for i in range(0, len(reply) - 2, 3):
        stream, data, queue = reply[i], reply[i + 1], reply[i + 2]
        if isinstance(queue, bytes):
            queue = queue.decode()
        broker.note_queue(pipe, queue)
        pipe.xadd(stream, {"m": data, "n": 0})
    return len(reply) // 3


def send_returned(broker: Any, reply: Any) -> int:
    """Write to the broker, now, the messages a :data:`CHORD_PART` reply hands back."""
    pipe = broker.client.pipeline(transaction=False)
    count = send_commands(pipe, broker, reply)
    if count:
        broker.seal(pipe)
        pipe.execute()
    return count


def gather(backend: Any, chord_id: str) -> List[Any]:
    """The header's values in order, for the callback; ChordError names the first failed
    (or revoked) task, or says the chord's state is gone."""
    prefix = backend.prefix
    pipe = backend.client.pipeline(transaction=False)
    pipe.hget(meta_key(chord_id, prefix), "n")
    pipe.hgetall(results_key(chord_id, prefix))
    size, raw = pipe.execute()
    if size is None:
        raise ChordError(f"Chord {chord_id} has no state in the result backend (expired or "
                         "never created)")
    docs: Dict[int, Dict[str, Any]] = {}
    for index, value in raw.items():
        try:
            docs[int(index)] = json.loads(value)
        except (ValueError, TypeError):
            raise ChordError(f"Chord {chord_id}: unreadable result of member {index!r}") \
                from None
    for index in sorted(docs):
        doc = docs[index]
        if doc.get("status") in states.PROPAGATE_STATES:
            raise ChordError(_dependency_failed(doc))
    n = int(size)
    missing = [i for i in range(n) if i not in docs]
    if missing:
        raise ChordError(f"Chord {chord_id}: {len(missing)} of {n} results are missing")
    return [docs[i].get("result") for i in range(n)]


def _dependency_failed(doc: Dict[str, Any]) -> str:
    from multiq.backends.base import exception_from_dict

    task_id = doc.get("task_id")
    if doc.get("status") == states.REVOKED:
        return f"Dependency {task_id} was revoked"
    exc = exception_from_dict(doc.get("result"))
    return f"Dependency {task_id} raised {exc!r}"
