"""Real Redis Cluster and Sentinel topologies on loopback, for tests.

Both start private ``redis-server`` processes (the binary ``helpers.find_redis_server``
finds) on free 127.0.0.1 ports, each node in its own subdirectory of ``directory``
with its log in ``<node>/redis.log``. They only ever signal the processes they
started, by pid, and never use a fixed port.

``ClusterTopology``: ``masters`` shards with ``replicas`` replicas each, created with
``redis-cli --cluster create`` when a working redis-cli is found, by hand otherwise.
``SentinelTopology``: a master, one replica and three sentinels.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from helpers import free_port, tail, wait_until

HOST = "127.0.0.1"
SLOTS = 16384
Address = Tuple[str, int]


def server_version(binary: str) -> Tuple[int, int]:
    """``(major, minor)`` of a redis-server / valkey-server binary (``(0, 0)`` if unknown)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def find_redis_cli(binary: str) -> Optional[str]:
    """A redis-cli (or valkey-cli) that runs: beside ``binary`` first, else on PATH."""
    beside = Path(binary).parent
    candidates = [str(beside / name) for name in ("redis-cli", "valkey-cli")]
    candidates += [p for p in map(shutil.which, ("redis-cli", "valkey-cli")) if p]
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        try:
            done = subprocess.run(
                [candidate, "--version"], capture_output=True, timeout=10,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return candidate
    return None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _info(text: str) -> Dict[str, str]:
    """``INFO`` / ``CLUSTER INFO`` text as a dict of strings."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _pairs(reply: Any) -> Dict[str, str]:
    """A SENTINEL MASTER / REPLICAS entry as a dict of strings: a RESP3 map, or a
    RESP2 ``[k1, v1, k2, v2, ...]`` array."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


class RedisNode:
    """One redis-server (data node or sentinel) a topology started."""

    def __init__(self, binary: str, directory: Path, name: str, role: str) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.name = name
        self.role = role  # "master", "replica" or "sentinel", as last seen
        self.port = 0
        self.bus_port = 0  # cluster bus port (cluster nodes only)
        self.node_id = ""  # cluster node id (cluster nodes only)
        self.master_id: Optional[str] = None  # a cluster replica's master, as last seen
        self.slots: Tuple[Tuple[int, int], ...] = ()  # owned slot ranges, as last seen
        self.proc: Optional[subprocess.Popen] = None
        self.argv: List[str] = []
        self.log_path = self.directory / "redis.log"

    def __repr__(self) -> str:
        state = "up" if self.alive else "down"
        return f"<RedisNode {self.name} {self.role} {HOST}:{self.port} {state}>"

    @property
    def address(self) -> Address:
        return (HOST, self.port)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, argv: List[str]) -> None:
        """Start ``argv`` in the node's directory, output appended to its log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.argv = list(argv)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.directory), start_new_session=True,
            )

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.Redis`` on this node (``decode_responses=True`` unless overridden)."""
        import redis

        kwargs.setdefault("decode_responses", True)
        kwargs.setdefault("socket_connect_timeout", 1.0)
        kwargs.setdefault("socket_timeout", 5.0)
        return redis.Redis(host=HOST, port=self.port, **kwargs)

    def call(self, *args: Any) -> Any:
        """Run one command on a short-lived connection; ``None`` if the node is unreachable."""
        import redis

        client = self.client(socket_timeout=2.0)
        try:
            return client.execute_command(*args)
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        finally:
            client.close()

    def info(self, section: str = "replication") -> Dict[str, Any]:
        """``INFO section`` as redis-py parses it; empty if the node is unreachable."""
        import redis

        client = self.client(socket_timeout=2.0)
        try:
            return dict(client.info(section))
        except (redis.ConnectionError, redis.TimeoutError):
            return {}
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the process (by pid) and reap it."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10.0)

    def stop(self, grace: float = 5.0) -> None:
        """TERM the process, KILL it if still alive after ``grace`` seconds."""
        _stop_all([self], grace)

    def terminate(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()

    def log(self, lines: int = 0) -> str:
        """The node's log (its last ``lines`` lines when ``lines`` > 0)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return tail(text, lines) if lines else text


def _stop_all(nodes: Sequence[RedisNode], grace: float) -> None:
    """TERM ``nodes`` (again every 0.5 s: Redis 7 ignores a TERM while it writes its
    first AOF after a sync), KILL those still alive after ``grace``; reap them all."""
    deadline = time.monotonic() + grace
    while True:
        alive = [n for n in nodes if n.alive]
        if not alive or time.monotonic() >= deadline:
            break
        for node in alive:
            node.terminate()
        until = min(time.monotonic() + 0.5, deadline)
        while time.monotonic() < until and any(n.alive for n in alive):
            time.sleep(0.02)
    for node in nodes:
        if node.proc is not None:
            if node.alive:
                node.proc.kill()
            node.proc.wait(timeout=5.0)


def _launch_all(
    nodes: Sequence[RedisNode],
    argv_for: Callable[[RedisNode], List[str]],
    pick_ports: Callable[[RedisNode, Set[int]], None],
    deadline: float,
    attempts: int = 5,
) -> None:
    """Start ``nodes`` together and wait until each answers PING.

    A node that exits early (usually because its port was taken meanwhile) gets
    new ports and another try, up to ``attempts`` launches.
    """
    taken: Set[int] = set()
    tries = {node: 0 for node in nodes}

    def launch(node: RedisNode) -> None:
        if tries[node] >= attempts:
            raise RuntimeError(f"{node.name} exited {attempts} times at start-up")
        tries[node] += 1
        pick_ports(node, taken)
        node.launch(argv_for(node))

    for node in nodes:
        launch(node)
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if not node.alive:
                launch(node)
            elif node.call("PING"):
                waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.name for n in waiting)
            raise RuntimeError(f"{names} did not answer PING in time")
        time.sleep(0.02)


def _take_port(taken: Set[int]) -> int:
    """A free port not yet handed out (``taken``) to this topology."""
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port


def _pick_port(node: RedisNode, taken: Set[int]) -> None:
    node.port = _take_port(taken)


def _wait(
    predicate: Callable[[], Any], deadline: float, message: Union[str, Callable[[], str]]
) -> Any:
    """``wait_until`` up to ``deadline``; a callable ``message`` is built on timeout."""
    try:
        return wait_until(predicate, timeout=max(deadline - time.monotonic(), 0.0),
                          interval=0.05)
    except AssertionError:
        raise AssertionError(message() if callable(message) else message) from None


def _replicas_caught_up(master: RedisNode, replicas: Sequence[RedisNode]) -> bool:
    """Every replica acknowledged the master's current replication offset."""
    offset = master.info().get("master_repl_offset")
    if offset is None:
        return False
    for replica in replicas:
        info = replica.info()
        if info.get("master_link_status") != "up":
            return False
        if int(info.get("slave_repl_offset", -1)) < int(offset):
            return False
    return True


def _logs(nodes: Sequence[RedisNode], lines: int, extra: Sequence[Path] = ()) -> str:
    parts = []
    for node in nodes:
        state = f"pid {node.proc.pid}" if node.proc else "never started"
        parts.append(f"==> {node.name} ({HOST}:{node.port}, {state}) <==\n{node.log(lines)}")
    for path in extra:
        if path.exists():
            parts.append(f"==> {path.name} <==\n{tail(path.read_text(errors='replace'), lines)}")
    return "\n".join(parts)


# -- cluster -----------------------------------------------------------------


class _Entry:
    """One line of ``CLUSTER NODES``."""

    def __init__(self, line: str) -> None:
        parts = line.split()
        self.id = parts[0]
        address = parts[1].split(",")[0].split("@")[0]
        self.port = int(address.rsplit(":", 1)[1] or 0)
        self.flags = set(parts[2].split(","))
        self.master = None if parts[3] == "-" else parts[3]
        self.link = parts[7]
        self.slots: Tuple[Tuple[int, int], ...] = tuple(
            (int(s.split("-")[0]), int(s.split("-")[-1]))
            for s in parts[8:] if not s.startswith("[")
        )

    @property
    def role(self) -> str:
        return "master" if "master" in self.flags else "replica"

    @property
    def healthy(self) -> bool:
        bad = {"fail", "fail?", "handshake", "noaddr"}
        return not (self.flags & bad) and self.link == "connected"

    @property
    def shape(self) -> Tuple[str, str, Optional[str], Tuple[Tuple[int, int], ...]]:
        return (self.id, self.role, self.master, self.slots)

    def apply_to(self, node: RedisNode) -> None:
        node.node_id, node.role, node.master_id, node.slots = self.shape


class ClusterTopology:
    """A Redis Cluster of ``masters`` shards with ``replicas`` replicas each."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        masters: int = 3,
        replicas: int = 1,
        node_timeout: int = 1500,
        use_cli: Optional[bool] = None,
    ) -> None:
        """``use_cli``: ``None`` uses redis-cli when one runs, ``False`` creates by hand."""
        self.binary = binary
        self.directory = Path(directory)
        self.n_masters = masters
        self.n_replicas = replicas
        self.node_timeout = node_timeout
        self.use_cli = use_cli
        self.nodes = [
            RedisNode(binary, self.directory / f"node{i}", f"node{i}",
                      "master" if i < masters else "replica")
            for i in range(masters * (1 + replicas))
        ]
        self.cli_log = self.directory / "redis-cli.log"
        self.timings: Dict[str, float] = {}
        self._cluster_port = False

    # -- start / stop --

    def start(self, timeout: float = 60.0) -> None:
        """Start the nodes, create the cluster, wait until it serves every shard."""
        started = time.monotonic()
        deadline = started + timeout
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cluster_port = server_version(self.binary) >= (7, 0)
        cli = None if self.use_cli is False else find_redis_cli(self.binary)
        if self.use_cli and cli is None:
            raise RuntimeError("use_cli=True but no working redis-cli was found")
        if self.n_masters < 3:
            cli = None  # redis-cli --cluster create insists on 3 masters
        try:
            _launch_all(self.nodes, self._argv, self._pick_ports, deadline)
            self.timings["launch"] = time.monotonic() - started
            if cli:
                self._create_with_cli(cli, deadline)
            else:
                self._create_by_hand(deadline)
            self._wait_healthy(deadline, "the new cluster is not healthy")
        except (RuntimeError, AssertionError, OSError, subprocess.SubprocessError) as exc:
            self.stop()
            raise RuntimeError(f"Redis cluster did not start: {exc}\n{self.logs()}") from None
        self.timings["start"] = time.monotonic() - started

    def stop(self, grace: float = 5.0) -> None:
        """TERM every process we started, KILL those still alive after ``grace``."""
        _stop_all(self.nodes, grace)

    def _pick_ports(self, node: RedisNode, taken: Set[int]) -> None:
        if self._cluster_port:  # Redis 7+: bus port chosen freely with --cluster-port
            node.port, node.bus_port = _take_port(taken), _take_port(taken)
            return
        while True:  # older servers: the bus listens on port + 10000
            _pick_port(node, taken)
            if node.port + 10000 < 65536 and _port_is_free(node.port + 10000):
                node.bus_port = node.port + 10000
                taken.add(node.bus_port)
                return

    def _argv(self, node: RedisNode) -> List[str]:
        argv = [
            self.binary,
            "--port", str(node.port),
            "--bind", HOST,
            "--protected-mode", "no",
            "--dir", str(node.directory),
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", "yes",
            "--repl-diskless-sync-delay", "0",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout),
            "--cluster-replica-validity-factor", "0",
        ]
        if node.bus_port != node.port + 10000:
            argv += ["--cluster-port", str(node.bus_port)]
        return argv

    def _create_with_cli(self, cli: str, deadline: float) -> None:
        argv = [cli, "--cluster", "create", *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
        with open(self.cli_log, "ab") as log:
            done = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=max(deadline - time.monotonic(), 1.0),
            )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create exited with {done.returncode}")

    def _create_by_hand(self, deadline: float) -> None:
        """CLUSTER ADDSLOTS(RANGE), SET-CONFIG-EPOCH, MEET, then REPLICATE."""
        import redis

        masters = self.nodes[: self.n_masters]
        for node in self.nodes:
            node.node_id = node.call("CLUSTER", "MYID")
        for epoch, node in enumerate(self.nodes, start=1):
            node.call("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for i, node in enumerate(masters):
            first, last = i * SLOTS // len(masters), (i + 1) * SLOTS // len(masters) - 1
            try:
                node.call("CLUSTER", "ADDSLOTSRANGE", first, last)
            except redis.ResponseError:  # Redis < 7.0
                for start in range(first, last + 1, 1000):
                    node.call("CLUSTER", "ADDSLOTS", *range(start, min(start + 1000, last + 1)))
        first_node = self.nodes[0]
        for node in self.nodes[1:]:
            first_node.call("CLUSTER", "MEET", HOST, node.port, node.bus_port)
        ids = {n.node_id for n in self.nodes}

        def everyone_known() -> bool:
            for node in self.nodes:
                entries = self._view(node)
                if entries is None or {e.id for e in entries if e.healthy} != ids:
                    return False
            return True

        _wait(everyone_known, deadline, "nodes did not all meet")
        for i, node in enumerate(self.nodes[self.n_masters:]):
            node.call("CLUSTER", "REPLICATE", masters[i % len(masters)].node_id)

    # -- state --

    @staticmethod
    def _view(node: RedisNode) -> Optional[List[_Entry]]:
        text = node.call("CLUSTER", "NODES")
        if text is None:
            return None
        return [_Entry(line) for line in text.splitlines() if line.strip()]

    def _healthy(self) -> bool:
        """Every live node: cluster_state ok, the same view of live nodes, links up.

        Updates each live node's ``node_id``, ``role``, ``master_id`` and ``slots``.
        """
        alive = [n for n in self.nodes if n.alive]
        agreed: Optional[List[_Entry]] = None
        for node in alive:
            if _info(node.call("CLUSTER", "INFO") or "").get("cluster_state") != "ok":
                return False
            by_port = {e.port: e for e in self._view(node) or []}
            view = [by_port[n.port] for n in alive if n.port in by_port]
            if len(view) != len(alive) or not all(e.healthy for e in view):
                return False
            if agreed is not None and [e.shape for e in agreed] != [e.shape for e in view]:
                return False
            agreed = view
        if agreed is None:
            return False
        for node, entry in zip(alive, agreed):
            entry.apply_to(node)
        if len({entry.id for entry in agreed if entry.slots}) != self.n_masters:
            return False  # some shard is served by no live master
        replicas = [n for n in alive if n.role == "replica"]
        return all(n.info().get("master_link_status") == "up" for n in replicas)

    def _serves_every_shard(self) -> bool:
        import redis

        client = self.client(socket_timeout=2.0)
        try:
            for node in self.masters(refresh=False):
                key = self.key_for(node, "probe")
                client.set(key, "1")
                if client.get(key) != b"1":
                    return False
                client.delete(key)
            return True
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _wait_healthy(self, deadline: float, message: str) -> None:
        _wait(self._healthy, deadline, f"{message} (cluster state, node views, replica links)")
        _wait(self._serves_every_shard, deadline, f"{message} (a RedisCluster client)")

    def refresh(self) -> None:
        """Update ``role`` / ``node_id`` / ``slots`` of the live nodes from a live node's view."""
        for node in self.nodes:
            entries = self._view(node) if node.alive else None
            if entries is None:
                continue
            by_port = {e.port: e for e in entries}
            for other in self.nodes:
                entry = by_port.get(other.port)
                if entry is not None and other.alive:
                    entry.apply_to(other)
            return

    def masters(self, refresh: bool = True) -> List[RedisNode]:
        """Live masters that own slots, in slot order."""
        if refresh:
            self.refresh()
        owners = [n for n in self.nodes if n.alive and n.role == "master" and n.slots]
        return sorted(owners, key=lambda n: n.slots[0])

    def replicas(self, refresh: bool = True) -> List[RedisNode]:
        """Live replicas."""
        if refresh:
            self.refresh()
        return [n for n in self.nodes if n.alive and n.role == "replica"]

    @property
    def ports(self) -> List[int]:
        """Every node's port (masters and replicas, live or not)."""
        return [n.port for n in self.nodes]

    def url(self) -> str:
        """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`` listing the live masters."""
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.masters())

    def client(self, **kwargs: Any) -> Any:
        """A ``redis.cluster.RedisCluster`` whose startup nodes are all live nodes."""
        from redis.cluster import ClusterNode, RedisCluster

        kwargs.setdefault("socket_connect_timeout", 1.0)
        startup = [ClusterNode(HOST, n.port) for n in self.nodes if n.alive]
        return RedisCluster(startup_nodes=startup, **kwargs)

    def flush(self) -> None:
        """FLUSHALL on every live master."""
        for node in self.masters():
            node.call("FLUSHALL")

    def master_for_key(self, key: str) -> RedisNode:
        """The live master that owns ``key``'s slot."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for node in self.masters():
            if any(first <= slot <= last for first, last in node.slots):
                return node
        raise RuntimeError(f"no live master owns slot {slot} (key {key!r})")

    def key_for(self, node: RedisNode, prefix: str = "k") -> str:
        """A key ``{<prefix>N}`` whose slot ``node`` owned when last seen."""
        from redis.crc import key_slot

        for n in range(100000):
            key = f"{{{prefix}{n}}}"
            slot = key_slot(key.encode())
            if any(first <= slot <= last for first, last in node.slots):
                return key
        raise RuntimeError(f"{node.name} owns no slots")

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Until every live replica acknowledged its master's current offset."""
        deadline = time.monotonic() + timeout
        replicas = self.replicas()
        for master in self.masters(refresh=False):
            mine = [r for r in replicas if r.master_id == master.node_id]
            _wait(lambda m=master, r=mine: _replicas_caught_up(m, r), deadline,
                  lambda m=master: f"replicas of {m.name} did not catch up\n{self.logs()}")

    # -- failures --

    def kill_master_for_key(self, key: str) -> RedisNode:
        """SIGKILL the master owning ``key`` and return it (its ``slots`` still set)."""
        node = self.master_for_key(key)
        node.kill()
        return node

    def wait_failover(self, old_node: RedisNode, timeout: float = 30.0) -> RedisNode:
        """Until a replica took over ``old_node``'s slots and the survivors are healthy.

        Returns the promoted node.
        """
        started = time.monotonic()
        deadline = started + timeout
        old_slots = old_node.slots
        try:
            self._wait_healthy(deadline, f"no failover of {old_node.name}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
        self.timings["failover"] = time.monotonic() - started
        for node in self.masters(refresh=False):
            if node is not old_node and old_slots and node.slots[0] == old_slots[0]:
                return node
        raise AssertionError(f"no live master owns {old_node.name}'s slots\n{self.logs()}")

    def restart(self, node: RedisNode, wait: bool = True, timeout: float = 30.0) -> RedisNode:
        """Start a killed node again (same port, directory, nodes.conf).

        With ``wait``, until it rejoined (as a replica, after a failover) and the
        cluster is healthy again.
        """
        if node.alive:
            raise RuntimeError(f"{node.name} is still running")
        started = time.monotonic()
        deadline = started + timeout
        node.launch(node.argv)
        _wait(lambda: not node.alive or node.call("PING"), deadline,
              lambda: f"{node.name} did not answer PING\n{self.logs()}")
        if not node.alive:
            raise RuntimeError(f"{node.name} exited (port {node.port} taken?)\n{self.logs()}")
        if wait:
            try:
                self._wait_healthy(deadline, f"{node.name} did not rejoin")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.logs()}") from None
        self.timings["restart"] = time.monotonic() - started
        return node

    def logs(self, lines: int = 20) -> str:
        """The tail of every node's log (and redis-cli's), for assertion messages."""
        return _logs(self.nodes, lines, [self.cli_log])

    log = logs


