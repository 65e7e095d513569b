"""Requests one page of the shop in-process (Django's test client, signed in
as a seeded customer) a number of times: a script to profile a view locally.

    python manage.py migrate && python manage.py seed_shop
    SHOP_RELEASE=B python -m cpuledger.profile -s apportioned -o item.pstats -f pstats profile_view.py /item/5/ 50

Environment as for the shop (shop/settings.py); the cpuledger middleware is
off here unless SHOP_MIDDLEWARE says otherwise.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
os.environ.setdefault("SHOP_MIDDLEWARE", "none")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/item/5/"
    times = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    client = Client()
    client.force_login(User.objects.get(username="user001"))
    for _ in range(times):
        response = client.get(path)
        status = response.status_code
        if status >= 300:  # a profile of a redirect or an error page is not the view's
            to = f" (to {response['Location']})" if response.has_header("Location") else ""
            raise SystemExit(f"{path} answered {status}{to}")
    print(f"{times} x {path}: {status}")


main()
