"""'Customers also looked at': the products of a product's category ranked
by how alike they are."""

from shop import release
from shop.models import Product

CANDIDATES = 24
SHOWN = 6


def similar_products(product):
    candidates = list(Product.objects.filter(category_id=product.category_id)
                      .exclude(pk=product.pk).order_by("id")[:CANDIDATES])
    ranked = sorted(candidates, key=lambda c: score_similarity(product, c), reverse=True)
    return ranked[:SHOWN]


def score_similarity(a, b):
    """Tags in common, and from release B the descriptions' shared character
    3- to 6-grams too: a finer score at many times the cost."""
    score = len(a.tag_set() & b.tag_set()) * 10.0
    if release.at_least("B"):
        text_a, text_b = a.description, b.description
        for n in (3, 4, 5, 6):
            grams_a, grams_b = {}, {}
            for i in range(len(text_a) - n + 1):
                grams_a[text_a[i:i + n]] = grams_a.get(text_a[i:i + n], 0) + 1
            for i in range(len(text_b) - n + 1):
                grams_b[text_b[i:i + n]] = grams_b.get(text_b[i:i + n], 0) + 1
            shared = 0
            for gram, count in grams_a.items():
                shared += min(count, grams_b.get(gram, 0))
            score += shared / (1 + len(text_a) + len(text_b))
    return score - abs(a.price_cents - b.price_cents) / 10000
