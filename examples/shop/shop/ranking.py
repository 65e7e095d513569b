"""How the product list is ordered for a customer. The waffle flag
`personalised_ranking` (on for the beta group) weighs each product by the
customer's recent orders as well."""

from shop.models import OrderLine

HISTORY = 20  # order lines looked at
CATEGORIES = 20  # the seed's (ids 1..20)
AFFINITY_STEPS = 800


def recent_categories(user):
    """Category -> units the customer ordered from it lately."""
    if not user.is_authenticated:
        return {}
    out = {}
    for category_id, quantity in (OrderLine.objects.filter(order__user=user).order_by("-id")
                                  .values_list("product__category_id", "quantity")[:HISTORY]):
        out[category_id] = out.get(category_id, 0) + quantity
    return out


def rank_for_user(products, history, personalised):
    """The page's products, best first: by rating and price, and when
    personalised, by each product's affinity to every category, weighted by
    what the customer bought there (`history`) and decayed over many steps."""
    scored = []
    for p in products:
        score = p.rating * 10 - p.price_cents / 5000
        if personalised:
            for category_id in range(1, CATEGORIES + 1):
                units = history.get(category_id, 0) + 0.1
                distance = 1 + abs(category_id - (p.category_id or 0))
                for step in range(AFFINITY_STEPS):
                    score += units / (distance + step)
        scored.append((score, p.id, p))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [p for _, _, p in scored]
