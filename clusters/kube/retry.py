"""When a failed cluster call is tried again, and how an unreadable answer is reported.

A 429 is always safe to retry (the server refused before acting); a 5xx or a dropped connection
only for reads and idempotent writes. A timeout is not retried: it has already spent the call's
whole budget, and repeating it would triple how long one dead cluster holds a sweep. A
Retry-After longer than RETRY_AFTER_MAX is reported, not waited for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from clusters.kube.errors import UNREADABLE, KubeError, unreadable

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

RETRY_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.25
RETRY_AFTER_MAX = 5.0
RETRY_BUDGET_SECONDS = 10.0
# Calls named so only read: safe to repeat after a 5xx or a dropped connection.
SAFE_PREFIXES = ("read_", "list_", "get_")


def reads(action: str) -> Callable[[F], F]:
    """An operation whose answer is read into pksweb's shapes: an answer in a shape no Kubernetes API gives
    (a hostile or broken server) becomes a ``bad_response`` KubeError saying so, never a crash.

    Decorates methods of the gateway (``self.credential``) and of helpers on it (``self.gw.credential``)."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except KubeError:
                raise
            except UNREADABLE as exc:
                gateway = getattr(self, "gw", self)
                raise unreadable(exc, server=gateway.credential.server, action=action) from exc
        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature; mypy cannot see it
    return decorate


def retryable(exc: BaseException, safe: bool) -> bool:
    """Whether trying ``exc``'s call again may help and cannot hurt (``safe``: the call only reads or is idempotent)."""
    if not isinstance(exc, KubeError):
        return False
    if exc.kind == "throttled":
        # An eviction refused by a PodDisruptionBudget is an answer, not throttling.
        return not exc.details.get("causes") and (exc.retry_after or 0) <= RETRY_AFTER_MAX
    return safe and exc.kind in ("server_error", "dropped")


def backoff(state: tenacity.RetryCallState) -> float:
    """The server's Retry-After when it gave one, else a random exponential wait."""
    exc = state.outcome.exception() if state.outcome else None
    asked = getattr(exc, "retry_after", None)
    if asked:
        return float(asked)
    wait: float = tenacity.wait_random_exponential(multiplier=RETRY_BASE_SECONDS, max=4.0)(state)
    return wait


def with_retries(safe: bool, attempt: Callable[[], T]) -> T:
    """``attempt()`` until it succeeds or a retry would not be safe or useful.

    When pksweb gave up after retrying, the message says so.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: retryable(exc, safe)),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS) | tenacity.stop_after_delay(RETRY_BUDGET_SECONDS),
        wait=backoff, reraise=True)
    try:
        result: T = retrying(attempt)
        return result
    except KubeError as exc:
        tries = retrying.statistics.get("attempt_number", 1)
        if tries > 1:
            exc.message = f"{exc.message} pksweb tried {tries} times, backing off between tries."
            exc.args = (exc.message,)
        raise
