"""API tokens in the back office (SPEC §7): shown in full only once, never minted for staff."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token, TokenProxy
from rest_framework.test import APIClient

from orders.admin.tokens import NOT_A_TOKEN_HOLDER, ApiTokenAdmin
from orders.authentication import token_cache_clear
from tests.factories import ClerkFactory, StaffUserFactory, TokenFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKENS_URL = reverse("admin:authtoken_tokenproxy_changelist")
ADD_URL = reverse("admin:authtoken_tokenproxy_add")


def token_url(token, view="change") -> str:
    # DRF's token admin addresses a token by its user's id, never by its key.
    return reverse(f"admin:authtoken_tokenproxy_{view}", args=[token.user_id])


def masked(key: str) -> str:
    return f"{key[:6]}…"


@pytest.fixture
def backoffice_admin(db):
    return ClerkFactory(backoffice_groups="Back office admin")


@pytest.fixture
def admin_client(client, backoffice_admin):
    client.force_login(backoffice_admin)
    return client


@pytest.fixture
def token(db):
    return TokenFactory(user=UserFactory(username="acme-fund"))


def test_the_token_list_shows_a_masked_key_and_never_the_key(admin_client, token):
    response = admin_client.get(TOKENS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert masked(token.key) in html
    assert token.key not in html
    assert "acme-fund" in html
    assert f'href="{token_url(token)}"' in html


def test_a_token_page_shows_a_masked_key_and_cannot_be_edited(admin_client, token):
    response = admin_client.get(token_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert masked(token.key) in html
    assert token.key not in html
    assert "acme-fund" in html
    assert 'name="_save"' not in html
    other = UserFactory()
    assert admin_client.post(token_url(token), {"user": other.pk}).status_code == 403
    assert Token.objects.get(user__username="acme-fund").key == token.key


def test_creating_a_token_shows_its_key_once_and_never_again(admin_client, backoffice_admin):
    client_account = UserFactory(username="north-fund")

    response = admin_client.post(ADD_URL, {"user": client_account.pk, "_save": "Save"}, follow=True)

    assert response.redirect_chain[-1][0] == TOKENS_URL
    key = Token.objects.get(user=client_account).key
    html = response.content.decode()
    assert html.count(key) == 1
    (message,) = [m.message for m in get_messages(response.wsgi_request)]
    assert message == (
        f"API token for north-fund created: <code>{key}</code>. Copy it now: it will not be shown again."
    )
    token = Token.objects.get(user=client_account)
    for page in (TOKENS_URL, token_url(token), token_url(token, "history"), reverse("admin:index")):
        again = admin_client.get(page)
        assert again.status_code == 200, page
        assert key not in again.content.decode(), page
    entry = LogEntry.objects.get(user=backoffice_admin)
    assert entry.object_repr == masked(key)
    assert entry.object_id == str(client_account.pk)


def test_the_add_form_offers_only_active_client_accounts_without_a_token(admin_client, token):
    UserFactory(username="eligible-client")
    StaffUserFactory(username="a-staff-member")
    UserFactory(username="a-superuser", is_superuser=True)
    UserFactory(username="a-former-client", is_active=False)

    response = admin_client.get(ADD_URL)

    assert response.status_code == 200
    choices = [user.username for user in response.context["adminform"].form.fields["user"].queryset]
    assert choices == ["eligible-client"]
    html = response.content.decode()
    assert "a-staff-member" not in html and "a-superuser" not in html and "acme-fund" not in html
    assert 'name="_continue"' not in html and 'name="_addanother"' not in html


@pytest.mark.parametrize(
    "account",
    [
        {"username": "a-clerk", "is_staff": True},
        {"username": "root", "is_staff": True, "is_superuser": True},
        {"username": "sneaky", "is_superuser": True},
        {"username": "gone", "is_active": False},
    ],
)
def test_no_token_can_be_minted_for_staff_superusers_or_inactive_users_even_posted_by_hand(
    admin_client, account
):
    user = UserFactory(**account)

    response = admin_client.post(ADD_URL, {"user": user.pk, "_save": "Save"})

    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert "Select a valid choice" in errors["user"][0]
    assert not Token.objects.filter(user=user).exists()


def test_saving_a_token_for_a_staff_account_is_refused_even_past_the_form(backoffice_admin):
    staff = StaffUserFactory()
    request = RequestFactory().post(ADD_URL)
    request.user = backoffice_admin
    model_admin = ApiTokenAdmin(TokenProxy, None)

    with pytest.raises(PermissionDenied, match=NOT_A_TOKEN_HOLDER):
        model_admin.save_model(request, TokenProxy(user=staff), form=None, change=False)

    assert not Token.objects.filter(user=staff).exists()


def test_deleting_a_token_revokes_it(admin_client, token):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get("/orders").status_code == 200

    confirm = admin_client.get(token_url(token, "delete"))
    assert confirm.status_code == 200
    assert masked(token.key) in confirm.content.decode()
    assert token.key not in confirm.content.decode()
    response = admin_client.post(token_url(token, "delete"), {"post": "yes"}, follow=True)

    assert response.redirect_chain[-1][0] == TOKENS_URL
    assert token.key not in response.content.decode()
    assert not Token.objects.filter(key=token.key).exists()
    token_cache_clear()  # a revoked token works for at most 5 s more per process (by design)
    assert api.get("/orders").status_code == 401


def test_revoking_needs_the_delete_permission(client, token):
    viewer = StaffUserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_tokenproxy"))
    client.force_login(viewer)

    assert client.get(TOKENS_URL).status_code == 200
    assert client.get(token_url(token, "delete")).status_code == 403
    assert client.post(token_url(token, "delete"), {"post": "yes"}).status_code == 403
    assert client.get(ADD_URL).status_code == 403
    assert Token.objects.filter(key=token.key).exists()


def test_clerks_cannot_see_tokens(client, token):
    client.force_login(ClerkFactory())

    assert client.get(TOKENS_URL).status_code == 403
    assert client.get(token_url(token)).status_code == 403


def test_tokens_are_searched_by_username_never_by_key(admin_client, token):
    TokenFactory(user=UserFactory(username="other-fund"))

    by_name = admin_client.get(TOKENS_URL, {"q": "acme"})
    by_key_prefix = admin_client.get(TOKENS_URL, {"q": token.key[:6]})
    by_key = admin_client.get(TOKENS_URL, {"q": token.key})

    assert [t.user.username for t in by_name.context["cl"].result_list] == ["acme-fund"]
    assert list(by_key_prefix.context["cl"].result_list) == []
    assert list(by_key.context["cl"].result_list) == []


def test_a_superuser_deleting_a_client_sees_the_token_masked(client, token):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-123456789"))

    response = client.get(reverse("admin:auth_user_delete", args=[token.user_id]))

    assert response.status_code == 200
    html = response.content.decode()
    assert masked(token.key) in html
    assert token.key not in html
