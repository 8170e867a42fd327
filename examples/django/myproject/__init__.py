from __future__ import absolute_import, unicode_literals

# the app is loaded with Django, so that @shared_task uses it
from .multiq import app as multiq_app

__all__ = ("multiq_app",)
