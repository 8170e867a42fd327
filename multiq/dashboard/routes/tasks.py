"""Tasks: search, one task's page, and revoke / terminate / re-send (pages and API)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from multiq.dashboard import actions
from multiq.dashboard.render import action, dash_of, data, page
from multiq.dashboard.search import Query

PAGE_SIZES = (20, 50, 100, 200)


class BadQuery(ValueError):
    """A search parameter that is not what it should be."""


def parse_query(params: Any) -> Query:
    """A :class:`Query` from ``id``, ``name``, ``state``, ``node``, ``since``, ``until``
    (ISO 8601 or epoch seconds), ``offset``, ``limit`` (Flower's ``taskname``,
    ``workername`` too)."""
    try:
        offset = max(0, int(params.get("offset") or 0))
        limit = min(1000, max(1, int(params.get("limit") or 50)))
    except ValueError:
        raise BadQuery("offset and limit must be whole numbers") from None
    return Query(id=(params.get("id") or "").strip(),
                 name=(params.get("name") or params.get("taskname") or "").strip(),
                 state=(params.get("state") or "").strip().upper(),
                 node=(params.get("node") or params.get("workername") or "").strip(),
                 since=_time(params.get("since"), "since"),
                 until=_time(params.get("until"), "until"), offset=offset, limit=limit)


def _time(value: Optional[str], name: str) -> Optional[float]:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadQuery(f"{name} must be ISO 8601 (2024-05-01T12:00) or epoch seconds") \
            from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def task_info(dash: Any, task_id: str) -> Optional[Dict[str, Any]]:
    """The index's record merged with the result document: None when neither knows it."""
    record = dash.search.task(task_id)
    doc = dash.app.backend.get_meta(task_id) if dash.app.conf.result_backend else {}
    known = doc.get("status") not in (None, "PENDING") or "name" in doc
    if record is None and not known:
        return None
    info: Dict[str, Any] = {"id": task_id, **(record or {"timeline": [], "children": []})}
    info["state"] = info.get("state") or doc.get("status")
    if known:
        info["state"] = doc.get("status") or info["state"]
        for key in ("result", "traceback", "date_done", "name", "args", "kwargs", "retries",
                    "queue", "worker", "parent_id", "root_id", "group_id"):
            if doc.get(key) is not None:
                info["doc_" + key if key in ("result", "args", "kwargs") else key] = doc[key]
        info["children"] = sorted(set(info["children"]) | set(_child_ids(doc)))
    return info


def _child_ids(doc: Dict[str, Any]) -> List[str]:
    """Ids inside a result document's ``children`` (result tuples, nested for groups)."""
    out: List[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, (list, tuple)):
            if len(node) == 2 and isinstance(node[0], (list, tuple)) and node[0] \
                    and isinstance(node[0][0], str):
                out.append(node[0][0])
            for item in node:
                walk(item)
    walk(doc.get("children") or [])
    return out


def search(dash: Any, query: Query) -> Tuple[int, List[Dict[str, Any]]]:
    found: Tuple[int, List[Dict[str, Any]]] = dash.search.tasks(query)
    return found


async def tasks_page(request: Request) -> Response:
    dash = dash_of(request)
    try:
        query = parse_query(request.query_params)
    except BadQuery as exc:
        return page(request, "tasks.html", 400, rows=[], total=0, query=Query(),
                    names=[], bad=str(exc), params={}, base="", title="Tasks")
    total, rows = await run_in_threadpool(search, dash, query)
    names = await run_in_threadpool(dash.search.names)
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "msg", "err")}
    return page(request, "tasks.html", rows=rows, total=total, query=query, names=names,
                bad=None, params=params, base=urlencode(params), title="Tasks")


async def task_page(request: Request) -> Response:
    dash = dash_of(request)
    task_id = request.path_params["task_id"]
    info = await run_in_threadpool(task_info, dash, task_id)
    if info is None:
        return page(request, "missing.html", 404, what=f"task {task_id}", title="Not found")
    return page(request, "task.html", task=info, title=f"Task {task_id}")


async def api_tasks(request: Request) -> Response:
    try:
        query = parse_query(request.query_params)
    except BadQuery as exc:
        return data({"error": str(exc)}, 400)
    total, rows = await run_in_threadpool(search, dash_of(request), query)
    return data({"total": total, "offset": query.offset, "limit": query.limit, "tasks": rows})


async def api_task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    info = await run_in_threadpool(task_info, dash_of(request), task_id)
    if info is None:
        return data({"error": f"unknown task {task_id}"}, 404)
    return data(info)


async def api_result(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    dash = dash_of(request)
    if not dash.app.conf.result_backend:
        return data({"error": "no result backend is configured"}, 404)
    doc = await run_in_threadpool(dash.app.backend.get_meta, task_id)
    return data({"task-id": task_id, "state": doc.get("status", "PENDING"),
                 "result": doc.get("result"), "traceback": doc.get("traceback")})


def _task_back(request: Request) -> str:
    return f"{dash_of(request).settings.prefix}/task/{request.path_params['task_id']}"


def _revoke(terminate: Optional[bool]) -> Any:
    async def handler(request: Request, params: Dict[str, Any]) -> Any:
        kill = terminate if terminate is not None else _flag(params.get("terminate"))
        return await run_in_threadpool(actions.revoke, dash_of(request),
                                       request.path_params["task_id"], kill,
                                       str(params.get("signal") or "SIGTERM"))
    return handler


async def _resend(request: Request, params: Dict[str, Any]) -> Any:
    return await run_in_threadpool(actions.resend, dash_of(request),
                                   request.path_params["task_id"])


def _limit(kind: str) -> Any:
    async def handler(request: Request, params: Dict[str, Any]) -> Any:
        if "ratelimit" in params:  # Flower's name
            params["rate"] = params["ratelimit"]
        return await run_in_threadpool(actions.task_limit, dash_of(request), kind,
                                       request.path_params["task_name"], params,
                                       params.get("workername") or params.get("node"))
    return handler


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def routes() -> List[Route]:
    post = ["POST"]
    return [
        Route("/tasks", tasks_page),
        Route("/task/{task_id}", task_page),
        Route("/task/{task_id}/revoke", action(False, _task_back)(_revoke(False)),
              methods=post),
        Route("/task/{task_id}/terminate", action(False, _task_back)(_revoke(True)),
              methods=post),
        Route("/task/{task_id}/resend", action(False, _task_back)(_resend), methods=post),
        Route("/api/tasks", api_tasks),
        Route("/api/task/info/{task_id}", api_task),
        Route("/api/task/result/{task_id}", api_result),
        Route("/api/task/revoke/{task_id}", action(True)(_revoke(None)), methods=post),
        Route("/api/task/resend/{task_id}", action(True)(_resend), methods=post),
        Route("/api/task/rate-limit/{task_name}", action(True)(_limit("rate_limit")),
              methods=post),
        Route("/api/task/timeout/{task_name}", action(True)(_limit("time_limit")),
              methods=post),
    ]
