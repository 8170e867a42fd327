from .multiq import app as multiq_app

__all__ = ("multiq_app",)
