"""Create the demo staff user and API token that `make run` prints."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create (or reuse) the demo staff user and its API token, and print a ready curl line."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args, username, port, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        password = None
        if created or not user.has_usable_password():
            password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
        token, _ = Token.objects.get_or_create(user=user)
        base = f"http://127.0.0.1:{port}"
        self.stdout.write(
            f"Demo staff user: {username}"
            + (f" / password: {password}" if password else " (password unchanged)")
        )
        self.stdout.write(f"Admin:    {base}/admin/")
        self.stdout.write(f"API docs: {base}/api/docs")
        self.stdout.write(f"API token: {token.key}")
        self.stdout.write("Try it:")
        self.stdout.write(
            f"  curl -s -X POST {base}/orders -H 'Authorization: Token {token.key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"type": "limit", "side": "buy", "instrument": "US0378331005", '
            '"limit_price": "189.50", "quantity": 100}\''
        )
