"""multiq in a Django project.

A ``MultiQ`` app made while ``DJANGO_SETTINGS_MODULE`` is set, or configured with
``app.config_from_object("django.conf:settings", namespace="MULTIQ")``, installs the fix-up
in :mod:`multiq.contrib.django.fixup`: ``django.setup()`` before task modules are imported,
``autodiscover_tasks()`` over the project's apps, and healthy database connections in
workers. :class:`multiq.contrib.django.task.DjangoTask` is the tasks' default base class
there. Nothing here imports Django until it is used.
"""
