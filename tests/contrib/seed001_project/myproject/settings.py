"""Settings of the seed's project: ``django-admin startproject myproject`` (trimmed), then the
seed's block with the names changed.

Changed for the test, each said where it is: the database is SQLite at ``SEED001_DB`` (the
seed uses MySQL through pymysql), and the Redis URLs are read from ``SEED001_BROKER_URL`` /
``SEED001_RESULT_BACKEND`` with the seed's fixed URLs as defaults.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = 'django-insecure-only-for-the-tests'
DEBUG = True
ALLOWED_HOSTS = []

INSTALLED_APPS = [
    'django.contrib.admin',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'app',
    'multiq.contrib.django.beat',
]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
]

ROOT_URLCONF = 'myproject.urls'

TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'DIRS': [],
    'APP_DIRS': True,
    'OPTIONS': {'context_processors': [
        'django.template.context_processors.request',
        'django.contrib.auth.context_processors.auth',
        'django.contrib.messages.context_processors.messages',
    ]},
}]

# SQLite in the test's directory instead of the seed's MySQL
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.environ.get('SEED001_DB', BASE_DIR / 'db.sqlite3'),
        'OPTIONS': {'timeout': 30},
    }
}

DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
LANGUAGE_CODE = 'zh-hans'
TIME_ZONE = 'Asia/Shanghai'
USE_I18N = True
USE_TZ = False
STATIC_URL = 'static/'

# 需要以MULTIQ开头

# the seed's fixed URLs are the defaults; the test passes its private Redis by environment
MULTIQ_BROKER_URL = os.environ.get('SEED001_BROKER_URL', 'redis://127.0.0.1:32768/0')
MULTIQ_RESULT_BACKEND = os.environ.get('SEED001_RESULT_BACKEND', 'redis://127.0.0.1:32768/1')

MULTIQ_TIMEZONE = TIME_ZONE
MULTIQ_ENABLE_UTC = False


MULTIQ_ACCEPT_CONTENT = ['application/json']
MULTIQ_TASK_SERIALIZER = 'json'
MULTIQ_RESULT_SERIALIZER = 'json'

MULTIQ_TASK_TIME_LIMIT = 10
MULTIQ_RESULT_EXPIRES = 60 * 60

# MULTIQ_TASK_ANNOTATIONS = {'tasks.add': {'rate_limit': '10/s'}}  # 任务限流

MULTIQ_WORKER_MAX_TASKS_PER_CHILD = 100

# MULTIQ_IGNORE_RESULT = True

MULTIQ_BEAT_SCHEDULER = 'multiq.contrib.django.beat.schedulers:DatabaseScheduler'

DJANGO_CELERY_BEAT_TZ_AWARE = False
