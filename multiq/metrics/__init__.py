"""Prometheus metrics of a multiq deployment, read from Redis.

The nodes count what they finish inside the writes they batch anyway
(:mod:`multiq.metrics.tally`, keys ``metrics:*`` in :mod:`multiq.keys`), so the counts
are exact across nodes and survive any restart; queue lengths and nodes are read live.
:func:`scrape` reads everything (:mod:`.collect`) and renders the text format
(:mod:`.exposition`); ``multiq metrics`` serves it over HTTP (:mod:`.server`).
"""
from __future__ import annotations

from typing import Any


def scrape(app: Any, prefix: str = "multiq") -> str:
    """The whole exposition text (Prometheus text format 0.0.4) of ``app``'s broker;
    ``prefix`` ``"celery"`` names the families as celery-exporter does."""
    from multiq.metrics.collect import collect
    from multiq.metrics.exposition import render

    return render(collect(app.broker), prefix)
