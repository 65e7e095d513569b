"""The parity app on Django, one file: settings, URLs, views, and a
whitenoise-like middleware that serves STATIC_URL before routing (what
whitenoise does; whitenoise itself is not a dependency)."""

import os

import django
import parity_common
from django.conf import settings
from django.http import FileResponse, Http404, JsonResponse
from django.urls import path
from django.views.generic.base import RedirectView

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")

parity_common.maybe_break()


def item(request, id):
    return JsonResponse({"id": id})


def boom(request):
    raise RuntimeError("boom")


def work(request):
    return JsonResponse(parity_common.work())


urlpatterns = [
    path("", RedirectView.as_view(url="/items/1/")),
    path("items/<int:id>/", item),
    path("boom/", boom),
    path("work/", work),
]


class StaticMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(settings.STATIC_URL):
            name = os.path.basename(request.path_info)
            full = os.path.join(STATIC_DIR, name)
            if not os.path.isfile(full):
                raise Http404(name)
            return FileResponse(open(full, "rb"))
        return self.get_response(request)


settings.configure(
    DEBUG=False,
    SECRET_KEY="parity-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    STATIC_URL="/static/",
    INSTALLED_APPS=[],
    MIDDLEWARE=["cpuledger.django.CpuLedgerMiddleware", f"{__name__}.StaticMiddleware"],
    CPULEDGER=parity_common.settings(),
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)

application = get_wsgi_application()
