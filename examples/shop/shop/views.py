"""Views with known costs: cheap, DB- and cache-bound, CPU-heavy, failing, and
a product page as real apps serve one (ORM queries and a cache rendered
through templates; the catalogue page is catalog.py)."""

import os

from django.core.cache import cache
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from waffle import flag_is_active

from shop.models import Product


def hello(request):
    return HttpResponse("hello")


def product(request, id):
    key = f"product:{id}"
    data = cache.get(key)
    if data is None:
        try:
            p = Product.objects.get(pk=id)
        except Product.DoesNotExist:
            raise Http404("no such product")
        data = {"id": p.id, "name": p.name, "price_cents": p.price_cents}
        cache.set(key, data, 1)
    related = list(Product.objects.filter(price_cents__gt=data["price_cents"]).values_list("id", flat=True)[:5])
    return JsonResponse({**data, "related": related})


def search(request):
    q = request.GET.get("q", "")
    names = list(Product.objects.filter(name__contains=q).order_by("id").values_list("name", flat=True)[:200])
    if flag_is_active(request, "new_search"):
        names = sorted(names, key=lambda n: sum(ord(c) for c in n * 50))  # the costlier ranking
    return JsonResponse({"results": names[:10]})


def heavy(request):
    n = int(request.GET.get("n", "200000"))
    total = 0
    for i in range(n):
        total += i * i % 7
    return JsonResponse({"total": total})


def _render_report(rows):
    return "\n".join(f"{r['id']}: {r['name']}" for r in rows)


def _expensive_helper(rows):
    # Version 2 of the report view added this: a costly re-ranking.
    total = 0
    for _ in range(40):
        for r in rows:
            for c in r["name"]:
                total = (total * 31 + ord(c)) % 1000003
    return total


def report(request):
    rows = [{"id": i, "name": f"product {i}"} for i in range(200)]
    body = _render_report(rows)
    if os.environ.get("SHOP_VERSION", "1") == "2":
        body += f"\nscore: {_expensive_helper(rows)}"
    return HttpResponse(body, content_type="text/plain")


def product_page(request, id):
    """One product's page: the product, its neighbours by price (the catalogue's
    rows), a view counter in the cache."""
    p = get_object_or_404(Product, pk=id)
    similar = (Product.objects.filter(price_cents__range=(p.price_cents - 10, p.price_cents + 10))
               .exclude(pk=p.pk).order_by("price_cents", "name"))
    key = f"views:{id}"
    cache.add(key, 0)
    views = cache.incr(key)
    return render(request, "shop/product_page.html", {"product": p, "similar": similar, "views": views})


def boom(request):
    raise RuntimeError("this view always fails")
