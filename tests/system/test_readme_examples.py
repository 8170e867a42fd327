"""The examples of README.rst, run as printed against a real node.

Every literal block of the README follows a comment that says what it is:

    .. example: file main.py     the file, written to an empty directory
    .. example: append main.py   more of that file
    .. example: worker           the command that starts the node (it stays up)
    .. example: python           a program run with ``python`` next to main.py
    .. example: shell            commands run by ``bash -e``, one after the other
    .. example: pytest NAME      a test file, run by pytest with the multiq plugin
    .. example: skip (REASON)    not run here; the reason names what covers it

One node for the module, on the session's redis-server; ``MULTIQ_BROKER_URL`` /
``MULTIQ_RESULT_BACKEND`` point the README's ``main.py`` at it (they win over the URLs
written in it, as the README says). Runnable blocks run in the README's order.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from helpers import REPO_ROOT, ProcessTracker, find_redis_server, tail  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

README = REPO_ROOT / "README.rst"
MARKER = re.compile(r"^\.\. example: (\S+)(?: (.*))?$")
KINDS = ("file", "append", "worker", "python", "shell", "pytest", "skip")
RUN = ("python", "shell", "pytest")


@dataclass
class Example:
    line: int  # of the block's first line in README.rst
    kind: Optional[str]
    arg: str
    code: str

    def __str__(self) -> str:
        return f"README.rst:{self.line} ({self.kind})"


def examples(text: str) -> List[Example]:
    """Each literal block (after a paragraph ending ``::``) with the marker before it."""
    lines, found, marker = text.split("\n"), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = MARKER.match(line)
        if match:
            marker = (match.group(1), match.group(2) or "")
        elif line.rstrip().endswith("::") and not line.startswith(".."):
            start = i + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = start
            while end < len(lines) and (not lines[end].strip() or lines[end][:1] == " "):
                end += 1
            code = textwrap.dedent("\n".join(lines[start:end])).strip("\n") + "\n"
            kind, arg = marker or (None, "")
            found.append(Example(start + 1, kind, arg, code))
            marker, i = None, end
            continue
        i += 1
    return found


ALL = examples(README.read_text())


def test_every_block_says_what_it_is() -> None:
    unmarked = [str(e) for e in ALL if e.kind not in KINDS]
    assert unmarked == [], f"blocks without a known '.. example:' marker: {unmarked}"
    for e in ALL:
        if e.kind == "skip":
            assert re.fullmatch(r"\(.{10,}\)", e.arg), f"{e}: say why it is not run"
        if e.kind in ("file", "append", "pytest"):
            assert e.arg, f"{e}: name the file"
    assert sum(e.kind == "worker" for e in ALL) == 1
    assert sum(e.kind in RUN for e in ALL) >= 8  # most of "Using it" runs


@pytest.fixture(scope="module")
def readme(redis_server, tmp_path_factory) -> Iterator[Dict[str, object]]:
    """main.py as the README builds it, and its node started as the README starts it."""
    flush = redis_server.client()
    flush.flushall()
    flush.close()
    work = tmp_path_factory.mktemp("readme")
    files: Dict[str, str] = {}
    for e in ALL:
        if e.kind == "file":
            files[e.arg] = e.code
        elif e.kind == "append":
            files[e.arg] += "\n\n" + e.code
    for name, code in files.items():
        (work / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTIQ_")}
    env.update(MULTIQ_BROKER_URL=redis_server.url(1), MULTIQ_RESULT_BACKEND=redis_server.url(2),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1",
               MULTIQ_TEST_REDIS_SERVER=find_redis_server())
    (command,) = [e.code.strip() for e in ALL if e.kind == "worker"]
    log = work / "worker.log"
    tracker = ProcessTracker()
    with open(log, "ab") as out:
        node = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=work, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    tracker.track(node)
    try:
        from helpers import wait_until

        wait_until(lambda: "ready" in log.read_text() or node.poll() is not None, timeout=30)
        assert node.poll() is None, f"the README's worker exited:\n{tail(log.read_text())}"
        yield {"dir": work, "env": env, "log": log}
    finally:
        tracker.cleanup()


@pytest.mark.parametrize("example", [e for e in ALL if e.kind in RUN], ids=str)
def test_the_example_runs_as_printed(readme, example: Example, tmp_path) -> None:
    work, env = readme["dir"], readme["env"]
    if example.kind == "python":
        argv = [sys.executable, "-c", example.code]
    elif example.kind == "shell":
        argv = ["bash", "-e", "-o", "pipefail", "-c", example.code]
    else:
        (tmp_path / example.arg).write_text(example.code)
        work = tmp_path
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", example.arg]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=50,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (
        f"{example} failed ({done.returncode}):\n{example.code}\n--- stdout\n{done.stdout}"
        f"\n--- stderr\n{done.stderr}\n--- worker log\n{tail(readme['log'].read_text())}")
    assert "Traceback" not in done.stderr, done.stderr
