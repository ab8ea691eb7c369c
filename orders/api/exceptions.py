"""API error rendering: DRF's for expected errors, one fixed body for everything else."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from orders.errors import INTERNAL_ERROR

logger = logging.getLogger("orders.api")


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    view = context.get("view")
    logger.exception("unhandled error in %s", type(view).__name__ if view else "API", exc_info=exc)
    set_rollback()
    return Response({"message": INTERNAL_ERROR}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def server_error(request, *args, **kwargs):
    """handler500: the same body for failures outside DRF's reach (middleware, routing)."""
    return JsonResponse({"message": INTERNAL_ERROR}, status=500)


def not_found(request, exception, *args, **kwargs):
    """handler404: API clients get JSON for unknown paths and ids, like DRF's own 404."""
    return JsonResponse({"detail": "Not found."}, status=404)


def bad_request(request, exception, *args, **kwargs):
    """handler400: e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE or a disallowed host."""
    return JsonResponse({"detail": "Bad request."}, status=400)
