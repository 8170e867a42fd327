"""Client process of the bench: ``python -m bench.producer SYSTEM ACTION [options]``.

A fresh process per measurement, as in the reference: imports and connects first, then
times only the work. Prints one JSON object as its last stdout line.

Actions: ``enqueue`` (N one-by-one sends), ``batch`` (N sends in chunks through the bulk
API), ``latency`` (warm-up, then N sequential send->get; samples in ms), ``ping-wait``
(prints ``ready``, then pings until ``--expect`` nodes answer; prints when, as time.time()),
``canvas`` (warm-up, then one chord of ``--chord-size`` and one chain of ``--chain-length``
timed), ``roundtrips`` (warm-up, then a group and a chord of ``--chord-size``: the
``time.time()`` window of each, for the driver's counting proxy), ``scrape`` (multiq:
``--queues`` seeded queues, then N timed Prometheus scrapes; see bench.metrics).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench.clients import CLIENTS, Client, MultiqClient, NotAvailable


def _write_keys(path: Optional[str], keys: List[str]) -> None:
    if path:
        Path(path).write_text("\n".join(keys) + "\n")


def enqueue(client: Client, n: int, counted: bool, keys_path: Optional[str]) -> Dict[str, Any]:
    send = client.send
    keys: List[str] = []
    start = time.perf_counter()
    for i in range(n):
        keys.append(send(i, counted))
    seconds = time.perf_counter() - start
    _write_keys(keys_path, keys)
    return {"n": n, "seconds": seconds, "rate": n / seconds}


def batch(client: Client, n: int, counted: bool, chunk: int,
          keys_path: Optional[str]) -> Dict[str, Any]:
    keys: List[str] = []
    start = time.perf_counter()
    for low in range(0, n, chunk):
        keys.extend(client.send_batch(range(low, min(n, low + chunk)), counted))
    seconds = time.perf_counter() - start
    _write_keys(keys_path, keys)
    return {"n": n, "seconds": seconds, "rate": n / seconds, "chunk": chunk}


def latency(client: Client, n: int, warmup: int) -> Dict[str, Any]:
    for i in range(warmup):
        client.roundtrip(i)
    samples: List[float] = []
    for i in range(n):
        start = time.perf_counter()
        client.roundtrip(i)
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"n": n, "samples_ms": samples}


def alatency(client: Client, n: int, warmup: int) -> Dict[str, Any]:
    """:func:`latency` with the awaitable client (``await adelay()``, ``await aget()``), on
    one event loop."""
    import asyncio

    async def main() -> List[float]:
        for i in range(warmup):
            await client.aroundtrip(i)
        samples: List[float] = []
        for i in range(n):
            start = time.perf_counter()
            await client.aroundtrip(i)
            samples.append((time.perf_counter() - start) * 1000.0)
        return samples

    return {"n": n, "samples_ms": asyncio.run(main())}


def ping_wait(client: Client, expect: int, timeout: float) -> Dict[str, Any]:
    if client.ping(0.05) is None:
        raise NotAvailable("no broadcast ping")
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (client.ping(0.1) or 0) >= expect:
            return {"t_all": time.time()}
    raise TimeoutError(f"fewer than {expect} nodes answered ping within {timeout:.0f}s")


def _warm(client: Client, timeout: float) -> None:
    """Wait for the worker and warm every pool process and canvas path once."""
    assert client.chord(10, timeout) == 90
    assert client.chain(3, timeout) == 3


def canvas(client: Client, chord_size: int, chain_length: int,
           timeout: float) -> Dict[str, Any]:
    _warm(client, timeout)
    start = time.perf_counter()
    value = client.chord(chord_size, timeout)
    chord_s = time.perf_counter() - start
    assert value == chord_size * (chord_size - 1), value
    start = time.perf_counter()
    value = client.chain(chain_length, timeout)
    chain_s = time.perf_counter() - start
    assert value == chain_length, value
    return {"chord_s": chord_s, "chain_s": chain_s}


def roundtrips(client: Client, n: int, timeout: float, quiet: float = 0.3) -> Dict[str, Any]:
    """The windows of a group and of a chord of ``n``, after ``quiet`` s without work each
    (so the stragglers of what ran before, late acks say, fall outside)."""
    _warm(client, timeout)
    windows: Dict[str, Any] = {}
    for name, call, want in (("group", client.group, [2 * i for i in range(n)]),
                             ("chord", client.chord, n * (n - 1))):
        time.sleep(quiet)
        start = time.time()
        value = call(n, timeout)
        windows[name] = [start, time.time()]
        assert value == want, (name, value)
    return windows


def scrape(client: Client, queues: int, n: int) -> Dict[str, Any]:
    from bench import metrics

    if not isinstance(client, MultiqClient):
        raise NotAvailable("multiq's metrics only")
    app = client.app.app
    metrics.seed(app, queues)
    return metrics.time_scrapes(app, n)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer")
    parser.add_argument("system", choices=sorted(CLIENTS))
    parser.add_argument("action", choices=["enqueue", "batch", "latency", "alatency", "ping-wait",
                                                  "canvas", "roundtrips", "scrape"])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--counted", action="store_true", help="send noop_count")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--expect", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--chord-size", type=int, default=1000)
    parser.add_argument("--chain-length", type=int, default=100)
    parser.add_argument("--keys", help="write the result keys here, one a line")
    parser.add_argument("--task", default="", help="send this task of the app instead")
    parser.add_argument("--queues", type=int, default=100, help="queues the scrape reads")
    args = parser.parse_args(argv)
    try:
        client = CLIENTS[args.system]()
        client.task_name = args.task
        client.connect()
        if args.action == "enqueue":
            out = enqueue(client, args.n, args.counted, args.keys)
        elif args.action == "batch":
            out = batch(client, args.n, args.counted, args.chunk, args.keys)
        elif args.action == "latency":
            out = latency(client, args.n, args.warmup)
        elif args.action == "alatency":
            out = alatency(client, args.n, args.warmup)
        elif args.action == "canvas":
            out = canvas(client, args.chord_size, args.chain_length, args.timeout)
        elif args.action == "roundtrips":
            out = roundtrips(client, args.chord_size, args.timeout)
        elif args.action == "scrape":
            out = scrape(client, args.queues, args.n)
        else:
            out = ping_wait(client, args.expect, args.timeout)
    except NotAvailable as exc:
        out = {"na": str(exc)}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
