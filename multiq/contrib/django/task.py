"""``DjangoTask``: the base class of a Django project's tasks (Celery's name)."""
from __future__ import annotations

from multiq.task import Task

__all__ = ["DjangoTask"]


class DjangoTask(Task):
    """A Django project's task: ``delay_on_commit`` / ``apply_async_on_commit`` send it
    once the current database transaction commits (at once outside a transaction).

    An app in a Django project uses it as its default base (``app.task_cls``); give
    ``base=DjangoTask`` or ``MultiQ(task_cls=DjangoTask)`` to choose it explicitly.
    """
