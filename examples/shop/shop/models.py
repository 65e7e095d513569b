from django.conf import settings
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=60)
    slug = models.SlugField(unique=True)

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=100)
    price_cents = models.IntegerField()
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    description = models.TextField(blank=True, default="")
    tags = models.CharField(max_length=200, blank=True, default="")  # space-separated
    stock = models.IntegerField(default=0)
    rating = models.FloatField(default=0)

    def __str__(self):
        return self.name

    def tag_set(self):
        return set(self.tags.split())


class Order(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)
    total_cents = models.IntegerField(default=0)
    currency = models.CharField(max_length=3, default="EUR")


class OrderLine(models.Model):
    order = models.ForeignKey(Order, related_name="lines", on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.IntegerField()
    price_cents = models.IntegerField()
