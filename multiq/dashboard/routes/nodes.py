"""Nodes: the live ones (their heartbeat key exists), one node's inspect replies, and the
control actions (pool, autoscale, consumers, limits, shutdown, restart)."""
from __future__ import annotations

from typing import Any, Dict, List

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from multiq.dashboard import actions, overview
from multiq.dashboard.render import action, dash_of, data, page

INSPECT = ("stats", "active", "reserved", "scheduled", "registered", "active_queues")
#: Flower's paths of the node actions -> ours
FLOWER_ACTIONS = {"shutdown": "shutdown", "pool/grow": "pool_grow",
                  "pool/shrink": "pool_shrink", "pool/autoscale": "autoscale",
                  "pool/restart": "restart", "queue/add-consumer": "add_consumer",
                  "queue/cancel-consumer": "cancel_consumer"}


def inspect_node(dash: Any, hostname: str) -> Dict[str, Any]:
    """The node's replies to the inspect questions (None where it did not answer)."""
    probe = dash.app.control.inspect(destination=[hostname], timeout=actions.REPLY_TIMEOUT)
    return {name: (getattr(probe, name)() or {}).get(hostname) for name in INSPECT}


def workers(dash: Any, refresh: bool, only: str = "") -> Dict[str, Any]:
    """Flower's ``/api/workers``: each live node's record, with its inspect replies when
    ``refresh``."""
    out: Dict[str, Any] = {}
    for info in overview.nodes(dash.broker):
        if only and info["hostname"] != only:
            continue
        out[info["hostname"]] = {**info, **(inspect_node(dash, info["hostname"])
                                            if refresh else {})}
    return out


async def nodes_page(request: Request) -> Response:
    found = await run_in_threadpool(overview.nodes, dash_of(request).broker)
    return page(request, "nodes.html", nodes=found, title="Nodes")


async def node_page(request: Request) -> Response:
    dash = dash_of(request)
    hostname = request.path_params["hostname"]
    live = [n for n in await run_in_threadpool(overview.nodes, dash.broker)
            if n["hostname"] == hostname]
    if not live:
        return page(request, "missing.html", 404, what=f"node {hostname} (not alive)",
                    title="Not found")
    replies = await run_in_threadpool(inspect_node, dash, hostname)
    return page(request, "node.html", node=live[0], replies=replies,
                actions=actions.NODE_ACTIONS, title=f"Node {hostname}")


async def api_workers(request: Request) -> Response:
    refresh = request.query_params.get("refresh", "").lower() in ("1", "true", "yes")
    found = await run_in_threadpool(workers, dash_of(request), refresh,
                                    request.query_params.get("workername", ""))
    return data(found)


def _node_action(name: str = "") -> Any:
    async def handler(request: Request, params: Dict[str, Any]) -> Any:
        what = name or request.path_params["action"]
        return await run_in_threadpool(actions.node, dash_of(request),
                                       request.path_params["hostname"], what, params)
    return handler


def _node_limit(kind: str) -> Any:
    async def handler(request: Request, params: Dict[str, Any]) -> Any:
        return await run_in_threadpool(actions.task_limit, dash_of(request), kind,
                                       str(params.get("task_name") or ""), params,
                                       request.path_params["hostname"])
    return handler


def _node_back(request: Request) -> str:
    return f"{dash_of(request).settings.prefix}/node/{request.path_params['hostname']}"


def routes() -> List[Route]:
    post = ["POST"]
    out = [
        Route("/nodes", nodes_page),
        Route("/node/{hostname}", node_page),
        Route("/node/{hostname}/rate_limit", action(False, _node_back)(_node_limit("rate_limit")),
              methods=post),
        Route("/node/{hostname}/time_limit", action(False, _node_back)(_node_limit("time_limit")),
              methods=post),
        Route("/node/{hostname}/{action}", action(False, _node_back)(_node_action()),
              methods=post),
        Route("/api/workers", api_workers),
        Route("/api/worker/{action}/{hostname}", action(True)(_node_action()), methods=post),
    ]
    out[-1:-1] = [Route(f"/api/worker/{path}/{{hostname}}", action(True)(_node_action(name)),
                        methods=post) for path, name in FLOWER_ACTIONS.items()]
    return out
