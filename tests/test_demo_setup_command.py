"""`make run` prints a demo login and a ready curl line with a working token (SPEC §2)."""

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_demo_setup_prints_a_curl_line_with_the_demo_token():
    out = StringIO()

    call_command("demo_setup", "--port", "8123", stdout=out)

    token = Token.objects.get(user__username="demo")
    assert token.user.is_staff
    text = out.getvalue()
    assert f"Authorization: Token {token.key}" in text
    assert "curl -s -X POST http://127.0.0.1:8123/orders" in text


def test_demo_setup_twice_reuses_the_user_and_token():
    call_command("demo_setup", stdout=StringIO())
    first = Token.objects.get(user__username="demo").key

    out = StringIO()
    call_command("demo_setup", stdout=out)

    assert Token.objects.get(user__username="demo").key == first
    assert "password unchanged" in out.getvalue()
