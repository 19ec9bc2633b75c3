"""Shared pieces of the benchmarks: machine description, statistics, JSON output, sandbox endpoints."""

from __future__ import annotations

import base64
import json
import os
import platform
import ssl
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("PKSWEB_BENCH_OUT") or ROOT / "var" / "bench")


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("Django", "channels", "channels-redis", "celery", "kubernetes", "uvicorn", "h11"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(), "versions": versions}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def spread(values: list[float]) -> float:
    """Largest deviation from the median, as a share of the median."""
    med = statistics.median(values)
    return max(abs(v - med) for v in values) / med if med else 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def figure(name: str, value: float, unit: str, target: str, ok: bool | None) -> dict[str, Any]:
    """One line of the `make bench` table: ``ok`` None means reported without a target."""
    return {"name": name, "value": value, "unit": unit, "target": target, "ok": ok}


def write(name: str, data: dict[str, Any], figures: list[dict[str, Any]] | None = None) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data, "figures": figures or []}, indent=2, default=str))
    return path


def print_figures(title: str, figures: list[dict[str, Any]]) -> None:
    print(title)
    for f in figures:
        verdict = "" if f["ok"] is None else ("pass" if f["ok"] else "SHORT")
        print(f"  {f['name']:<44} {f['value']:>10} {f['unit']:<8} target {f['target']:<18} {verdict}")


def sandbox_endpoint(path: Path) -> tuple[str, str, ssl.SSLContext | bool]:
    """(server URL, admin token, what to verify it with) from a kubeconfig the sandbox wrote: it serves HTTPS with a
    CA of its own, carried inline in the kubeconfig (``httpx.get(..., verify=...)``)."""
    import yaml

    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = cluster.get("certificate-authority-data")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) if ca else True
    return cluster["server"], config["users"][0]["user"]["token"], verify
