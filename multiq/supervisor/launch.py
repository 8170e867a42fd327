"""How ``multi`` launches a node without showing its passwords or leaving them readable.

A node's command line can be read by every user of the host (``ps``), and ``multi`` keeps
it beside the pid file (``<pidfile>.argv``) so that a bare ``multi restart w1`` starts the
node again with the options it was started with. Neither holds a password:

- A ``-b`` / ``--result-backend`` URL that carries a secret reaches the node in its
  environment (``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``, which ``multiq worker``
  reads exactly as it reads those options), not on its command line.
- The saved command line has every secret masked (``**``, as ``mask_argv`` shows it) and
  says which words and variables were masked: those are references into
  ``<pidfile>.secret``, which holds their values. Both files are created with mode 0600
  (a new file, then an atomic rename: never readable by others, even for a moment) and go
  away with the pid file: ``stopwait`` and ``kill`` remove them, and so does a node that
  exits by itself.
- A bare ``restart`` resolves the references from that file; without it, from ``multi``'s
  own environment (a URL there that masks the same, i.e. same user, host and database, is
  taken as it is, so a password changed since is used); with neither, it says to give the
  options again, which is what Celery's ``multi restart`` always asks for.

Why a separate file rather than none: the running node cannot be asked (its name in
``ps`` is set with setproctitle, which overwrites what ``/proc`` shows of its command line
and environment), and without the secret a bare ``restart`` could not work. Keeping it
apart from the command line means the file that is shown, copied into bug reports and
read by tools holds no secret, and the secret lives exactly as long as the node.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from multiq.config import mask_argv, mask_url
from multiq.exceptions import MultiQError
from multiq.supervisor.nodes import Node
from multiq.supervisor.pidfile import ARGV_SUFFIX, SECRET_SUFFIX

#: Options whose value goes to the node in its environment when it holds a secret.
SECRET_OPTIONS = {"-b": "MULTIQ_BROKER_URL", "--broker": "MULTIQ_BROKER_URL",
                  "--result-backend": "MULTIQ_RESULT_BACKEND"}


class SecretUnknown(MultiQError):
    """A saved command line has a masked secret that nothing at hand can supply."""


@dataclass
class Launch:
    """What starts a node: its command line, and the secrets added to its environment."""

    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, node: Node) -> Launch:
        """The launch of ``node`` as its ``multi`` command line describes it."""
        argv = node.argv
        if node.cmd is not None and "multiq" not in node.cmd:
            return cls(argv)  # another program: its options may mean something else
        return cls(*lift_secrets(argv))

    def shown(self) -> List[str]:
        """The launch as it may be printed: ``NAME=value`` words first, secrets masked."""
        return [f"{name}={mask_url(value)}" for name, value in self.env.items()] \
            + mask_argv(self.argv)


def lift_secrets(argv: List[str]) -> Tuple[List[str], Dict[str, str]]:
    """Move the URLs with secrets of :data:`SECRET_OPTIONS` (before any ``--``) out of
    ``argv`` into environment variables."""
    end = argv.index("--") if "--" in argv else len(argv)
    out: List[str] = []
    env: Dict[str, str] = {}
    pos = 0
    while pos < len(argv):
        token = argv[pos]
        name, eq, value = token.partition("=")
        step = 1
        if not eq and pos + 1 < end:
            value, step = argv[pos + 1], 2
        if pos < end and name in SECRET_OPTIONS and value and mask_url(value) != value:
            env[SECRET_OPTIONS[name]] = value
            pos += step
            continue
        out.append(token)
        pos += 1
    return out, env


# -- the saved command line ----------------------------------------------------------------


@dataclass
class Saved:
    """A saved launch: masked words, which of them (and of the variables) were masked, and
    the values from the secret file, by word index (as a string) and variable name."""

    argv: List[str]
    masked: List[int] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)
    secrets: Dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> Launch:
        """The launch with its secrets put back; :class:`SecretUnknown` when one is not
        at hand."""
        argv = list(self.argv)
        for index in self.masked:
            value = self.secrets.get(str(index))
            if value is None:
                raise SecretUnknown(_unknown(name, argv[index]))
            argv[index] = value
        env: Dict[str, str] = {}
        for variable, shown in self.env.items():
            value = self.secrets.get(variable) or os.environ.get(variable)
            if not value or mask_url(value) != shown:
                raise SecretUnknown(_unknown(name, f"{variable}={shown}"))
            env[variable] = value
        return Launch(argv, env)


def _unknown(name: str, shown: str) -> str:
    return (f"the saved command line of {name} refers to a secret ({shown}) that is no "
            f"longer at hand: give the options again "
            f"(multiq multi restart {name.partition('@')[0]} -A APP -b URL ...)")


def argv_path(node: Node) -> str:
    return node.pidfile + ARGV_SUFFIX


def secret_path(node: Node) -> str:
    return node.pidfile + SECRET_SUFFIX


def save(node: Node, launch: Launch) -> None:
    """Keep ``launch`` beside the node's pid file: masked in ``.argv``, its secrets in
    ``.secret`` (both mode 0600)."""
    shown = mask_argv(launch.argv)
    masked = [i for i, (word, seen) in enumerate(zip(launch.argv, shown)) if word != seen]
    record = {"argv": shown, "masked": masked,
              "env": {name: mask_url(value) for name, value in launch.env.items()}}
    hidden = {**{str(i): launch.argv[i] for i in masked}, **launch.env}
    try:
        if hidden:
            write_private(secret_path(node), json.dumps(hidden))
        else:
            remove(secret_path(node))
        write_private(argv_path(node), json.dumps(record))
    except OSError:
        pass  # only a bare ``restart`` needs them; it then says what to give


def forget(node: Node) -> None:
    """Remove what :func:`save` wrote."""
    remove(argv_path(node))
    remove(secret_path(node))


def write_private(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, readable by its owner only from the
    moment it exists (created 0600 under a fresh name, then renamed over ``path``)."""
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def load(node: Node) -> Optional[Saved]:
    """The saved launch of ``node``; None when there is none or it cannot be read."""
    try:
        with open(argv_path(node)) as fh:
            data: Any = json.load(fh)
    except (OSError, ValueError):
        return None
    if _words(data):  # written by an older multiq: a plain list
        return Saved(list(data))
    if not isinstance(data, dict) or not _words(data.get("argv")):
        return None
    masked, env = data.get("masked", []), data.get("env", {})
    if not isinstance(masked, list) or not all(
            isinstance(i, int) and 0 <= i < len(data["argv"]) for i in masked):
        return None
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return None
    return Saved(list(data["argv"]), sorted(masked), dict(env), _secrets(node))


def _secrets(node: Node) -> Dict[str, str]:
    try:
        with open(secret_path(node)) as fh:
            data: Any = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _words(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
