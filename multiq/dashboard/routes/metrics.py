"""``/metrics``: the Prometheus text of :func:`multiq.metrics.scrape`, when that module is
installed with this version of multiq (404 with a clear text until then)."""
from __future__ import annotations

import importlib
from typing import List

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from multiq.dashboard.render import dash_of

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def metrics(request: Request) -> Response:
    try:
        module = importlib.import_module("multiq.metrics")
    except ModuleNotFoundError as exc:
        if exc.name != "multiq.metrics":
            raise
        return PlainTextResponse("Prometheus metrics are not available: this multiq has no "
                                 "multiq.metrics module\n", status_code=404)
    dash = dash_of(request)
    text = await run_in_threadpool(module.scrape, dash.app, dash.settings.metric_prefix)
    return Response(text, media_type=CONTENT_TYPE)


def routes() -> List[Route]:
    return [Route("/metrics", metrics)]
