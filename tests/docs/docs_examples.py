"""The runnable examples of the documentation: found in the reST sources, without Sphinx.

A ``code-block`` with ``:class: runnable`` is part of its page's example, run in the order
of the page:

- ``python`` with a ``:caption:`` that is a file name (``main.py``, ``proj/tasks.py``): the
  file is written;
- ``python`` without one: a program, run until it exits (it must exit 0);
- ``console``: each ``$ `` line is a command. ``multiq -A APP worker ...`` starts a worker
  and waits until it is ready; other ``multiq`` and ``python`` commands run until they
  exit (0).

A ``code-block:: text`` with ``:class: runnable-output`` is what the step before it prints:
each of its lines must be found in that output, in order (``...`` matches anything), or in
any order when the block also has the class ``any-order``.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

DOCS = Path(__file__).resolve().parents[2] / "docs"
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S+)\s*$")
_OPTION = re.compile(r"^\s+:(?P<name>[\w-]+):\s*(?P<value>.*)$")
#: the host and port the examples use; a test points them at its own server
EXAMPLE_REDIS = "redis://127.0.0.1:6379/"


@dataclass
class Block:
    """One code block of a page: its language, options and text."""

    path: Path
    line: int
    lang: str
    code: str
    classes: List[str] = field(default_factory=list)
    caption: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(DOCS)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return "runnable" in self.classes

    @property
    def expected_output(self) -> bool:
        return "runnable-output" in self.classes

    @property
    def file_name(self) -> Optional[str]:
        """The file this block is, when its caption is a file name."""
        caption = (self.caption or "").strip()
        return caption if re.fullmatch(r"[\w./-]+\.\w+", caption) else None

    def commands(self) -> List[List[str]]:
        """The ``$ `` lines of a console block, split as a shell would."""
        return [shlex.split(line[2:]) for line in self.code.splitlines()
                if line.startswith("$ ")]


def _dedent(lines: Sequence[str]) -> str:
    body = list(lines)
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    indents = [len(x) - len(x.lstrip()) for x in body if x.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(x[cut:] for x in body) + "\n"


def blocks(path: Path) -> Iterator[Block]:
    """Every ``code-block`` of one reST file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        start, indent = i, len(match.group("indent"))
        block = Block(path, start, match.group("lang"), "")
        while i < len(lines) and (option := _OPTION.match(lines[i])):
            if option.group("name") == "class":
                block.classes = option.group("value").split()
            elif option.group("name") == "caption":
                block.caption = option.group("value")
            i += 1
        body: List[str] = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        block.code = _dedent(body)
        yield block


def runnable_pages() -> List[Path]:
    """The pages that have at least one runnable block."""
    return sorted(p for p in DOCS.rglob("*.rst")
                  if "_build" not in p.parts and any(b.runnable for b in blocks(p)))


def example_steps(path: Path) -> List[Block]:
    """The runnable blocks of a page and their expected outputs, in order."""
    return [b for b in blocks(path) if b.runnable or b.expected_output]


def point_at(text: str, redis_base: str) -> str:
    """``text`` with the examples' Redis (127.0.0.1:6379) replaced by ``redis_base``."""
    return text.replace(EXAMPLE_REDIS, redis_base)


def check_output(expected: str, output: str, where: str, ordered: bool = True) -> None:
    """Each line of ``expected`` must be in ``output`` (in order unless ``ordered`` is
    false); ``...`` matches anything."""
    lines = output.splitlines()
    at = 0
    for want in (x.strip() for x in expected.splitlines()):
        if not want:
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        at = at if ordered else 0
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            raise AssertionError(f"{where}: expected {want!r} in the output"
                                 f"{', in order' if ordered else ''}; the output was:\n{output}")
        at += 1
