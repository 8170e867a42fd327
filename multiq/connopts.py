"""Redis client options from Celery's connection settings.

Celery's ``broker_*`` and ``redis_*`` (result backend) connection settings become the
options :func:`multiq.redisconn.connect` reads; what ``broker_transport_options`` or
``result_backend_transport_options`` say wins. A setting applies only once it is set: its
default (Celery's) is what it reads as, while the clients keep multiq's own defaults.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

__all__ = ["backend_options", "broker_options"]

# Celery's redis_* result backend settings -> redis-py's client options
_BACKEND = {
    "redis_socket_timeout": "socket_timeout",
    "redis_socket_connect_timeout": "socket_connect_timeout",
    "redis_max_connections": "max_connections",
    "redis_retry_on_timeout": "retry_on_timeout",
    "redis_socket_keepalive": "socket_keepalive",
}


def broker_options(conf: Any, node: bool = False) -> Dict[str, Any]:
    """The broker client's options. ``broker_pool_limit`` bounds its connection pool, where
    a caller waits up to ``broker_pool_acquire_timeout`` seconds (None: for ever) for a free
    connection, as Celery's producer pool does; not in a worker ``node``, whose own
    connections (consumer, control, acks) are not the producer's pool in Celery either."""
    changes = getattr(conf, "changes", {})
    options: Dict[str, Any] = {}
    if "broker_connection_timeout" in changes and conf.broker_connection_timeout is not None:
        options["socket_connect_timeout"] = float(conf.broker_connection_timeout)
    options.update(_ssl(conf.broker_use_ssl) if "broker_use_ssl" in changes else {})
    pooled = "broker_pool_limit" in changes or "broker_pool_acquire_timeout" in changes
    if pooled and not node and conf.broker_pool_limit:
        options["max_connections"] = int(conf.broker_pool_limit)
        options["pool_timeout"] = conf.broker_pool_acquire_timeout
    return {**options, **(conf.broker_transport_options or {})}


def backend_options(conf: Any) -> Dict[str, Any]:
    """The result backend client's options, from the ``redis_*`` settings that were set."""
    changes = getattr(conf, "changes", {})
    options = {option: conf[name] for name, option in _BACKEND.items()
               if name in changes and conf[name] is not None}
    if "redis_backend_use_ssl" in changes:
        options.update(_ssl(conf.redis_backend_use_ssl))
    return {**options, **(conf.result_backend_transport_options or {})}


def _ssl(value: Any) -> Dict[str, Any]:
    """The TLS options of a ``rediss://`` URL, from Celery's ``broker_use_ssl`` dict
    (``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if str(k).startswith("ssl_")}
