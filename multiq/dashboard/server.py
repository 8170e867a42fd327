"""The ASGI app (``create_app``) and serving it with uvicorn (``serve``)."""
from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, List

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from multiq.dashboard.context import Dashboard
from multiq.dashboard.render import HERE
from multiq.dashboard.security import Guard
from multiq.dashboard.settings import DashboardSettings


def all_routes() -> List[BaseRoute]:
    from multiq.dashboard.routes import beat, deadletters, metrics, nodes, overview, session, tasks

    out: List[BaseRoute] = []
    for family in (overview, tasks, nodes, deadletters, beat, session, metrics):
        out += family.routes()
    out.append(Mount("/static", app=StaticFiles(directory=str(HERE / "static")),
                     name="static"))
    return out


def create_app(app: Any, settings: DashboardSettings) -> Any:
    """The dashboard of ``app`` as an ASGI app: routes under ``settings.prefix``, behind
    the :class:`~multiq.dashboard.security.Guard`. Starting it (its lifespan) catches up
    on the events stream and starts following it."""
    dash = Dashboard(app, settings.check())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        dash.start()
        try:
            yield
        finally:
            dash.stop()

    routes = all_routes()
    if settings.prefix:
        routes = [Mount(settings.prefix, routes=routes)]
    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.dashboard = dash
    return Guard(web, dash.auth, settings.prefix)


def serve(app: Any, settings: DashboardSettings, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(create_app(app, settings), host=settings.address, port=settings.port,
                log_level=log_level, access_log=False, proxy_headers=False)
