"""Who may use the dashboard: basic auth and the bearer token refused when wrong or
missing, the login page's session, which clients need the CSRF token (browser sessions)
and which do not (the token, basic auth from outside a browser); a URL prefix; passwords
of the Redis URLs masked on every page and API answer; the command line refusing to
listen beyond loopback without authentication; a real ``multiq dashboard`` process."""
from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import ProcessTracker, RedisServer, find_redis_server  # noqa: E402
from sysq_dash_support import APPS, Server, csrf_of, dashboard, env_for  # noqa: E402

from multiq import MultiQ  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]
PASSWORD = "s3cret-redis-pw"
BASIC = (("ops", "pa55word"), ("viewer", "other"))
TOKEN = "t0ken-for-api"


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode())
            .decode()}


@pytest.fixture
def app(redis_url, backend_url, make_app):
    return make_app("sysq_dash", result_extended=True)


def test_basic_auth_refuses_missing_or_wrong_credentials(app):
    from multiq.dashboard.settings import Credentials

    with dashboard(app, credentials=Credentials(basic=BASIC)) as web:
        for path in ("/", "/tasks", "/api/overview", "/api/tasks", "/metrics"):
            response = web.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic"), path
        assert web.get("/", headers=basic("ops", "wrong")).status_code == 401
        assert web.get("/", headers=basic("nobody", "pa55word")).status_code == 401
        assert web.get("/", headers={"Authorization": "Basic !!!"}).status_code == 401
        assert web.get("/", headers=basic("ops", "pa55word")).status_code == 200
        assert web.get("/api/tasks", headers=basic("viewer", "other")).status_code == 200
        assert web.get("/static/dash.css").status_code == 200  # the login page's style
        assert web.get("/static/dash.js").status_code == 401


def test_token_login_session_and_logout(app):
    from multiq.dashboard.settings import Credentials

    with dashboard(app, credentials=Credentials(token=TOKEN)) as web:
        away = web.get("/tasks", headers={"Accept": "text/html"}, follow_redirects=False)
        assert away.status_code == 303 and away.headers["location"] == "/login"
        assert web.get("/api/tasks").status_code == 401
        assert web.get("/api/tasks", headers={"Authorization": "Bearer nope"}
                       ).status_code == 401
        assert web.get("/api/tasks", headers={"Authorization": f"Bearer {TOKEN}"}
                       ).status_code == 200
        token = csrf_of(web.get("/login").text)
        assert web.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF
        assert web.post("/login", data={"csrf_token": token, "token": "bad"}
                        ).status_code == 401
        assert "multiq_session" not in web.cookies
        done = web.post("/login", data={"csrf_token": token, "token": TOKEN},
                        follow_redirects=False)
        assert done.status_code == 303 and "multiq_session" in web.cookies
        assert web.get("/tasks").status_code == 200
        forged = dict(web.cookies)
        forged["multiq_session"] = "9999999999.deadbeef"
        assert httpx_client(web, forged).get("/tasks").status_code == 401
        web.post("/logout", data={"csrf_token": token})
        assert "multiq_session" not in web.cookies
        assert web.get("/api/tasks").status_code == 401


def httpx_client(web, cookies):
    """Another client of the same app with only these cookies."""
    from starlette.testclient import TestClient

    other = TestClient(web.app)
    for name, value in cookies.items():
        other.cookies.set(name, value)
    return other


