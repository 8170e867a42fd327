"""Settings: the defaults, the ``app.conf`` mapping, and loading from objects and modules.

``Settings`` is a dict of every setting (defaults underneath what the user set) with attribute
access. ``load_object`` reads settings from a module, class, object or dotted name;
``load_envvar`` reads the name of a configuration module from the environment.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import os
import re
import types
import warnings
from typing import Any, Iterable, Mapping, Optional, Tuple, Union
from urllib.parse import unquote

from multiq.celerysettings import CELERY_DEFAULTS, CELERY_SETTINGS, HONOURED
from multiq.exceptions import ImproperlyConfigured

__all__ = [
    "CELERY_SETTINGS", "DEFAULTS", "HONOURED", "IgnoredSettingWarning", "Settings",
    "UnknownSettingWarning", "is_deferred", "load_envvar", "load_object", "mask_argv",
    "mask_url", "resolve", "secret_name",
]

DEFAULTS: dict[str, Any] = {
    "accept_content": ["json"],
    "beat_max_loop_interval": 5,
    "beat_schedule": {},
    "beat_scheduler": None,  # None: the Redis table; "django": the Django models
    "broker_connection_max_retries": 100,
    "broker_connection_retry": True,
    "broker_connection_retry_on_startup": True,
    "broker_connection_timeout": 4.0,  # (this and the pool's: applied when set, see connopts)
    "broker_pool_acquire_timeout": None,
    "broker_pool_limit": 10,
    "broker_transport_options": {},
    "broker_url": None,
    "broker_use_ssl": False,
    "control_queue_expires": 10.0,
    "dashboard_history_max_age": 7 * 86400,  # seconds a task stays in the dashboard's index
    "dashboard_history_max_tasks": 100_000,  # tasks the dashboard's index keeps at most
    "enable_utc": True,
    "imports": [],
    "include": [],
    "redis_backend_use_ssl": None,  # (the redis_* result backend options: applied when set)
    "redis_max_connections": None,
    "redis_retry_on_timeout": False,
    "redis_socket_connect_timeout": None,
    "redis_socket_keepalive": False,
    "redis_socket_timeout": 120.0,
    "result_accept_content": None,
    "result_backend": None,
    "result_backend_transport_options": {},
    "result_compression": None,
    "result_expires": 86400,
    "result_extended": False,
    "result_serializer": "json",
    "task_acks_late": False,
    "task_always_eager": False,
    "task_annotations": None,
    "task_compression": None,
    "task_create_missing_queues": True,
    "task_default_priority": None,
    "task_default_queue": "multiq",
    "task_default_rate_limit": None,
    "task_eager_propagates": False,
    "task_ignore_result": False,
    "task_max_deliveries": 5,
    "task_message_max_bytes": 16 * 1024 * 1024,
    "task_publish_retry": True,
    "task_publish_retry_policy": {
        "max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
    },
    "task_queues": None,  # a worker without -Q consumes these (names, or kombu Queues)
    "task_reject_on_worker_lost": False,
    "task_routes": None,
    "task_serializer": "json",
    "task_soft_time_limit": None,
    "task_store_eager_result": False,
    "task_time_limit": None,
    "task_send_sent_event": False,
    "task_track_started": False,
    "timezone": "UTC",
    "worker_concurrency": None,  # None: the number of CPUs
    "worker_heartbeat_interval": 1.0,
    "worker_hostname": None,
    "worker_log_format": "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
    "worker_lost_timeout": 5.0,
    "worker_max_memory_per_child": None,
    "worker_max_tasks_per_child": None,
    "worker_metrics": True,  # count outcomes in Redis for Prometheus (multiq.metrics)
    "worker_pool": "prefork",
    "worker_prefetch_multiplier": 4,
    "worker_redirect_stdouts": True,
    "worker_redirect_stdouts_level": "WARNING",
    "worker_revoke_expires": 86400,
    "worker_send_task_events": False,
    "worker_soft_shutdown_timeout": 0.0,
    "worker_task_log_format": (
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
    ),
}

MASK = "********"
URL_MASK = "**"
_HIDDEN = ("API", "TOKEN", "KEY", "SECRET", "PASS", "SIGNATURE", "DATABASE")
# Words that make a URL query parameter or a command-line option a secret ...
_SECRET_WORDS = ("PASS", "SECRET", "TOKEN", "KEY", "SIGNATURE", "AUTH", "CREDENTIAL")
# ... except these, which name a file (its path is not the secret).
_PATH_NAMES = frozenset({"ssl_keyfile", "keyfile", "key_file", "ssl_key_file"})
# A URL inside any text: scheme://, then up to white space or ";" (which joins URLs).
_URL = re.compile(r"[A-Za-z][\w+.-]*://[^\s;]*")
_QUOTES = "'\""
_RESERVED_ATTRS = frozenset({"changes"})

#: Settings that an environment variable overrides, in the client as in the worker (as
#: Celery's ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``): command line options first
#: (``Settings.pin``), then these variables, then the app's own configuration.
ENV_OVERRIDES = {"broker_url": "MULTIQ_BROKER_URL", "result_backend": "MULTIQ_RESULT_BACKEND"}
_MISSING = object()

MappingOrPairs = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]


class UnknownSettingWarning(UserWarning):
    """A setting name that multiq does not know was set (the value is still stored)."""


class IgnoredSettingWarning(UnknownSettingWarning):
    """One of Celery's settings that has no effect in multiq was set (to other than
    Celery's default); the message says why. Once per app and name."""


