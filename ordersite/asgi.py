"""The ASGI application ``make run`` serves under uvicorn.

Two Django handlers behind one router:

- **Async views** (the order event stream, SPEC §10) go to Django's ASGI handler: an
  idle stream is a suspended coroutine, not a thread.
- **Every other request** (the API, the back office, /healthz, /metrics, a 404) goes to
  Django's WSGI handler, run by a2wsgi in a fixed pool of ``WEB_THREADS`` threads per
  process. Django's ASGI handler would run each sync view in a thread of its own, made
  for that one request, so the thread-local database connection was opened on every
  request and left open until the garbage collector found it. In a fixed pool each
  thread keeps its connection (``CONN_MAX_AGE``), checked and closed as under gunicorn,
  because a2wsgi also closes the response (``request_finished``) on that thread. A
  chunked body is read here first, so the WSGI request knows its length.
"""

import os

from a2wsgi import WSGIMiddleware
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.urls import Resolver404, get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ordersite.settings")

asgi_handler = get_asgi_application()
wsgi_pool = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_THREADS)


def _path_info(scope) -> str:
    """The path Django resolves: without the prefix the server is mounted at (``root_path``)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def serves_async(path: str) -> bool:
    """Whether ``path`` resolves to an async view (served by Django's ASGI handler)."""
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


async def with_length(scope, receive):
    """The request, its chunked body (no ``Content-Length``) read here and handed on with its length.

    Django's WSGI request reads ``CONTENT_LENGTH`` bytes of the body, so a chunked
    body would be read as empty and a valid order refused as malformed. Reading stops
    one byte past ``DATA_UPLOAD_MAX_MEMORY_SIZE``: Django then refuses the body as too
    large (413) without this process holding more of it.
    """
    names = {name for name, _ in scope["headers"]}
    if b"content-length" in names or b"transfer-encoding" not in names:
        return scope, receive
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body, more = bytearray(), True
    while more and (limit is None or len(body) <= limit):
        message = await receive()
        if message["type"] != "http.request":  # the client went away: pass that on
            return scope, _replay(message, receive)
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = [(name, value) for name, value in scope["headers"] if name != b"transfer-encoding"]
    headers.append((b"content-length", str(len(body)).encode()))
    message = {"type": "http.request", "body": bytes(body), "more_body": False}
    return {**scope, "headers": headers}, _replay(message, receive)


def _replay(message, receive):
    """A ``receive`` that gives ``message`` first, then whatever the server sends next."""
    pending = [message]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


async def application(scope, receive, send):
    if scope["type"] == "http" and not serves_async(_path_info(scope)):
        scope, receive = await with_length(scope, receive)
        await wsgi_pool(scope, receive, send)
    else:
        await asgi_handler(scope, receive, send)
