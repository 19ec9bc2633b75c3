"""Sandbox at fleet scale: one sandbox process holding N clusters.

Target (issue 3): 1,000 clusters of 10 nodes within 2 GiB, and a `/readyz?verbose`
plus a node list (`resourceVersion=0`) for every cluster in under 30 s from a client
with 50 concurrent connections.

    python bench/sandbox_scale.py --clusters 1000 --nodes 10 --pods-per-node 3 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, rss_mib, sandbox_endpoint, spread, write  # noqa: E402

from tests.support.stack import sandbox_ready, start_sandbox  # noqa: E402


async def sweep(targets: list[tuple[str, str]], concurrency: int, verify: ssl.SSLContext | bool) -> tuple[float, list[float], int]:
    """One pass over every cluster: readyz + nodes list. Returns (seconds, per-cluster latencies, errors).

    Each pass opens its connections anew (TLS handshakes included), as a fresh client would.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures = 0
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, verify=verify) as client:

        async def one(server: str, token: str) -> None:
            nonlocal failures
            async with semaphore:
                started = time.perf_counter()
                headers = {"Authorization": f"Bearer {token}"}
                ready = await client.get(f"{server}/readyz", params={"verbose": ""}, headers=headers)
                nodes = await client.get(f"{server}/api/v1/nodes", params={"resourceVersion": "0"}, headers=headers)
                if ready.status_code != 200 or nodes.status_code != 200 or not nodes.json()["items"]:
                    failures += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(one(s, t) for s, t in targets))
        return time.perf_counter() - began, latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--pods-per-node", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plain-http", action="store_true", help="serve plain HTTP (to see what TLS costs)")
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    started = time.perf_counter()
    proc = start_sandbox(out, clusters=args.clusters, nodes=args.nodes,
                         extra=("--pods-per-node", str(args.pods_per_node), *(["--plain-http"] if args.plain_http else [])))
    try:
        sandbox_ready(proc)
        startup = time.perf_counter() - started
        rss = rss_mib(proc.pid)
        endpoints = [sandbox_endpoint(path) for path in sorted(out.glob("*.kubeconfig"))]
        targets = [(server, token) for server, token, _ in endpoints]
        verify = endpoints[0][2]  # one server, one CA
        totals, all_latencies, failures = [], [], 0
        for _ in range(args.runs):
            seconds, latencies, errors = asyncio.run(sweep(targets, args.concurrency, verify))
            totals.append(seconds)
            all_latencies += latencies
            failures += errors
        rss_after = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)

    median = statistics.median(totals)
    figures = {
        "clusters": args.clusters, "nodes_per_cluster": args.nodes, "pods_per_node": args.pods_per_node,
        "concurrency": args.concurrency, "startup_seconds": round(startup, 1),
        "rss_mib_idle": round(rss, 1), "rss_mib_after": round(rss_after, 1),
        "sweep_seconds": [round(t, 2) for t in totals], "sweep_seconds_median": round(median, 2),
        "per_cluster_ms_p50": round(percentile(all_latencies, 50) * 1000, 1),
        "per_cluster_ms_p99": round(percentile(all_latencies, 99) * 1000, 1),
        "failures": failures, "varies_over_20_percent": spread(totals) > 0.2,
    }
    path = write("sandbox_scale", figures, [
        figure(f"sandbox memory, {args.clusters} clusters x {args.nodes} nodes", figures["rss_mib_after"], "MiB", "<= 2048 MiB",
               figures["rss_mib_after"] <= 2048),
        figure(f"readyz + node list of every cluster, {args.concurrency} connections", figures["sweep_seconds_median"], "s", "< 30 s",
               median < 30 and not failures),
    ])
    print(f"sandbox scale: {args.clusters} clusters x {args.nodes} nodes, {args.concurrency} connections, "
          f"{'plain HTTP' if args.plain_http else 'HTTPS'}")
    print(f"  start-up            {figures['startup_seconds']} s")
    print(f"  memory (RSS)        {figures['rss_mib_after']} MiB   target <= 2048 MiB   "
          f"{'pass' if figures['rss_mib_after'] <= 2048 else 'short'}")
    print(f"  readyz+nodes sweep  {figures['sweep_seconds_median']} s median of {args.runs} {figures['sweep_seconds']}   "
          f"target < 30 s   {'pass' if median < 30 and not failures else 'short'}")
    print(f"  per cluster         p50 {figures['per_cluster_ms_p50']} ms, p99 {figures['per_cluster_ms_p99']} ms; failures {failures}")
    if figures["varies_over_20_percent"]:
        print("  note: the sweep time varied more than 20% between runs")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