def mask_url(text: str) -> str:
    """``text`` with the secrets of every URL in it replaced by ``**``.

    The password of ``scheme://user:password@`` or ``scheme://:password@`` (it ends at the
    last ``@`` before the query, so an unencoded ``@`` or ``/`` in it is masked too), and the
    value of every query parameter whose name says it is secret (``password``,
    ``sentinel_password``, ``ssl_keyfile_password``, ``token``, ``...key...``; not
    ``ssl_keyfile``, a path). Several URLs, several hosts (``h1,h2``) and quoting are kept.
    """
    if "://" not in text:
        return text
    return _URL.sub(lambda match: _mask_one(match.group()), text)


def _mask_one(url: str) -> str:
    scheme, _, rest = url.partition("://")
    before, question, query = rest.partition("?")
    userinfo, at, hosts = before.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if at and colon and password:
        before = f"{user}:{URL_MASK}@{hosts}"
    if question:
        query = "&".join(_mask_param(item) for item in query.split("&"))
    return f"{scheme}://{before}{question}{query}"


def _mask_param(item: str) -> str:
    name, eq, value = item.partition("=")
    if not eq or not value or not secret_name(unquote(name)):
        return item
    kept = value[len(value.rstrip(_QUOTES)):]  # the closing quote of a repr stays
    return f"{name}={URL_MASK}{kept}"


def secret_name(name: str) -> bool:
    """Whether a URL parameter or option called ``name`` carries a secret."""
    normal = name.strip("-.").lower().replace("-", "_")
    if normal in _PATH_NAMES:
        return False
    return any(word in normal.upper() for word in _SECRET_WORDS)


def mask_argv(argv: Iterable[str]) -> list[str]:
    """A command line with its secrets masked: in URLs, in ``--password=X`` / ``--password
    X`` style options, and in ``name=value`` settings whose names are secret."""
    out: list[str] = []
    secret_value = False
    for token in argv:
        if secret_value:
            out.append(URL_MASK)
            secret_value = False
            continue
        name, eq, value = token.partition("=")
        if eq and value and "://" not in name and (secret_name(name) or (
                not name.startswith("-") and any(w in name.upper() for w in _HIDDEN))):
            out.append(f"{name}={URL_MASK}")
            continue
        out.append(mask_url(token))
        secret_value = token.startswith("-") and not eq and secret_name(token)
    return out


def _censor(key: str, value: Any) -> Any:
    if any(word in key.upper() for word in _HIDDEN):
        return MASK
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: _censor(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_censor(key, v) for v in value]
    if isinstance(value, tuple):
        return tuple(_censor(key, v) for v in value)
    return value


def _warn_unknown(key: str, stacklevel: int) -> None:
    import difflib

    close = difflib.get_close_matches(key, DEFAULTS, n=1)
    message = f"Unknown setting {key!r}"
    if close:
        message += f"; did you mean {close[0]!r}?"
    warnings.warn(message, UnknownSettingWarning, stacklevel=stacklevel)


def _warn_ignored(key: str, stacklevel: int) -> None:
    warnings.warn(f"Setting {key!r} has no effect in multiq: {CELERY_SETTINGS[key]}",
                  IgnoredSettingWarning, stacklevel=stacklevel)


def _ignored(key: str, value: Any) -> bool:
    """Whether setting Celery's ``key`` to ``value`` asks for what multiq does not do."""
    if CELERY_SETTINGS.get(key, HONOURED) == HONOURED:
        return False
    default = DEFAULTS[key] if key in DEFAULTS else CELERY_DEFAULTS[key]
    try:
        return bool(value != default)
    except Exception:  # a value that cannot be compared is not the default
        return True


