"""Two nodes with one name: a starting node warns when another live node has its name.

Replies to ``inspect`` and ``control`` are keyed by node name, so two nodes of one name
answer as one and ``-d NAME`` reaches both. A heartbeat record whose process is gone (a
node killed and started again before its record expired; a re-exec keeps its pid) is not
a twin.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import Any, Dict, List, Optional

logger = logging.getLogger("multiq.worker")


def twins(nodes: Dict[str, Dict[str, Any]], hostname: str, consumer: str,
          machine: Optional[str] = None) -> List[Dict[str, Any]]:
    """The records of ``nodes`` (``live_nodes()``) of other processes named ``hostname``."""
    machine = machine if machine is not None else socket.gethostname()
    here = hostname.partition("@")[2] in (machine, machine.split(".")[0])
    found = []
    for name, info in nodes.items():
        if name == consumer or info.get("hostname") != hostname:
            continue
        pid = info.get("pid")
        if here and isinstance(pid, int) and (pid == os.getpid() or not _alive(pid)):
            continue  # this process again, or a predecessor whose record has not expired
        found.append(info)
    return found


def warn_twins(broker: Any, hostname: str, consumer: str) -> List[Dict[str, Any]]:
    """Log a warning for each live node already named ``hostname``; never raises."""
    try:
        found = twins(broker.live_nodes(), hostname, consumer)
    except Exception:  # a check at start: the node goes on without it
        logger.debug("Could not look for other nodes named %s", hostname, exc_info=True)
        return []
    for info in found:
        logger.warning("Another node named %s is running (pid %s): the two answer inspect "
                       "and control as one; give each node its own name with -n", hostname,
                       info.get("pid"))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
