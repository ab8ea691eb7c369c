"""The back-office groups may read the FIX gateway's stored reports, outbox and session (SPEC §9)."""

import importlib

from django.db import migrations

NEW_VIEW_PERMISSIONS = [
    ("exchange", "view_executionreportrecord"),
    ("exchange", "view_outboxmessage"),
    ("exchange", "view_fixsession"),
]
GROUPS = ("Back office clerk", "Back office admin")


def grant_views(apps, using="default"):
    backoffice = importlib.import_module("orders.migrations.0003_backoffice_groups")
    backoffice._ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = [
        Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in NEW_VIEW_PERMISSIONS
    ]
    for group in Group.objects.using(using).filter(name__in=GROUPS):
        group.permissions.add(*permissions)


def grant(apps, schema_editor):
    grant_views(apps, schema_editor.connection.alias)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    using = schema_editor.connection.alias
    permissions = Permission.objects.using(using).filter(
        content_type__app_label="exchange", codename__in=[codename for _, codename in NEW_VIEW_PERMISSIONS]
    )
    for group in Group.objects.using(using).filter(name__in=GROUPS):
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = (
        ("orders", "0008_backoffice_venue_permissions"),
        ("exchange", "0002_fix_gateway"),
    )

    operations = (migrations.RunPython(grant, revoke),)
