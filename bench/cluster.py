"""multiq's drain rate on a private 3-master Redis Cluster next to one private redis-server.

``python -m bench.cluster [-n 20000] [--runs 3] [--queues 3] [--pools solo,prefork2]
[--json PATH] [--quick]``

Both topologies run from the same redis-server binary on this machine, with no persistence.
Per run, topology and pool: flush, pre-queue N no-op tasks (results stored) spread evenly over
``--queues`` queues whose keys land on different cluster masters, start one worker node
consuming all of them, and time Popen -> all N result keys exist. Single server: broker db 1,
results db 2; cluster: one ``redis+cluster://`` URL for both. Every process started here is
stopped at the end, by pid.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from bench.apps.cluster_app import NOOP
from bench.drain import missing_keys
from bench.procs import ProcessError, Procs, tail
from bench.redisserver import RedisServer, find_redis_server, free_port
from multiq.keys import Keys, result_key

HOST = "127.0.0.1"
SLOTS = 16384
MASTERS = 3
POLL = 0.02  # s between completion checks
STALL = 60.0  # s without a new result: give up
APP = "bench.apps.cluster_app"
REPO_ROOT = Path(__file__).resolve().parents[1]
POOLS: Dict[str, Tuple[str, ...]] = {
    "solo": ("-P", "solo"),
    "threads4": ("-P", "threads", "-c", "4"),
    "prefork2": ("-P", "prefork", "-c", "2"),
}
TOPOLOGIES = ("single", "cluster")


# -- the cluster ---------------------------------------------------------------------------


def server_version(binary: str) -> Tuple[int, int]:
    """``(major, minor)`` of a redis-server / valkey-server binary, ``(0, 0)`` if unknown."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         timeout=10).stdout
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def find_redis_cli(binary: str) -> Optional[str]:
    """redis-cli / valkey-cli beside ``binary``, else on PATH, else None."""
    for name in ("redis-cli", "valkey-cli"):
        beside = Path(binary).parent / name
        if os.access(beside, os.X_OK):
            return str(beside)
    for name in ("redis-cli", "valkey-cli"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _text(client: Any, *command: str) -> str:
    """A command's raw reply as text (two-word commands, so redis-py parses nothing)."""
    reply = client.execute_command(*command)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _own_slots(client: Any) -> List[Tuple[int, int]]:
    """The slot ranges the node behind ``client`` serves (its ``myself`` line)."""
    for line in _text(client, "CLUSTER", "NODES").splitlines():
        parts = line.split()
        if len(parts) > 8 and "myself" in parts[2]:
            return [(int(s.split("-")[0]), int(s.split("-")[-1]))
                    for s in parts[8:] if not s.startswith("[")]
    return []


@dataclass
class Node:
    """One cluster node we started."""

    directory: Path
    port: int = 0
    bus_port: int = 0
    proc: Optional[subprocess.Popen] = None

    def client(self) -> Any:
        import redis

        return redis.Redis(host=HOST, port=self.port, socket_timeout=5.0)


@dataclass
class Cluster:
    """``MASTERS`` masters, no replicas, each in its own directory; stopped by ``stop()``."""

    binary: str
    directory: Path
    procs: Procs
    use_cli: bool = True
    nodes: List[Node] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> None:
        """Start the nodes, create the cluster, wait until every node says cluster_state:ok."""
        deadline = time.monotonic() + timeout
        bus_option = server_version(self.binary) >= (7, 0)
        self.nodes = [Node(self.directory / f"node{i}") for i in range(MASTERS)]
        taken: Set[int] = set()
        for node in self.nodes:
            self._launch(node, taken, bus_option, deadline)
        cli = find_redis_cli(self.binary) if self.use_cli else None
        if cli:
            self._create_with_cli(cli, deadline)
        else:
            self._create_by_hand()
        _until(self._ok, deadline, "cluster_state:ok on every node", self.logs)

    def _launch(self, node: Node, taken: Set[int], bus_option: bool, deadline: float,
                attempts: int = 5) -> None:
        """Start one node on free ports (new ports if it dies at once); wait for PING."""
        node.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            node.port = _take(taken, bus_beside=not bus_option)
            node.bus_port = _take(taken) if bus_option else node.port + 10000
            argv = [self.binary, "--port", str(node.port), "--bind", HOST,
                    "--dir", str(node.directory), "--daemonize", "no", "--logfile", "",
                    "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf"]
            if bus_option:
                argv += ["--cluster-port", str(node.bus_port)]
            node.proc = self.procs.start(argv, dict(os.environ), node.directory / "redis.log",
                                         cwd=node.directory)
            if _answers_ping(node, deadline):
                return
            self.procs.stop(node.proc)
        raise RuntimeError(f"cluster node did not start:\n{self.logs()}")

    def _create_with_cli(self, cli: str, deadline: float) -> None:
        argv = [cli, "--cluster", "create", *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes"]
        log = self.directory / "redis-cli.log"
        self.procs.run(argv, dict(os.environ), log, timeout=max(deadline - time.monotonic(), 1))

    def _create_by_hand(self) -> None:
        """Slots in even ranges (ADDSLOTS in chunks), distinct epochs, then MEET."""
        for i, node in enumerate(self.nodes):
            client = node.client()
            try:
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                first, last = i * SLOTS // MASTERS, (i + 1) * SLOTS // MASTERS - 1
                for low in range(first, last + 1, 1000):
                    client.execute_command("CLUSTER", "ADDSLOTS",
                                           *range(low, min(low + 1000, last + 1)))
                if i:
                    client.execute_command("CLUSTER", "MEET", HOST, self.nodes[0].port,
                                           self.nodes[0].bus_port)
            finally:
                client.close()

    def _ok(self) -> bool:
        for node in self.nodes:
            client = node.client()
            try:
                if "cluster_state:ok" not in _text(client, "CLUSTER", "INFO"):
                    return False
            finally:
                client.close()
        return True

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def client(self) -> Any:
        """A ``RedisCluster`` client (its pipelines run across slots)."""
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(HOST, n.port) for n in self.nodes])

    def slot_map(self) -> Dict[int, List[Tuple[int, int]]]:
        """Port of each master -> the slot ranges it serves, as each says itself."""
        out: Dict[int, List[Tuple[int, int]]] = {}
        for node in self.nodes:
            client = node.client()
            try:
                out[node.port] = _own_slots(client)
            finally:
                client.close()
        return out

    def each_master(self, action: Callable[[Any], Any]) -> List[Any]:
        """``action(client)`` on every master, in turn."""
        results = []
        for node in self.nodes:
            client = node.client()
            try:
                results.append(action(client))
            finally:
                client.close()
        return results

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                self.procs.stop(node.proc, grace=5.0)

    def logs(self, lines: int = 8) -> str:
        return "\n".join(f"==> {n.directory.name} :{n.port} <==\n"
                         f"{tail(n.directory / 'redis.log', lines)}" for n in self.nodes)


