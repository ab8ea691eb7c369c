"""API error rendering: DRF's for expected errors, one fixed body for everything else."""

import logging

from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from orders.errors import INTERNAL_ERROR

logger = logging.getLogger("orders.api")

# Mounted in ordersite/urls.py.
API_PREFIX = "/orders"
ADMIN_PREFIX = "/admin/"


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, SuspiciousOperation):
        # Django answers these with a 400 outside views; inside a DRF view (e.g. reading
        # request.GET for content negotiation) they would otherwise end as our 500.
        logging.getLogger(f"django.security.{type(exc).__name__}").warning(str(exc))
        set_rollback()
        return Response({"detail": _suspicious_detail(exc)}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    view = context.get("view")
    logger.exception("unhandled error in %s", type(view).__name__ if view else "API", exc_info=exc)
    set_rollback()
    return Response({"message": INTERNAL_ERROR}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def _suspicious_detail(exc: SuspiciousOperation) -> str:
    if isinstance(exc, TooManyFieldsSent):
        return "Too many query or form parameters."
    if isinstance(exc, TooManyFilesSent):
        return "Too many files."
    return "Bad request."


def server_error(request, *args, **kwargs):
    """handler500: the same body for failures outside DRF's reach (middleware, routing)."""
    return JsonResponse({"message": INTERNAL_ERROR}, status=500)


def not_found(request, exception, *args, **kwargs):
    """handler404: JSON for API clients, like DRF's own 404; Django's HTML page for people.

    Under /orders it is always JSON; under /admin/ always HTML; elsewhere HTML only
    when the client prefers it to JSON (a browser), so curl and API clients get JSON.
    """
    if _wants_html(request):
        return page_not_found(request, exception)
    return JsonResponse({"detail": "Not found."}, status=404)


def _wants_html(request) -> bool:
    path = request.path_info
    if path == API_PREFIX or path.startswith(f"{API_PREFIX}/"):
        return False
    if path.startswith(ADMIN_PREFIX):
        return True
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def bad_request(request, exception, *args, **kwargs):
    """handler400: e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE or a disallowed host."""
    return JsonResponse({"detail": "Bad request."}, status=400)
