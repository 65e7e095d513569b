from django.contrib.auth.hashers import PBKDF2PasswordHasher


class DemoPasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 at a thousandth of Django's work factor: demo customers only."""

    algorithm = "pbkdf2_demo"
    iterations = 1000
