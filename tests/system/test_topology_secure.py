"""TLS and passwords on a Cluster and behind Sentinel: ``rediss+cluster://:pw@…`` and
``rediss+sentinel://:pw@…?sentinel_password=…`` carry a worker's tasks and results.

A private CA and server certificate (openssl) are made for 127.0.0.1; the servers accept
TLS only (``--port 0``) and want a password. The cluster is one master holding every slot,
enough to prove the client path; the Sentinel setup is a master and one sentinel.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import redis
import redis.cluster

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import find_redis_server, free_port, tail, wait_until  # noqa: E402
from sysq_support import TASK, runs, start  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.tls]

PASSWORD = "s3cret-pw"
SENTINEL_PASSWORD = "sentinel-pw"


def _certs(directory: Path) -> Dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    ca_key, ca, key, csr, cert = (str(directory / n) for n in
                                   ("ca.key", "ca.crt", "server.key", "server.csr",
                                    "server.crt"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=multiq test CA", "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-extfile", str(ext), "-out", cert],
    ):
        subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)
    return {"ca": ca, "key": key, "cert": cert}


class _Server:
    """One TLS-only redis-server (or sentinel) started for this module, stopped by pid."""

    def __init__(self, directory: Path, certs: Dict[str, str], *extra: str,
                 conf: Optional[Path] = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "redis.log"
        tls = ["--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
               "--tls-cert-file", certs["cert"], "--tls-key-file", certs["key"],
               "--tls-ca-cert-file", certs["ca"], "--tls-auth-clients", "no",
               "--save", "", "--dir", str(directory)]
        binary = find_redis_server()
        with open(self.log, "ab") as log:
            head = [binary, str(conf)] if conf is not None else [binary]
            self.proc = subprocess.Popen([*head, *tls, *extra], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=str(directory), start_new_session=True)

    def client(self, certs: Dict[str, str], password: str) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=password, ssl=True,
                           ssl_ca_certs=certs["ca"], socket_timeout=5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _answers(server: _Server, certs: Dict[str, str], password: str) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"redis-server exited:\n{tail(server.log.read_text())}")
    try:
        return bool(server.client(certs, password).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    return _certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def servers() -> Any:
    started: List[_Server] = []
    yield started
    for s in started:
        s.stop()


def _run_one_task(start_worker: Any, make_app: Any, rec: Any, url: str,
                  backend: str) -> None:
    record = rec.connection_pool.connection_kwargs
    start(start_worker, env={"MULTIQ_BROKER_URL": url, "MULTIQ_RESULT_BACKEND": backend,
                             "SYSQ_RECORD_URL": f"redis://{record['host']}:{record['port']}/"
                                                f"{record['db']}"})
    client = make_app("sysq_client", broker=url, backend=backend)
    r = client.send_task(TASK("record"), args=["over-tls"])
    assert r.get(timeout=20) is not None
    assert runs(rec) == ["over-tls"]


@pytest.mark.cluster
@pytest.mark.timeout(120)
def test_cluster_with_tls_and_a_password(certs: Dict[str, str], servers: Any,
                                         tmp_path: Path, start_worker: Any, make_app: Any,
                                         rec: Any) -> None:
    node = _Server(tmp_path / "cluster", certs, "--requirepass", PASSWORD,
                   "--masterauth", PASSWORD, "--cluster-enabled", "yes", "--tls-cluster",
                   "yes", "--cluster-config-file", "nodes.conf",
                   "--cluster-port", str(free_port()))
    servers.append(node)
    wait_until(lambda: _answers(node, certs, PASSWORD), timeout=20)
    admin = node.client(certs, PASSWORD)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    wait_until(lambda: b"cluster_state:ok" in admin.execute_command("CLUSTER", "INFO"),
               timeout=20, message="the one-node cluster did not become ok")
    url = (f"rediss+cluster://:{PASSWORD}@127.0.0.1:{node.port}"
           f"?ssl_ca_certs={certs['ca']}")
    _run_one_task(start_worker, make_app, rec, url, url)
    with pytest.raises((redis.RedisError, redis.exceptions.RedisClusterException)):
        redis.cluster.RedisCluster(host="127.0.0.1", port=node.port, ssl=True,
                                   ssl_ca_certs=certs["ca"]).ping()


@pytest.mark.sentinel
@pytest.mark.timeout(120)
def test_sentinel_with_tls_and_passwords(certs: Dict[str, str], servers: Any,
                                         tmp_path: Path, start_worker: Any, make_app: Any,
                                         rec: Any) -> None:
    master = _Server(tmp_path / "master", certs, "--requirepass", PASSWORD,
                     "--tls-replication", "yes")
    servers.append(master)
    wait_until(lambda: _answers(master, certs, PASSWORD), timeout=20)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
        f"sentinel auth-pass mymaster {PASSWORD}\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
        f"requirepass {SENTINEL_PASSWORD}\n"
        "tls-replication yes\n")
    sentinel = _Server(tmp_path / "sentinel", certs, "--sentinel", conf=conf)
    servers.append(sentinel)
    wait_until(lambda: _answers(sentinel, certs, SENTINEL_PASSWORD), timeout=20)
    watcher = sentinel.client(certs, SENTINEL_PASSWORD)
    wait_until(lambda: watcher.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                               "mymaster"), timeout=20,
               message="the sentinel does not name the master")
    url = (f"rediss+sentinel://:{PASSWORD}@127.0.0.1:{sentinel.port}/1?master=mymaster"
           f"&sentinel_password={SENTINEL_PASSWORD}&ssl_ca_certs={certs['ca']}")
    backend = url.replace("/1?", "/2?")
    _run_one_task(start_worker, make_app, rec, url, backend)