def _take(taken: Set[int], bus_beside: bool = False) -> int:
    """A free port not handed out before in this cluster (``bus_beside``: port + 10000, the
    bus port of servers before 7.0, must be free too)."""
    while True:
        port = free_port()
        if port in taken or port + 10000 in taken:
            continue
        if bus_beside and (port + 10000 > 65535 or not _free(port + 10000)):
            continue
        taken.add(port)
        return port


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers_ping(node: Node, deadline: float) -> bool:
    import redis

    client = node.client()
    try:
        while time.monotonic() < deadline:
            if node.proc is None or node.proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                pass
            time.sleep(0.02)
        return False
    finally:
        client.close()


def _until(predicate: Callable[[], bool], deadline: float, what: str,
           logs: Callable[[], str]) -> None:
    import redis

    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no {what} in time:\n{logs()}")


# -- topologies and queues -----------------------------------------------------------------


@dataclass
class Topology:
    """Where one drain runs: the worker's URLs and how to flush and watch the results."""

    name: str
    broker: str
    backend: str
    results: Callable[[], Any]  # a client of the result store (RedisCluster on the cluster)
    flush: Callable[[], None]
    stored: Callable[[], int]  # an upper bound on the results stored, cheap (DBSIZE)


def single_topology(server: RedisServer) -> Topology:
    def flush() -> None:
        server.flushall()

    def stored() -> int:
        client = server.client(2)
        try:
            return int(client.dbsize())
        finally:
            client.close()

    return Topology("single", server.url(1), server.url(2), lambda: server.client(2), flush,
                    stored)


