"""Pages from Jinja2 templates (autoescaped: a task's repr cannot inject markup), and the
wrapper every action route goes through (read-only refusal, CSRF check, the answer as JSON
for the API or as a redirect for a form)."""
from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from multiq.config import mask_url
from multiq.dashboard.actions import ActionError
from multiq.dashboard.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_refusal,
    new_csrf_token,
    parse_cookies,
)

HERE = Path(__file__).resolve().parent
Handler = Callable[[Request, Dict[str, Any]], Awaitable[Any]]


@functools.cache
def environment() -> jinja2.Environment:
    """The templates, autoescaped, with the filters they use."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True)
    env.filters["when"] = when
    env.filters["seconds"] = seconds
    env.filters["masked"] = mask_url
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["pretty"] = pretty
    return env


def dash_of(request: Request) -> Any:
    return request.app.state.dashboard


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (a new one when it has none yet)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token:
        token = getattr(request.state, "new_csrf", None) or new_csrf_token()
        request.state.new_csrf = token
    return token


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    dash = dash_of(request)
    app = dash.app
    token = csrf_token(request)
    body = environment().get_template(template).render(
        prefix=dash.settings.prefix, read_only=dash.read_only, csrf=token,
        csrf_field=CSRF_FIELD, app_name=app.main or "", message=request.query_params.get("msg"),
        error=request.query_params.get("err"),
        broker=mask_url(str(app.conf.broker_url or "")),
        backend=mask_url(str(app.conf.result_backend or "")), **context)
    response = HTMLResponse(body, status_code=status)
    if getattr(request.state, "new_csrf", None):
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            path=dash.settings.prefix or "/")
    return response


def data(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status)


def action(api: bool, back: Optional[Callable[[Request], str]] = None
           ) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Make ``handler(request, params)`` a POST route: 403 in read-only mode or on a failed
    CSRF check, 400 on :class:`ActionError`; the result as JSON (``api``) or a redirect to
    ``back(request)`` with the outcome in ``msg`` / ``err``."""

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def route(request: Request) -> Response:
            dash = dash_of(request)
            if dash.read_only:
                return _refused(api, 403, "read-only dashboard: actions are disabled")
            try:
                params = await _params(request)
            except ActionError as exc:
                return _refused(api, 400, str(exc))
            submitted = str(params.pop(CSRF_FIELD, "") or
                            request.headers.get(CSRF_HEADER, ""))
            why = csrf_refusal(request.scope.get("state", {}).get("auth"),
                               {k.lower(): v for k, v in request.headers.items()},
                               parse_cookies(request.headers.get("cookie", "")), submitted)
            if why:
                return _refused(api, 403, why)
            try:
                result = await handler(request, params)
            except ActionError as exc:
                if api:
                    return data({"error": str(exc)}, 400)
                return _back(request, back, err=str(exc))
            if api:
                return data(result)
            return _back(request, back, msg=str(result.get("ok", "done")))
        return route
    return decorate


async def _params(request: Request) -> Dict[str, Any]:
    """Form fields, a JSON object body, and the query string (in that order of weight)."""
    out: Dict[str, Any] = dict(request.query_params)
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ActionError("the body is not a JSON object")
        out.update(body)
    elif kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        for key in form:
            values = form.getlist(key)
            out[key] = values if key.endswith("[]") else values[-1]
    return out


def _refused(api: bool, status: int, why: str) -> Response:
    if api:
        return data({"error": why}, status)
    return Response(f"{why}\n", status_code=status, media_type="text/plain")


def _back(request: Request, back: Optional[Callable[[Request], str]], **outcome: str) -> Response:
    if back is not None:
        target = back(request)
    else:
        parts = urlsplit(request.headers.get("referer", ""))
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("msg", "err")])
        target = parts.path + (f"?{query}" if query else "")
    prefix = dash_of(request).settings.prefix
    if not target.startswith(prefix + "/"):
        target = prefix + "/"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode(outcome)}", status_code=303)


def when(epoch: Any) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS.fff`` UTC; ``-`` when not a time."""
    try:
        stamp = dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def seconds(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{number * 1000:.1f} ms" if number < 1 else f"{number:.2f} s"


def pretty(value: Any) -> str:
    """A stored value for display: JSON indented when it is JSON, else as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        flat = json.dumps(value, sort_keys=True, default=repr)
        return flat if len(flat) <= 100 else json.dumps(value, indent=2, sort_keys=True,
                                                        default=repr)
    except (TypeError, ValueError):
        return repr(value)
