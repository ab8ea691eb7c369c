"""Back-office groups may view venue executions, cancel requests and quarantined reports (SPEC §7, §9).

Both groups of migration 0003 gain the view permissions of the models 0006 and
0007 added, which the order page's venue-executions inline and their read-only
admins need. Running the forward step again is harmless.
"""

import importlib

from django.db import migrations

VENUE_PERMISSIONS = [
    ("orders", "view_execution"),
    ("orders", "view_cancelrequest"),
    ("orders", "view_quarantinedreport"),
]
GROUPS = ("Back office clerk", "Back office admin")


def backoffice_venue_permissions_sync(apps, using="default"):
    """Add the view permissions of venue executions and cancel requests to both groups."""
    importlib.import_module("orders.migrations.0003_backoffice_groups")._ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = [
        Permission.objects.using(using).get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in VENUE_PERMISSIONS
    ]
    for group in Group.objects.using(using).filter(name__in=GROUPS):
        group.permissions.add(*permissions)


def grant(apps, schema_editor):
    backoffice_venue_permissions_sync(apps, schema_editor.connection.alias)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    using = schema_editor.connection.alias
    permissions = Permission.objects.using(using).filter(
        content_type__app_label="orders", codename__in=[codename for _, codename in VENUE_PERMISSIONS]
    )
    for group in Group.objects.using(using).filter(name__in=GROUPS):
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0007_venue_report_cursor"),
    ]

    operations = [
        migrations.RunPython(grant, revoke),
    ]
