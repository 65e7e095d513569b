"""'Customers also looked at': the products of a product's category ranked
by how alike they are."""

from shop import release
from shop.models import Product

CANDIDATES = 40
SHOWN = 6


def similar_products(product):
    candidates = list(Product.objects.filter(category_id=product.category_id)
                      .exclude(pk=product.pk).order_by("id")[:CANDIDATES])
    ranked = sorted(candidates, key=lambda c: score_similarity(product, c), reverse=True)
    return ranked[:SHOWN]


def score_similarity(a, b):
    """Tags in common, and from release B the descriptions' shared character
    trigrams too: a finer score at many times the cost."""
    score = len(a.tag_set() & b.tag_set()) * 10.0
    if release.at_least("B"):
        grams_a, grams_b = {}, {}
        text_a, text_b = a.description, b.description
        for i in range(len(text_a) - 2):
            grams_a[text_a[i:i + 3]] = grams_a.get(text_a[i:i + 3], 0) + 1
        for i in range(len(text_b) - 2):
            grams_b[text_b[i:i + 3]] = grams_b.get(text_b[i:i + 3], 0) + 1
        shared = 0
        for gram, n in grams_a.items():
            shared += min(n, grams_b.get(gram, 0))
        score += shared / (1 + len(text_a) + len(text_b))
    return score - abs(a.price_cents - b.price_cents) / 10000
