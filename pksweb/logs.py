"""Who and what each log line is about: the request id and user during a request, the task during a task.

``PKSWEB_LOG_FORMAT`` chooses JSON lines (production's default: one object per line, for a log collector) or
plain text (embedded's default, for a person at a console); ``settings.LOGGING`` wires both through
``ContextFilter``, which adds to every record:

- ``request_id``: the request's ``X-Request-ID`` when the incoming one is sane (a proxy or the ingress made
  it), else one made here; the response carries it back in the same header;
- ``user``: the username of whoever the request is from, or ``anonymous``;
- ``task_name`` and ``task_id`` inside a Celery task.

Outside a request or task those fields are ``-``. The context lives in a ``ContextVar``: each request (and each
websocket) runs in its own asyncio task or thread context, so lines never borrow another request's id.
Nothing here reads a credential: a line carries what the code logs, and the filter drops the request object
Django attaches to its own lines, whose text would otherwise be rendered into the JSON.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from celery import current_task
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

NONE = "-"
ANONYMOUS = "anonymous"
# An incoming X-Request-ID is taken when it looks like an id (what proxies make: UUIDs, hex, base64); anything
# else (too long, spaces, control characters) is replaced, so a client cannot write into the logs through it.
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")
HEADER = "X-Request-ID"


@dataclass
class Context:
    """What lines during one request (or websocket) say about it."""

    request_id: str
    request: HttpRequest | None = None
    user: str | None = None  # known outright (a websocket's user); else read from ``request`` as far as it is known


_current: ContextVar[Context | None] = ContextVar("pksweb_log_context", default=None)


def request_id_from(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if incoming and SANE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def bind(context: Context) -> Token[Context | None]:
    """Lines from here on (in this task or thread's context) carry ``context``."""
    return _current.set(context)


def unbind(token: Token[Context | None]) -> None:
    _current.reset(token)


@receiver(request_finished)
def _request_finished(**kwargs: Any) -> None:
    """A thread that answered a request (WSGI, the test client) goes on to other work: its lines are no longer the
    request's. (Under ASGI the request's own task ends anyway.)"""
    _current.set(None)


def current() -> Context | None:
    return _current.get()


def username_known(request: HttpRequest) -> str:
    """Whoever the request is from, as far as the request already knows it: reading it here would query the
    database from inside a log call (maybe in async code, maybe while the database is down). A request whose
    user nobody has asked for yet is ``anonymous`` until the middleware asks at its end."""
    user: Any = request.__dict__.get("user")
    if user is not None and not isinstance(user, SimpleLazyObject):
        known = user  # set outright (Django REST framework's token authentication does)
    else:
        known = request.__dict__.get("_cached_user") or request.__dict__.get("_acached_user")
    if known is not None and getattr(known, "is_authenticated", False):
        return str(known.get_username())
    return ANONYMOUS


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``user``, ``task_name`` and ``task_id`` to every record (``-`` where none applies)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        record.request_id = context.request_id if context else NONE
        if context is None:
            record.user = NONE
        elif context.user is not None:
            record.user = context.user
        else:
            record.user = username_known(context.request) if context.request is not None else ANONYMOUS
        task = current_task
        if task:
            record.task_name = getattr(task, "name", None) or NONE
            record.task_id = getattr(getattr(task, "request", None), "id", None) or NONE
        else:
            record.task_name = record.task_id = NONE
        # Django hands its request object to its own lines (django.request, django.security); a formatter would
        # render its text into the line. What matters of it is in the fields above and the message.
        record.__dict__.pop("request", None)
        record.__dict__.pop("color_message", None)  # uvicorn's copy of the message with terminal colours
        return True
