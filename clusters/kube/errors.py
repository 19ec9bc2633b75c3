"""Cluster failures, translated into words an operator can act on."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from pksweb.text import article, bound

# How much of what a server says goes into a message: enough to act on, never a page of it.
SERVER_WORDS = 300


# What reading an answer of a shape no Kubernetes API gives raises (into the client's models, or into pksweb's).
UNREADABLE = (TypeError, AttributeError, KeyError, ValueError, IndexError)


class KubeError(Exception):
    """A failed cluster call. ``kind`` groups failures; ``message`` says what to do."""

    UNREACHABLE_KINDS = frozenset({"dns", "refused", "timeout", "tls", "dropped", "unreachable"})

    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.details = details or {}

    @property
    def unreachable(self) -> bool:
        """The cluster's API could not be reached (as opposed to answering with an error)."""
        return self.kind in self.UNREACHABLE_KINDS

    def __str__(self) -> str:
        return self.message


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
        return body if isinstance(body, dict) else {}
    except (ValueError, TypeError):
        return {}


def _text(raw: object) -> str:
    """A non-Status answer (a proxy's HTML page, plain text) as one line of words."""
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    if not isinstance(raw, str):
        return ""
    return " ".join(raw[:4 * SERVER_WORDS].split())


def _details(body: dict[str, Any]) -> dict[str, Any]:
    """A Status's details, kept only in the shape the Kubernetes API gives them (causes: objects)."""
    details = body.get("details")
    if not isinstance(details, dict):
        return {}
    causes = details.get("causes")
    return {**details, "causes": [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []}


def translate(exc: BaseException, *, server: str, action: str) -> KubeError:
    """A ``KubeError`` for any exception raised while ``action`` ran against ``server``."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        body = _status_body(exc)
        message = bound(str(body.get("message") or _text(exc.body) or exc.reason or "").rstrip("."), SERVER_WORDS)
        status = exc.status
        if status == 401:
            return KubeError("unauthorized", f"The API server refused the credential (401 Unauthorized) while trying to {action}: "
                                             "the token or client certificate is wrong, expired or revoked.", status)
        if status == 403:
            return KubeError("forbidden", f"The credential may not {action} (403 Forbidden): {message}. Grant it that permission "
                                          "(RBAC) or register the cluster with a credential that has it.", status)
        if status == 404:
            return KubeError("not_found", f"Not found while trying to {action}: {message}.", status)
        if status == 409:
            return KubeError("conflict", f"Conflict while trying to {action}: {message}.", status)
        if status == 422:
            return KubeError("invalid", f"The API server rejected the request to {action}: {message}.", status)
        if status == 429:
            retry = (exc.headers or {}).get("Retry-After") if exc.headers else None
            details = _details(body)
            # A day at most: a hostile server's "Retry-After: 999…9" must not overflow anything.
            seconds = min(float(str(retry)[:9]), 86400.0) if retry and str(retry).isascii() and str(retry).isdigit() else None
            return KubeError("throttled", f"The API server is throttling requests (429) while trying to {action}"
                                          f"{f'; it asks to retry after {int(seconds)} s' if seconds else ''}: {message}.",
                             status, seconds, details)
        if status and status >= 500:
            return KubeError("server_error", f"The API server failed ({status}) while trying to {action}: {message}.", status)
        if status == 0 or status is None:
            return KubeError("unreachable", f"No answer from {server} while trying to {action}: {bound(exc.reason, SERVER_WORDS)}.")
        return KubeError("error", f"The API server answered {status} while trying to {action}: {message}.", status)
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None else exc
    text = bound(str(reason), 2000)
    if isinstance(reason, urllib3.exceptions.NameResolutionError) or isinstance(reason, socket.gaierror) \
            or "Name or service not known" in text or "nodename nor servname" in text or "Failed to resolve" in text:
        host = getattr(reason, "host", None) or server
        return KubeError("dns", f"Cannot resolve the API server's host name ({host}): check the server address and DNS.")
    if isinstance(reason, urllib3.exceptions.SSLError) or isinstance(reason, ssl.SSLError):
        return KubeError("tls", f"TLS verification of {server} failed ({text.split(':', 1)[-1].strip()[:200]}): check the CA "
                                "certificate (certificate-authority-data) and that the server name matches its certificate.")
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: test for refusals first.
    if "Connection refused" in text or isinstance(reason, ConnectionRefusedError):
        return KubeError("refused", f"Connection to {server} was refused: nothing listens at that address and port "
                                    "(is the API server up and the port right?).")
    if isinstance(reason, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, TimeoutError, socket.timeout)):
        return KubeError("timeout", f"{server} did not answer in time while trying to {action}: the cluster or the network "
                                    "to it is down or overloaded.")
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return KubeError("unreachable", f"Could not connect to {server}: {text.split(':', 1)[-1].strip()[:200]}.")
    if isinstance(reason, (urllib3.exceptions.ProtocolError, ConnectionError)) or "Connection aborted" in text \
            or "RemoteDisconnected" in text:
        return KubeError("dropped", f"{server} dropped the connection without answering while trying to {action}.")
    if isinstance(reason, urllib3.exceptions.HTTPError):
        return KubeError("unreachable", f"Could not reach {server} while trying to {action}: {text[:200]}.")
    if isinstance(exc, UNREADABLE):
        # Raised while the client read the answer into its models: the server said something malformed.
        return unreadable(exc, server=server, action=action)
    raise exc


def unreadable(exc: BaseException, *, server: str, action: str) -> KubeError:
    """An answer that does not have the shape every Kubernetes API server gives, said in an operator's words
    (which fields, not the client library's validation report)."""
    return KubeError("bad_response", f"{server} sent an answer pksweb could not read while trying to {action}: "
                                     f"{describe_unreadable(exc)}. Every Kubernetes API server gives these: is this one "
                                     "behind a proxy that changes answers, or not a Kubernetes API?")


def describe_unreadable(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":  # the client's models (pydantic)
        try:
            found = errors()
        except Exception:  # noqa: BLE001 - then say less, never fail on the description
            found = []
        what = getattr(exc, "title", "") or "an object"
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in found} - {""})
        whole = [e for e in found if not e.get("loc")]
        if whole and not fields:  # not an object of that kind at all: say what came instead
            given = whole[0].get("input")
            if isinstance(given, str | bytes):
                shown = bound(given if isinstance(given, str) else given.decode("utf-8", "replace"), 60)
                return bound(f"the answer held the text {shown!r} where a {what} belongs", 300)
            return bound(f"the answer held {article(type(given).__name__)} where a {what} belongs "
                         f"({whole[0].get('msg', 'not an object')})", 300)
        shown = ", ".join(fields[:4]) + (f" and {len(fields) - 4} more" if len(fields) > 4 else "")
        return bound(f"{len(found)} field(s) of {what} missing or invalid ({shown})", 300)
    return bound(f"{type(exc).__name__}: {exc}", 200)
