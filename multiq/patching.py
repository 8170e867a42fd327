"""Monkey-patching for the green pools, before anything else is imported.

``multiq worker -P gevent`` (or ``-P eventlet``) makes every blocking call of the node and
its tasks cooperative (sockets, ``time.sleep``, threads, locks), as Celery's green pools
do. That only holds when the library patches the standard library before any other
module takes its own references (a lock made at import time, ``from socket import
socket``): so the program's entry points (``python -m multiq``, the ``multiq`` script)
read the command line first, patch, and only then import the rest
(:func:`maybe_patch_concurrency`).

A pool named only in the configuration (``worker_pool = "gevent"``) is known once the
app is loaded, too late for that: the node patches at its start (:func:`patch_late`),
before it connects or starts a thread, and says that ``-P gevent`` is the safe way.

Eventlet is deprecated upstream: ``-P eventlet`` runs when it is installed, and without
it the node ends with one line naming gevent and asyncio.

This module imports nothing but ``sys`` at its top.
"""
from __future__ import annotations

import sys
from typing import List, Optional, Sequence

#: The worker's pool option, long and short.
POOL_OPTIONS = ("-P", "--pool")
#: Global options (before the sub-command) that take a value.
GLOBAL_VALUED = frozenset({"-A", "--app", "-b", "--broker", "--result-backend", "--config",
                           "--workdir"})

GEVENT_MISSING = ("the gevent pool needs gevent, which is not installed: "
                  "pip install 'multiq[gevent]'")
EVENTLET_REFUSED = ("the eventlet pool needs eventlet, which is not installed; eventlet is "
                    "deprecated upstream: use -P gevent (pip install 'multiq[gevent]'), "
                    "or -P asyncio for async def tasks")
#: The pools that monkey-patch.
GREEN = ("gevent", "eventlet")

_patched: Optional[str] = None


def requested_pool(argv: Sequence[str]) -> Optional[str]:
    """The pool ``argv`` (``sys.argv``: program first) asks of ``multiq worker``, lowered;
    None for another sub-command or no ``-P``. Understands ``-P gevent``, ``-Pgevent``,
    ``--pool gevent`` and ``--pool=gevent``; words after ``--`` are settings, not options."""
    words = list(argv[1:])
    command = _subcommand(words)
    if command is None or words[command] != "worker":
        return None
    rest = words[command + 1:]
    for i, word in enumerate(rest):
        if word == "--":
            return None
        value: Optional[str] = None
        if word in POOL_OPTIONS:
            value = rest[i + 1] if i + 1 < len(rest) else None
        elif word.startswith("--pool="):
            value = word[len("--pool="):]
        elif word.startswith("-P") and not word.startswith("--"):
            value = word[2:].lstrip("=")
        if value is not None:
            return value.lower() or None
    return None


def _subcommand(words: List[str]) -> Optional[int]:
    """The index of the first word that is not a global option or its value."""
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if not word.startswith("-"):
            return i
        skip = word in GLOBAL_VALUED  # (``--app=x`` carries its value)
    return None


def maybe_patch_concurrency(argv: Optional[Sequence[str]] = None) -> Optional[str]:
    """Patch for the green pool the command line asks for; returns that pool's name (or
    None). A pool that cannot run ends the program here with one line on stderr."""
    pool = requested_pool(sys.argv if argv is None else argv)
    if pool not in GREEN:
        return None
    problem = refusal(pool)
    if problem is not None:
        sys.stderr.write(f"Error: {problem}\n")
        sys.exit(1)
    patch(pool)
    return pool


def refusal(pool: str) -> Optional[str]:
    """Why ``pool`` cannot run here (None when it can, or is not a green pool)."""
    if pool == "eventlet" and not _installed("eventlet"):
        return EVENTLET_REFUSED
    if pool == "gevent" and not _installed("gevent"):
        return GEVENT_MISSING
    return None


def patch(pool: str) -> None:
    """Monkey-patch the standard library for ``pool`` (once per process)."""
    global _patched
    if _patched == pool:
        return
    if pool == "eventlet":
        import warnings

        with warnings.catch_warnings():  # (its deprecation: the pool logs one line)
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()
        _refit_for_eventlet()
    else:
        from gevent import monkey

        monkey.patch_all()
    _patched = pool


def patch_late(pool: str) -> bool:
    """At a node's start: patch for a green ``pool`` named only in the configuration;
    returns whether it patched now. Logs that early patching needs ``-P`` on the command
    line (modules imported before the patch keep what they took from the standard
    library: a lock made at import time blocks every greenlet)."""
    if pool not in GREEN or _patched == pool or _is_patched():
        return False
    import logging

    patch(pool)
    logging.getLogger("multiq.worker").warning(
        "The %s pool comes from the configuration: the standard library was patched at the "
        "node's start, after the app and its modules were imported. Give -P %s on the "
        "command line to patch before anything else is imported.", pool, pool)
    return True


def _refit_for_eventlet() -> None:
    """Modules imported before eventlet patched (a pool named in the configuration) keep
    what they saw of ``select``, whose ``poll`` eventlet removes: redis-py's hiredis
    parser checks for it once, at its import."""
    import select

    hiredis = sys.modules.get("redis._parsers.hiredis")
    if hiredis is not None and hasattr(hiredis, "_HAS_POLL"):
        hiredis._HAS_POLL = hasattr(select, "poll")  # type: ignore[attr-defined]


def _is_patched() -> bool:
    """Whether a green library has patched ``socket`` already."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        return True
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher is not None and patcher.is_monkey_patched("socket"))


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False

