"""Who may do what to an order over the API, beyond seeing it (SPEC §3)."""

from rest_framework.permissions import BasePermission

CANCEL_PERMISSION = "orders.cancel_order"
CANCEL_NEEDS_PERMISSION = (
    f"This order belongs to another client: cancelling it needs the permission `{CANCEL_PERMISSION}`."
)


class CanCancelOrder(BasePermission):
    """Owners cancel their own orders; anyone else (staff: nobody else sees them) needs the permission."""

    message = CANCEL_NEEDS_PERMISSION

    def has_object_permission(self, request, view, obj):
        return obj.owner_id == request.user.pk or request.user.has_perm(CANCEL_PERMISSION)
