"""The dial tone: a probe's verdict, availability over a window, and its timeline.

Pure functions over probe results and health spans; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from clusters.choices import AVAILABLE_STATUSES, ClusterStatus
from clusters.kube import ProbeResult

COLORS: dict[str, str] = {ClusterStatus.HEALTHY: "#2e9e55", ClusterStatus.DEGRADED: "#e0a100", ClusterStatus.UNREACHABLE: "#c8372d",
          ClusterStatus.UNKNOWN: "#c5cbd6"}


def _names(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def assess(result: ProbeResult) -> tuple[ClusterStatus, list[str]]:
    """healthy, degraded (with reasons) or unreachable (with the error)."""
    if result.error is not None:
        # An API that answers, but in a shape pksweb cannot read, is there and broken: degraded, not unreachable.
        status = ClusterStatus.DEGRADED if result.error.kind == "bad_response" else ClusterStatus.UNREACHABLE
        return status, [result.error.message]
    reasons: list[str] = []
    if not result.ready:
        reasons.append(f"readyz failing: {_names(result.failed_checks)}" if result.failed_checks else "readyz not ok")
    if not result.nodes:
        reasons.append("no nodes")
    not_ready = [n.name for n in result.nodes if n.ready is not True]
    if not_ready:
        reasons.append(f"{len(not_ready)} of {len(result.nodes)} nodes not Ready: {_names(not_ready)}")
    for node in result.nodes:
        if node.pressures:
            reasons.append(f"{node.name}: {', '.join(node.pressures)}")
    if result.system_problems:
        reasons.append(f"kube-system pods not running/ready: {_names(result.system_problems)}")
    return (ClusterStatus.DEGRADED if reasons else ClusterStatus.HEALTHY), reasons


STALE_AFTER_SWEEPS = 3
STALE_AT_LEAST = timedelta(seconds=90)


def stale(last_probe_at: datetime | None, *, now: datetime, interval: float) -> bool:
    """Whether a status is too old to stand for the cluster now: no probe for three sweep intervals (90 s at
    least). Pages say so next to the status, rather than show a healthy cluster that may have gone dark."""
    if last_probe_at is None:
        return False
    return now - last_probe_at > max(STALE_AT_LEAST, timedelta(seconds=STALE_AFTER_SWEEPS * interval))


class Span(Protocol):
    """A stretch of time a cluster spent in one status: a ``HealthSpan`` row, or a ``SpanLike`` read lean."""

    @property
    def status(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def ended_at(self) -> datetime | None: ...


@dataclass
class SpanLike:
    status: str
    started_at: datetime
    ended_at: datetime | None


def _clip(spans: Iterable[Span], start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    clipped = []
    for span in spans:
        s = max(span.started_at, start)
        e = min(span.ended_at or end, end)
        if e > s:
            clipped.append((span.status, s, e))
    return clipped


def availability(spans: Iterable[Span], *, now: datetime, window: timedelta) -> float | None:
    """Share (percent) of known time in the window when the API answered; None if nothing is known."""
    known = available = 0.0
    for status, s, e in _clip(spans, now - window, now):
        if status == ClusterStatus.UNKNOWN:
            continue
        seconds = (e - s).total_seconds()
        known += seconds
        if status in AVAILABLE_STATUSES:
            available += seconds
    return round(100 * available / known, 2) if known else None


def timeline_svg(spans: Iterable[Span], *, now: datetime, window: timedelta, width: int = 240, height: int = 14) -> SafeString:
    """A small server-rendered SVG of the window: one coloured bar per status span."""
    start = now - window
    total = window.total_seconds()
    parts = [f'<svg class="timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="health over the last {int(total // 3600)} h">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{COLORS[ClusterStatus.UNKNOWN]}" rx="2"/>']
    for status, s, e in _clip(spans, start, now):
        x = (s - start).total_seconds() / total * width
        w = max((e - s).total_seconds() / total * width, 0.5)
        label = f"{status} {s:%Y-%m-%d %H:%M} – {e:%H:%M} UTC"
        parts.append(f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" fill="{COLORS.get(status, "#999")}">'
                     f"<title>{escape(label)}</title></rect>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # built from numbers and escaped text only
