"""Sphinx directives that render multiq's settings tables from the code, so they cannot drift.

``.. multiq-settings::`` renders :data:`multiq.config.DEFAULTS`: name, default and the line
of :data:`settings_text.DESCRIPTIONS`. The build fails when a setting has no description, or
a description names no setting. ``.. multiq-celery-settings::`` renders
:data:`multiq.celerysettings.CELERY_SETTINGS`: Celery's names that multiq accepts and what
each does here.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective


def check_descriptions(defaults: Iterable[str], descriptions: Dict[str, str]) -> None:
    """Raise :class:`ExtensionError` unless every setting has exactly one description."""
    names = set(defaults)
    missing = sorted(names - set(descriptions))
    unknown = sorted(set(descriptions) - names)
    problems = []
    if missing:
        problems.append("settings without a description in docs/_ext/settings_text.py: "
                        + ", ".join(missing))
    if unknown:
        problems.append("descriptions of settings that multiq.config.DEFAULTS does not have: "
                        + ", ".join(unknown))
    if problems:
        raise ExtensionError("; ".join(problems))


def _literal(value: Any) -> str:
    text = repr(value).replace("\\", "\\\\")
    return f"``{text}``" if text else ""


def list_table(header: Sequence[str], rows: Iterable[Sequence[str]],
               widths: str = "auto") -> List[str]:
    """The lines of a reST ``list-table`` with ``header`` and ``rows``."""
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        first, *rest = row
        lines.append(f"   * - {first}")
        lines.extend(f"     - {cell}" for cell in rest)
    return lines


class _TableDirective(SphinxDirective):
    has_content = False

    def lines(self) -> List[str]:
        raise NotImplementedError

    def run(self) -> List[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.lines(), source=self.get_source_info()[0]),
                                self.content_offset, container)
        return list(container.children)


class SettingsTable(_TableDirective):
    """Every multiq setting with its default and description."""

    def lines(self) -> List[str]:
        from settings_text import DESCRIPTIONS

        from multiq.config import DEFAULTS

        check_descriptions(DEFAULTS, DESCRIPTIONS)
        rows = [(f"``{name}``", _literal(DEFAULTS[name]), DESCRIPTIONS[name])
                for name in sorted(DEFAULTS)]
        return list_table(("Setting", "Default", "What it does"), rows, "25 20 55")


class CelerySettingsTable(_TableDirective):
    """Celery's setting names that are not multiq's own, and what each does here."""

    def lines(self) -> List[str]:
        from multiq.celerysettings import CELERY_SETTINGS, HONOURED

        rows = []
        for name in sorted(CELERY_SETTINGS):
            reason = CELERY_SETTINGS[name]
            what = "Honoured, as in Celery." if reason == HONOURED else \
                f"No effect: {reason.replace('`', '``')}."
            rows.append((f"``{name}``", what))
        return list_table(("Celery setting", "In multiq"), rows, "35 65")


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("multiq-settings", SettingsTable)
    app.add_directive("multiq-celery-settings", CelerySettingsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
