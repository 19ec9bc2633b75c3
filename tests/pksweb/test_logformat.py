"""Every record becomes one bounded line: a JSON object of at most LINE_BYTES bytes (a container runtime splits
longer lines at 16 KiB) whatever its message, arguments, traceback or extra fields; plain text keeps the same
character bounds. And the processes the entrypoint starts are told to write so."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pksweb import __main__ as entrypoint
from pksweb import logformat
from pksweb.logformat import LINE_BYTES, MESSAGE_CHARS, JsonFormatter, PlainFormatter
from tests.support.stack import base_env

SHAPE = {"timestamp", "level", "logger", "message", "process", "request_id", "user", "task_name", "task_id"}
# Any character (surrogates too: a path decoded with surrogateescape has them), any length up to ~100,000.
ANY = st.characters(exclude_categories=())
TEXT = st.one_of(st.text(ANY, max_size=200),
                 st.builds(lambda part, times: part * times, st.text(ANY, min_size=1, max_size=300), st.integers(20, 2000)))


def record(message: str, *, args: tuple = (), exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("tests.logformat", logging.WARNING, __file__, 1, message, args,
                             (type(exc), exc, exc.__traceback__) if exc else None)
    made.__dict__.update(extra)
    return made


def raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def one_json_line(line: str) -> dict:
    assert "\n" not in line and "\r" not in line
    assert line.isascii() and len(line.encode()) <= LINE_BYTES, len(line.encode())
    parsed = json.loads(line)
    assert isinstance(parsed, dict) and SHAPE <= set(parsed), parsed
    return parsed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(message=TEXT, trace=TEXT, extra=st.dictionaries(st.text(ANY, max_size=20).filter(str.isidentifier), TEXT, max_size=40))
def test_any_record_is_one_json_line_within_the_bound(message, trace, extra):
    extra = {k: v for k, v in extra.items() if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__
             and k not in ("message", "asctime")}
    formatter = JsonFormatter()
    plain = one_json_line(formatter.format(record(message)))
    assert plain["message"] == message if len(message) <= 1_000 and message.isprintable() else True
    if len(message) > MESSAGE_CHARS:
        assert plain["message"].endswith(" more characters)") and len(plain["message"]) < MESSAGE_CHARS + 40
    one_json_line(formatter.format(record("%s: %s", args=(message, trace), exc=raised(trace), **extra)))
    bounded = PlainFormatter().format(record(message, exc=raised(trace)))
    assert len(bounded) <= MESSAGE_CHARS + logformat.EXCEPTION_CHARS + 200


def test_a_huge_path_keeps_its_start_and_says_how_much_was_left_out():
    """The tester's case: Django's "Not Found: /aaaa…" for a 60,000-character path was one 60 KB line."""
    line = JsonFormatter().format(record("Not Found: %s", args=("/" + "a" * 60_000,)))
    message = one_json_line(line)["message"]
    assert message.startswith("Not Found: /aaaa") and message.endswith("… (56012 more characters)")
    assert len(message) == MESSAGE_CHARS + len("… (56012 more characters)")


def test_a_long_traceback_keeps_its_start_and_the_exception():
    exc = raised("the last line says what went wrong")
    line = one_json_line(JsonFormatter().format(record("x" * 10, exc=exc, stack_info="s" * 50_000)))
    assert line["exc_info"].startswith("Traceback") and line["exc_info"].endswith("what went wrong")
    many = one_json_line(JsonFormatter().format(record("€" * 50_000, exc=raised("é" * 50_000))))
    assert "more characters)" in many["message"] and "more characters)" in many["exc_info"]


def test_many_large_extra_fields_are_dropped_not_split():
    extra = {f"field_{i}": "x" * 1_000 for i in range(100)}
    line = one_json_line(JsonFormatter().format(record("many extras", **extra)))
    assert line["message"] == "many extras" and line["fields_dropped"] == 100


def test_a_message_whose_arguments_do_not_fit_is_still_a_line():
    line = one_json_line(JsonFormatter().format(record("%d items", args=("not a number",))))
    assert "could not format" in line["message"] and "%d items" in line["message"]


def test_lines_without_the_request_filter_have_every_field():
    """uvicorn's parent process has no Django and so no request filter: its lines have the same fields, '-'."""
    line = one_json_line(JsonFormatter().format(record("Started parent process [1]", color_message="\x1b[36m…")))
    assert [line[f] for f in ("request_id", "user", "task_name", "task_id")] == ["-"] * 4 and "color_message" not in line


