"""Faults a sandbox cluster can be told to show, switchable at run time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    """What goes wrong with one cluster.

    - ``latency_ms``: added before every answer.
    - ``error_rate``: share of requests (0..1) answered 500 or 503.
    - ``throttle_rate``: share of requests answered 429 with ``Retry-After: retry_after``.
    - ``fail_next``: the next N requests are answered ``fail_status`` (any 4xx or 5xx, 429 by default,
      with a ``Status`` whose reason is that code's: 429 ``TooManyRequests`` with ``Retry-After:
      retry_after``, 500 ``InternalError``, 503 ``ServiceUnavailable``, 404 ``NotFound``, ...), then
      the cluster answers again.
    - ``unreachable``: the connection is dropped without an answer (as a dead host
      behind a load balancer); ``blackhole``: it is held open and never answered.
    - ``stuck_nodes``: nodes that never come back Ready after an upgrade.
    - ``frozen_pdbs``: PodDisruptionBudgets (``ns/name``, or ``*`` for all) that never allow a disruption.
    - ``failing_checks``: readyz/livez checks reported failed (e.g. ``etcd``).
    - ``fail_message``: the message of the ``Status`` the injected failures answer with (any
      length or script: a hostile server's words), instead of the usual short one.
    - ``answers``: scripted answers, for tests that need a server saying what no real one
      says on purpose: each ``{"path": "/api/v1/nodes", "method": "GET", "status": 200,
      "body": {...} or "text", "content_type": "application/json", "times": 0}`` answers
      requests whose path equals ``path`` (or starts with it when it ends in ``*``; method
      optional) with that status and body, ``times`` times (0: until cleared).
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: int = 1
    fail_next: int = 0
    fail_status: int = 429
    unreachable: bool = False
    blackhole: bool = False
    stuck_nodes: list[str] = field(default_factory=list)
    frozen_pdbs: list[str] = field(default_factory=list)
    failing_checks: list[str] = field(default_factory=list)
    fail_message: str = ""
    answers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Set the named faults and keep the others (``clear`` resets all); unknown names or wrong types raise ValueError."""
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            current = getattr(self, name)
            if name == "answers":
                value = [_answer(a) for a in (value if isinstance(value, list) else [value])]
            elif isinstance(current, str):
                if not isinstance(value, str):
                    raise ValueError(f"{name} takes a string")
            elif isinstance(current, list):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{name} takes a list of strings")
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} takes true or false")
            elif isinstance(current, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} takes a number >= 0")
                if name.endswith("_rate") and value > 1:
                    raise ValueError(f"{name} is a share between 0 and 1")
                if name == "fail_status" and (not isinstance(value, int) or not 400 <= value <= 599):
                    raise ValueError("fail_status is an HTTP error status: 400 to 599")
                value = type(current)(value)
            setattr(self, name, value)

    def scripted(self, method: str, path: str) -> dict[str, Any] | None:
        """The scripted answer for this request, if one matches (used up when it has ``times`` left)."""
        for answer in self.answers:
            pattern = answer["path"]
            matches = path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern
            if matches and answer.get("method", method).upper() == method.upper():
                if answer["times"]:
                    answer["times"] -= 1
                    if not answer["times"]:
                        self.answers.remove(answer)
                return answer
        return None

    def clear(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default_factory() if callable(f.default_factory) else f.default)


def _answer(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("path"), str) or not value["path"].startswith("/"):
        raise ValueError('each answer is an object with a "path" starting with /')
    status = value.get("status", 200)
    times = value.get("times", 0)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("an answer's status is an HTTP status code")
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise ValueError("an answer's times is a number >= 0")
    return {"path": value["path"], "status": status, "body": value.get("body", ""), "times": times,
            "content_type": str(value.get("content_type") or ("text/plain; charset=utf-8" if isinstance(value.get("body"), str)
                                                                else "application/json")),
            **({"method": str(value["method"])} if value.get("method") else {})}
