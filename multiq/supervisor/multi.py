"""``multi`` verbs: start, stop, stopwait, restart, kill, status — acting on nodes by pid file.

Nothing here prints: every event goes to a ``Reporter`` (``cli/multi.py`` prints it), so the
supervisor runs the same under a terminal, systemd or a test. What it reports, and the
command line it saves for a bare ``restart``, never holds a password: see ``launch.py``
(secrets go to a node in its environment; the saved command line is masked and refers to
a separate 0600 file, both removed with the pid file).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import psutil

from multiq.config import mask_url
from multiq.supervisor import launch as launches
from multiq.supervisor.launch import Launch, SecretUnknown
from multiq.supervisor.nodes import Node
from multiq.supervisor.pidfile import Pidfile

DEFAULT_START_TIMEOUT = 60.0
#: what ``multiq worker --detach`` prints while its node waits for Redis
WAITING = re.compile(r"node \S+ is (waiting for .*)$")
DEFAULT_STOP_TIMEOUT = 300.0


class Reporter(Protocol):
    """Where the supervisor tells what happens."""

    def say(self, text: str) -> None: ...
    def node(self, node: Node, status: str, ok: bool = True, detail: str = "") -> None: ...
    def command(self, argv: Sequence[str]) -> None: ...
    def progress(self, text: str) -> None: ...


@dataclass
class NodeStatus:
    node: Node
    state: str  # running, stale, down
    pid: Optional[int] = None
    uptime: Optional[float] = None
    memory: Optional[int] = None  # resident bytes of the node and its children
    children: int = 0


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name.removeprefix("SIG")
    except ValueError:
        return str(signum)


class Supervisor:
    """Acts on a list of nodes; each verb returns the exit status."""

    def __init__(self, nodes: List[Node], reporter: Reporter, *,
                 timeout: Optional[float] = None, kill_after: Optional[float] = None,
                 signum: int = signal.SIGTERM, use_saved_argv: bool = False) -> None:
        self.nodes = nodes
        self.reporter = reporter
        self.timeout = timeout
        self.kill_after = kill_after
        self.signum = signum
        self.use_saved_argv = use_saved_argv

    # -- starting --------------------------------------------------------------------------

    def start(self) -> int:
        """Start every node detached, in parallel; OK only once a node is consuming."""
        self.reporter.say("> Starting nodes...")
        failed = 0
        with ThreadPoolExecutor(max_workers=max(1, min(len(self.nodes), 16))) as pool:
            futures = {pool.submit(self._start_one, node): node for node in self.nodes}
            for future in as_completed(futures):
                ok, status, detail = future.result()
                failed += not ok
                self.reporter.node(futures[future], status, ok, detail)
        return 1 if failed else 0

    def _start_one(self, node: Node, launch: Optional[Launch] = None) -> tuple:
        owner = Pidfile(node.pidfile).owner()
        if owner is not None:
            return True, f"already running (pid {owner.pid})", ""
        if launch is None:
            try:
                launch = self._launch(node)
            except SecretUnknown as exc:
                return False, "FAILED", f"* {exc}"
        for path in (node.pidfile, node.logfile):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.reporter.command(launch.shown())
        launches.save(node, launch)
        ok, status, detail = self._run(node, launch)
        if not ok and Pidfile(node.pidfile).owner() is None:
            launches.forget(node)
        return ok, status, detail

    def _run(self, node: Node, launch: Launch) -> tuple:
        """Run the node's launcher; it returns once the node is ready or has failed."""
        argv = list(launch.argv)
        timeout = self.timeout or DEFAULT_START_TIMEOUT
        if "--detach" in argv:
            at = argv.index("--") if "--" in argv else len(argv)
            argv[at:at] = [f"--ready-timeout={timeout:g}"]
        env = {**os.environ, **launch.env} if launch.env else None
        log_start = _size(self._main_log(node))
        try:
            code, output = self._launcher(node, argv, env, timeout + 10)
        except subprocess.TimeoutExpired:
            return False, "FAILED", (f"* not ready after {timeout:g}s\n"
                                      + self._log_tail(node, log_start))
        except OSError as exc:
            return False, "FAILED", f"* could not run {argv[0]}: {exc}"
        if code == 0:
            return True, "OK", ""
        output = mask_url(output.strip())
        detail = f"* Child terminated with exit code {code}"
        extra = output or self._log_tail(node, log_start)
        return False, "FAILED", detail + ("\n" + extra if extra else "")

    def _launcher(self, node: Node, argv: List[str], env: Optional[Dict[str, str]],
                  timeout: float) -> Tuple[int, str]:
        """Run a node's launcher: its exit code and output; what it says while the node
        waits for Redis is reported at once (``w1@host: waiting for the broker at ...``)."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        lines = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                waiting = WAITING.match(line.rstrip("\n"))
                if waiting:
                    self.reporter.say(f"\t> {node.name}: {mask_url(waiting.group(1))}")
                else:
                    lines.append(line)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.stdout is not None:
                proc.stdout.close()
        if fired.is_set():
            raise subprocess.TimeoutExpired(argv, timeout)
        return code, "".join(lines)

    def _launch(self, node: Node) -> Launch:
        """How to start ``node``: its saved launch (a bare ``restart``), else its own
        command line."""
        if self.use_saved_argv:
            saved = launches.load(node)
            if saved is not None:
                return saved.resolve(node.name)
        return Launch.of(node)

    def _main_log(self, node: Node) -> str:
        return node.logfile.replace("%I", "").replace("%i", "0")

    def _log_tail(self, node: Node, since: int = 0, lines: int = 15) -> str:
        """The last lines the node wrote to its main log since byte ``since``."""
        try:
            with open(self._main_log(node), "rb") as fh:
                fh.seek(since)
                text = fh.read().decode("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join("  " + line for line in text)

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, wait: bool = False) -> int:
        """Signal every live node; with ``wait``, wait for each whole process tree to exit."""
        self.reporter.say("> Stopping nodes...")
        trees: Dict[str, List[psutil.Process]] = {}
        for node in self.nodes:
            proc = self._owner(node)
            if proc is None:
                continue
            tree = _tree(proc)
            try:
                proc.send_signal(self.signum)
            except psutil.NoSuchProcess:
                continue
            self.reporter.node(node, f"{signal_name(self.signum)} -> {proc.pid}")
            trees[node.name] = tree
        if not wait or not trees:
            return 0
        return self._wait(trees)

    def _owner(self, node: Node) -> Optional[psutil.Process]:
        pidfile = Pidfile(node.pidfile)
        owner = pidfile.owner()
        if owner is None:
            detail = "stale pid file removed" if pidfile.remove_if_stale() else ""
            if not os.path.exists(pidfile.path):
                launches.forget(node)
            self.reporter.node(node, "DOWN", True, detail)
        return owner

    def _wait(self, trees: Dict[str, List[psutil.Process]]) -> int:
        by_name = {n.name: n for n in self.nodes}
        pids = ", ".join(str(t[0].pid) for t in trees.values())
        self.reporter.say(f"> Waiting for {len(trees)} {_plural(len(trees), 'node')} -> {pids}....")
        timeout = self.timeout if self.timeout is not None else DEFAULT_STOP_TIMEOUT
        pending = dict(trees)
        deadline = time.monotonic() + timeout
        killed = False
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                if self.kill_after is None or killed:
                    for name in pending:
                        self.reporter.node(by_name[name], "FAILED", False,
                                           f"* still running after {timeout:g}s")
                    return 1
                for name, tree in pending.items():
                    _kill_tree(tree)
                    self.reporter.node(by_name[name], f"KILL -> {tree[0].pid}", False,
                                       f"* did not stop within {timeout:g}s")
                killed, deadline, timeout = True, time.monotonic() + self.kill_after, \
                    self.kill_after
                continue
            done = _wait_any(pending, min(left, 0.5))
            for name in done:
                tree = pending.pop(name)
                _remove_pidfile_of(by_name[name], tree[0].pid)
                self.reporter.node(by_name[name], "OK")
            if done and pending:
                self.reporter.progress(f"> Waiting for {len(pending)} "
                                       f"{_plural(len(pending), 'node')}...")
        return 0

    def kill(self) -> int:
        """SIGKILL every node and its pool children; remove their pid files."""
        for node in self.nodes:
            proc = self._owner(node)
            if proc is None:
                continue
            tree = _tree(proc)
            self.reporter.node(node, f"Sending KILL to node {node.name} ({proc.pid})")
            _kill_tree(tree)
            psutil.wait_procs(tree, timeout=5)
            _remove_pidfile_of(node, proc.pid)
        return 0

    # -- restarting and status ---------------------------------------------------------------

    def restart(self) -> int:
        """Rolling restart: one node at a time, the next only once this one is ready again.

        A node that does not come back stops the restart, so the others keep running."""
        for node in self.nodes:
            proc = Pidfile(node.pidfile).owner()
            try:
                launch = self._launch(node)  # before the node takes its files away
            except SecretUnknown as exc:
                return self._restart_stopped(node, f"* {exc}")
            if proc is not None:
                tree = _tree(proc)
                proc.send_signal(self.signum)
                self.reporter.node(node, f"{signal_name(self.signum)} -> {proc.pid}")
                if self._wait({node.name: tree}):
                    return 1
            ok, status, detail = self._start_one(node, launch)
            if not ok:
                return self._restart_stopped(node, detail, status)
            self.reporter.node(node, f"restarted: {status}")
        return 0

    def _restart_stopped(self, node: Node, detail: str, status: str = "FAILED") -> int:
        self.reporter.node(node, status, False, detail)
        rest = [n.name for n in self.nodes[self.nodes.index(node) + 1:]]
        if rest:
            self.reporter.say(f"> Restart stopped; left as they were: {', '.join(rest)}")
        return 1

    def status(self) -> List[NodeStatus]:
        out = []
        for node in self.nodes:
            pidfile = Pidfile(node.pidfile)
            proc = pidfile.owner()
            if proc is None:
                state = "stale" if os.path.exists(pidfile.path) else "down"
                out.append(NodeStatus(node, state, pidfile.read_pid()))
                continue
            tree = _tree(proc)
            memory = 0
            for p in tree:
                try:
                    memory += p.memory_info().rss
                except psutil.Error:
                    pass
            out.append(NodeStatus(node, "running", proc.pid, time.time() - proc.create_time(),
                                  memory, len(tree) - 1))
        return out


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _tree(proc: psutil.Process) -> List[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [proc]


def _kill_tree(tree: List[psutil.Process]) -> None:
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _gone(tree: List[psutil.Process]) -> bool:
    for p in tree:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def _wait_any(pending: Dict[str, List[psutil.Process]], timeout: float) -> List[str]:
    """Names whose whole tree has exited, waiting up to ``timeout`` for the first."""
    event = threading.Event()
    end = time.monotonic() + timeout
    while True:
        done = [name for name, tree in pending.items() if _gone(tree)]
        if done or time.monotonic() >= end:
            return done
        event.wait(0.02)


def _remove_pidfile_of(node: Node, pid: int) -> None:
    """Remove the pid file of ``pid``, and the command line saved beside it."""
    pidfile = Pidfile(node.pidfile)
    if pidfile.read_pid() == pid:
        launches.forget(node)
        launches.remove(pidfile.path)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"
