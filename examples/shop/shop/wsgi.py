import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()

# Off by default: a worker that warms boots later, and the tests count every
# request, readiness probes included.
if os.environ.get("SHOP_WARMUP") == "1":
    from shop.warmup import warm

    warm()
