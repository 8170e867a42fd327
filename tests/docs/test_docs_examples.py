"""The documentation's runnable examples run as printed, against a real worker and Redis.

Each page with ``:class: runnable`` blocks is one test (see ``docs_examples.py`` for the
marks): its files are written to ``tmp_path``, its ``multiq ... worker`` commands start real
worker processes there, its programs and other commands run to completion, and what they
print is checked against the page's ``runnable-output`` blocks. The examples name the Redis
at 127.0.0.1:6379; the test points them at the session's private server instead.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_examples import (  # noqa: E402
    DOCS,
    Block,
    blocks,
    check_output,
    example_steps,
    point_at,
    runnable_pages,
)
from helpers import REPO_ROOT, ProcessTracker  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

PAGES = runnable_pages()
STEP_TIMEOUT = 30.0


class PageRun:
    """Runs one page's example steps in a directory of its own."""

    def __init__(self, cwd: Path, env: Dict[str, str], redis_base: str, start_worker: Any,
                 tracker: ProcessTracker) -> None:
        self.cwd = cwd
        self.env = env
        self.redis_base = redis_base
        self.start_worker = start_worker
        self.tracker = tracker
        self.output = ""

    def step(self, block: Block) -> None:
        if block.expected_output:
            check_output(block.code, self.output, block.where,
                         ordered="any-order" not in block.classes)
        elif block.lang == "python" and block.file_name:
            target = self.cwd / block.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(point_at(block.code, self.redis_base), encoding="utf-8")
        elif block.lang == "python":
            self.output = self.run([sys.executable, "-c", point_at(block.code,
                                                                   self.redis_base)], block)
        elif block.lang == "console":
            for argv in block.commands():
                self.command([point_at(arg, self.redis_base) for arg in argv], block)
        else:
            raise AssertionError(f"{block.where}: a runnable {block.lang} block is not run")

    def command(self, argv: List[str], block: Block) -> None:
        if argv[:1] == ["multiq"] and "worker" in argv and argv[1:2] == ["-A"]:
            app, rest = argv[2], argv[argv.index("worker") + 1:]
            pool = rest[rest.index("-P") + 1] if "-P" in rest else "prefork"
            self.start_worker(app, *rest, cwd=self.cwd, pool=pool)
        elif argv[:1] == ["multiq"]:
            self.output = self.run([sys.executable, "-m", "multiq", *argv[1:]], block)
        elif argv[:1] == ["python"]:
            self.output = self.run([sys.executable, *argv[1:]], block)
        else:
            raise AssertionError(f"{block.where}: cannot run {argv!r}")

    def run(self, argv: List[str], block: Block) -> str:
        done = subprocess.run(argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=STEP_TIMEOUT)
        output = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"{block.where}: {argv[-1] if argv[1:2] == ['-c'] else argv} exited "
            f"{done.returncode}:\n{output}")
        return output

    def track_pid_files(self) -> None:
        """Nodes started with ``multi`` are ours too: end them at teardown."""
        for pid_file in self.cwd.rglob("*.pid"):
            try:
                self.tracker.track(int(pid_file.read_text().split()[0]))
            except (ValueError, IndexError, OSError):
                continue


def test_the_guide_has_runnable_examples() -> None:
    """The marks are found: a guide without runnable examples would test nothing."""
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"guide/first-steps.rst", "guide/calling.rst", "guide/results.rst"} <= names
    steps = sum(1 for p in PAGES for b in blocks(p) if b.runnable)
    assert steps >= 20


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, worker_env: Dict[str, str],
                           redis_url: str, start_worker: Any,
                           process_tracker: ProcessTracker) -> None:
    env = dict(worker_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT)])
    run = PageRun(tmp_path, env, redis_url.rsplit("/", 1)[0] + "/", start_worker,
                  process_tracker)
    try:
        for block in example_steps(page):
            run.step(block)
    finally:
        run.track_pid_files()
