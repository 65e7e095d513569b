"""Seeds the shop: a catalogue of a few thousand products in categories,
customers, the (empty) "beta" group that feature flags target (join_beta
fills it), a staff user for the admin and past orders. Deterministic: the same rows on
every run, so every demo run tells the same story.

    python manage.py seed_shop [--products 3000] [--users 120]
"""

import random

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from shop.models import Category, Order, OrderLine, Product

CATEGORIES = ["Kitchen", "Garden", "Books", "Music", "Toys", "Outdoor", "Office", "Bath", "Lighting",
              "Tools", "Sports", "Travel", "Pets", "Games", "Audio", "Coffee", "Bikes", "Art", "Baby", "Tea"]
ADJECTIVES = ["red", "compact", "classic", "silent", "smart", "heavy", "light", "vintage", "modern", "bamboo",
              "steel", "organic", "foldable", "wireless", "handmade", "giant", "mini", "deluxe", "rugged", "soft"]
NOUNS = ["kettle", "lamp", "chair", "speaker", "notebook", "backpack", "mug", "blanket", "drill", "teapot",
         "puzzle", "racket", "tent", "bottle", "clock", "brush", "grinder", "helmet", "easel", "rattle"]
WORDS = ["durable", "easy", "clean", "gift", "daily", "quality", "warm", "fast", "quiet", "safe", "fresh",
         "strong", "simple", "bright", "smooth", "careful", "travel", "home", "family", "eco"]
PASSWORD = "demo"  # every seeded customer's; the load generator logs in with it
LEGACY_EVERY = 25  # every 25th order predates the currency table: its receipt fails


def user_name(i):
    return f"user{i:03d}"


class Command(BaseCommand):
    help = "Seed the catalogue, customers and orders (deterministic)."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=3000)
        parser.add_argument("--users", type=int, default=120)
        parser.add_argument("--orders", type=int, default=400)

    def handle(self, *args, products, users, orders, **options):
        with connection.cursor() as c:  # concurrent gunicorn workers read while one writes
            c.execute("PRAGMA journal_mode=WAL")
        rng = random.Random(18)
        with transaction.atomic():
            cats = self.categories()
            self.products(rng, cats, products)
            customers = self.users(users)
            self.orders(rng, customers, orders)
        self.stdout.write(f"seeded {Product.objects.count()} products, {len(customers)} customers, "
                          f"{Order.objects.count()} orders")

    def categories(self):
        Category.objects.bulk_create(
            [Category(name=n, slug=n.lower()) for n in CATEGORIES], ignore_conflicts=True)
        return list(Category.objects.order_by("id"))

    def products(self, rng, cats, n):
        def fill(p):
            p.category = cats[p.id % len(cats)] if p.id else rng.choice(cats)
            p.description = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
            p.tags = " ".join(sorted(set(rng.sample(WORDS, 4))))
            p.stock = rng.randint(0, 40)
            p.rating = round(rng.uniform(2.5, 5), 1)
            return p
        existing = list(Product.objects.order_by("id"))
        for p in existing:  # the migration's first products keep their names and prices
            fill(p)
        Product.objects.bulk_update(existing, ["category", "description", "tags", "stock", "rating"])
        new = [fill(Product(name=f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i}",
                            price_cents=rng.randint(300, 25000)))
               for i in range(len(existing) + 1, n + 1)]
        Product.objects.bulk_create(new, batch_size=500)

    def users(self, n):
        Group.objects.get_or_create(name="beta")
        password = make_password(PASSWORD)  # hashed once: the same for every customer
        User.objects.bulk_create([User(username=user_name(i), password=password) for i in range(1, n + 1)],
                                 ignore_conflicts=True)
        if not User.objects.filter(username="admin").exists():
            User.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
        return list(User.objects.filter(username__startswith="user").order_by("username"))

    def orders(self, rng, customers, n):
        if Order.objects.exists():
            return
        catalogue = list(Product.objects.values_list("id", "price_cents"))
        for i in range(1, n + 1):
            order = Order.objects.create(user=rng.choice(customers),
                                         currency="DEM" if i % LEGACY_EVERY == 0 else "EUR")
            lines = [OrderLine(order=order, product_id=pid, quantity=rng.randint(1, 3), price_cents=price)
                     for pid, price in rng.sample(catalogue, rng.randint(1, 5))]
            OrderLine.objects.bulk_create(lines)
            order.total_cents = sum(line.quantity * line.price_cents for line in lines)
            order.save(update_fields=["total_cents"])
