"""A Django project whose periodic tasks live in the database (the tutorials' layout)."""
from .multiq import app as multiq_app

__all__ = ("multiq_app",)
