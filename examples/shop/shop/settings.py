"""Settings of the demo shop, a small Django app served the way production
apps are (gunicorn, SQLite through the ORM, a cache), used by the demo, the
integration tests and the benchmarks.

Environment:
  SHOP_DB              path of the SQLite database (default: shop.sqlite3 here)
  SHOP_MIDDLEWARE      none | cpuledger | prometheus | silk  (default cpuledger)
  CPULEDGER_SERVER_URL the cpuledger server (default http://127.0.0.1:8750)
  CPULEDGER_SAMPLE_RATE, CPULEDGER_TOKEN, CPULEDGER_SPOOL_DIR, CPULEDGER_COMMIT,
  CPULEDGER_PROFILE_RATE, CPULEDGER_PROFILE_SOURCE
  SHOP_VERSION         2 makes /report/ call an expensive helper (the diff demo)
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "demo-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "waffle",
    "shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "waffle.middleware.WaffleMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "shop.sqlite3")),
    }
}

TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "CRITICAL"}},
}

_middleware = os.environ.get("SHOP_MIDDLEWARE", "cpuledger")
if _middleware == "cpuledger":
    MIDDLEWARE.insert(0, "cpuledger.django.CpuLedgerMiddleware")
    CPULEDGER = {
        "SERVER_URL": os.environ.get("CPULEDGER_SERVER_URL", "http://127.0.0.1:8750"),
        "TOKEN": os.environ.get("CPULEDGER_TOKEN", ""),
        "SAMPLE_RATE": float(os.environ.get("CPULEDGER_SAMPLE_RATE", "0.01")),
        "SERVICE": "shop",
        "CLUSTER": "demo",
        "REGION": "local",
        "SPOOL_DIR": os.environ.get("CPULEDGER_SPOOL_DIR", ""),
        "BATCH_MAX_DELAY_MS": int(os.environ.get("CPULEDGER_BATCH_MAX_DELAY_MS", "1000")),
        "PROFILE_RATE": float(os.environ.get("CPULEDGER_PROFILE_RATE", "0")),
        "PROFILE_SOURCE": os.environ.get("CPULEDGER_PROFILE_SOURCE", "auto"),
    }
elif _middleware == "prometheus":
    INSTALLED_APPS.append("django_prometheus")
    MIDDLEWARE.insert(0, "django_prometheus.middleware.PrometheusBeforeMiddleware")
    MIDDLEWARE.append("django_prometheus.middleware.PrometheusAfterMiddleware")
elif _middleware == "silk":
    INSTALLED_APPS.append("silk")
    MIDDLEWARE.insert(0, "silk.middleware.SilkyMiddleware")
    SILKY_PYTHON_PROFILER = False
    SILKY_META = False
