"""The hand-written Redis protocol path: commands written on kept connections, without
redis-py's per-command overhead.

For one small message, redis-py's client path (a pool checkout that polls the socket for
stale data, retry wrappers, metrics, response callbacks) costs more CPU than the round trip
itself. Here the broker still decides *what* to write: :meth:`RedisBroker.publish` records
its commands on a :class:`Commands` object, as it would on a pipeline. A :class:`Sender`
then writes them in one go on a connection of the broker's own pool that it keeps checked
out, and reads exactly as many replies, so a connection never holds unread data.

Connections are kept on a free list, not per thread: a thread takes one for one exchange and
puts it back, so there are as many as threads sending at the same moment, and short-lived
threads leave nothing behind. A connection that failed goes back to the pool, closed, and a
fresh one is taken from it (the pool knows how to connect, e.g. to the master Sentinel names
now); a forked child starts with an empty list.

A :class:`Writer` is what the worker's hot path writes through: a :class:`Sender` where one
can be used, else (a Redis Cluster routes each command to its own shard) a redis-py pipeline
that replays the recorded commands.

A :class:`Link` is one connection written without waiting: Redis answers a connection's
commands in order, so a writer sends and goes on, and reads the replies in bulk when it must
know they landed (:meth:`Link.confirm`). Worker threads use it for start markers, which
nobody waits for. Writes whose replies were not read when the connection failed are given
up (a marker that is missing only means its task may run again should the node die: at
least once).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import redis
import redis.utils
from redis.commands.core import CoreCommands

from multiq.redisconn import REDIS_ERRORS, is_cluster

Command = Tuple[Any, ...]
CHUNK = 128  # commands per write
UNREAD_LIMIT = 256  # writes a Link leaves unconfirmed before a writer reads their replies itself


def _hiredis_packer() -> Optional[Callable[[Command], bytes]]:
    """``hiredis.pack_command`` when redis-py packs with it too (the same bytes, without
    redis-py's per-command wrapping), else None."""
    if not getattr(redis.utils, "HIREDIS_AVAILABLE", False):
        return None
    try:
        import hiredis
    except ImportError:  # pragma: no cover - redis-py said it is there
        return None
    return getattr(hiredis, "pack_command", None)


_pack_command = _hiredis_packer()
# connection settings that tell a server and a login apart (TLS ones: ``ssl*``)
_SERVER_AND_USER = ("host", "port", "path", "username", "password", "credential_provider")
_forks = [0]  # forks this process descends from; a sender made before a fork drops its sockets


def _forked() -> None:
    _forks[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class Commands(CoreCommands):
    """Commands recorded in order: a stand-in for a pipeline given to the broker."""

    _event_dispatcher: Any = None  # redis-py's command protocol names it; never used here

    def __init__(self) -> None:
        self.stack: List[Command] = []
        self.options: Dict[int, Dict[str, Any]] = {}  # by position, for a pipeline replay

    def execute_command(self, *args: Any, **options: Any) -> Commands:
        if options:
            self.options[len(self.stack)] = options
        self.stack.append(args)
        return self

    def replay(self, pipe: Any) -> Any:
        """Queue the recorded commands, with their options, on a redis-py pipeline."""
        for i, args in enumerate(self.stack):
            pipe.execute_command(*args, **self.options.get(i, {}))
        return pipe

    def __len__(self) -> int:
        return len(self.stack)


class Writer:
    """Writes recorded commands to one client: with a :class:`Sender` where one can be
    used, else through a redis-py pipeline (a cluster sends each command to its shard;
    there a transaction, which must stay in one slot, becomes a plain pipeline)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sender = Sender.for_client(client)
        self._transactions = not is_cluster(client)

    def write(self, commands: Commands, transaction: bool = False,
              raise_errors: bool = True) -> Any:
        """The replies (of a transaction: its commands' results, or its error); without
        ``raise_errors`` error replies are left in their place."""
        if not commands.stack:
            return []
        if self.sender is not None:
            return self.sender.execute(commands.stack, transaction=transaction,
                                       raise_errors=raise_errors)
        pipe = self.client.pipeline(transaction=transaction and self._transactions)
        return list(commands.replay(pipe).execute(raise_on_error=raise_errors))

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


class Sender:
    """Writes recorded commands on connections kept out of a plain ``redis.Redis`` pool."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool = client.connection_pool
        own_packer = self.pool.connection_kwargs.get("command_packer") is None
        self._pack_one = _pack_command if own_packer else None
        self._idle: List[Any] = []
        self._fork = _forks[0]

    @classmethod
    def of(cls, broker: Any) -> Optional[Sender]:
        """A sender for ``broker``'s client, or None where it cannot be used (a cluster,
        or a stand-in broker): the caller then publishes through the broker itself."""
        return cls.for_client(getattr(broker, "client", None))

    @classmethod
    def for_client(cls, client: Any) -> Optional[Sender]:
        """A sender for a plain (or Sentinel) ``redis.Redis`` client, else None."""
        return cls(client) if isinstance(client, redis.Redis) else None

    def same_server(self, client: Any) -> bool:
        """Whether ``client`` reaches the very server this sender writes to, as the same
        user: only the database may differ (then one exchange can write to both)."""
        if not isinstance(client, redis.Redis):
            return False
        mine, theirs = self.pool, client.connection_pool
        if type(mine) is not redis.ConnectionPool or type(theirs) is not redis.ConnectionPool \
                or mine.connection_class is not theirs.connection_class:
            return False  # a Sentinel pool's server is whichever master it finds
        a, b = mine.connection_kwargs, theirs.connection_kwargs
        return all(a.get(k) == b.get(k) for k in {*a, *b}
                   if k in _SERVER_AND_USER or k.startswith("ssl"))

    @property
    def db(self) -> int:
        return int(self.pool.connection_kwargs.get("db") or 0)

    def execute(self, commands: Sequence[Command], transaction: bool = False,
                raise_errors: bool = True) -> List[Any]:
        """Send ``commands`` in one write and return their replies; the first error reply
        (or error inside an ``EXEC`` reply) is raised once every reply has been read, or
        left in its place without ``raise_errors``.

        With ``transaction`` the commands run inside MULTI/EXEC and their results (the
        ``EXEC`` reply) are returned."""
        if transaction:
            return self.execute([("MULTI",), *commands, ("EXEC",)], raise_errors=raise_errors)[-1] \
                or []
        return self.post(commands).replies(raise_errors)

    def post(self, commands: Sequence[Command]) -> Exchange:
        """Send ``commands`` and return at once: the caller reads the replies later, from
        the :class:`Exchange` (the connection stays its own until then)."""
        if self._fork != _forks[0]:  # a forked child must not share the parent's sockets
            self._idle, self._fork = [], _forks[0]
        try:
            conn = self._idle.pop()
        except IndexError:
            conn = self.pool.get_connection()
        try:
            for low in range(0, len(commands), CHUNK):  # Redis runs one while we pack the next
                conn.send_packed_command(self.pack(conn, commands[low:low + CHUNK]))
        except BaseException:
            self._drop(conn)
            raise
        return Exchange(self, conn, commands)

    def _drop(self, conn: Any) -> None:
        """Give a connection that failed back to the pool, closed: the pool connects it
        afresh (after a Sentinel failover, to the new master) when it is next handed out."""
        conn.disconnect()
        self.pool.release(conn)

    def pack(self, conn: Any, commands: Sequence[Command]) -> Any:
        """The commands in the Redis protocol, as one buffer where hiredis can make it."""
        pack_one = self._pack_one
        if pack_one is not None and not any(" " in c[0] for c in commands):
            try:  # multi-word names ("CLIENT SETNAME") and odd types: redis-py's own packing
                return [b"".join([pack_one(c) for c in commands])]
            except TypeError:
                pass
        return conn.pack_commands(commands)

    def close(self) -> None:
        """Give the connections back to the pool."""
        idle, self._idle = self._idle, []
        if self._fork == _forks[0]:
            for conn in idle:
                self.pool.release(conn)


class Exchange:
    """Commands sent by :meth:`Sender.post` whose replies are still to be read."""

    def __init__(self, sender: Sender, conn: Any, commands: Sequence[Command]) -> None:
        self.sender = sender
        self._conn = conn
        self._commands = commands

    def replies(self, raise_errors: bool = True) -> List[Any]:
        """Read every reply (see :meth:`Sender.execute`); the connection then goes back."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("the replies of this exchange were read already")
        error: Optional[redis.ResponseError] = None
        try:
            replies: List[Any] = []
            for command in self._commands:
                try:
                    reply = conn.read_response()
                except redis.ResponseError as exc:
                    error = error or exc
                    reply = exc
                if command[0] == "EXEC" and isinstance(reply, list):  # errors inside
                    error = error or next(
                        (r for r in reply if isinstance(r, redis.ResponseError)), None)
                replies.append(reply)
        except BaseException:
            self.sender._drop(conn)
            raise
        if error is not None:  # e.g. READONLY after a failover
            self.sender._drop(conn)
            if raise_errors:
                raise error
            return replies
        self.sender._idle.append(conn)
        return replies

    def abandon(self) -> None:
        """Never read the replies: the connection is closed, so none is left unread."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self.sender._drop(conn)


class Link:
    """One connection out of a sender's pool, written by any thread, read in order."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._lock = threading.Lock()
        self._conn: Any = None
        self._unread: Deque[Tuple[int, int]] = deque()  # (write number, its replies)
        self.posted = 0  # writes so far
        self.confirmed = 0  # writes whose replies have all been read (or given up)

    def post(self, commands: Sequence[Command]) -> int:
        """Send ``commands`` (one write) and return its number, without reading replies;
        raises the connection's error when it could not be sent."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.sender.pool.get_connection()
                self._conn.send_packed_command(self.sender.pack(self._conn, commands))
            except REDIS_ERRORS:
                self._lost()
                raise
            self.posted += 1
            self._unread.append((self.posted, len(commands)))
            if len(self._unread) > UNREAD_LIMIT:
                self._read_to(self.posted - UNREAD_LIMIT // 2)
            return self.posted

    def confirm(self, number: int = 0) -> List[Exception]:
        """Read replies until write ``number`` (every write when 0) is answered; returns the
        error replies met on the way."""
        if number and number <= self.confirmed:
            return []
        with self._lock:
            return self._read_to(number or self.posted)

    def _read_to(self, number: int) -> List[Exception]:
        errors: List[Exception] = []
        if self._conn is None:  # nothing unread can still arrive
            self._lost()
            return errors
        while self._unread and self._unread[0][0] <= number:
            head, replies = self._unread[0]
            try:
                for _ in range(replies):
                    try:
                        reply = self._conn.read_response()
                    except redis.ResponseError as exc:
                        errors.append(exc)
                        continue
                    if isinstance(reply, list):
                        errors += [r for r in reply if isinstance(r, redis.ResponseError)]
            except REDIS_ERRORS:
                self._lost()  # what it carried was applied, or never will be
                return errors
            self._unread.popleft()
            self.confirmed = head
        return errors

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        self._unread.clear()
        self.confirmed = self.posted
        if conn is not None:
            conn.disconnect()
            self.sender.pool.release(conn)

    def close(self) -> None:
        """Read what is left, then give the connection back."""
        with self._lock:
            if self._conn is not None and self._unread:
                self._read_to(self.posted)
            conn, self._conn = self._conn, None
            if conn is not None:
                self.sender.pool.release(conn)


class AsyncSender:
    """:class:`Sender` for a ``redis.asyncio`` client, on one event loop: recorded commands
    written in one go on a connection of the client's pool kept checked out, and exactly
    as many replies read (redis.asyncio's client and pipeline cost more than the round trip
    for one small write). At most ``size`` connections are kept out of the pool (which
    others share, its pub/sub among them); past that, a coroutine waits for one of them.
    A connection that failed goes back to the pool closed. Error replies are raised once
    every reply is read."""

    def __init__(self, client: Any, size: int = 16) -> None:
        self.client = client
        self.pool = client.connection_pool
        self.size = size
        self._idle: List[Any] = []
        self._out = 0  # connections taken from the pool and not given back
        self._waiting: Deque[Any] = deque()  # futures of coroutines waiting for one

    async def execute(self, commands: Sequence[Command]) -> List[Any]:
        conn = await self._take()
        try:
            packed = _pack_command
            if packed is not None and not any(" " in c[0] for c in commands):
                await conn.send_packed_command([b"".join([packed(c) for c in commands])])
            else:
                await conn.send_packed_command(conn.pack_commands(commands))
            replies: List[Any] = []
            error: Optional[redis.ResponseError] = None
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except redis.ResponseError as exc:
                    error = error or exc
                    replies.append(exc)
        except BaseException:  # (a cancelled read too: the connection may hold a reply)
            await self._drop(conn)
            raise
        self._give(conn)
        if error is not None:
            raise error
        return replies

    async def _take(self) -> Any:
        import asyncio

        while True:
            if self._idle:
                return self._idle.pop()
            if self._out < self.size:
                self._out += 1
                try:
                    return await self.pool.get_connection()
                except BaseException:
                    self._out -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:  # cancelled: a wake-up it was given goes to the next
                if waiter.done() and not waiter.cancelled():
                    self._wake()
                raise

    def _give(self, conn: Any) -> None:
        self._idle.append(conn)
        self._wake()

    async def _drop(self, conn: Any) -> None:
        self._out -= 1
        self._wake()
        await conn.disconnect()
        await self.pool.release(conn)

    def _wake(self) -> None:
        """Let the first coroutine still waiting for a connection try again."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # (one cancelled meanwhile is skipped)
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Give the idle connections back to the pool."""
        idle, self._idle = self._idle, []
        self._out -= len(idle)
        for conn in idle:
            await self.pool.release(conn)
