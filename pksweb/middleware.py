"""A database outage answers 503 in words, not a 500 with a stack trace.

When PostgreSQL restarts, requests that need it fail with ``OperationalError`` or
``InterfaceError``. pksweb says what happened (JSON under /api/, a short page
elsewhere; neither touches the database) and recovers by itself: Django drops the
broken connection at the end of the request and the next request connects again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from pksweb.views import is_api_request

log = logging.getLogger(__name__)

MESSAGE = ("pksweb cannot reach its database right now. Nothing from this request was saved; "
           "try again in a moment (pages work again as soon as the database is back).")


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("database unavailable while answering %s %s: %s", request.method, request.path, exception)
        if is_api_request(request):
            response: HttpResponse = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            response = HttpResponse(render_to_string("database_unavailable.html", {"message": MESSAGE}), status=503)
        response["Retry-After"] = "5"
        return response
