"""The JSON API the shop's mobile app reads: a page of products."""

from django.core.paginator import Paginator
from django.http import JsonResponse

from shop.models import Product

PAGE_SIZE = 50


def products(request):
    rows = Product.objects.select_related("category").order_by("id")
    if request.GET.get("category"):
        rows = rows.filter(category__slug=request.GET["category"])
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return JsonResponse({
        "page": page.number,
        "pages": page.paginator.num_pages,
        "products": [{"id": p.id, "name": p.name, "price_cents": p.price_cents, "rating": p.rating,
                      "category": p.category.slug if p.category else None, "in_stock": p.stock > 0}
                     for p in page],
    })
