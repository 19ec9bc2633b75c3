"""What pksweb tells Prometheus: its own figures, and the fleet's, computed when scraped.

pksweb's own figures are ``prometheus_client`` metrics defined here and counted where things happen:
requests by view (the route's name, never the raw path, so the number of series stays bounded), open
websockets, how late an event reaches a page, fan-out deliveries, Celery tasks (``pksweb.metrics`` connects
Celery's signals when ``pksweb.celery`` imports it) and the health sweep's duration.

The fleet's figures are read from the database at scrape time by collectors the apps register with
``collect_from`` in their ``AppConfig.ready()`` (clusters, upgrades and tenants each know their own
models; the core imports none of them). Each collector runs a fixed number of queries, whatever the size of
the fleet. Only the web process serves them (``GET /metrics``); a worker's own port
(``PKSWEB_WORKER_METRICS_PORT``) serves its own figures only, so the fleet is not counted once per pod twice.

Several processes: uvicorn's ``--workers`` and Celery's prefork children each count on their own. With
``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts: ``prometheus_client`` reads it at import) every
process writes its figures to files there, and a scrape adds them up. Open websockets are a "live" sum: the
files of a process that ended are dropped, at its exit and, for one that was killed, at the next scrape.
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery.signals import task_postrun, task_prerun, worker_init
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No "_created" series: Prometheus does not need them, and multiprocess mode cannot serve them anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]
# Figures without labels open their file in the multiprocess folder as soon as they are defined: a process the
# entrypoint did not prepare (beat, migrate, `manage` in a new container or an exec into a pod) makes the folder
# rather than fail (only web and worker start from an empty one: pksweb/__main__.py).
if os.environ.get(MULTIPROC_ENV, "").strip():
    os.makedirs(os.environ[MULTIPROC_ENV].strip(), exist_ok=True)

# ---- pksweb's own figures ----------------------------------------------------------------------

HTTP_REQUESTS = Counter("pksweb_http_requests", "HTTP requests answered, by view (route name), method and status.",
                        ["view", "method", "status"])
HTTP_SECONDS = Histogram("pksweb_http_request_duration_seconds", "Time to answer an HTTP request, by view and method.",
                         ["view", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
WEBSOCKETS_OPEN = Gauge("pksweb_websockets_open", "Live pages' websockets open now, by page.", ["page"],
                        multiprocess_mode="livesum")
EVENT_LAG = Histogram("pksweb_event_lag_seconds",
                      "From an event's publication to the frame that carries it being sent to a page (live, not replay).",
                      buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
FANOUT_DELIVERIES = Counter("pksweb_fanout_deliveries",
                            "Events handed to open pages by this process's fan-out: pushed (Redis) or caught up (database).",
                            ["source"])
TASK_SECONDS = Histogram("pksweb_celery_task_duration_seconds", "Time a Celery task ran, by task.", ["task"],
                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
TASKS = Counter("pksweb_celery_tasks", "Celery tasks finished, by task and outcome (succeeded, failed, retried, …).",
                ["task", "outcome"])
SWEEP_SECONDS = Histogram("pksweb_sweep_duration_seconds", "Time one health sweep of the whole fleet took.",
                          buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120))

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# ---- the fleet's figures: collectors the apps register ----------------------------------------

Source = Callable[[], Iterable[Metric]]
_sources: list[Source] = []


def collect_from(source: Source) -> Source:
    """Register ``source()``: metric families read from the database at each scrape of ``/metrics``, in a fixed
    number of queries whatever the fleet's size. The apps register theirs in ``AppConfig.ready()``."""
    if source not in _sources:
        _sources.append(source)
    return source


class _Fleet:
    """The registered sources, asked only when scraped (never when registered: no query at start-up).

    While the database cannot be reached the scrape still answers, with pksweb's own figures (the ones that help
    diagnose the outage) and ``pksweb_fleet_figures_up`` 0 in place of the fleet's families; the outage is logged
    once per process, and its end once. A source that fails otherwise (a bug) fails the scrape, as it should."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = []
        try:
            for source in _sources:
                families.extend(source())
        except (OperationalError, InterfaceError) as exc:
            up, families = False, []
            _fleet_state(up=False, reason=exc)
        else:
            up = True
            _fleet_state(up=True)
        yield from families
        yield GaugeMetricFamily("pksweb_fleet_figures_up", "1 when this scrape read the fleet's figures from the database; "
                                "0 when the database could not be reached and they were left out.",
                                value=1.0 if up else 0.0)


_fleet_up = True
_fleet_lock = threading.Lock()


def _fleet_state(*, up: bool, reason: Exception | None = None) -> None:
    """Log the fleet's figures going missing, and coming back, once each (Prometheus scrapes every few seconds)."""
    global _fleet_up
    with _fleet_lock:
        changed, _fleet_up = _fleet_up != up, up
    if changed and not up:
        log.warning("/metrics leaves out the fleet's figures (pksweb_fleet_figures_up 0): the database cannot be "
                    "reached: %s", str(reason).strip() or type(reason).__name__)
    elif changed:
        log.info("/metrics has the fleet's figures again: the database answers")


