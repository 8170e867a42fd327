"""Sphinx configuration of the multiq documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are errors).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]

# The Django parts of the API reference import models: give them a settings module.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")

import multiq  # noqa: E402

project = "multiq"
author = "the multiq authors"
copyright = "the multiq authors"  # noqa: A001 - Sphinx's name
release = version = multiq.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "multiq_settings",
]

exclude_patterns = ["_build"]
templates_path: list = []
html_theme = "furo"
html_title = f"multiq {release}"
html_static_path: list = []
default_role = "literal"

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Names in signatures and docstrings that are not documented here are left as text.
nitpicky = False
# The usage lines of ``multiq inspect`` / ``control`` name ``<app's own>`` commands: the
# shell lexer stops at the quote and falls back to plain text, which is what we want.
suppress_warnings = ["ref.python", "misc.highlighting_failure"]
# No network at build time: the Python standard library is linked only when its
# inventory is at hand, which it is not here.
intersphinx_mapping: dict = {}

try:  # the Django models of the API reference need an app registry
    import django

    django.setup()
except ImportError:  # Django is optional: those pages then say that they cannot import
    pass
