"""User management in the back office, without a way for non-superusers to escalate."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group, User

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


admin.site.unregister(User)
admin.site.register(User, BackOfficeUserAdmin)