# -- sentinel ----------------------------------------------------------------


class SentinelTopology:
    """A master, one replica and three sentinels monitoring them as ``name``.

    ``down_after_ms`` defaults to 2000: with 1000, in 4 failovers out of 25 the
    leading sentinel marked the *new* master down too, 1 s after its
    ``+switch-master``, reached ODOWN in the same millisecond and started a
    second failover (compare redis/redis#8607, with 500 ms).
    """

    def __init__(
        self,
        binary: str,
        directory: Path,
        name: str = "mymaster",
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.name = name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data_nodes = [
            RedisNode(binary, self.directory / "master", "master", "master"),
            RedisNode(binary, self.directory / "replica", "replica", "replica"),
        ]
        self.sentinels = [
            RedisNode(binary, self.directory / f"sentinel{i}", f"sentinel{i}", "sentinel")
            for i in range(sentinels)
        ]
        self.killed: Optional[RedisNode] = None
        self.timings: Dict[str, float] = {}
        self.unsettled = "not started"  # why the sentinels' view was not as expected

    # -- start / stop --

    def start(self, timeout: float = 60.0) -> None:
        """Start master, replica (in sync), then the sentinels; wait until they agree."""
        started = time.monotonic()
        deadline = started + timeout
        master, replica = self.data_nodes
        try:
            _launch_all([master], self._data_argv, _pick_port, deadline)
            _launch_all([replica], self._data_argv, _pick_port, deadline)
            _wait(lambda: _replicas_caught_up(master, [replica]), deadline,
                  "the replica did not sync")
            _launch_all(self.sentinels, self._sentinel_argv, _pick_port, deadline)
            _wait(lambda: self._settled(master.address), deadline,
                  lambda: f"the sentinels did not settle: {self.unsettled}")
        except (RuntimeError, AssertionError, OSError) as exc:
            self.stop()
            raise RuntimeError(f"Redis sentinel did not start: {exc}\n{self.logs()}") from None
        self.timings["start"] = time.monotonic() - started

    def stop(self, grace: float = 5.0) -> None:
        """TERM the sentinels, then the data nodes; KILL what outlives ``grace``."""
        _stop_all(self.sentinels, grace)
        _stop_all(self.data_nodes, grace)

    def _data_argv(self, node: RedisNode) -> List[str]:
        argv = [
            self.binary,
            "--port", str(node.port),
            "--bind", HOST,
            "--dir", str(node.directory),
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
            "--appendonly", "yes",
            "--repl-diskless-sync-delay", "0",
        ]
        if node is not self.data_nodes[0]:
            argv += ["--replicaof", HOST, str(self.data_nodes[0].port)]
        return argv

    def _sentinel_argv(self, node: RedisNode) -> List[str]:
        node.directory.mkdir(parents=True, exist_ok=True)
        conf = node.directory / "sentinel.conf"
        name = self.name
        conf.write_text(
            f"port {node.port}\n"
            f"bind {HOST}\n"
            f"dir {node.directory}\n"
            'logfile ""\n'
            f"sentinel monitor {name} {HOST} {self.data_nodes[0].port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        return [self.binary, str(conf), "--sentinel"]

    # -- state --

    def _settled(self, master: Address) -> bool:
        """Every live sentinel: ``master`` up, every other live data node a healthy
        replica, and all the other live sentinels known. ``self.unsettled`` says why not."""
        expected = {n.port for n in self.data_nodes if n.alive and n.port != master[1]}
        live_sentinels = [s for s in self.sentinels if s.alive]
        for sentinel in live_sentinels:
            self.unsettled = self._unsettled(sentinel, master, expected, len(live_sentinels) - 1)
            if self.unsettled:
                return False
        return bool(live_sentinels)

    def _unsettled(
        self, sentinel: RedisNode, master: Address, replicas: Set[int], others: int
    ) -> str:
        where = f"{sentinel.name} ({HOST}:{sentinel.port})"
        state = _pairs(sentinel.call("SENTINEL", "MASTER", self.name) or {})
        seen = (state.get("ip"), int(state.get("port", 0)), state.get("flags"))
        if seen != (*master, "master"):
            return f"{where} sees the master as {seen}, not {master}"
        entries = [_pairs(r) for r in sentinel.call("SENTINEL", "REPLICAS", self.name) or []]
        good = {
            int(r["port"]) for r in entries
            if r.get("flags") == "slave" and r.get("master-link-status") == "ok"
            and int(r.get("master-port", 0)) == master[1]
        }
        if not replicas <= good:
            seen_replicas = [(r.get("port"), r.get("flags"), r.get("master-port"),
                              r.get("master-link-status")) for r in entries]
            return f"{where} sees replicas {seen_replicas}, expected ports {sorted(replicas)}"
        entries = [_pairs(r) for r in sentinel.call("SENTINEL", "SENTINELS", self.name) or []]
        if len([r for r in entries if r.get("flags") == "sentinel"]) < others:
            seen_sentinels = [(r.get("port"), r.get("flags")) for r in entries]
            return f"{where} sees sentinels {seen_sentinels}, expected {others}"
        return ""

    @property
    def sentinel_addresses(self) -> List[Address]:
        return [s.address for s in self.sentinels]

    def url(self, db: int = 0) -> str:
        """``redis+sentinel://127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3/<db>?master=<name>``."""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{db}?master={self.name}"

    def master_address(self) -> Address:
        """The master's address according to the first sentinel that answers."""
        for sentinel in self.sentinels:
            reply = sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
            if reply:
                return (str(reply[0]), int(reply[1]))
        raise RuntimeError(f"no sentinel knows {self.name}\n{self.logs()}")

    def node_at(self, address: Address) -> RedisNode:
        """The data node listening on ``address``."""
        for node in self.data_nodes:
            if node.address == tuple(address):
                return node
        raise KeyError(address)

    def sentinel(self, **kwargs: Any) -> Any:
        """A ``redis.sentinel.Sentinel`` on our sentinels (``kwargs`` go to the data nodes)."""
        from redis.sentinel import Sentinel

        kwargs.setdefault("socket_connect_timeout", 1.0)
        kwargs.setdefault("socket_timeout", 5.0)
        return Sentinel(self.sentinel_addresses, **kwargs)

    def master_client(self, db: int = 0, **kwargs: Any) -> Any:
        """``Sentinel.master_for(name, db=db)``: a client that follows failovers."""
        return self.sentinel(**kwargs).master_for(self.name, db=db)

    def replica_client(self, db: int = 0, **kwargs: Any) -> Any:
        """``Sentinel.slave_for(name, db=db)``: a client on a replica."""
        return self.sentinel(**kwargs).slave_for(self.name, db=db)

    def flush(self) -> None:
        """FLUSHALL on the current master."""
        self.node_at(self.master_address()).call("FLUSHALL")

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Until every live replica acknowledged the master's current offset."""
        master = self.node_at(self.master_address())
        replicas = [n for n in self.data_nodes if n.alive and n is not master]
        _wait(lambda: _replicas_caught_up(master, replicas), time.monotonic() + timeout,
              lambda: f"the replica did not catch up\n{self.logs()}")

    # -- failures --

    def kill_master(self) -> Address:
        """SIGKILL the current master's process; return its address."""
        address = self.master_address()
        node = self.node_at(address)
        node.kill()
        self.killed = node
        return address

    def wait_failover(self, old_address: Address, timeout: float = 30.0) -> Address:
        """Until every live sentinel names another master and it answers ROLE as master."""
        started = time.monotonic()

        def promoted() -> Optional[Address]:
            answers = set()
            for sentinel in self.sentinels:
                if sentinel.alive:
                    reply = sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
                    answers.add((str(reply[0]), int(reply[1])) if reply else None)
            if len(answers) != 1:
                return None
            address = answers.pop()
            if address is None or address == tuple(old_address):
                return None
            role = self.node_at(address).call("ROLE")
            return address if role and role[0] == "master" else None

        new = _wait(promoted, started + timeout,
                    lambda: f"no failover away from {old_address}\n{self.logs()}")
        self.timings["failover"] = time.monotonic() - started
        for node in self.data_nodes:
            node.role = "master" if node.address == new else "replica"
        return new

    def restart_old_master(
        self, wait: bool = True, timeout: float = 60.0, as_replica: bool = False
    ) -> RedisNode:
        """Start the killed node again (same port and directory).

        It comes back as a master and the sentinels turn it into a replica of the
        new master about 20 s later (its 10 s INFO period plus an 8 s grace);
        ``as_replica`` starts it with ``--replicaof <current master>`` instead.
        With ``wait``, until it is a replica in sync that every sentinel lists.
        """
        node = self.killed
        if node is None or node.alive:
            raise RuntimeError("no killed master to restart")
        started = time.monotonic()
        argv = list(node.argv)
        if "--replicaof" in argv:  # the first replica's own start-up option
            at = argv.index("--replicaof")
            del argv[at:at + 3]
        if as_replica:
            host, port = self.master_address()
            argv += ["--replicaof", host, str(port)]
        node.launch(argv)
        self.killed = None

        def rejoined() -> bool:
            if not node.alive:
                raise RuntimeError(f"{node.name} exited\n{self.logs()}")
            info = node.info()
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                self.unsettled = (f"{node.name} has role {info.get('role')}, "
                                  f"master link {info.get('master_link_status')}")
                return False
            return self._settled(self.master_address())

        deadline = started + timeout
        _wait(lambda: not node.alive or node.call("PING"), deadline,
              lambda: f"{node.name} did not answer PING\n{self.logs()}")
        if not node.alive:
            raise RuntimeError(f"{node.name} exited (port {node.port} taken?)\n{self.logs()}")
        if wait:
            _wait(rejoined, deadline,
                  lambda: f"{node.name} is not a replica yet: {self.unsettled}\n{self.logs()}")
            node.role = "replica"
        self.timings["restart"] = time.monotonic() - started
        return node

    def logs(self, lines: int = 20) -> str:
        """The tail of every data node's and sentinel's log, for assertion messages."""
        return _logs([*self.data_nodes, *self.sentinels], lines)

    log = logs
