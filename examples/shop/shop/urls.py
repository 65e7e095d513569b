from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from shop import api, catalog, pages, views

urlpatterns = [
    # The shop
    path("", pages.home, name="home"),
    path("shop/", pages.product_list, name="product-list"),
    path("item/<int:id>/", pages.product_detail, name="product"),
    path("cart/", pages.cart_view, name="cart"),
    path("cart/add/", pages.cart_add, name="cart-add"),
    path("checkout/", pages.checkout, name="checkout"),
    path("orders/<int:id>/", pages.receipt, name="receipt"),
    path("api/products/", api.products, name="api-products"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Pages with known costs, for the tests and benchmarks
    path("hello/", views.hello),
    path("products/<int:id>/", views.product),
    path("search/", views.search),
    path("heavy/", views.heavy),
    path("boom/", views.boom),
    path("report/", views.report),
    path("catalog/", catalog.catalog),
    path("products/<int:id>/page/", views.product_page),
]
