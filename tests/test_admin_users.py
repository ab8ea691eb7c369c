"""Back-office admins manage users without being able to make anyone a superuser."""

import pytest
from django.contrib.auth.models import User

from tests.factories import ClerkFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def backoffice_admin_client(client):
    admin_user = ClerkFactory(backoffice_groups="Back office admin")
    client.force_login(admin_user)
    return client


def test_backoffice_admin_cannot_grant_superuser_status(backoffice_admin_client):
    target = UserFactory(is_staff=True)
    page = backoffice_admin_client.get(f"/admin/auth/user/{target.pk}/change/")
    assert page.status_code == 200
    assert b'name="is_superuser"' not in page.content
    assert b'name="user_permissions"' not in page.content

    backoffice_admin_client.post(
        f"/admin/auth/user/{target.pk}/change/",
        {"username": target.username, "is_staff": "on", "is_active": "on", "is_superuser": "on"},
    )

    target.refresh_from_db()
    assert not target.is_superuser


def test_backoffice_admin_cannot_edit_a_superuser(backoffice_admin_client):
    root = User.objects.create_superuser("root", "root@example.com", "pw-123456789")

    page = backoffice_admin_client.get(f"/admin/auth/user/{root.pk}/change/")

    assert b'name="username"' not in page.content  # view only


def test_backoffice_admin_assigns_only_backoffice_groups(backoffice_admin_client):
    from django.contrib.auth.models import Group

    Group.objects.create(name="Everything")
    target = UserFactory(is_staff=True)

    page = backoffice_admin_client.get(f"/admin/auth/user/{target.pk}/change/")

    assert b"Back office clerk" in page.content
    assert b"Everything" not in page.content
