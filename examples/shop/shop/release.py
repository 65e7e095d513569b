"""What each build of the shop changed. The three are one code base with
SHOP_RELEASE selecting the build, the way a rollout ships different builds
of the same app side by side:

  A  the baseline
  B  product pages score similar products by their descriptions too:
     recommend.score_similarity() became several times dearer
  C  a copy change in the footer: costs nothing
"""

from django.conf import settings

RELEASES = ("A", "B", "C")


def at_least(release: str) -> bool:
    """Whether the running build includes `release`'s changes."""
    return RELEASES.index(settings.SHOP_RELEASE) >= RELEASES.index(release)
