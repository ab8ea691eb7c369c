"""GET /orders/events: the caller's order events as Server-Sent Events (SPEC §10).

A Django async view, served by the ASGI application: an idle stream is a suspended
coroutine, not a worker thread. Authentication is the API's (token or session, via
DRF's own authenticators, run off the event loop); errors are the API's JSON bodies.
The stream itself is ``orders/event_stream.py``.
"""

import re

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request
from rest_framework.settings import api_settings

from orders.event_stream import EventFilter, stream
from orders.models import Order

EVENT_ID_ERROR = "Enter an event id: a whole number of at least 0."
INSTRUMENT_ERROR = "Enter a valid ISIN: 12 letters or digits."
ASGI_ONLY = "The event stream is served by the ASGI application only (uvicorn ordersite.asgi:application)."
_DIGITS = re.compile(r"[0-9]{1,18}")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")


def _authenticate(request):
    """The API's user for this request, or the DRF error (401/403) it would answer with."""
    drf_request = Request(
        request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    )
    try:
        user = drf_request.user
    except APIException as exc:
        return None, exc, drf_request
    if not (user and user.is_authenticated):
        return None, NotAuthenticated(), drf_request
    return user, None, drf_request


def _error(exc: APIException, drf_request) -> JsonResponse:
    response = JsonResponse({"detail": str(exc.detail)}, status=exc.status_code)
    if exc.status_code == 401:
        header = drf_request.authenticators[0].authenticate_header(drf_request)
        if header:
            response["WWW-Authenticate"] = header
        else:
            response.status_code = 403
    return response


def _parse(request) -> tuple[dict, dict]:
    """``since``, instrument and status filters from the query and Last-Event-ID; errors by field."""
    errors: dict[str, list[str]] = {}
    since = None
    header = request.headers.get("Last-Event-ID")
    given = request.GET.getlist("since")
    if len(given) > 1:
        errors["since"] = ["Give this parameter at most once."]
    elif given and not _DIGITS.fullmatch(given[0].strip()):
        errors["since"] = [EVENT_ID_ERROR]
    elif given:
        since = int(given[0])
    if header is not None:
        # The header wins: a browser's EventSource keeps the URL (and its ``since``) and
        # sends the last id it received as Last-Event-ID when it reconnects.
        if _DIGITS.fullmatch(header.strip()):
            since = int(header)
        else:
            errors["Last-Event-ID"] = [EVENT_ID_ERROR]
    instruments = {v.strip().upper() for v in request.GET.getlist("instrument") if v.strip()}
    if any(not _ISIN.fullmatch(v) for v in instruments):
        errors["instrument"] = [INSTRUMENT_ERROR]
    statuses = {v.strip().upper() for v in request.GET.getlist("status") if v.strip()}
    unknown = sorted(statuses - set(Order.Status.values))
    if unknown:
        errors["status"] = [f"Select a valid choice. {unknown[0]} is not one of the available choices."]
    return {"since": since, "instruments": frozenset(instruments), "statuses": frozenset(statuses)}, errors


@require_safe
async def order_events(request):
    user, exc, drf_request = await sync_to_async(_authenticate)(request)
    if exc is not None:
        return _error(exc, drf_request)
    query, errors = _parse(request)
    if errors:
        return JsonResponse(errors, status=400)
    if not isinstance(request, ASGIRequest):
        # Under WSGI (gunicorn's sync workers, runserver) the stream would hold a worker for
        # as long as the client stays: refuse instead (make run serves it with uvicorn).
        return JsonResponse({"detail": ASGI_ONLY}, status=501)
    event_filter = EventFilter(
        owner_id=None if user.is_staff else user.pk,
        instruments=query["instruments"],
        statuses=query["statuses"],
    )
    response = StreamingHttpResponse(stream(event_filter, query["since"]), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
