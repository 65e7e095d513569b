from django import template

from shop import release

register = template.Library()


@register.simple_tag
def release_note():
    # Release C's whole change: a line of copy.
    return " · free returns within 30 days" if release.at_least("C") else ""
