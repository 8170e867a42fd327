"""Results in Redis: one JSON document per task, PUBLISHed on write (see multiq.keys)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from multiq import states
from multiq.exceptions import ImproperlyConfigured, TimeoutError
from multiq.keys import group_key, result_key
from multiq.redisconn import UNAVAILABLE, connect, is_cluster
from multiq.serialization import json_dumps

Doc = Dict[str, Any]

OUTAGE_LIMIT = 60.0  # seconds a get() without timeout waits out an unreachable Redis

# KEYS: the result key. ARGV: document, expiry in seconds (0: none), the notify command
# (PUBLISH or SPUBLISH), then the final states. Writes and announces the document unless
# the stored one is final; returns 1 when it wrote.
STORE_UNLESS_FINAL = """
local old = redis.call('GET', KEYS[1])
if old then
  local ok, doc = pcall(cjson.decode, old)
  if ok and type(doc) == 'table' then
    for i = 4, #ARGV do
      if doc['status'] == ARGV[i] then return 0 end
    end
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call(ARGV[3], KEYS[1], ARGV[1])
return 1
"""


class RedisBackend:
    """Stores, reads and waits for result documents."""

    def __init__(
        self, url: str, expires: Optional[float] = 86400,
        transport_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        options = dict(transport_options or {})
        self.url = url
        self.prefix = options.pop("global_keyprefix", "") or ""
        self.wait_replicas = int(options.pop("wait_replicas", 0) or 0)
        self.wait_timeout = int(options.pop("wait_timeout", 1000))
        self.expires = int(expires) if expires else None
        self.client: Any = connect(url, options)
        # A cluster notifies on the key's own shard (SPUBLISH) rather than broadcasting
        # every result to every node.
        self.sharded = is_cluster(self.client)
        self._publish = "SPUBLISH" if self.sharded else "PUBLISH"
        self.notify_command = self._publish
        if self.wait_replicas and self.sharded:
            raise ImproperlyConfigured("wait_replicas is not available on a Redis Cluster")
        self._local = threading.local()

    def key(self, task_id: str) -> str:
        return result_key(task_id, self.prefix)

    def encode(self, doc: Doc) -> bytes:
        return json_dumps(doc).encode()

    def store(self, task_id: str, doc: Doc, pipe: Any = None) -> None:
        """Write a document and notify waiters; with ``pipe`` the caller executes."""
        self.store_encoded(task_id, self.encode(doc), pipe)

    def store_encoded(self, task_id: str, data: bytes, pipe: Any = None) -> None:
        """:meth:`store` of a document already encoded."""
        p = pipe if pipe is not None else self.client.pipeline(transaction=False)
        key = self.key(task_id)
        # plain commands: redis-py's keyword handling of set() costs more than the write
        if self.expires:
            p.execute_command("SET", key, data, "EX", self.expires)
        else:
            p.execute_command("SET", key, data)
        p.execute_command(self._publish, key, data)
        if pipe is None:
            self.seal(p)
            p.execute()

    def store_unless_final(self, task_id: str, doc: Doc, pipe: Any = None) -> Any:
        """:meth:`store`, unless the stored document is final (SUCCESS, FAILURE, REVOKED):
        atomic, so an outcome written meanwhile is never overwritten. Without ``pipe``,
        returns whether it wrote."""
        return self.store_unless_final_encoded(task_id, self.encode(doc), pipe)

    def store_unless_final_encoded(self, task_id: str, data: bytes, pipe: Any = None) -> Any:
        """:meth:`store_unless_final` of a document already encoded."""
        p = pipe if pipe is not None else self.client.pipeline(transaction=False)
        # EVAL, not a cached script: a cluster pipeline cannot load one (and it is rare)
        p.execute_command("EVAL", STORE_UNLESS_FINAL, 1, self.key(task_id), data,
                          self.expires or 0, self._publish, *sorted(states.READY_STATES))
        if pipe is None:
            self.seal(p)
            return bool(p.execute()[0])
        return None

    def seal(self, p: Any) -> None:
        """End a pipeline of result writes with ``WAIT`` when ``wait_replicas`` is set."""
        if self.wait_replicas:
            p.execute_command("WAIT", self.wait_replicas, self.wait_timeout)

    def store_many(self, items: Iterable[Tuple[str, Doc]]) -> None:
        p = self.client.pipeline(transaction=False)
        for task_id, doc in items:
            self.store(task_id, doc, p)
        self.seal(p)
        p.execute()

    def get_meta(self, task_id: str) -> Doc:
        raw = self.client.get(self.key(task_id))
        return self.decode(task_id, raw)

    def decode(self, task_id: str, raw: Optional[bytes]) -> Doc:
        if raw is None:
            return {"status": states.PENDING, "result": None, "traceback": None,
                    "children": [], "date_done": None, "task_id": task_id}
        return json.loads(raw)

    def _pubsub(self) -> Any:
        """This thread's subscriber connection, kept across calls (a new connection per
        ``get()`` would cost more than the wait itself)."""
        pubsub = getattr(self._local, "pubsub", None)
        if pubsub is None:
            pubsub = self._local.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        return pubsub

    def wait_for(self, task_id: str, timeout: Optional[float] = None) -> Doc:
        """Block until the task is ready; woken by the write's notification.

        A lost connection (a restart, a failover) is waited out until ``timeout``, or for
        up to ``OUTAGE_LIMIT`` seconds when there is none.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        outage: Optional[float] = None
        delay = 0.05
        while True:
            try:
                return self._wait_once(task_id, deadline)
            except UNAVAILABLE:
                now = time.monotonic()
                outage = outage or now
                limit = deadline if deadline is not None else outage + OUTAGE_LIMIT
                if now + delay >= limit:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _wait_once(self, task_id: str, deadline: Optional[float]) -> Doc:
        key = self.key(task_id)
        channel = key.encode()
        pubsub: Any = self._pubsub()
        if self.sharded:
            node = self.client.get_node_from_key(key)
            subscribe, unsubscribe = pubsub.ssubscribe, pubsub.sunsubscribe

            def receive(timeout: float) -> Any:
                return pubsub.get_sharded_message(timeout=timeout, target_node=node)
        else:
            subscribe, unsubscribe, receive = pubsub.subscribe, pubsub.unsubscribe, \
                lambda timeout: pubsub.get_message(timeout=timeout)
        try:
            subscribe(key)  # before reading, so no write slips between
            doc = self.get_meta(task_id)
            quiet_until = time.monotonic() + 1.0
            while doc["status"] not in states.READY_STATES:
                now = time.monotonic()
                left = 1.0 if deadline is None else deadline - now
                if left <= 0:
                    raise TimeoutError(f"The operation timed out waiting for task {task_id}")
                if now >= quiet_until:
                    doc = self.get_meta(task_id)  # resync after a quiet second
                    quiet_until = now + 1.0
                    continue
                # None also comes back for a (un)subscribe confirmation: not a quiet spell
                msg = receive(min(left, quiet_until - now))
                if msg is not None and msg["type"] in ("message", "smessage") \
                        and msg["channel"] == channel:
                    doc = json.loads(msg["data"])
            return doc
        except BaseException:
            self._local.pubsub = None  # a broken or interrupted subscriber is not reused
            try:
                pubsub.close()
            except Exception:
                pass
            raise
        finally:
            kept: Any = getattr(self._local, "pubsub", None)
            if kept is not None and kept is pubsub:
                unsubscribe(key)

    def get_many(self, task_ids: Sequence[str]) -> List[Doc]:
        """The documents of ``task_ids``, in order, in one round trip (per thousand)."""
        out: List[Doc] = []
        for start in range(0, len(task_ids), 1000):
            part = task_ids[start:start + 1000]
            keys = [self.key(t) for t in part]
            raw = self.client.mget_nonatomic(keys) if self.sharded else self.client.mget(keys)
            out += [self.decode(t, r) for t, r in zip(part, raw)]
        return out

    def group_key(self, group_id: str) -> str:
        return group_key(group_id, self.prefix)

    def save_group(self, group_id: str, value: Any) -> None:
        data = json_dumps({"result": value, "date_done": None}).encode()
        if self.expires:
            self.client.set(self.group_key(group_id), data, ex=self.expires)
        else:
            self.client.set(self.group_key(group_id), data)

    def restore_group(self, group_id: str) -> Any:
        raw = self.client.get(self.group_key(group_id))
        return json.loads(raw)["result"] if raw is not None else None

    def forget_group(self, group_id: str) -> None:
        self.client.delete(self.group_key(group_id))

    def forget(self, task_id: str) -> None:
        self.client.delete(self.key(task_id))

    def close(self) -> None:
        pubsub = getattr(self._local, "pubsub", None)
        if pubsub is not None:
            self._local.pubsub = None
            pubsub.close()
        self.client.close()
