from django.contrib import admin

from shop.models import Category, Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "category", "price_cents", "stock", "rating")
    list_per_page = 25
    list_filter = ("category",)
    search_fields = ("name", "tags")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "created", "total_cents", "currency")


admin.site.register(Category)