def _rebuild(values: dict[str, Any], changes: dict[str, Any],
             pinned: Optional[Mapping[str, Any]] = None) -> Settings:
    settings = Settings()
    dict.update(settings, values)
    settings._pinned.update(pinned or {})
    settings._warned = {key for key in changes if key in CELERY_SETTINGS}
    settings.changes = changes
    return settings


class Settings(dict[str, Any]):
    """All settings, defaults included, as a dict with attribute access.

    ``changes`` holds only what was set explicitly. Keys are folded to lower case; setting a
    name that is not in :data:`DEFAULTS` warns with :class:`UnknownSettingWarning`, unless
    it is one of Celery's (:data:`CELERY_SETTINGS`): one that has no effect here warns once
    with :class:`IgnoredSettingWarning` and the reason, and reads as Celery's default.
    """

    changes: dict[str, Any]
    _warned: set[str]
    _pinned: dict[str, Any]

    def __init__(self, mapping: Optional[MappingOrPairs] = None, /, **kwargs: Any) -> None:
        super().__init__(copy.deepcopy(DEFAULTS))
        object.__setattr__(self, "changes", {})
        object.__setattr__(self, "_warned", set())
        object.__setattr__(self, "_pinned", {})
        self._update(mapping, kwargs, stacklevel=3)

    def _set(self, key: str, value: Any, stacklevel: int) -> None:
        key = key.lower()
        if key in CELERY_SETTINGS:
            if key not in self._warned and _ignored(key, value):
                self._warned.add(key)
                _warn_ignored(key, stacklevel + 1)
        elif key not in DEFAULTS:
            _warn_unknown(key, stacklevel + 1)
        self.changes[key] = value
        dict.__setitem__(self, key, value)

    def _update(
        self, mapping: Optional[MappingOrPairs], kwargs: Mapping[str, Any], stacklevel: int
    ) -> None:
        pairs: Iterable[Tuple[str, Any]] = ()
        if isinstance(mapping, Mapping):
            pairs = mapping.items()
        elif mapping is not None:
            pairs = mapping
        for key, value in [*pairs, *kwargs.items()]:
            self._set(key, value, stacklevel + 1)

    def update(  # type: ignore[override]
        self, mapping: Optional[MappingOrPairs] = None, /, **kwargs: Any
    ) -> None:
        """Set many settings at once, from a mapping, pairs and/or keyword arguments."""
        self._update(mapping, kwargs, stacklevel=3)

    def __setitem__(self, key: str, value: Any) -> None:
        self._set(key, value, stacklevel=3)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in _RESERVED_ATTRS:
            object.__setattr__(self, name, value)
        else:
            self._set(name, value, stacklevel=3)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key``, setting it to ``default`` first if it has none."""
        if key not in self:
            self._set(key, default, stacklevel=3)
        return self[key]

    def __delitem__(self, key: str) -> None:
        """Forget what the user set for ``key``: a known setting goes back to its default."""
        key = key.lower()
        if key not in self:
            raise KeyError(key)
        self.changes.pop(key, None)
        self._pinned.pop(key, None)
        if key in DEFAULTS:
            dict.__setitem__(self, key, copy.deepcopy(DEFAULTS[key]))
        else:
            dict.__delitem__(self, key)

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove the user's value of ``key`` (a known setting returns to its default)."""
        if key not in self:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = self[key]
        del self[key]
        return value

    def clear(self) -> None:
        """Forget every user setting: back to the defaults."""
        dict.clear(self)
        dict.update(self, copy.deepcopy(DEFAULTS))
        self.changes.clear()
        self._pinned.clear()

    def pin(self, key: str, value: Any) -> None:
        """Set ``key`` (one of :data:`ENV_OVERRIDES`) from the command line: it then wins
        over its environment variable and over what the configuration sets later."""
        key = key.lower()
        self._set(key, value, stacklevel=3)
        self._pinned[key] = value

    def unpin(self, key: str) -> None:
        """Undo :meth:`pin`: ``key`` reads its variable or its setting again."""
        self._pinned.pop(key.lower(), None)

    def _overridden(self, key: str) -> Any:
        if key in self._pinned:
            return self._pinned[key]
        return os.environ.get(ENV_OVERRIDES[key]) or dict.__getitem__(self, key)

    def __getitem__(self, key: str) -> Any:
        if key in ENV_OVERRIDES:
            return self._overridden(key)
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            if not isinstance(key, str):
                raise
            lower = key.lower()
            if lower != key and dict.__contains__(self, lower):
                return dict.__getitem__(self, lower)
            if lower in CELERY_DEFAULTS:  # one of Celery's that has no effect here
                return copy.deepcopy(CELERY_DEFAULTS[lower])
            raise

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value of ``key`` (defaults included), or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"Settings has no setting {name!r}") from None

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.keys()})

    def find_value_for_key(self, name: str, namespace: Optional[str] = None) -> Any:
        """Return the value of ``name``, also given upper-case or as ``<NAMESPACE>_<NAME>``."""
        key = name.lower()
        prefix = f"{namespace.lower()}_" if namespace else ""
        if prefix and key.startswith(prefix) and key[len(prefix):] in self:
            key = key[len(prefix):]
        if key not in self:
            raise KeyError(f"No setting named {name!r}")
        return self[key]

    def copy(self) -> Settings:
        """A shallow copy that keeps track of the user's changes."""
        return _rebuild(dict(self), dict(self.changes), self._pinned)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (dict(self), dict(self.changes), dict(self._pinned))

    def table(self, with_defaults: bool = False, censored: bool = True) -> dict[str, Any]:
        """The settings sorted by name; without defaults, only those that differ from them."""
        out: dict[str, Any] = {}
        for key in sorted(self):
            value = self._overridden(key) if key in ENV_OVERRIDES \
                else dict.__getitem__(self, key)
            unchanged = key not in self.changes and DEFAULTS.get(key, _MISSING) == value
            if unchanged and not with_defaults:
                continue
            out[key] = _censor(key, value) if censored else value
        return out

    def humanize(self, with_defaults: bool = False, censored: bool = True) -> str:
        """The settings as ``key: repr(value)`` lines, sorted, secrets masked."""
        return "\n".join(f"{k}: {v!r}" for k, v in self.table(with_defaults, censored).items())


