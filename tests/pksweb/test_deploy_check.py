"""``manage.py check --deploy`` passes with production settings as an operator sets them (README's Production
table), warnings included; what the ingress does instead (the HTTPS redirect) is a switch, not a hidden check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "PKSWEB_MODE": "production",
    "PKSWEB_SECRET_KEY": "pz3Kq9vT1bLr8XwN4cYh7FjU2sAe6GmD0oRi5VtQyBnCuWxZlHkEaSdJgPf",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "pksweb.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://pksweb.example.com",
    "PKSWEB_CREDENTIAL_KEYS": "Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
                                                                       "CSRF_TRUSTED_ORIGINS"))}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env={**clean, **PRODUCTION, **env}, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_production_settings():
    result = check_deploy()
    assert result.returncode == 0, result.stderr + result.stdout


def test_pksweb_redirecting_to_https_itself_passes_too_and_a_wrong_log_format_is_refused():
    assert check_deploy(PKSWEB_SSL_REDIRECT="1").returncode == 0
    refused = check_deploy(PKSWEB_LOG_FORMAT="xml")
    assert refused.returncode != 0 and "PKSWEB_LOG_FORMAT='xml' is not a log format pksweb knows" in refused.stderr
