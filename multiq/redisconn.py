"""Redis clients from URLs: one server, a Sentinel-watched master, or a Cluster.

=================================================================  =============================
``redis://[[user]:password@]host:port/db`` (``rediss://``: TLS)    one server
``unix:///path/to/redis.sock?db=0``                                one server, local socket
``redis+sentinel://[:password@]h1:26379,h2:26379/db?master=name``  the master that Sentinel
                                                                   names; failover is followed
``sentinel://h1:26379;sentinel://h2:26379`` + ``master_name``      the same, Celery's spelling
``redis+cluster://[:password@]h1:7000,h2:7001``                    a Redis Cluster (db 0 only)
=================================================================  =============================

``rediss+sentinel`` / ``rediss+cluster`` use TLS; ``valkey`` works wherever ``redis`` does.
Transport options may say the same: ``master_name`` and ``sentinel_kwargs`` (options for the
connections to the sentinels themselves, e.g. their password), or ``cluster: True`` with a
plain ``redis://h1:7000,h2:7001`` URL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type
from urllib.parse import parse_qsl, unquote

import redis

from multiq.config import mask_url
from multiq.exceptions import ImproperlyConfigured

# Errors that mean "Redis is not reachable right now" (restart, failover, resharding):
# callers wait and try again rather than fail.
UNAVAILABLE: Tuple[Type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError, redis.exceptions.RedisClusterException,
    redis.exceptions.ReadOnlyError, redis.exceptions.MasterDownError,
)
# Any failure of a Redis call (a cluster client's own errors are not RedisErrors).
REDIS_ERRORS: Tuple[Type[Exception], ...] = (redis.RedisError, *UNAVAILABLE)

_CLIENT_OPTIONS = {
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "health_check_interval",
    "max_connections", "retry_on_timeout", "client_name", "password", "username",
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname",
}
_NUMBERS = {"socket_timeout", "socket_connect_timeout", "health_check_interval"}
_INTEGERS = {"max_connections"}
_SINGLE = ("redis", "rediss", "unix")
_SENTINEL = ("redis+sentinel", "rediss+sentinel", "sentinel", "sentinels")
_CLUSTER = ("redis+cluster", "rediss+cluster")


@dataclass
class Target:
    """What a URL names: its topology, hosts, database and credentials."""

    kind: str  # "single", "sentinel" or "cluster"
    hosts: List[Tuple[str, int]] = field(default_factory=list)
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False
    master: Optional[str] = None
    query: Dict[str, str] = field(default_factory=dict)


def parse_url(url: str, options: Optional[Dict[str, Any]] = None) -> Target:
    """Read a broker or backend URL (``;`` joins several, Celery-style)."""
    if not url:
        raise ImproperlyConfigured("No Redis URL configured (set broker_url / result_backend)")
    options = options or {}
    parts = [p.strip() for p in url.split(";") if p.strip()]
    targets = [_parse_one(p) for p in parts]
    first = targets[0]
    if any(t.kind != first.kind for t in targets):
        raise ImproperlyConfigured(f"Mixed URL schemes in {mask_url(url)!r}")
    for t in targets[1:]:
        first.hosts += t.hosts
        first.password = first.password or t.password
        first.username = first.username or t.username
    if first.kind == "single" and options.get("cluster"):
        first.kind = "cluster"
    if first.kind == "single" and len(first.hosts) > 1:
        raise ImproperlyConfigured(
            f"{mask_url(url)!r} names several hosts: use redis+sentinel:// or redis+cluster://")
    if first.kind == "sentinel":
        first.master = first.query.pop("master", None) or first.query.pop("master_name", None) \
            or options.get("master_name")
        if not first.master:
            raise ImproperlyConfigured(
                f"Sentinel URL {mask_url(url)!r} needs the master's name: add ?master=<name> "
                "(or the transport option master_name)")
    if first.kind == "cluster" and first.db:
        raise ImproperlyConfigured(f"Redis Cluster has only database 0, not {first.db}")
    return first


def _parse_one(url: str) -> Target:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ImproperlyConfigured(f"Not a Redis URL: {mask_url(url)!r}")
    scheme = scheme.lower().replace("valkey", "redis")
    if scheme in _SINGLE:
        kind = "single"
    elif scheme in _SENTINEL:
        kind = "sentinel"
    elif scheme in _CLUSTER:
        kind = "cluster"
    else:
        raise ImproperlyConfigured(f"Unsupported Redis URL scheme {scheme!r} in {mask_url(url)!r}")
    target = Target(kind, tls=scheme.startswith("rediss") or scheme == "sentinels")
    rest, _, query = rest.partition("?")
    target.query = dict(parse_qsl(query))
    netloc, _, path = rest.partition("/")
    if scheme == "unix":
        return target  # redis-py reads unix URLs itself
    creds, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, password = creds.partition(":")
        target.username = unquote(user) or None
        target.password = unquote(password) if colon else None
    default_port = 26379 if kind == "sentinel" else 6379
    for item in hosts.split(","):
        if item:
            target.hosts.append(_host_port(item, default_port, url))
    if not target.hosts:
        target.hosts.append(("localhost", default_port))
    db = target.query.pop("db", None) or path.strip("/")
    if db:
        try:
            target.db = int(db)
        except ValueError:
            raise ImproperlyConfigured(f"Bad database number {db!r} in {mask_url(url)!r}") from None
    return target


def _host_port(item: str, default: int, url: str) -> Tuple[str, int]:
    if item.startswith("["):  # [::1]:6379
        host, _, port = item[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    try:
        return host or "localhost", int(port) if port else default
    except ValueError:
        raise ImproperlyConfigured(f"Bad port {port!r} in {mask_url(url)!r}") from None


def _client_kwargs(target: Target, options: Dict[str, Any],
                   timeout: Optional[float] = None) -> Dict[str, Any]:
    kwargs = {k: v for k, v in options.items() if k in _CLIENT_OPTIONS}
    if target.kind != "single":  # redis-py reads a single server's URL itself
        for k, v in target.query.items():
            if k in _CLIENT_OPTIONS:
                kwargs[k] = float(v) if k in _NUMBERS else int(v) if k in _INTEGERS else v
        if target.password is not None:
            kwargs["password"] = target.password
        if target.username is not None:
            kwargs["username"] = target.username
        if target.tls:
            kwargs["ssl"] = True
    kwargs.setdefault("health_check_interval", 25)
    kwargs.setdefault("socket_keepalive", True)
    kwargs.setdefault("socket_connect_timeout", 5)
    if timeout is not None:
        kwargs.pop("retry_on_timeout", None)
        kwargs.update(_fail_fast(timeout))
    kwargs.update(_driver_info())
    return kwargs


def _fail_fast(timeout: float) -> Dict[str, Any]:
    """Options of a client whose every call gives up after ``timeout`` seconds: one try
    (redis-py otherwise retries a failed call many times, with backoff), connecting
    included."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"socket_timeout": timeout, "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0)}


