"""The typed API: type checkers accept tests/typing/ok.py and report exactly the errors
marked ``# E: <code>[, <code>...]`` in tests/typing/bad.py (so a check that stops failing
fails here). mypy's error codes are compared; pyright's (when it is installed and node is
on PATH) only by line."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

if sys.version_info < (3, 10):
    pytest.skip("mypy is in the test extra on Python >= 3.10 only", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "typing"
OK, BAD = SAMPLES / "ok.py", SAMPLES / "bad.py"
_EXPECTED = re.compile(r"#\s*E:\s*([\w-]+(?:\s*,\s*[\w-]+)*)\s*$")
_REPORTED = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")

Errors = Set[Tuple[int, str]]


def expected(path: Path) -> Errors:
    """The (line, code) pairs marked ``# E: code[, code]`` in a sample."""
    marked: Errors = set()
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECTED.search(text)
        if match:
            marked.update((number, code.strip()) for code in match[1].split(","))
    return marked


def _run(args: List[str], env: Optional[Dict[str, str]] = None) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=280,
                          env=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # else: the checker failed
    return proc.stdout


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Errors]:
    """mypy's errors in each sample, by file name: one run checks both (the package is
    analysed once)."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy (the test extra) is not installed")
    out = _run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                "--cache-dir", str(tmp_path_factory.mktemp("mypy-cache")),
                "--no-error-summary", "--no-pretty", "--show-error-codes",
                "--hide-error-context", "--no-color-output", str(OK), str(BAD)])
    found: Dict[str, Errors] = {OK.name: set(), BAD.name: set()}
    for line in out.splitlines():
        match = _REPORTED.match(line)
        assert match or ": note: " in line, f"unexpected mypy output: {line}"
        if match:
            found.setdefault(Path(match["path"]).name, set()).add(
                (int(match["line"]), match["code"]))
    return found


@pytest.fixture(scope="module")
def pyright_errors() -> Dict[str, Errors]:
    """pyright's errors in each sample (its rule names in place of mypy's codes)."""
    if importlib.util.find_spec("pyright") is None or shutil.which("node") is None:
        pytest.skip("pyright (pip) and node are needed")
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no version check online
    out = _run([sys.executable, "-m", "pyright", "--outputjson", "--pythonpath",
                sys.executable, str(OK), str(BAD)], env=env)
    found: Dict[str, Errors] = {OK.name: set(), BAD.name: set()}
    for diag in json.loads(out)["generalDiagnostics"]:
        if diag["severity"] == "error":
            found.setdefault(Path(diag["file"]).name, set()).add(
                (diag["range"]["start"]["line"] + 1, diag.get("rule", "")))
    return found


def _lines(errors: Errors) -> Set[int]:
    return {line for line, _ in errors}


@pytest.mark.timeout(300)
def test_typed_sample_passes_mypy(mypy_errors: Dict[str, Errors]) -> None:
    assert mypy_errors[OK.name] == set()


@pytest.mark.timeout(300)
def test_mistyped_sample_fails_mypy_where_marked(mypy_errors: Dict[str, Errors]) -> None:
    marked = expected(BAD)
    assert len(marked) >= 10
    assert sorted(mypy_errors[BAD.name] - marked) == [], "errors not marked in bad.py"
    assert sorted(marked - mypy_errors[BAD.name]) == [], "marked errors mypy did not report"


@pytest.mark.timeout(300)
def test_typed_sample_passes_pyright(pyright_errors: Dict[str, Errors]) -> None:
    assert pyright_errors[OK.name] == set()


@pytest.mark.timeout(300)
def test_mistyped_sample_fails_pyright_where_marked(pyright_errors: Dict[str, Errors]) -> None:
    marked, found = _lines(expected(BAD)), _lines(pyright_errors[BAD.name])
    assert sorted(found - marked) == [], "errors not marked in bad.py"
    assert sorted(marked - found) == [], "marked lines pyright did not report"
