"""Adds customers to the "beta" group, which feature flags target (a flag
set with `waffle_flag NAME --group beta` turns on for them at once):

    python manage.py join_beta [--every 2]    # user001, user003, ...: half the customers
"""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Add every Nth seeded customer to the beta group."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=int, default=2)

    def handle(self, *args, every, **options):
        customers = list(User.objects.filter(username__startswith="user").order_by("username"))
        joining = customers[::every]
        Group.objects.get(name="beta").user_set.add(*joining)
        self.stdout.write(f"{len(joining)} of {len(customers)} customers joined beta")