def _driver_info() -> Dict[str, Any]:
    """What a connection tells the server it is (``CLIENT SETINFO``): redis-py, used by
    multiq. Given here, redis-py does not look its own version up among the installed
    packages for every connection it opens, which costs a millisecond or more each."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # an older redis-py names itself
        return {}
    from multiq import __version__

    return {"driver_info": DriverInfo(lib_version=redis.__version__).add_upstream_driver(
        "multiq", __version__)}


def connect(url: str, options: Optional[Dict[str, Any]] = None,
            timeout: Optional[float] = None) -> Any:
    """A client for ``url`` (see the module docstring); unknown options are ignored.

    Without ``timeout`` a call waits for the server as long as the ``socket_timeout``
    option says (by default, for ever: blocking reads such as the consumer's
    ``XREADGROUP ... BLOCK`` need a socket timeout longer than the block). With it, every
    call fails after ``timeout`` seconds, without retrying: for what must notice a stalled
    server within about that long (the heartbeat), never for blocking reads.

    With ``max_connections`` and ``pool_timeout`` (seconds, None: for ever) options, a
    one-server client's pool is bounded and a caller waits that long for a free connection
    (redis-py's ``BlockingConnectionPool``; past it, ``redis.ConnectionError``).
    """
    target, kwargs, options = _setup(url, options, timeout)
    if target.kind == "single" and "pool_timeout" in options and kwargs.get("max_connections"):
        return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(
            _redis_scheme(url), timeout=options["pool_timeout"], **kwargs))
    if target.kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        kwargs.pop("health_check_interval", None)
        nodes = [ClusterNode(h, p) for h, p in target.hosts]
        return RedisCluster(startup_nodes=nodes, **kwargs)
    if target.kind == "sentinel":
        from redis.sentinel import Sentinel

        return _master(Sentinel, target, options, kwargs)
    return redis.Redis.from_url(_redis_scheme(url), **kwargs)


def connect_async(url: str, options: Optional[Dict[str, Any]] = None) -> Any:
    """A ``redis.asyncio`` client for ``url`` (one server, or Sentinel's master); None for
    a cluster, where the caller runs the blocking client in a thread instead."""
    import redis.asyncio as aioredis

    target, kwargs, options = _setup(url, options)
    if target.kind == "cluster":
        return None
    if target.kind == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        return _master(Sentinel, target, options, kwargs)
    # as the blocking client's: no socket timeout unless one is asked for (redis.asyncio's
    # own default of 5 s would also make every write a task of its own, ~30% of a round trip)
    kwargs.setdefault("socket_timeout", None)
    # many coroutines share the pool: past its size they wait for a connection, not fail
    kwargs.setdefault("max_connections", int(options.get("max_connections") or 64))
    pool = aioredis.BlockingConnectionPool.from_url(
        _redis_scheme(url), timeout=options.get("pool_timeout"), **kwargs)
    return aioredis.Redis(connection_pool=pool)


def _setup(url: str, options: Optional[Dict[str, Any]],
           timeout: Optional[float] = None) -> Tuple[Target, Dict[str, Any], Dict[str, Any]]:
    """What ``url`` names, the client's keyword arguments, and (a copy of) ``options``."""
    options = dict(options or {})
    target = parse_url(url, options)
    return target, _client_kwargs(target, options, timeout), options


def _master(sentinel_class: Any, target: Target, options: Dict[str, Any],
            kwargs: Dict[str, Any]) -> Any:
    """The client of the master the sentinels name, from ``sentinel_class`` (blocking or
    asyncio). The sentinels' own connections take ``sentinel_kwargs``, the URL's
    ``sentinel_password``, and the client's socket and TLS settings."""
    sentinel_kwargs = dict(options.get("sentinel_kwargs") or {})
    password = target.query.get("sentinel_password")
    if password:
        sentinel_kwargs.setdefault("password", password)
    for k, v in kwargs.items():
        if k.startswith(("socket_", "ssl")):
            sentinel_kwargs.setdefault(k, v)
    sentinel = sentinel_class(target.hosts, sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(str(target.master), db=target.db, **kwargs)


def _redis_scheme(url: str) -> str:
    """``url`` with a ``valkey`` scheme spelled ``redis`` (what redis-py reads)."""
    if url.split("://", 1)[0].lower().startswith("valkey"):
        return "redis" + url[len("valkey"):]
    return url


def is_cluster(client: Any) -> bool:
    """Whether ``client`` talks to a Redis Cluster (keys of one command must share a slot)."""
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)
