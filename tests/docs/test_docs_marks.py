"""How the runnable examples are found in the reST sources and how their output is checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_examples import blocks, check_output, point_at  # noqa: E402

PAGE = """\
Title
=====

.. code-block:: python
   :caption: main.py
   :class: runnable

   app = 1

       indented = True

Text between.

.. code-block:: console
   :class: runnable

   $ multiq -A main worker -l info
   (a line that is not a command)

.. code-block:: text
   :class: runnable-output any-order

   hello ... world

.. code-block:: python

   print("not runnable")
"""


def test_blocks_are_read_with_their_marks(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(PAGE)
    found = list(blocks(page))
    assert [(b.lang, b.runnable, b.expected_output) for b in found] == [
        ("python", True, False), ("console", True, False), ("text", False, True),
        ("python", False, False)]
    assert found[0].file_name == "main.py"
    assert found[0].code == "app = 1\n\n    indented = True\n"
    assert found[1].commands() == [["multiq", "-A", "main", "worker", "-l", "info"]]
    assert "any-order" in found[2].classes
    assert found[3].code == 'print("not runnable")\n'


def test_output_lines_must_appear_in_order() -> None:
    check_output("a\nc ... e\n", "a\nb\nc d e\n", "here")
    with pytest.raises(AssertionError, match="expected 'a'"):
        check_output("c\na\n", "a\nc\n", "here")
    check_output("c\na\n", "a\nc\n", "here", ordered=False)
    with pytest.raises(AssertionError, match="here: expected 'x'"):
        check_output("x\n", "a\n", "here", ordered=False)


def test_examples_are_pointed_at_the_test_redis() -> None:
    text = 'broker="redis://127.0.0.1:6379/1", backend="redis://127.0.0.1:6379/2"'
    assert point_at(text, "redis://127.0.0.1:4242/") == \
        'broker="redis://127.0.0.1:4242/1", backend="redis://127.0.0.1:4242/2"'
