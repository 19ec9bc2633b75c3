"""Production mode refuses to start without its configuration, naming what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given, settings
from hypothesis import strategies as st

from pksweb.settings import _number

ROOT = Path(__file__).resolve().parents[2]
COMPLETE = {
    "PKSWEB_MODE": "production",
    "PKSWEB_SECRET_KEY": "x" * 50,
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "pksweb.example",
    "PKSWEB_CREDENTIAL_KEYS": "Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=",
}


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in COMPLETE}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("missing", ["PKSWEB_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "PKSWEB_CREDENTIAL_KEYS"])
def test_missing_production_variable_is_named(missing):
    result = manage_check({k: v for k, v in COMPLETE.items() if k != missing})
    assert result.returncode != 0
    assert f"{missing} is required when PKSWEB_MODE=production" in result.stderr


def test_complete_production_configuration_passes_check():
    result = manage_check(COMPLETE)
    assert result.returncode == 0, result.stderr


def test_unknown_mode_is_refused():
    result = manage_check({"PKSWEB_MODE": "staging"})
    assert result.returncode != 0
    assert "PKSWEB_MODE='staging' is not a mode pksweb knows" in result.stderr


def production_setting(env: dict[str, str], expression: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in COMPLETE and k != "PKSWEB_SECURE_COOKIES"}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", f"from django.conf import settings; print({expression})"],
                            cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_production_cookies_are_secure_and_hsts_is_sent_behind_tls():
    flags = "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY, settings.SECURE_HSTS_SECONDS"
    assert production_setting(COMPLETE, flags) == "True True True 31536000"
    # Served over plain HTTP on purpose (a trusted network, a test): no Secure flag, and no HSTS a browser would keep.
    assert production_setting({**COMPLETE, "PKSWEB_SECURE_COOKIES": "0"}, flags) == "False False True 0"


def test_a_number_that_is_not_one_is_named():
    result = manage_check({**COMPLETE, "PKSWEB_HEALTH_INTERVAL": "abc"})
    assert result.returncode != 0
    assert "PKSWEB_HEALTH_INTERVAL='abc' is not a number: use e.g. 30." in result.stderr


@given(st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30))  # what an environment can hold
@settings(max_examples=300, deadline=None)
def test_every_number_setting_is_a_finite_number_or_refused_by_name(value):
    """Whatever an operator types: a finite number, 0 or more, or ImproperlyConfigured naming the variable; never
    another error (a bare ValueError stopped start-up with a traceback)."""
    for kind in (float, int):
        os.environ["PKSWEB_TRY_NUMBER"] = value
        try:
            number = _number("PKSWEB_TRY_NUMBER", "7", kind)
        except ImproperlyConfigured as exc:
            assert str(exc).startswith("PKSWEB_TRY_NUMBER=")
        else:
            assert isinstance(number, kind) and 0 <= number < float("inf")
        finally:
            del os.environ["PKSWEB_TRY_NUMBER"]


def test_a_malformed_credential_key_stops_start_up_without_repeating_it():
    result = manage_check({**COMPLETE, "PKSWEB_CREDENTIAL_KEYS": "Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=,not-a-key-42"})
    assert result.returncode != 0
    assert "PKSWEB_CREDENTIAL_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
    assert "not-a-key-42" not in result.stderr



@pytest.mark.parametrize(("variable", "value", "said"), [
    ("DATABASE_URL", "not-a-url", "DATABASE_URL is not a PostgreSQL URL pksweb can use"),
    ("DATABASE_URL", "postgresql://u:SECRETPW123@127.0.0.1:99999/x", "DATABASE_URL is not a PostgreSQL URL pksweb can use"),
    ("DATABASE_URL", "mysql://u:SECRETPW123@db/x", "DATABASE_URL is not a PostgreSQL URL pksweb can use"),
    ("REDIS_URL", "garbage", "REDIS_URL is not a Redis URL"),
    ("REDIS_URL", "http://redis:6379/0", "REDIS_URL is not a Redis URL"),
    ("PKSWEB_LOG_LEVEL", "LOUD", "PKSWEB_LOG_LEVEL='LOUD' is not a level"),
    ("PKSWEB_DEBUG", "1", "PKSWEB_DEBUG=1 is refused when PKSWEB_MODE=production"),
])
def test_a_value_pksweb_cannot_use_stops_start_up_in_words(variable, value, said):
    result = manage_check({**COMPLETE, variable: value})
    assert result.returncode != 0
    assert said in result.stderr and "SECRETPW123" not in result.stderr


def test_two_installations_on_one_redis_hear_nothing_of_each_other():
    """Queue and channel prefix were not enough: Celery's control and heartbeat exchanges were shared."""
    code = "from pksweb.celery import app; print(app.conf.control_exchange, app.conf.event_exchange)"
    clean = {k: v for k, v in os.environ.items() if k not in COMPLETE}
    shown = [subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, text=True,
                            capture_output=True, timeout=60,
                            env={**clean, **COMPLETE, "DJANGO_SETTINGS_MODULE": "pksweb.settings",
                                 "PKSWEB_CELERY_QUEUE": queue}).stdout.split() for queue in ("blue", "green")]
    assert shown == [["blue.control", "blue.events"], ["green.control", "green.events"]]
