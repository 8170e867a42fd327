"""The overview: throughput, percentiles, nodes, queues (``/``, ``/api/overview``,
``/api/queues/length``)."""
from __future__ import annotations

from typing import Any, Dict, List

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from multiq.dashboard import overview
from multiq.dashboard.render import dash_of, data, page


def snapshot(dash: Any) -> Dict[str, Any]:
    """Everything the overview shows, as JSON."""
    return {"nodes": overview.nodes(dash.broker),
            "queues": [q.to_json() for q in overview.queues(dash.broker, dash.queue_names())],
            "throughput": overview.throughput(dash.client, dash.keys),
            "percentiles": overview.percentiles(dash.client, dash.keys),
            "history": dash.search.count()}


async def home(request: Request) -> Response:
    snap = await run_in_threadpool(snapshot, dash_of(request))
    tp = snap["throughput"]
    recent = {"succeeded": sum(tp["succeeded"][-60:]), "failed": sum(tp["failed"][-60:])}
    conf = dash_of(request).app.conf.humanize(censored=True)
    return page(request, "overview.html", snap=snap, recent=recent, conf=conf,
                title="Overview")


async def api_overview(request: Request) -> Response:
    return data(await run_in_threadpool(snapshot, dash_of(request)))


async def api_queues(request: Request) -> Response:
    dash = dash_of(request)
    queues: List[Any] = await run_in_threadpool(
        lambda: overview.queues(dash.broker, dash.queue_names()))
    return data({"active_queues": [{"name": q.name, "messages": q.waiting, **q.to_json()}
                                   for q in queues]})


def routes() -> List[Route]:
    return [Route("/", home), Route("/api/overview", api_overview),
            Route("/api/queues/length", api_queues)]
