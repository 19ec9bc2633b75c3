"""The cluster page of a large cluster: 200 nodes and 6,000 pods.

Production shape: PostgreSQL, Redis, one `uvicorn` process; the cluster is a sandbox
cluster in its own process. The page itself is built from the database (nodes, health
history, operations, events); what only the cluster knows (pods per node, namespaces,
recent events) is a partial the page loads right after, read from the cluster. Both are
timed over HTTP, signed in, after a warm-up.

    python bench/cluster_page.py --nodes 200 --pods-per-node 30 --requests 40
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, print_figures, rss_mib, write  # noqa: E402

from tests.support.stack import Stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods-per-node", type=int, default=30)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    with Stack("cluster-page") as stack:
        folder = stack.sandbox(clusters=1, nodes=args.nodes, extra=("--pods-per-node", str(args.pods_per_node), "--pod-start-delay", "0"))
        stack.migrate(static=True)
        stack.manage("createuser", "bench", "--role", "operator", "--password-stdin", stdin="bench-passphrase-1\n")
        stack.sandbox_ready()
        config = next(folder.glob("*.kubeconfig"))
        stack.register([config])
        stack.django()
        from clusters.models import Cluster
        from clusters.sweep import cluster_probe

        cluster = cluster_probe(cluster=Cluster.objects.get())
        nodes = cluster.nodes.count()
        web = stack.web()
        stack.wait_web()
        client = stack.login("bench", "bench-passphrase-1")

        def timed(path: str) -> tuple[list[float], str]:
            body = client.get(path).text
            times = []
            for _ in range(args.requests):
                began = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - began)
                assert response.status_code == 200, response.status_code
            return times, body

        page, page_html = timed(f"/clusters/{cluster.pk}/")
        live, live_html = timed(f"/clusters/{cluster.pk}/live/")
        pods = sum(count for count in cluster_pod_counts(cluster))
        web_rss = rss_mib(web.pid)

    p50, p95 = percentile(page, 50) * 1000, percentile(page, 95) * 1000
    l50, l95 = percentile(live, 50) * 1000, percentile(live, 95) * 1000
    figures = [
        figure(f"cluster page p95 ({nodes} nodes, {pods} pods)", round(p95, 1), "ms", "<= 200 ms", p95 <= 200),
        figure("cluster page p50", round(p50, 1), "ms", "", None),
        figure("its live partial (pods per node, from the cluster) p95", round(l95, 1), "ms", "<= 200 ms", l95 <= 200),
        figure("live partial p50", round(l50, 1), "ms", "", None),
        figure("web process RSS", round(web_rss, 1), "MiB", "<= 300 MiB", web_rss <= 300),
    ]
    path = write("cluster_page", {"nodes": nodes, "pods": pods, "page_ms": [round(t * 1000, 1) for t in page],
                                  "live_ms": [round(t * 1000, 1) for t in live], "page_bytes": len(page_html),
                                  "live_bytes": len(live_html)}, figures)
    print_figures(f"cluster page: {nodes} nodes, {pods} pods, over HTTP from one uvicorn process", figures)
    print(f"  raw numbers: {path}")


def cluster_pod_counts(cluster: object) -> list[int]:
    from clusters.connect import gateway_for  # after Stack.django() has set Django up in this process

    return list(gateway_for(cluster).pod_counts().values())


if __name__ == "__main__":
    main()
