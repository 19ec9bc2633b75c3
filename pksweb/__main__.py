"""``python -m pksweb ROLE [ARGS…]``: one entrypoint for every process pksweb runs, the image's ENTRYPOINT.

    web      uvicorn on 0.0.0.0:$PORT (8000), $PKSWEB_WEB_WORKERS (2) processes, proxy headers,
             $PKSWEB_WEB_GRACE_SECONDS (20) for open requests and websockets to finish on SIGTERM
    worker   celery worker, $PKSWEB_WORKER_CONCURRENCY (8) threads (a node's steps and a probe mostly wait)
    beat     celery beat (its schedule lives in PKSWEB_DATA_DIR)
    migrate  manage.py migrate --noinput, under a PostgreSQL advisory lock so that several pods starting at
             once may all run it: one migrates, the others wait and then find nothing to do
    manage   any management command: ``python -m pksweb manage createuser admin --role operator …``

Arguments after the role are passed on (``web --log-level warning``). The servers replace this process
(``os.execvp``): signals from the container runtime or Kubernetes reach uvicorn and Celery themselves, with
no Python parent in between to forward or swallow them. It works the same outside the image, from any folder,
in a virtualenv where pksweb is installed. It only composes programs (wiring): it imports no app.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROLES = ("web", "worker", "beat", "migrate", "manage")
USAGE = f"usage: python -m pksweb {{{','.join(ROLES)}}} [ARGS…]"
# One advisory lock key for "pksweb migrates this database" (PostgreSQL scopes advisory locks to a database,
# so two installations on one server do not wait for each other). A stable 63-bit number from a name.
MIGRATE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"pksweb.migrate").digest()[:8], "big") >> 1


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# The entrypoint's own numbers: default, lowest, highest. Checked before anything starts, so that uvicorn or Celery
# never answer a typo with their usage text or a traceback.
NUMBERS = {
    "PORT": ("8000", 1, 65535),
    "PKSWEB_WEB_WORKERS": ("2", 1, 64),
    "PKSWEB_WORKER_CONCURRENCY": ("8", 1, 1000),
    "PKSWEB_WEB_GRACE_SECONDS": ("20", 0, 3600),
    "PKSWEB_MIGRATE_WAIT_SECONDS": ("60", 0, 86400),
}


def numbers_problem() -> str | None:
    """The first of the entrypoint's numbers that is not a whole number in its range, said in one line; or None."""
    for name, (default, lowest, highest) in NUMBERS.items():
        value = _env(name, default)
        if not (value.isascii() and value.isdigit()) or not lowest <= int(value) <= highest:
            return f"{name}={value!r} is not a whole number from {lowest} to {highest}: use e.g. {default}."
    return None


def reset_metrics_dir() -> None:
    """Prometheus' multiprocess mode keeps one file per process in PROMETHEUS_MULTIPROC_DIR; files left by a
    previous run would be counted again. Web and worker start from an empty folder (created if missing).
    Only the folder's entries are removed: the folder itself may be a mount point (an emptyDir)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def log_format() -> str:
    """The log format the processes write (``pksweb.logformat.chosen``: PKSWEB_LOG_FORMAT, JSON in production)."""
    from pksweb import logformat

    try:
        return logformat.chosen(os.environ)
    except ValueError as exc:
        raise SystemExit(f"pksweb: {exc}") from None


def uvicorn_log_config() -> str:
    """A logging configuration file for uvicorn (``--log-config``), the same as Django's processes use without the
    request filter: uvicorn's parent process, which with ``--workers`` supervises the others and loads no Django,
    would otherwise write plain lines ("Uvicorn running on …", "Child process died") among the JSON ones. uvicorn
    takes a file only; it is written to the temporary folder (/tmp, an emptyDir in the manifests, the image's only
    writable place besides /data), under a name nobody can guess or have made first (``mkstemp``: the file names
    Python callables the process imports), and stays for the parent's life: it reads it again for each worker it
    starts. One small file per start."""
    from pksweb import logformat

    text = json.dumps(logformat.config(log_format(), _env("PKSWEB_LOG_LEVEL", "INFO")), indent=1)
    handle, path = tempfile.mkstemp(prefix="pksweb-uvicorn-logging-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    return path


def quiet_celery() -> list[str]:
    """Celery's ``--quiet`` (a global option: before the sub-command) in JSON mode: the worker's ~30-line banner and
    beat's ~11 are plain text printed past logging; plain mode keeps them for the person reading the console."""
    return ["--quiet"] if log_format() == "json" else []


