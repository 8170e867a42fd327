"""Beat: the entries with their last and next runs, the leader, and the dynamic entries'
add / enable / disable / remove (pages and API)."""
from __future__ import annotations

from typing import Any, Dict, List

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from multiq.dashboard import actions
from multiq.dashboard.render import action, dash_of, data, page


def schedule(dash: Any) -> Dict[str, Any]:
    view = dash.beat()
    return {"entries": view.entries(), "leader": view.leader()}


async def beat_page(request: Request) -> Response:
    found = await run_in_threadpool(schedule, dash_of(request))
    return page(request, "beat.html", **found, title="Beat")


async def api_beat(request: Request) -> Response:
    return data(await run_in_threadpool(schedule, dash_of(request)))


async def _add(request: Request, params: Dict[str, Any]) -> Any:
    return await run_in_threadpool(actions.beat_add, dash_of(request), params)


async def _change(request: Request, params: Dict[str, Any]) -> Any:
    p = request.path_params
    return await run_in_threadpool(actions.beat_change, dash_of(request), p["name"],
                                   p["change"])


def _back(request: Request) -> str:
    return f"{dash_of(request).settings.prefix}/beat"


def routes() -> List[Route]:
    post = ["POST"]
    return [
        Route("/beat", beat_page),
        Route("/beat/add", action(False, _back)(_add), methods=post),
        Route("/beat/{name}/{change}", action(False, _back)(_change), methods=post),
        Route("/api/beat", api_beat),
        Route("/api/beat/add", action(True)(_add), methods=post),
        Route("/api/beat/{name}/{change}", action(True)(_change), methods=post),
    ]
