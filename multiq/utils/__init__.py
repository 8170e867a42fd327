"""Helpers under the names Celery gives them (``celery.utils.log`` → ``multiq.utils.log``)."""