def _import_string(name: str) -> Any:
    """Import ``"module"``, ``"module:attr"`` or ``"module.attr"`` (like ``symbol_by_name``)."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Fall back to module.attr only when the last part is what was missing.
            if exc.name != name or "." not in name:
                raise ImportError(f"Cannot import configuration {name!r}: {exc}") from exc
        module_name, _, attr = name.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"Cannot import configuration {name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(
                f"Cannot import configuration {name!r}: {module_name!r} has no attribute {attr!r}"
            ) from None
    return obj


def resolve(obj: Any) -> Any:
    """The configuration object named by ``obj`` (imported when it is a string)."""
    return _import_string(obj) if issubclass(type(obj), str) else obj


def is_deferred(obj: Any) -> bool:
    """Whether ``obj`` says it is not configured yet (Django's settings before their first
    use): reading it now would configure it, so it is read when first needed."""
    if issubclass(type(obj), (types.ModuleType, type, Mapping)):  # (isinstance would ask
        return False  # a lazy object for its __class__: that configures it)
    try:
        return getattr(obj, "configured", True) is False
    except Exception:
        return False


def load_object(obj: Any, namespace: Optional[str] = None) -> dict[str, Any]:
    """Return the settings held by a module, class, object, mapping or importable name.

    With ``namespace="MULTIQ"`` only ``MULTIQ_<NAME>`` attributes are read (as ``<name>``).
    Without one, lower-case names are read, and upper-case ones only if they name a known
    setting, so that constants such as Django's ``DEBUG`` are left alone. Names are chosen
    before any value is read: an attribute that is not a setting is never touched (Django
    raises for an empty ``SECRET_KEY`` on access).
    """
    obj = resolve(obj)
    prefix = f"{namespace.upper()}_" if namespace else ""
    if isinstance(obj, Mapping):
        items = [(str(k), v) for k, v in obj.items() if _wanted(str(k), prefix)]
    else:
        items = [(name, getattr(obj, name, None)) for name in dir(obj) if _wanted(name, prefix)]
    settings: dict[str, Any] = {}
    for name, value in items:
        if isinstance(value, (types.ModuleType, type)) or inspect.isroutine(value):
            continue
        settings[name.lower()[len(prefix):]] = value
    return settings


def _wanted(name: str, prefix: str) -> bool:
    """Whether attribute ``name`` holds a setting (see :func:`load_object`)."""
    if name.startswith("_"):
        return False
    if prefix:
        return name.upper().startswith(prefix) and len(name) > len(prefix)
    return name == name.lower() or name.lower() in DEFAULTS or name.lower() in CELERY_SETTINGS


def load_envvar(variable: str) -> str:
    """Return the module name held by environment variable ``variable``."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"The environment variable {variable!r} is not set: it must name the module that "
            f"holds the configuration (e.g. {variable}=proj.multiqconfig)."
        )
    return value
