"""Django tasks (``@task``) the tests enqueue and the worker runs."""
import asyncio
import time
from pathlib import Path

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


class Boom(Exception):
    pass


@task
def add(a, b):
    return a + b


@task
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


@task
def explode(text):
    raise Boom(text)


@task(takes_context=True)
def whoami(context, tag):
    return {"tag": tag, "id": context.task_result.id, "attempt": context.attempt,
            "status": str(context.task_result.status)}


@task(queue_name="high", priority=100)
def urgent(x):
    return x * 2


@task
def remember(value):
    """Needs Django set up (the app registry) and its database."""
    from django.apps import apps
    from django.db import connection

    labels = [config.label for config in apps.get_app_configs()]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS remembered (value TEXT)")
        cursor.execute("INSERT INTO remembered (value) VALUES (%s)", [value])
        cursor.execute("SELECT value FROM remembered ORDER BY value")
        rows = [row[0] for row in cursor.fetchall()]
    return {"labels": labels, "rows": rows}


@task
def wait_for(path):
    """Runs until ``path`` exists (at most a minute)."""
    deadline = time.monotonic() + 60
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Path(path).read_text()
