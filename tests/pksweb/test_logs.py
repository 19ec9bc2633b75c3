"""Log lines: JSON objects of a fixed shape in production, each carrying the request's id (taken from a sane
X-Request-ID or made, and echoed back) and user, or the Celery task it was written in."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import AsyncClient, Client
from django.utils.module_loading import import_string

from pksweb.celery import app
from pksweb.logs import ContextFilter

SHAPE = {"timestamp", "level", "logger", "message", "process", "request_id", "user", "task_name", "task_id"}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the production handler (settings.LOGGING's JSON formatter and context filter) writes, for the loggers
    these tests use."""
    config = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(config.pop("()"))(**config)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    loggers = [logging.getLogger(name) for name in ("django.request", "tests.logs")]
    for logger in loggers:
        logger.addHandler(handler)
    yield out
    for logger in loggers:
        logger.removeHandler(handler)


def parsed(out: io.StringIO) -> list[dict]:
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    for record in records:
        assert SHAPE <= set(record), record  # and what a line adds of its own (django.request: status_code)
    return records


@pytest.mark.django_db
def test_a_request_line_carries_the_id_sent_and_the_anonymous_user(lines):
    response = Client().get("/no/such/page/", headers={"X-Request-ID": "edge-4f1c2a:17"})
    assert response.status_code == 404 and response["X-Request-ID"] == "edge-4f1c2a:17"
    [line] = parsed(lines)
    assert line["logger"] == "django.request" and line["level"] == "WARNING" and "/no/such/page/" in line["message"]
    assert line["request_id"] == "edge-4f1c2a:17" and line["user"] == "anonymous" and line["task_name"] == "-"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_under_asgi_a_signed_in_request_is_named_and_an_insane_id_replaced(lines, operator):
    client = AsyncClient()
    await client.aforce_login(operator)
    response = await client.get("/clusters/999999999/", headers={"X-Request-ID": "evil id\n{\"user\": \"admin\"}"})
    assert response.status_code == 404
    made = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    [line] = parsed(lines)
    assert line["request_id"] == made and line["user"] == operator.username


@pytest.mark.django_db
def test_every_request_gets_an_id_of_its_own_and_lines_after_it_none(lines):
    first, second = Client().get("/healthz"), Client().get("/healthz")
    assert first["X-Request-ID"] != second["X-Request-ID"]
    logging.getLogger("tests.logs").warning("between requests")
    [line] = parsed(lines)
    assert line["request_id"] == "-" and line["user"] == "-"


@app.task(name="tests.logs.talk")
def talk() -> None:
    logging.getLogger("tests.logs").info("inside a task")


def test_a_task_line_carries_the_task_name_and_id(lines):
    logging.getLogger("tests.logs").setLevel(logging.INFO)
    talk.apply(task_id="task-id-1234")
    [line] = parsed(lines)
    assert line["message"] == "inside a task" and line["task_name"] == "tests.logs.talk" and line["task_id"] == "task-id-1234"
    assert line["request_id"] == "-"
