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
    - ``fail_next``: the next N requests are answered ``fail_status`` (429 with
      ``Retry-After: retry_after``, 500 or 503), then the cluster answers again.
    - ``unreachable``: the connection is dropped without an answer (as a dead host
      behind a load balancer); ``blackhole``: it is held open and never answered.
    - ``stuck_nodes``: nodes that never come back Ready after an upgrade.
    - ``frozen_pdbs``: PodDisruptionBudgets (``ns/name``, or ``*`` for all) that never allow a disruption.
    - ``failing_checks``: readyz/livez checks reported failed (e.g. ``etcd``).
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Set the named faults; unknown names or wrong types raise ValueError."""
        known = {f.name: f for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            current = getattr(self, name)
            if isinstance(current, list):
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
                if name == "fail_status" and value not in (429, 500, 503):
                    raise ValueError("fail_status is one of 429, 500 or 503")
                value = type(current)(value)
            setattr(self, name, value)

    def clear(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default_factory() if callable(f.default_factory) else f.default)  # type: ignore[misc]
