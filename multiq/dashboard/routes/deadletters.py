"""Dead letters: list, show one, requeue one or all, purge (pages and API)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from multiq.dashboard import actions
from multiq.dashboard.render import action, dash_of, data, page

LIMIT = 500


def listing(dash: Any, queue: str = "") -> Dict[str, Any]:
    letters = dash.deadletters()
    queues = [queue] if queue else letters.queues()
    entries = letters.list(queues, LIMIT)
    return {"counts": letters.count(queues), "entries": [e.summary() for e in entries],
            "shown": len(entries)}


def entry(dash: Any, queue: str, entry_id: str) -> Optional[Dict[str, Any]]:
    """One entry's fields, its envelope's header and its decoded arguments."""
    from multiq.broker.deadletter import DeadLetterNotFound
    from multiq.cli.deadletter import entry_details

    try:
        letter = dash.deadletters().get(f"{queue}/{entry_id}")
    except (DeadLetterNotFound, ValueError):
        return None
    return {"queue": queue, **entry_details(letter, dash.app.conf.accept_content)}


async def letters_page(request: Request) -> Response:
    found = await run_in_threadpool(listing, dash_of(request),
                                    request.query_params.get("queue", ""))
    return page(request, "deadletters.html", **found, title="Dead letters")


async def letter_page(request: Request) -> Response:
    p = request.path_params
    found = await run_in_threadpool(entry, dash_of(request), p["queue"], p["entry_id"])
    if found is None:
        return page(request, "missing.html", 404, what="dead-letter entry", title="Not found")
    return page(request, "deadletter.html", letter=found, title="Dead letter")


async def api_letters(request: Request) -> Response:
    return data(await run_in_threadpool(listing, dash_of(request),
                                        request.query_params.get("queue", "")))


async def api_letter(request: Request) -> Response:
    p = request.path_params
    found = await run_in_threadpool(entry, dash_of(request), p["queue"], p["entry_id"])
    return data(found) if found is not None else data({"error": "no such entry"}, 404)


def _refs(params: Dict[str, Any]) -> List[str]:
    refs = params.get("refs[]") or params.get("refs") or params.get("ref") or []
    return [str(r) for r in ([refs] if isinstance(refs, str) else refs)]


def _queues(params: Dict[str, Any]) -> Optional[List[str]]:
    queue = str(params.get("queue") or "").strip()
    return [queue] if queue else None


async def _requeue(request: Request, params: Dict[str, Any]) -> Any:
    return await run_in_threadpool(actions.requeue, dash_of(request), _refs(params))


async def _requeue_all(request: Request, params: Dict[str, Any]) -> Any:
    return await run_in_threadpool(actions.requeue_all, dash_of(request), _queues(params))


async def _purge(request: Request, params: Dict[str, Any]) -> Any:
    return await run_in_threadpool(actions.purge_deadletters, dash_of(request),
                                   _queues(params))


def _back(request: Request) -> str:
    return f"{dash_of(request).settings.prefix}/deadletters"


def routes() -> List[Route]:
    post = ["POST"]
    return [
        Route("/deadletters", letters_page),
        Route("/deadletter/{queue}/{entry_id}", letter_page),
        Route("/deadletters/requeue", action(False, _back)(_requeue), methods=post),
        Route("/deadletters/requeue-all", action(False, _back)(_requeue_all), methods=post),
        Route("/deadletters/purge", action(False, _back)(_purge), methods=post),
        Route("/api/deadletters", api_letters),
        Route("/api/deadletter/{queue}/{entry_id}", api_letter),
        Route("/api/deadletters/requeue", action(True)(_requeue), methods=post),
        Route("/api/deadletters/requeue-all", action(True)(_requeue_all), methods=post),
        Route("/api/deadletters/purge", action(True)(_purge), methods=post),
    ]
