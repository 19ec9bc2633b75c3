"""How a log line is written: one JSON object per line (production) or plain text (a console), every record bounded.

This module imports nothing of Django or Celery: uvicorn's parent process (``python -m pksweb web`` with several
workers) loads it through the logging configuration file the entrypoint gives uvicorn (``--log-config``), before
any application exists, so the parent's lines have the same shape as everyone else's. ``settings.LOGGING`` is the
same configuration plus ``pksweb.logs.ContextFilter``, which fills in the request and task fields; where there is
no filter (uvicorn's parent) those fields are ``-``, as they are outside a request anywhere.

Bounds. A container runtime splits a line longer than 16 KiB into pieces (Docker, containerd and CRI-O all do), so
a longer JSON line reaches the log collector as fragments that are not JSON; and anyone who can send a request
could otherwise make lines as long as their request (Django's "Not Found: /aaaa…" repeats the path). So:

- a message keeps its first 4,000 characters (a page of text: every message pksweb and its libraries write on
  purpose is far shorter), fewer when those would take more than 6,000 bytes in the line, then says
  ``… (N more characters)``;
- a traceback keeps its first and last 3,000 bytes (where it started and what was raised) with the same note in
  between; a stack (``stack_info``) 1,000 bytes;
- every other field 256 bytes; a line still over 16,000 bytes (a record with very many extra fields) drops its
  extra fields and says how many it dropped.

Bytes are counted as written: JSON here is ASCII (``ensure_ascii``: a character outside ASCII is a ``\\uXXXX``
escape, 6 bytes, or 12 beyond the Basic Multilingual Plane), so the line's length in bytes is its length in
characters and no terminal encoding can fail on it. Plain text keeps the same character bounds (4,000 for the
message, 6,000 for a traceback); it is for a person, not a collector, so it stays multi-line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger import json as jsonlogger
from pythonjsonlogger.core import RESERVED_ATTRS

FORMATS = ("json", "plain")
LINE_BYTES = 16_000  # under the 16 KiB (16,384 bytes) at which container runtimes split a line
MESSAGE_CHARS = 4_000
MESSAGE_BYTES = 6_000
EXCEPTION_BYTES = 6_000
STACK_BYTES = 1_000
FIELD_BYTES = 256
EXCEPTION_CHARS = 6_000  # plain text
NONE = "-"
CONTEXT_FIELDS = ("request_id", "user", "task_name", "task_id")
FIELDS = ("levelname", "name", "message", "process", *CONTEXT_FIELDS)
RENAMED = {"levelname": "level", "name": "logger"}
STANDARD = frozenset({*(RENAMED.get(f, f) for f in FIELDS), "timestamp", "exc_info", "stack_info"})
PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_NOTE_BYTES = 48  # room for "… (N more characters)" as JSON: "\u2026" is 6 bytes


def chosen(environ: Mapping[str, str]) -> str:
    """The log format ``environ`` asks for: ``PKSWEB_LOG_FORMAT``, else JSON in production and plain embedded.
    ValueError naming the variable for anything else."""
    mode = environ.get("PKSWEB_MODE", "").strip().lower() or "embedded"
    name = environ.get("PKSWEB_LOG_FORMAT", "").strip().lower() or ("plain" if mode == "embedded" else "json")
    if name not in FORMATS:
        raise ValueError(f"PKSWEB_LOG_FORMAT={name!r} is not a log format pksweb knows: use 'json' or 'plain'.")
    return name


def config(name: str, level: str, *, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` writing ``name``'s format to stderr at ``level``, through ``filters``
    (``{"context": {"()": "pksweb.logs.ContextFilter"}}`` in Django's processes). Loggers made before it (uvicorn's
    own) are kept, and reach this handler through the root."""
    filters = dict(filters or {})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": {"plain": {"()": "pksweb.logformat.PlainFormatter"},
                       "json": {"()": "pksweb.logformat.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": name, "filters": list(filters)}},
        "root": {"handlers": ["console"], "level": level.upper()},
    }


def log_uncaught() -> None:
    """An exception nobody caught (in the main thread or another) is logged as a CRITICAL line, instead of Python
    printing its traceback as plain text among the JSON lines, as the process ends (Celery beat that cannot open its
    schedule file, say). Installed in JSON mode only: a console's person reads Python's own traceback fine."""

    def main_thread(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        logging.getLogger("pksweb").critical("uncaught %s: the process ends", kind.__name__, exc_info=(kind, exc, tb))

    def other_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        logging.getLogger("pksweb").critical("uncaught %s in thread %s", args.exc_type.__name__,
                                             getattr(args.thread, "name", "?"),
                                             exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))

    sys.excepthook = main_thread
    threading.excepthook = other_thread


# ---- bounds -------------------------------------------------------------------------------------


