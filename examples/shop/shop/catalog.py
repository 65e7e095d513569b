"""The catalogue: a page rendered the way most Django pages are (the ORM, a
paginator, templates with inheritance, loops, filters and an include), so
that profiles carry the deep, varied call paths of a real app."""

from django.core.paginator import Paginator
from django.shortcuts import render

from shop.models import Product

PAGE_SIZE = 10


def catalog(request):
    products = Product.objects.order_by("id")
    if "max_cents" in request.GET:
        products = products.filter(price_cents__lte=int(request.GET["max_cents"]))
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "shop/catalog.html", {"page": page, "title": "Catalogue"})