@pytest.mark.parametrize(("env", "quiet", "fmt"), [
    ({"PKSWEB_MODE": "production"}, True, "json"),
    ({"PKSWEB_MODE": "production", "PKSWEB_LOG_FORMAT": "plain"}, False, "plain"),
    ({"PKSWEB_MODE": "embedded"}, False, "plain"),
    ({"PKSWEB_MODE": "embedded", "PKSWEB_LOG_FORMAT": "JSON"}, True, "json"),
])
def test_the_entrypoint_tells_uvicorn_and_celery_the_format(monkeypatch, tmp_path, env, quiet, fmt):
    """Celery's --quiet (a global option: before the sub-command) only in JSON mode, where its banners would be
    plain text among the JSON; uvicorn gets the logging configuration as a file (--log-config)."""
    monkeypatch.delenv("PKSWEB_LOG_FORMAT", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for argv in (entrypoint.worker_argv([]), entrypoint.beat_argv([])):
        assert argv[:5] == [sys.executable, "-m", "celery", "-A", "pksweb"]
        assert ("--quiet" in argv) is quiet and (argv[5] == "--quiet") is quiet
    web = entrypoint.web_argv(["--log-level", "warning"])
    path = web[web.index("--log-config") + 1]
    assert path.endswith(".json") and path.startswith(str(tmp_path)) and web[-2:] == ["--log-level", "warning"]
    with open(path) as file:
        config = json.load(file)
    assert config["handlers"]["console"]["formatter"] == fmt and config["disable_existing_loggers"] is False


def test_an_unknown_format_stops_the_entrypoint(monkeypatch):
    monkeypatch.setenv("PKSWEB_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit, match="PKSWEB_LOG_FORMAT='xml'"):
        entrypoint.worker_argv([])


UNCAUGHT = """
import threading, django
django.setup()
thread = threading.Thread(target=lambda: 1 / 0, name="sweeper")
thread.start()
thread.join()
raise ValueError("nobody caught this")
"""


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_an_exception_nobody_caught_is_a_json_line_too(tmp_path, fmt):
    """A process that dies of an exception (beat that cannot open its schedule file) writes its traceback as a
    CRITICAL JSON line rather than as plain text among the JSON; a thread's too. Plain mode keeps Python's."""
    env = base_env(PKSWEB_MODE="production", PKSWEB_LOG_FORMAT=fmt, PKSWEB_SECRET_KEY="s" * 50,
                   PKSWEB_CREDENTIAL_KEYS="Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=",
                   DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", REDIS_URL="redis://127.0.0.1:9/0",
                   ALLOWED_HOSTS="localhost", PKSWEB_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="pksweb.settings")
    result = subprocess.run([sys.executable, "-c", UNCAUGHT], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    if fmt == "plain":
        assert "Traceback (most recent call last)" in result.stderr and "ZeroDivisionError" in result.stderr
        return
    lines = [one_json_line(line) for line in result.stderr.splitlines() if line.strip()]
    died = [line for line in lines if line["level"] == "CRITICAL"]
    assert [line["message"] for line in died] == ["uncaught ZeroDivisionError in thread sweeper",
                                                  "uncaught ValueError: the process ends"], result.stderr
    assert died[1]["exc_info"].endswith("ValueError: nobody caught this")
