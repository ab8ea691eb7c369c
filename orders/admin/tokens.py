"""API tokens in the back office: a key is shown in full once, when created; never for staff.

DRF's own token admin lists every key in full, so whoever may view tokens could act
as any client. Here a key is masked on every page but the one message that follows
its creation, and tokens are issued only to active client accounts: a staff
account's token would open every client's orders over the API.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

# Enough to tell a client's tokens apart on the phone, far too little to use one.
KEY_SHOWN_CHARS = 6
# The accounts the back office may issue a token to.
TOKEN_HOLDERS = Q(is_active=True, is_staff=False, is_superuser=False)
NOT_A_TOKEN_HOLDER = "API tokens are issued to active client accounts only, never to staff or superusers."


def mask_key(key: str) -> str:
    return f"{key[:KEY_SHOWN_CHARS]}…"


def _masked_token_str(token: TokenProxy) -> str:
    return mask_key(token.key)


# Every admin page, message and history entry names an object by str(obj), and a
# token's str() is its key. TokenProxy exists only for the admin (DRF's proxy that maps
# the admin's object ids to user ids), so masking its str() here masks them all: the
# list, the detail and delete pages, "Recent actions", the history. The concrete Token
# model, which the API uses, is left alone.
TokenProxy.__str__ = _masked_token_str


def token_holder_choices():
    """Client accounts that may be given a token: active, not staff, and without one yet."""
    return get_user_model().objects.filter(TOKEN_HOLDERS, auth_token__isnull=True).order_by("username")


admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class ApiTokenAdmin(TokenAdmin):
    """Issue and revoke clients' API tokens; a token is never edited, only deleted and issued anew.

    DRF's ``TokenAdmin`` is kept as the base for its mapping of the admin's object ids
    to user ids, so no URL carries a key.
    """

    list_display = ("masked_key", "user", "created")
    list_display_links = ("masked_key",)
    list_select_related = ("user",)
    # The username only: a search by key would tell whoever may search what a key starts with.
    search_fields = ("user__username",)
    search_help_text = "Username of the token's holder."
    readonly_fields = ("masked_key", "created")
    actions = None  # DRF's proxy ids are user ids: bulk actions would select nothing

    @admin.display(description="key")
    def masked_key(self, obj):
        return format_html('<span style="font-family:monospace">{}</span>', mask_key(obj.key))

    def get_fields(self, request, obj=None):
        return ("user",) if obj is None else ("masked_key", "user", "created")

    def has_change_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # A staff user's id posted by hand is then "not one of the available choices".
            kwargs["queryset"] = token_holder_choices()
            kwargs["help_text"] = NOT_A_TOKEN_HOLDER
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        # The form already refused anyone else; this guards the write itself.
        if change or not get_user_model().objects.filter(TOKEN_HOLDERS, pk=obj.user_id).exists():
            raise PermissionDenied(NOT_A_TOKEN_HOLDER)
        super().save_model(request, obj, form, change)

    def add_view(self, request, form_url="", extra_context=None):
        # "Save" only: "continue editing" would open the new token's page, which masks it.
        extra_context = {
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return super().add_view(request, form_url, extra_context)

    def response_add(self, request, obj, post_url_continue=None):
        """The one place the key is shown in full, after which only its first characters are."""
        self.message_user(
            request,
            format_html(
                "API token for {} created: <code>{}</code>. Copy it now: it will not be shown again.",
                obj.user.get_username(),
                obj.key,
            ),
            messages.SUCCESS,
        )
        return self.response_post_save_add(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        response = super().response_delete(request, obj_display, obj_id)
        if isinstance(response, HttpResponseRedirect):
            # Django returns to the list only for those who may change tokens, and nobody may.
            return HttpResponseRedirect(reverse("admin:authtoken_tokenproxy_changelist"))
        return response
