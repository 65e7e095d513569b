"""Warms a worker before it serves, as production apps do before they join
the load balancer's pool: each page is requested once in-process, without the
cpuledger middleware, so that template compilation, lazy imports and the URL
resolver's caches are paid at boot and not by the first customers (a new
build would otherwise look slower for its first minute). With
SHOP_READY_DIR, a warm worker then says so with a file named by its pid
there, so a deploy can wait for all of them."""

import logging
import os
from pathlib import Path

from django.conf import settings
from django.test import Client, override_settings

PAGES = ["/", "/shop/", "/shop/?category=books&page=2", "/item/1/", "/api/products/", "/search/?q=lamp",
         "/cart/", "/orders/1/", "/login/", "/hello/", "/catalog/", "/products/1/page/"]


def warm() -> None:
    from django.contrib.auth.models import User

    middleware = [m for m in settings.MIDDLEWARE if not m.startswith("cpuledger.")]
    try:
        with override_settings(MIDDLEWARE=middleware):
            client = Client(raise_request_exception=False)
            user = User.objects.filter(username__startswith="user").order_by("id").first()
            if user is not None:
                client.force_login(user)
            for page in PAGES:
                client.get(page)
    except Exception:  # an empty or unmigrated database: nothing to warm, serve anyway
        logging.getLogger("shop").debug("warm-up skipped", exc_info=True)
    if os.environ.get("SHOP_READY_DIR"):
        Path(os.environ["SHOP_READY_DIR"], str(os.getpid())).touch()
