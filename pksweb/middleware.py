"""Middleware of pksweb's own: every request observed (its id, its user, its figures); a database outage
answered with a 503 in words.

``ObserveMiddleware`` (outermost) gives each request its id (``pksweb.logs``: a sane incoming ``X-Request-ID``
or a new one, echoed in the response) and binds it and the user to every line logged while the request is
answered, then counts the request by view for ``/metrics`` (``pksweb.metrics``).

``DatabaseUnavailableMiddleware`` (innermost): a database outage answers 503 in words, not a 500 with a stack trace.

When PostgreSQL restarts, requests that need it fail with ``OperationalError`` or
``InterfaceError``. pksweb says what happened (JSON under /api/, a short page
elsewhere; neither touches the database) and recovers by itself: Django drops the
broken connection at the end of the request and the next request connects again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from pksweb import logs, metrics
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


class ObserveMiddleware:
    """The request's id and user on every line logged while answering it; the request counted by view.

    Async where the server is (no thread hop per request), sync under a sync server or the test client. Under
    ASGI the context stays bound to the end of the request's own task, and in sync code until the response is
    closed, so the lines Django and uvicorn write after the middleware returns (a 404's warning, the access line)
    carry it too.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._answer_async(request)
        started = time.perf_counter()
        context = logs.Context(logs.request_id_from(request.headers.get(logs.HEADER)), request)
        logs.bind(context)  # unbound when the response is closed (request_finished), after Django's own last line
        response: HttpResponse = self.get_response(request)
        self._user_known(request, context, lambda: request.user.get_username() if request.user.is_authenticated else "")
        return self._answered(request, response, context, started)

    async def _answer_async(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        context = logs.Context(logs.request_id_from(request.headers.get(logs.HEADER)), request)
        logs.bind(context)  # the request's task ends with the request: nothing to unbind
        response: HttpResponse = await self.get_response(request)
        if context.user is None and self._unknown_user(request):
            try:
                user = await request.auser()
                context.user = user.get_username() if user.is_authenticated else logs.ANONYMOUS
            except DatabaseError:
                pass  # the database is down: the line says anonymous rather than fail the answer
        return self._answered(request, response, context, started)

    @staticmethod
    def _unknown_user(request: HttpRequest) -> bool:
        """Nobody asked who the request is from, and the answer is not plainly anonymous (a session cookie came)."""
        return (logs.username_known(request) == logs.ANONYMOUS and hasattr(request, "auser")
                and "_cached_user" not in request.__dict__ and "_acached_user" not in request.__dict__
                and bool(getattr(request, "session", None) and request.session.session_key))

    def _user_known(self, request: HttpRequest, context: logs.Context, read: Callable[[], str]) -> None:
        if self._unknown_user(request):
            try:
                context.user = read() or logs.ANONYMOUS
            except DatabaseError:
                pass

    @staticmethod
    def _answered(request: HttpRequest, response: HttpResponse, context: logs.Context, started: float) -> HttpResponse:
        response[logs.HEADER] = context.request_id
        metrics.request_observe(request, response, time.perf_counter() - started)
        return response