def cluster_topology(cluster: Cluster) -> Topology:
    def flush() -> None:
        cluster.each_master(lambda c: c.flushall())

    def stored() -> int:  # results plus the few broker keys: a bound, not a count
        return sum(cluster.each_master(lambda c: int(c.dbsize())))

    url = cluster.url()
    return Topology("cluster", url, url, cluster.client, flush, stored)


def queue_names(cluster: Cluster, count: int) -> Tuple[List[str], Dict[str, int]]:
    """``count`` queue names spread evenly over the masters (by their band-0 stream's slot),
    and the master port of each."""
    slots = cluster.slot_map()
    ports = sorted(slots)
    want = {p: count // len(ports) + (1 if k < count % len(ports) else 0)
            for k, p in enumerate(ports)}
    client = cluster.client()
    keys = Keys()
    names: Dict[str, int] = {}
    try:
        for i in range(100 * count + 100):
            slot = int(client.keyslot(keys.stream(f"q{i}", 0)))
            port = next(p for p in ports if any(a <= slot <= b for a, b in slots[p]))
            if want[port]:
                want[port] -= 1
                names[f"q{i}"] = port
            if len(names) == count:
                return list(names), names
    finally:
        client.close()
    raise RuntimeError(f"could not place {count} queues on the masters {slots}")


# -- one drain -----------------------------------------------------------------------------


def prequeue(topology: Topology, queues: Sequence[str], n: int) -> List[str]:
    """Send ``n`` no-op tasks round-robin over ``queues`` in pipelined batches; their
    result keys."""
    from multiq import MultiQ

    app = MultiQ("bench_cluster_producer", broker=topology.broker, backend=topology.backend)
    try:
        with app.publish_batch():
            ids = [app.send_task(NOOP, args=[i], queue=queues[i % len(queues)]).id
                   for i in range(n)]
    finally:
        app.close()
    return [result_key(task_id) for task_id in ids]


def wait_results(topology: Topology, keys: List[str], proc: subprocess.Popen,
                 log: Path) -> float:
    """Poll every ``POLL`` s until all ``keys`` exist; return when (perf_counter).

    DBSIZE gates the exact check, so the EXISTS pipelines only run near the end.
    """
    client = topology.results()
    missing, last, changed = keys, -1, time.monotonic()
    try:
        while True:
            stored = topology.stored()
            if stored >= len(keys):
                missing = missing_keys(client, missing)
                if not missing:
                    return time.perf_counter()
            if stored != last:
                last, changed = stored, time.monotonic()
            if proc.poll() is not None:
                raise ProcessError(f"worker exited {proc.returncode}; log:\n{tail(log)}")
            if time.monotonic() - changed > STALL:
                raise ProcessError(f"stalled at {stored} keys; log:\n{tail(log)}")
            time.sleep(POLL)
    finally:
        client.close()


def worker_env(topology: Topology) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(BENCH_CLUSTER_BROKER_URL=topology.broker,
               BENCH_CLUSTER_BACKEND_URL=topology.backend)
    return env


def drain(topology: Topology, pool: str, queues: Sequence[str], n: int, procs: Procs,
          log: Path) -> float:
    """One measurement: seconds from the worker's Popen to all ``n`` results stored."""
    topology.flush()
    keys = prequeue(topology, queues, n)
    argv = [sys.executable, "-m", "multiq", "-A", APP, "worker", *POOLS[pool],
            "-Q", ",".join(queues), "-l", "warning"]
    env = worker_env(topology)
    start = time.perf_counter()
    proc = procs.start(argv, env, log, cwd=REPO_ROOT)
    try:
        return wait_results(topology, keys, proc, log) - start
    finally:
        procs.stop(proc)


# -- report --------------------------------------------------------------------------------


def summary(samples: List[Dict[str, Any]], pools: Sequence[str]) -> List[Dict[str, Any]]:
    """Median, min, max of tasks/s per pool and topology, and the cluster/single ratio."""
    rows = []
    for pool in pools:
        row: Dict[str, Any] = {"pool": pool}
        for topo in TOPOLOGIES:
            rates = [s["rate"] for s in samples if s["pool"] == pool and s["topology"] == topo]
            row[topo] = {"median": statistics.median(rates), "min": min(rates),
                         "max": max(rates), "runs": len(rates)} if rates else None
        if row["single"] and row["cluster"]:
            row["cluster_over_single"] = row["cluster"]["median"] / row["single"]["median"]
        rows.append(row)
    return rows