def _cost(ch: str) -> int:
    """Bytes ``ch`` takes inside an ASCII JSON string."""
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return 2 if ch in '"\\' else 1
    if ch in "\n\r\t\b\f":
        return 2
    return 6 if code < 0x10000 else 12


def _fits(text: str, budget: int) -> int:
    """How many of ``text``'s first characters take at most ``budget`` bytes."""
    used = 0
    for index, ch in enumerate(text):
        used += _cost(ch)
        if used > budget:
            return index
    return len(text)


def _note(left: int) -> str:
    return f"… ({left} more characters)"


def bound(text: str, budget: int, *, chars: int | None = None, tail: bool = False) -> str:
    """``text`` as it is when it takes at most ``budget`` bytes in a JSON line (and has at most ``chars``
    characters); else its beginning (with ``tail``: its beginning and its end) and a note of how much was left out."""
    if (chars is None or len(text) <= chars) and len(json.dumps(text)) - 2 <= budget:
        return text
    room = budget - _NOTE_BYTES
    text_chars = len(text) if chars is None else chars
    if not tail:
        kept = _fits(text[:text_chars], room)
        return text[:kept] + _note(len(text) - kept)
    head = _fits(text[: (text_chars + 1) // 2], room // 2)
    end = _fits(text[::-1][: text_chars // 2], room // 2)
    return f"{text[:head]}\n{_note(len(text) - head - end)}\n{text[len(text) - end:]}"


def bound_chars(text: str, chars: int, *, tail: bool = False) -> str:
    """Plain text: at most about ``chars`` characters of ``text``."""
    if len(text) <= chars:
        return text
    if not tail:
        return text[:chars] + _note(len(text) - chars)
    half = chars // 2
    return f"{text[:half]}\n{_note(len(text) - 2 * half)}\n{text[len(text) - half:]}"


# ---- formatters ---------------------------------------------------------------------------------


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per line, ASCII, with ``timestamp``, ``level``, ``logger``, ``message``, ``process``,
    ``request_id``, ``user``, ``task_name``, ``task_id`` (``-`` where nothing set them), a record's extra fields,
    and ``exc_info`` for an exception; every field bounded (the module's docstring says how much)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", list(FIELDS))
        kwargs.setdefault("rename_fields", RENAMED)
        kwargs.setdefault("timestamp", True)
        # uvicorn's copy of its message with terminal colours; Django's request object (pksweb.logs drops it too)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message", "request"])
        kwargs["json_ensure_ascii"] = True  # the bounds count ASCII bytes
        super().__init__(**kwargs)

    def format(self, record: logging.LogRecord) -> str:
        try:
            return super().format(record)
        except Exception as exc:  # noqa: BLE001 - a message whose arguments do not fit it: one line saying so
            try:
                text = f"{record.msg!r} % {record.args!r}"
            except Exception:  # noqa: BLE001
                text = "(a message that cannot be shown)"
            return self.serialize_log_record(self.process_log_record({
                "timestamp": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": f"pksweb could not format this log message ({type(exc).__name__}: {exc}): {text}",
                "process": record.process, **dict.fromkeys(CONTEXT_FIELDS, NONE)}))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for field in CONTEXT_FIELDS:
            if log_data.get(field) is None:
                log_data[field] = NONE
        for key, value in log_data.items():
            if key == "message":
                log_data[key] = bound(str(value), MESSAGE_BYTES, chars=MESSAGE_CHARS)
            elif key == "exc_info" and isinstance(value, str):
                log_data[key] = bound(value, EXCEPTION_BYTES, tail=True)
            elif key == "stack_info" and isinstance(value, str):
                log_data[key] = bound(value, STACK_BYTES, tail=True)
            elif isinstance(value, str):
                log_data[key] = bound(value, FIELD_BYTES)
            elif not (value is None or isinstance(value, (bool, int, float)) or key == "timestamp"):
                encoded = self.jsonify_log_record(value)  # dicts, lists, objects: as they would be written
                if len(encoded) > FIELD_BYTES:
                    log_data[key] = bound(encoded, FIELD_BYTES)
        return log_data

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        line = super().serialize_log_record(log_data)
        if len(line) <= LINE_BYTES:
            return line
        kept = {key: value for key, value in log_data.items() if key in STANDARD}
        kept["fields_dropped"] = len(log_data) - len(kept)
        return super().serialize_log_record(kept)


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message`` for a person at a console; the message and a traceback bounded in characters."""

    def __init__(self, fmt: str = PLAIN, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = bound_chars(record.message, MESSAGE_CHARS)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return bound_chars(super().formatException(ei), EXCEPTION_CHARS, tail=True)

    def formatStack(self, stack_info: str) -> str:
        return bound_chars(super().formatStack(stack_info), EXCEPTION_CHARS, tail=True)
