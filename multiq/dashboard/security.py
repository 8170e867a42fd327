"""Who may use the dashboard, and how an action proves it was meant.

Authentication (when credentials are configured), on every request:

- ``Authorization: Basic`` with one of the ``--basic-auth`` pairs (browsers prompt for it);
- ``Authorization: Bearer <--auth-token>`` (API clients);
- the ``multiq_session`` cookie that ``/login`` sets after the token was typed in: its
  value is an expiry signed with a key derived from the credentials (it survives a restart
  of the dashboard, not a change of credentials).

CSRF: every action is a POST that must carry the ``multiq_csrf`` cookie's value in its
``csrf_token`` form field or ``X-CSRF-Token`` header (double submit; the cookie is
``SameSite=Strict`` and ``HttpOnly``, the page hands the value to its forms and scripts),
and an ``Origin``, when sent, must be the dashboard's own. API clients are exempt when
they authenticate with the bearer token, or with basic auth from outside a browser (no
``Origin``, ``Sec-Fetch-Site`` or cookie): a browser cannot be made to send either by
another site.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any, Awaitable, Callable, Dict, Optional
from urllib.parse import urlsplit

from multiq.dashboard.settings import Credentials

SESSION_COOKIE = "multiq_session"
CSRF_COOKIE = "multiq_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
Scope = Dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class Authenticator:
    """Checks a request's credentials; signs and checks session cookies."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        material = repr((credentials.basic, credentials.token)).encode()
        self.key = hashlib.sha256(b"multiq-dashboard-session\0" + material).digest() \
            if credentials.required else secrets.token_bytes(32)

    def identify(self, headers: Dict[str, str], cookies: Dict[str, str]) -> Optional[str]:
        """How the request authenticated: ``"none"`` (nothing required), ``"basic"``,
        ``"bearer"``, ``"session"``; None when it did not."""
        if not self.credentials.required:
            return "none"
        scheme, _, value = headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self._basic(value.strip()):
            return "basic"
        if scheme == "bearer" and self.credentials.token \
                and same(value.strip(), self.credentials.token):
            return "bearer"
        if self.valid_session(cookies.get(SESSION_COOKIE, "")):
            return "session"
        return None

    def _basic(self, value: str) -> bool:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        ok = False
        for u, p in self.credentials.basic:  # every pair compared: no timing hint
            ok |= same(user, u) & same(password, p)
        return ok

    def check_login(self, token: str = "", user: str = "", password: str = "") -> bool:
        if self.credentials.token and token and same(token, self.credentials.token):
            return True
        ok = False
        for u, p in self.credentials.basic:
            ok |= same(user, u) & same(password, p)
        return bool(user) and ok

    def session(self, now: Optional[float] = None) -> str:
        expiry = str(int((time.time() if now is None else now) + SESSION_SECONDS))
        return f"{expiry}.{self._sign(expiry)}"

    def valid_session(self, value: str, now: Optional[float] = None) -> bool:
        expiry, _, signature = value.partition(".")
        if not expiry.isdigit() or not signature:
            return False
        fresh = int(expiry) > (time.time() if now is None else now)
        return same(signature, self._sign(expiry)) and fresh

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


class Guard:
    """ASGI middleware: refuses unauthenticated requests (401, or a redirect to the login
    page for a browser when only a token is configured) and adds the security headers."""

    def __init__(self, app: ASGIApp, auth: Authenticator, prefix: str) -> None:
        self.app = app
        self.auth = auth
        self.prefix = prefix
        self.open_paths = {f"{prefix}/login", f"{prefix}/static/dash.css"}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        how = self.auth.identify(headers, parse_cookies(headers.get("cookie", "")))
        scope.setdefault("state", {})["auth"] = how

        async def send_with_headers(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)

        if how is None and scope["path"] not in self.open_paths:
            await self._refuse(scope, headers, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _refuse(self, scope: Scope, headers: Dict[str, str], send: Any) -> None:
        wants_html = "text/html" in headers.get("accept", "")
        api = scope["path"].startswith(f"{self.prefix}/api/")
        creds = self.auth.credentials
        if wants_html and not api and not creds.basic:
            status, extra, body = 303, [(b"location", f"{self.prefix}/login".encode())], b""
        else:
            status, body = 401, b"Authentication required\n"
            challenge = b'Basic realm="multiq dashboard"' if creds.basic else b"Bearer"
            extra = [(b"www-authenticate", challenge)]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), *extra]})
        await send({"type": "http.response.body", "body": body})


def csrf_refusal(auth: Optional[str], headers: Dict[str, str], cookies: Dict[str, str],
                 submitted: str) -> Optional[str]:
    """Why an action request fails the CSRF check, or None when it passes."""
    browser = any(h in headers for h in ("origin", "sec-fetch-site", "cookie"))
    if auth == "bearer" or (auth == "basic" and not browser):
        return None
    origin = headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != headers.get("host", ""):
        return "cross-origin request refused"
    if origin == "null":
        return "cross-origin request refused"
    expected = cookies.get(CSRF_COOKIE, "")
    if not expected or not submitted or not same(expected, submitted):
        return "missing or wrong CSRF token"
    return None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def parse_cookies(header: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in out:
            out[name] = value
    return out


def _headers(scope: Scope) -> Dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def same(a: str, b: str) -> bool:
    """Constant-time equality of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())
