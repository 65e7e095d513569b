"""Settings of the demo shop, a Django app served the way production apps
are (gunicorn with pre-fork workers, SQLite through the ORM, a cache shared by
the workers, django-waffle flags, logged-in customers), used by `make demo`,
the integration tests and the benchmarks.

Environment:
  SHOP_DB              path of the SQLite database (default: shop.sqlite3 here)
  SHOP_CACHE_DIR       a cache shared by the workers, in this directory (default: one per worker)
  SHOP_WARMUP          1: each worker warms itself in-process before it serves (shop/warmup.py)
  SHOP_READY_DIR       where each warm worker leaves a file named by its pid
  SHOP_RELEASE         A, B or C: which build of the shop this is (release.py says
                       what each changed); the demo rolls them out one after another
  SHOP_MIDDLEWARE      none | cpuledger | prometheus | silk  (default cpuledger)
  CPULEDGER_SERVER_URL the cpuledger server (default http://127.0.0.1:8750)
  CPULEDGER_SAMPLE_RATE, CPULEDGER_TOKEN, CPULEDGER_SPOOL_DIR, CPULEDGER_COMMIT,
  CPULEDGER_PROFILE_RATE, CPULEDGER_PROFILE_MIN_PER_MINUTE, CPULEDGER_PROFILE_SOURCE,
  CPULEDGER_BATCH_MAX_DELAY_MS
  SHOP_VERSION         2 makes /report/ call an expensive helper (the diff tests)
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
STATIC_URL = "static/"
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
SHOP_RELEASE = os.environ.get("SHOP_RELEASE", "A")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "waffle",
    "shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "waffle.middleware.WaffleMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "shop.sqlite3")),
        # Several workers write (checkouts): wait for the lock, and take it
        # up front so a reader turned writer never deadlocks.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}

# Demo only: customers log in by the hundred at the start of a run, and the
# default PBKDF2 (a million iterations) would cost seconds of CPU each.
PASSWORD_HASHERS = ["shop.hashers.DemoPasswordHasher"]

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

# With SHOP_CACHE_DIR (the demo sets it): one cache for all workers (and
# both builds during a rollout), as memcached or Redis would be, holding the
# sessions (one key per customer, the cart in it) and waffle's flags, so a
# flag's change reaches every worker at once. Without: a cache per worker and
# the session in a signed cookie, as the tests and benchmarks have it.
if os.environ.get("SHOP_CACHE_DIR"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": os.environ["SHOP_CACHE_DIR"], "TIMEOUT": 3600}}
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "CRITICAL"}},
}

_middleware = os.environ.get("SHOP_MIDDLEWARE", "cpuledger")
if _middleware == "cpuledger":
    # As the README tells a user: the middleware first, then the settings.
    MIDDLEWARE = ["cpuledger.django.CpuLedgerMiddleware", *MIDDLEWARE]
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
        "PROFILE_MIN_PER_MINUTE": float(os.environ.get("CPULEDGER_PROFILE_MIN_PER_MINUTE", "0")),
        "PROFILE_SOURCE": os.environ.get("CPULEDGER_PROFILE_SOURCE", "auto"),
        # COMMIT: from $CPULEDGER_COMMIT; FLAGS: waffle's; USER_KEY: the logged-in user.
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
