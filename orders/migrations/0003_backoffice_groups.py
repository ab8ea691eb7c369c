"""Back-office permissions and the two staff groups that carry them (SPEC §7).

"Back office clerk": read every order, match, placement and placement attempt,
and run the two admin actions (reprocess failed orders, cancel orders).
"Back office admin": the clerk's permissions plus managing users and API tokens.
Records stay read-only for both; only superusers touch the task queue's admin.
Running the forward step again is harmless: it sets each group's permissions.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CLERK_GROUP = "Back office clerk"
ADMIN_GROUP = "Back office admin"

CLERK_PERMISSIONS = [
    ("orders", "view_order"),
    ("orders", "view_placementattempt"),
    ("orders", "reprocess_order"),
    ("orders", "cancel_order"),
    ("matching", "view_ordermatch"),
    ("matching", "view_instrument"),
    ("exchange", "view_exchangeorder"),
]
# Users are deactivated, not deleted: their orders reference them (PROTECT).
ADMIN_PERMISSIONS = CLERK_PERMISSIONS + [
    ("auth", "view_user"),
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "view_group"),
    ("authtoken", "view_tokenproxy"),
    ("authtoken", "add_tokenproxy"),
    ("authtoken", "delete_tokenproxy"),
]


def _ensure_permissions(apps, using):
    """Create the content types and permissions now: post_migrate runs only after every migration."""
    for label in sorted({app for app, _ in ADMIN_PERMISSIONS}):
        try:
            app_config = apps.get_app_config(label)
        except LookupError:
            continue
        # Historical app configs have no models module, which create_permissions requires.
        stub = not getattr(app_config, "models_module", None)
        if stub:
            app_config.models_module = True
        try:
            create_permissions(app_config, verbosity=0, using=using, apps=apps)
        finally:
            if stub:
                app_config.models_module = None


def backoffice_groups_sync(apps, using="default"):
    """Create both groups, or reset their permissions to the lists above."""
    _ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ((CLERK_GROUP, CLERK_PERMISSIONS), (ADMIN_GROUP, ADMIN_PERMISSIONS)):
        permissions = []
        for app_label, codename in wanted:
            permission = (
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            if permission is None:
                raise RuntimeError(f"permission {app_label}.{codename} does not exist")
            permissions.append(permission)
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(permissions)


def create_groups(apps, schema_editor):
    backoffice_groups_sync(apps, schema_editor.connection.alias)


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=[CLERK_GROUP, ADMIN_GROUP]).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("orders", "0002_sweep_schedule"),
        ("matching", "0001_initial"),
        ("exchange", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    )

    operations = (
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("reprocess_order", "Can reprocess failed orders"),
                    ("cancel_order", "Can cancel orders"),
                ],
            },
        ),
        migrations.RunPython(create_groups, delete_groups),
    )
