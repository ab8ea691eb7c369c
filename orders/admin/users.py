"""User management in the back office, without a way for non-superusers to escalate."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, User
from django.utils.safestring import SafeData, mark_safe
from rest_framework.authtoken.models import Token

from orders.admin.tokens import mask_key

BACKOFFICE_GROUPS = ("Back office clerk", "Back office admin")


class BackOfficeUserAdmin(UserAdmin):
    """User management for "Back office admin" staff without a way to escalate.

    Django's stock user admin lets anyone with ``change_user`` tick "superuser
    status" or grant any permission, themselves included. Here only superusers
    can do that or touch a superuser; others assign the two back-office groups.
    """

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ("is_superuser", "user_permissions")
        return fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=BACKOFFICE_GROUPS)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_deleted_objects(self, objs, request):
        """What deleting users takes along, with their API tokens' keys masked.

        Django lists each related object by its str(), which for a token is its key.
        """
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        keys = Token.objects.filter(user__in=[user.pk for user in objs]).values_list("key", flat=True)
        return _masked(deleted, list(keys)), model_count, perms_needed, protected


def _masked(items, keys: list[str]):
    """``items`` (nested lists of strings) with every key in ``keys`` masked."""
    if isinstance(items, list):
        return [_masked(item, keys) for item in items]
    text = str(items)
    for key in keys:
        text = text.replace(key, mask_key(key))
    return mark_safe(text) if isinstance(items, SafeData) else text


admin.site.unregister(User)
admin.site.register(User, BackOfficeUserAdmin)
