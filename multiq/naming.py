"""Node names and the ``%`` templates of node names, pid files and log files (worker stage).

In a node: ``%h`` host part of the node name, ``%n`` its short name (``w1``), ``%d`` the
domain, ``%p`` the full node name, ``%i`` the pool process index (0 in the main process) and
``%I`` the same with a separator (empty in the main process, ``-1``, ``-2``... in children).
"""
from __future__ import annotations

import re
import socket
from typing import Optional

_KEY = re.compile(r"%(.)")


def host_expand(template: str, host: Optional[str] = None) -> str:
    """Expand a node name given on the command line: ``%h`` full host, ``%n`` its first
    label, ``%d`` its domain (``w1@%h`` → ``w1@box.example.com``)."""
    host = host or socket.gethostname()
    short, _, domain = host.partition(".")
    table = {"h": host, "n": short, "d": domain, "%": "%"}
    return _KEY.sub(lambda m: table.get(m.group(1), m.group(0)), template)


def nodename(name: Optional[str], default: str = "multiq@%h") -> str:
    """A full node name: ``w1`` → ``w1@<host>``, templates expanded."""
    name = host_expand(name or default)
    return name if "@" in name else f"{name}@{socket.gethostname()}"


def node_expand(template: str, node: str, index: Optional[int] = None) -> str:
    """Expand a pid or log file template for ``node`` in process ``index`` (0 = main)."""
    short, _, host = node.partition("@")
    domain = host.partition(".")[2]
    i = index or 0
    table = {"h": host, "n": short, "d": domain, "p": node, "i": str(i),
             "I": f"-{i}" if i else "", "%": "%"}

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in table:
            raise ValueError(f"Unknown template key %{key} in {template!r}")
        return table[key]
    return _KEY.sub(sub, template)


def has_index(template: Optional[str]) -> bool:
    """Whether the template differs per pool process (``%i`` or ``%I``)."""
    return bool(template) and ("%i" in template or "%I" in template)  # type: ignore[operator]
