"""Logging in with the token (or a user and password) for a browser session, and out.

Neither is an action (both work in read-only mode) but both are CSRF-checked."""
from __future__ import annotations

from typing import List

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from multiq.dashboard.render import dash_of, page
from multiq.dashboard.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    same,
)


async def login_page(request: Request) -> Response:
    return page(request, "login.html", failed=False, title="Log in")


async def _form_checked(request: Request) -> dict:
    form = await request.form()
    sent, expected = str(form.get(CSRF_FIELD) or ""), request.cookies.get(CSRF_COOKIE, "")
    if not expected or not sent or not same(sent, expected):
        return {}
    return {k: str(v) for k, v in form.items()}


async def login(request: Request) -> Response:
    dash = dash_of(request)
    form = await _form_checked(request)
    if not form:
        return Response("missing or wrong CSRF token\n", status_code=403)
    if not dash.auth.check_login(form.get("token", ""), form.get("user", ""),
                                 form.get("password", "")):
        return page(request, "login.html", 401, failed=True, title="Log in")
    response = RedirectResponse(f"{dash.settings.prefix}/", status_code=303)
    response.set_cookie(SESSION_COOKIE, dash.auth.session(), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", path=dash.settings.prefix or "/")
    return response


async def logout(request: Request) -> Response:
    prefix = dash_of(request).settings.prefix
    if not await _form_checked(request):
        return Response("missing or wrong CSRF token\n", status_code=403)
    response = RedirectResponse(f"{prefix}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=prefix or "/")
    return response


def routes() -> List[Route]:
    return [Route("/login", login_page), Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
