from django.urls import path

from shop import catalog, views

urlpatterns = [
    path("hello/", views.hello),
    path("products/<int:id>/", views.product),
    path("search/", views.search),
    path("heavy/", views.heavy),
    path("boom/", views.boom),
    path("report/", views.report),
    path("catalog/", catalog.catalog),
    path("products/<int:id>/page/", views.product_page),
]
