from __future__ import absolute_import, unicode_literals

from multiq import shared_task

from .models import Visit  # models at the top: the worker sets Django up first


@shared_task
def add(x, y):
    return x + y


@shared_task
def record_visit(path):
    """An ORM task: writes a row."""
    return Visit.objects.create(path=path).pk
