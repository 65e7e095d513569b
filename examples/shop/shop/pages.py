"""The shop's pages: home, the product list, a product, the cart and the
checkout, an order's receipt. Views/templates as most Django shops write them;
catalog.py and views.py hold the older pages the tests and benchmarks use."""

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from waffle import flag_is_active

from shop import ranking, recommend
from shop.models import Category, Order, OrderLine, Product

PAGE_SIZE = 12
CART_MAX_LINES = 8
# Receipts convert to the customer's currency; orders in a currency missing
# here (the seed's legacy DEM orders) fail: a real 500.
RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86}


def categories():
    out = cache.get("categories")
    if out is None:
        out = list(Category.objects.order_by("name"))
        cache.set("categories", out)
    return out


def home(request):
    featured = cache.get("home:featured")
    if featured is None:
        featured = list(Product.objects.select_related("category").order_by("-rating", "id")[:8])
        cache.set("home:featured", featured)
    return render(request, "shop/home.html", {"featured": featured, "categories": categories()})


def product_list(request):
    products = Product.objects.select_related("category").order_by("id")
    category = request.GET.get("category")
    if category:
        products = products.filter(category__slug=category)
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    history = ranking.recent_categories(request.user)  # also for the "recently bought" panel
    ranked = ranking.rank_for_user(list(page), history, flag_is_active(request, "personalised_ranking"))
    return render(request, "shop/product_list.html", {
        "page": page, "products": ranked, "category": category, "categories": categories(),
        "bought_from": [c for c in categories() if c.id in history]})


def product_detail(request, id):
    product = get_object_or_404(Product.objects.select_related("category"), pk=id)
    similar = recommend.similar_products(product)
    return render(request, "shop/product_detail.html", {"product": product, "similar": similar})


def _cart(request):
    return request.session.setdefault("cart", {})


def _cart_lines(cart):
    products = Product.objects.in_bulk([int(pid) for pid in cart])
    lines = [(products[int(pid)], qty) for pid, qty in cart.items() if int(pid) in products]
    return lines, sum(p.price_cents * qty for p, qty in lines)


@login_required
def cart_view(request):
    lines, total = _cart_lines(_cart(request))
    return render(request, "shop/cart.html", {"lines": lines, "total": total})


@login_required
@require_POST
def cart_add(request):
    cart = _cart(request)
    pid = str(get_object_or_404(Product, pk=int(request.POST["product"])).pk)
    if pid in cart or len(cart) < CART_MAX_LINES:
        cart[pid] = min(cart.get(pid, 0) + int(request.POST.get("quantity", 1)), 9)
    request.session.modified = True
    return redirect("cart")


@login_required
@require_POST
def checkout(request):
    lines, total = _cart_lines(_cart(request))
    if not lines:
        return redirect("cart")
    with transaction.atomic():
        order = Order.objects.create(user=request.user, total_cents=total)
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=p, quantity=qty, price_cents=p.price_cents) for p, qty in lines)
    request.session["cart"] = {}
    return redirect("receipt", id=order.id)


def receipt(request, id):
    order = get_object_or_404(Order.objects.select_related("user"), pk=id)
    rate = RATES[order.currency]
    lines = [(line, line.quantity * line.price_cents * rate / 100)
             for line in order.lines.select_related("product").order_by("id")]
    return render(request, "shop/receipt.html",
                  {"order": order, "lines": lines, "total": order.total_cents * rate / 100})