def web_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "pksweb.asgi:application", "--host", "0.0.0.0",
            "--port", _env("PORT", "8000"), "--workers", _env("PKSWEB_WEB_WORKERS", "2"), "--proxy-headers",
            "--timeout-graceful-shutdown", _env("PKSWEB_WEB_GRACE_SECONDS", "20"), "--log-config", uvicorn_log_config(),
            *args]


def worker_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "pksweb", *quiet_celery(), "worker", "--pool", "threads",
            "--concurrency", _env("PKSWEB_WORKER_CONCURRENCY", "8"), "--loglevel", _env("PKSWEB_LOG_LEVEL", "INFO"),
            *args]


def beat_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "pksweb", *quiet_celery(), "beat",
            "--loglevel", _env("PKSWEB_LOG_LEVEL", "INFO"), *args]


def manage(args: Sequence[str]) -> None:
    """Django's command line in this process (a command's exit status is this process's)."""
    from django.core.management import execute_from_command_line

    execute_from_command_line(["pksweb manage", *args])


def configured() -> str | None:
    """Load the settings and the apps now, before a server starts: what is wrong with the configuration, in the
    settings' own words (one line, no traceback), or None. uvicorn's parent would otherwise restart children that
    die of it, forever, and a pod would look alive."""
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def database_reached(wait_seconds: float) -> str | None:
    """Wait up to ``wait_seconds`` for the database to answer (a pod's migrate step may start before PostgreSQL):
    None once it does, else the last error in one line."""
    from django.db import OperationalError, connections

    deadline = time.monotonic() + wait_seconds
    while True:
        connection = connections.create_connection("default")
        try:
            connection.ensure_connection()
            return None
        except OperationalError as exc:
            error = " ".join(str(exc).split()) or exc.__class__.__name__
            if time.monotonic() >= deadline:
                return error
            print(f"pksweb migrate: waiting for the database ({error})", file=sys.stderr, flush=True)
            time.sleep(min(3.0, max(0.0, deadline - time.monotonic())))
        finally:
            connection.close()


def migrate(args: Sequence[str]) -> None:
    """``migrate --noinput`` under a session-level advisory lock on PostgreSQL (no lock on SQLite, which has a
    single writer and no concurrent pods), once the database answers (``PKSWEB_MIGRATE_WAIT_SECONDS``, 60). The lock
    is held on a connection of its own, so whatever migrate does with its connections cannot release it early; it
    is released when migrate ends, even by an error."""
    from django.db import connections

    unreachable = database_reached(float(_env("PKSWEB_MIGRATE_WAIT_SECONDS", "60")))
    if unreachable:
        raise SystemExit(f"pksweb migrate: the database did not answer: {unreachable}")
    lock = connections.create_connection("default")
    if lock.vendor != "postgresql":
        manage(["migrate", "--noinput", *args])
        return
    try:
        with lock.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
            if not cursor.fetchone()[0]:
                print("pksweb migrate: another process is migrating this database; waiting for it", flush=True)
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
        manage(["migrate", "--noinput", *args])
    finally:
        lock.close()  # ends the session, which releases the lock


def main(argv: Sequence[str]) -> int:
    """Run or become the role named first in ``argv``; 2 with a usage line naming the roles for anything else."""
    if argv and argv[0] in ("-h", "--help"):
        print(f"{USAGE}\n{__doc__}")
        return 0
    if not argv or argv[0] not in ROLES:
        given = f"unknown role {argv[0]!r}" if argv else "no role given"
        print(f"pksweb: {given}; the roles are {', '.join(ROLES)}.\n{USAGE}", file=sys.stderr)
        return 2
    role, args = argv[0], list(argv[1:])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pksweb.settings")
    wrong = numbers_problem() or configured()
    if wrong:
        print(f"pksweb {role}: the configuration is incomplete: {wrong}", file=sys.stderr)
        return 1
    if role == "manage":
        manage(args)
        return 0
    if role == "migrate":
        migrate(args)
        return 0
    if role in ("web", "worker"):
        reset_metrics_dir()
    program = {"web": web_argv, "worker": worker_argv, "beat": beat_argv}[role](args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(program[0], program)  # never returns


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