def test_api_clients_with_token_or_basic_need_no_csrf_browsers_do(app):
    from multiq.dashboard.settings import Credentials

    creds = Credentials(basic=BASIC, token=TOKEN)
    with dashboard(app, credentials=creds) as web:
        path = "/api/task/revoke/some-task-id"
        assert web.post(path, headers={"Authorization": f"Bearer {TOKEN}"}
                        ).status_code == 200
        assert web.post(path, headers=basic("ops", "pa55word")).status_code == 200
        # a browser sends basic auth by itself, and an Origin or Sec-Fetch-Site with it
        for browser in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            assert web.post(path, headers={**basic("ops", "pa55word"), **browser}
                            ).status_code == 403
        page = web.get("/", headers=basic("ops", "pa55word"))
        token = csrf_of(page.text)
        same_site = {**basic("ops", "pa55word"), "Origin": "http://testserver",
                     "X-CSRF-Token": token}
        assert web.post(path, headers=same_site).status_code == 200
        assert web.post(path, headers={**same_site, "X-CSRF-Token": "x" + token}
                        ).status_code == 403
    assert app.broker.client.zscore(app.broker.keys.revoked, "some-task-id") is not None


def test_url_prefix_serves_under_it(app):
    with dashboard(app, url_prefix="mq/") as web:
        html = web.get("/mq/").text
        assert 'href="/mq/tasks"' in html and 'src="/mq/static/dash.js"' in html
        assert web.get("/mq/api/overview").status_code == 200
        assert web.get("/mq/static/dash.js").status_code == 200
        assert web.get("/").status_code == 404
        token = csrf_of(html)
        moved = web.post("/mq/task/abc/revoke", data={"csrf_token": token},
                         follow_redirects=False)
        assert moved.status_code == 303 and moved.headers["location"].startswith("/mq/task/abc?")


def test_redis_passwords_are_masked_on_every_page(tmp_path, process_tracker):
    server = RedisServer(find_redis_server(), tmp_path, args=["--requirepass", PASSWORD],
                         password=PASSWORD)
    server.start()
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}"
        app = MultiQ("sysq_dash", broker=f"{url}/1", backend=f"{url}/2",
                     result_extended=True, set_as_current=False,
                     result_backend_transport_options={"password": "nested-" + PASSWORD})
        app.send_task("sysq_dash.add", [1, 2], queue="q1")
        app.send_task("sysq_dash.not_a_task", queue="q1")
        with dashboard(app) as web:
            seen = ""
            for path in ("/", "/tasks", "/nodes", "/deadletters", "/beat", "/login",
                         "/api/overview", "/api/tasks", "/api/workers", "/api/queues/length",
                         "/api/deadletters", "/api/beat"):
                response = web.get(path)
                assert response.status_code == 200, path
                assert PASSWORD not in response.text, path
                seen += response.text
            assert f"redis://:**@127.0.0.1:{server.port}/1" in seen
            assert "result_backend_transport_options" in seen  # the configuration, masked
        app.close()
    finally:
        server.stop()


def test_command_line_refuses_a_public_address_without_authentication(redis_url,
                                                                      backend_url):
    env = env_for(redis_url, backend_url)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "multiq", "-A", "sysq_dash",
                               "dashboard", *args], cwd=str(APPS), env=env,
                              capture_output=True, text=True, timeout=30)

    refused = run("--address", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "Refusing to listen on 0.0.0.0" in refused.stderr
    assert run("--basic-auth", "nocolon").returncode == 2
    assert "user:password" in run("--basic-auth", "nocolon").stderr


def test_a_real_dashboard_process_with_basic_auth_and_a_prefix(redis_url, backend_url,
                                                               tmp_path):
    tracker = ProcessTracker()
    try:
        server = Server(env_for(redis_url, backend_url),
                        ["--basic-auth", "ops:pa55word", "--url-prefix", "/dash"],
                        tmp_path / "dashboard.log", tracker)
        server.wait_ready()
        base = f"{server.url}/dash"
        assert httpx.get(f"{base}/api/overview").status_code == 401
        ok = httpx.get(f"{base}/api/overview", auth=("ops", "pa55word"))
        assert ok.status_code == 200 and "queues" in ok.json()
        assert httpx.post(f"{base}/api/task/revoke/abc", auth=("ops", "pa55word")
                          ).status_code == 200
    finally:
        tracker.cleanup()
