"""The smallest Django settings that let the API reference import multiq's Django models."""
SECRET_KEY = "docs-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "multiq.contrib.django.beat"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
