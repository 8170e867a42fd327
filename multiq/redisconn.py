"""Redis connections from URLs (``redis://``, ``rediss://``, ``unix://``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import redis

from multiq.exceptions import ImproperlyConfigured

_CLIENT_OPTIONS = {
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "health_check_interval",
    "max_connections", "retry_on_timeout", "client_name", "password", "username",
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
}


def connect(url: str, options: Optional[Dict[str, Any]] = None) -> redis.Redis:
    """A client for ``url``; unknown transport options are ignored."""
    if not url:
        raise ImproperlyConfigured("No Redis URL configured (set broker_url / result_backend)")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix", "valkey", "valkeys"):
        raise ImproperlyConfigured(f"Unsupported Redis URL scheme {scheme!r} in {url!r}")
    if scheme.startswith("valkey"):
        url = "redis" + url[len("valkey"):]
    kwargs = {k: v for k, v in (options or {}).items() if k in _CLIENT_OPTIONS}
    kwargs.setdefault("health_check_interval", 25)
    kwargs.setdefault("socket_keepalive", True)
    kwargs.setdefault("socket_connect_timeout", 5)
    return redis.Redis.from_url(url, **kwargs)
