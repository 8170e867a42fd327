"""The printed table and the JSON file."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.results import FIGURES, Results, Series

HEADER = ("figure", "unit", "system", "setting", "median", "min-max", "runs", "multiq/peer",
          "note")


def fmt(value: Optional[float], unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit in ("tasks/s", "us/task"):
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:.1f}"
    return f"{value:.3f}" if unit == "s" and value < 1 else f"{value:.2f}"


def row(results: Results, s: Series) -> List[str]:
    unit = FIGURES[s.figure].unit
    setting = s.setting if s.compare_to == s.setting else f"{s.setting} (vs {s.compare_to})"
    ratio = results.ratio(s)
    note = s.note if s.n is None or s.figure.startswith("latency") else (
        f"N={s.n:,}{'; ' + s.note if s.note else ''}")
    if s.figure.startswith("latency") and s.n:
        note = f"{s.n:,} samples/run{'; ' + s.note if s.note else ''}"
    if s.na and not s.samples:
        return [s.figure, unit, s.system, setting, "n/a", "", "0", "", s.na]
    if not s.samples:
        return [s.figure, unit, s.system, setting, "FAILED", "", "0", "",
                (s.errors[-1].strip().splitlines() or ["?"])[0][:60]]
    low, high = min(s.samples), max(s.samples)
    span = f"{fmt(low, unit)}{' to ' if low < 0 else '-'}{fmt(high, unit)}"
    if s.errors:
        note = f"{note}; {len(s.errors)} failed" if note else f"{len(s.errors)} failed"
    return [s.figure, unit, s.system, setting, fmt(s.median, unit), span, str(len(s.samples)),
            f"{ratio:.2f}x" if ratio else "", note]


def table(results: Results) -> str:
    rows = [list(HEADER)] + [row(results, s) for s in results.ordered()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    right = {4, 5, 6, 7}
    lines = []
    previous = ""
    for k, r in enumerate(rows):
        if k > 1 and r[0] != previous:
            lines.append("")
        previous = r[0]
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("multiq/peer = multiq's median / the peer's, same setting (or the one in "
                 "'vs'); tasks/s: higher is better; ms, s, MB, us/task, trips/task: lower "
                 "is better.")
    return "\n".join(lines)


def to_json(results: Results, meta: Dict[str, Any], notes: List[str]) -> Dict[str, Any]:
    return {
        "meta": meta,
        "figures": {name: {"unit": f.unit, "higher_is_better": f.higher_is_better,
                           "description": f.description} for name, f in FIGURES.items()},
        "results": [s.to_json(results.ratio(s)) for s in results.ordered()],
        "notes": notes,
    }


def write_json(path: Path, data: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