def _cell(figures: Optional[Dict[str, Any]]) -> str:
    if not figures:
        return "-"
    return f"{figures['median']:,.0f} ({figures['min']:,.0f}-{figures['max']:,.0f})"


def table(rows: List[Dict[str, Any]]) -> str:
    lines = [["pool", "single tasks/s (min-max)", "cluster tasks/s (min-max)", "cluster/single"]]
    for row in rows:
        ratio = row.get("cluster_over_single")
        lines.append([row["pool"], _cell(row["single"]), _cell(row["cluster"]),
                      f"{ratio:.2f}x" if ratio else "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=None, help="tasks per drain (20000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per setting (3)")
    parser.add_argument("--queues", type=int, default=3, help="queues, spread over masters")
    parser.add_argument("--pools", default="solo,prefork2",
                        help=f"comma list of {','.join(POOLS)}")
    parser.add_argument("--json", help="write meta, samples and summary here")
    parser.add_argument("--quick", action="store_true", help="N=2000, 1 run")
    parser.add_argument("--no-cli", action="store_true",
                        help="create the cluster by hand even when redis-cli exists")
    args = parser.parse_args(argv)
    args.n = args.n or (2000 if args.quick else 20000)
    args.runs = args.runs or (1 if args.quick else 3)
    args.pools = [p for p in args.pools.split(",") if p]
    unknown = set(args.pools) - set(POOLS)
    if unknown or args.queues < 1 or args.n < 1 or args.runs < 1:
        parser.error(f"bad settings (unknown pools: {sorted(unknown)})")
    return args


def measure(args: argparse.Namespace, topologies: List[Topology], queues: List[str],
            procs: Procs, workdir: Path) -> List[Dict[str, Any]]:
    """Every run, pool and topology, interleaved so drift hits all alike."""
    samples = []
    for run in range(1, args.runs + 1):
        for pool in args.pools:
            for topology in topologies:
                log = workdir / f"worker-{topology.name}-{pool}-{run}.log"
                seconds = drain(topology, pool, queues, args.n, procs, log)
                rate = args.n / seconds
                samples.append({"run": run, "pool": pool, "topology": topology.name,
                                "n": args.n, "seconds": seconds, "rate": rate})
                print(f"run {run}: {topology.name:7} {pool:9} N={args.n:,}: "
                      f"{rate:,.0f} tasks/s ({seconds:.2f} s)", flush=True)
    return samples


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop what we started


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    binary = find_redis_server()
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="multiq-bench-cluster-") as tmp:
        workdir = Path(tmp)
        (workdir / "single").mkdir()
        server = RedisServer(workdir / "single", binary)
        cluster = Cluster(binary, workdir / "cluster", procs, use_cli=not args.no_cli)
        try:
            server.start()
            cluster.start()
            queues, placement = queue_names(cluster, args.queues)
            topologies = [single_topology(server), cluster_topology(cluster)]
            meta = {"n": args.n, "runs": args.runs, "pools": args.pools, "queues": placement,
                    "redis": server.version(), "binary": binary, "cpus": os.cpu_count(),
                    "single": f"{HOST}:{server.port}", "cluster": cluster.url(),
                    "created_with": "redis-cli" if find_redis_cli(binary) and not args.no_cli
                    else "by hand"}
            print(f"multiq drain, N={args.n:,}, {args.runs} run(s), redis {meta['redis']}, "
                  f"{meta['cpus']} CPUs (one machine: compare rows of one run)")
            print(f"topologies: single {meta['single']} (broker db 1, results db 2); "
                  f"cluster {MASTERS} masters {meta['cluster']} ({meta['created_with']})")
            print("queues -> master port: " + ", ".join(f"{q}->{p}" for q, p in placement.items()))
            samples = measure(args, topologies, queues, procs, workdir)
        finally:
            procs.cleanup()
            cluster.stop()
            server.stop()
    rows = summary(samples, args.pools)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "samples": samples, "summary": rows}, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
