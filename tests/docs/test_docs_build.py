"""The documentation builds with warnings as errors, and its generated references are whole.

Runs ``sphinx-build -W --keep-going -b html docs <tmp>`` as CI does; skipped (with the
reason) only when Sphinx or the theme is not installed (``pip install -e '.[docs]'``).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.timeout(120)


def _need(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for module in ("sphinx", "furo", "sphinx_click"):
        _need(module)
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / ".doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=110)
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout}{done.stderr}"
    yield out


def _text(page: Path) -> str:
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def test_every_setting_is_in_the_settings_reference(html: Path) -> None:
    from multiq.config import DEFAULTS

    text = _text(html / "reference" / "settings.html")
    missing = [name for name in DEFAULTS if name not in text]
    assert not missing, f"settings not in the reference: {missing}"


def test_every_command_is_in_the_cli_reference(html: Path) -> None:
    from multiq.cli import COMMANDS

    text = _text(html / "reference" / "cli.html")
    missing = [name for name in COMMANDS if f"multiq {name}" not in text]
    assert not missing, f"commands not in the CLI reference: {missing}"
    assert "--concurrency" in text and "--pidfile" in text  # options come from click


def test_the_api_reference_has_the_public_names(html: Path) -> None:
    text = _text(html / "reference" / "api.html")
    for name in ("MultiQ", "AsyncResult", "GroupResult", "Signature", "chord", "crontab",
                 "Signal", "MultiQError", "delay", "apply_async"):
        assert name in text, name


def test_every_guide_page_is_built(html: Path) -> None:
    sources = [p.relative_to(DOCS).with_suffix(".html") for p in DOCS.rglob("*.rst")
               if "_build" not in p.parts]
    missing = [str(p) for p in sources if not (html / p).is_file()]
    assert not missing


def test_a_setting_without_description_fails_the_build() -> None:
    _need("sphinx")
    sys.path.insert(0, str(DOCS / "_ext"))
    from multiq_settings import check_descriptions
    from sphinx.errors import ExtensionError

    check_descriptions(["a", "b"], {"a": "A.", "b": "B."})
    with pytest.raises(ExtensionError, match="without a description.*: b"):
        check_descriptions(["a", "b"], {"a": "A."})
    with pytest.raises(ExtensionError, match="does not have: c"):
        check_descriptions(["a"], {"a": "A.", "c": "C."})