# ---- one process or many -----------------------------------------------------------------------


def multiproc_dir() -> str:
    """Where the processes of this pod write their figures ('' when each process serves its own)."""
    return os.environ.get(MULTIPROC_ENV, "").strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_processes(path: str) -> list[int]:
    """Drop the live gauges (open websockets) of processes that ended without saying so (killed, OOM); their
    counters and histograms stay, so totals never go backwards. Returns the pids forgotten."""
    dead = set()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(path):
            match = LIVE_FILE.fullmatch(name)
            if match and not _alive(int(match.group(1))):
                dead.add(int(match.group(1)))
    for pid in sorted(dead):
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return sorted(dead)


class _Own:
    """This process's figures, or (multiprocess mode) every process's, added up from their files."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        path = multiproc_dir()
        if path:
            forget_dead_processes(path)
            yield from MultiProcessCollector(None, path=path).collect()  # type: ignore[no-untyped-call]
        else:
            yield from REGISTRY.collect()


def registry(*, fleet: bool) -> CollectorRegistry:
    """What a scrape reads: pksweb's own figures, and with ``fleet`` the fleet's (web only)."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Own())
    if fleet:
        scraped.register(_Fleet())
    return scraped


def exposition() -> bytes:
    """The text a scrape of ``/metrics`` answers (Prometheus text format)."""
    return generate_latest(registry(fleet=True))


def _forget_this_process() -> None:
    """A process that ends normally (uvicorn's graceful stop) drops its live gauges itself."""
    mark_process_dead(os.getpid(), multiproc_dir())  # type: ignore[no-untyped-call]


if multiproc_dir():
    atexit.register(_forget_this_process)

# ---- HTTP: requests by view -------------------------------------------------------------------


def view_label(request: HttpRequest) -> str:
    """The route's name (``clusters:detail``): bounded, unlike the path. Static files and paths no route matches
    are one label each."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or "unnamed"
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def request_observe(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    """Count one answered request."""
    view = view_label(request)
    method = request.method if request.method in METHODS else "other"
    HTTP_REQUESTS.labels(view, method, str(response.status_code)).inc()
    HTTP_SECONDS.labels(view, method).observe(seconds)


# ---- Celery: tasks by name, and the worker's own port -----------------------------------------

_started: dict[str, float] = {}
_started_lock = threading.Lock()


@task_prerun.connect
def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id:
        with _started_lock:
            _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    with _started_lock:
        started = _started.pop(task_id or "", None)
    name = getattr(task, "name", None) or "unknown"
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)
    TASKS.labels(name, {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}.get(state or "", (state or "unknown").lower())).inc()


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` with ``token`` (compared in constant time); never without a token."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PLAIN = [("Content-Type", "text/plain; charset=utf-8")]


def worker_metrics_app(token: str) -> WSGIApp:
    """What a worker's port answers: ``GET /metrics`` with this worker's figures (task names and durations, no
    cluster or tenant), behind ``Authorization: Bearer <token>`` when a token is set (PKSWEB_METRICS_TOKEN, the
    web's); 404 for any other path. Without a token it is open to whoever reaches the port: the NetworkPolicy lets
    only the monitoring namespace reach it."""
    figures = make_wsgi_app(registry(fleet=False))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", PLAIN)
            return [b"This port serves GET /metrics only.\n"]
        if token and not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [*PLAIN, ("WWW-Authenticate", 'Bearer realm="pksweb metrics"')])
            return [b"/metrics needs Authorization: Bearer with the token PKSWEB_METRICS_TOKEN names.\n"]
        return figures(environ, start_response)  # type: ignore[no-any-return]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scrape that broke off (a reset connection): one log line, not a traceback printed among the JSON."""
        log.debug("worker metrics: a scrape from %s failed", client_address, exc_info=True)


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access line per scrape (wsgiref prints them as plain text on stderr)."""


def worker_metrics_serve(port: int, *, addr: str = "0.0.0.0") -> WSGIServer:
    """A worker's own figures on ``port`` (``worker_metrics_app``), served from a thread of their own (stopped by
    ``shutdown()``, or with the process)."""
    server = make_server(addr, port, worker_metrics_app(getattr(settings, "PKSWEB_METRICS_TOKEN", "")),
                         server_class=_Server, handler_class=_Handler)
    threading.Thread(target=server.serve_forever, name="pksweb-worker-metrics", daemon=True).start()
    log.info("serving this worker's metrics on port %d%s", port,
             " (bearer token required)" if getattr(settings, "PKSWEB_METRICS_TOKEN", "") else "")
    return server


@worker_init.connect
def _worker_started(**kwargs: Any) -> None:
    port = getattr(settings, "PKSWEB_WORKER_METRICS_PORT", None)
    if port:
        worker_metrics_serve(port)
