"""``manage.py sandbox``: serve a fleet of simulated clusters until interrupted.

Each cluster is served at ``https://HOST:PORT/c/<name>`` (a CA made for this run signs
the server's certificate) and gets a kubeconfig in ``--out`` (``<name>.kubeconfig``,
bearer-token auth, the CA inline) that the official client, kubectl or pksweb can use
unmodified. ``--plain-http`` serves plain HTTP instead (kubectl then sends no token).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox import Sandbox

VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+\Z")


class Command(BaseCommand):
    help = "Serve simulated Kubernetes clusters (the sandbox) and write a kubeconfig for each."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=6550, help="0 picks a free port")
        parser.add_argument("--clusters", type=int, default=3)
        parser.add_argument("--nodes", type=int, default=5, help="nodes per cluster, control plane included")
        parser.add_argument("--control-planes", type=int, default=1)
        parser.add_argument("--pods-per-node", type=int, default=3, help="demo workload pods per worker node")
        parser.add_argument("--versions", default="1.30.4",
                            help="Kubernetes version of each cluster, comma-separated, used in turn (e.g. 1.30.4,1.31.2)")
        parser.add_argument("--seed", type=int, default=1, help="same seed, same fleet (names, ids, tokens)")
        parser.add_argument("--prefix", default="sandbox", help="cluster names are PREFIX-1, PREFIX-2, …")
        parser.add_argument("--out", default="var/sandbox", help="where the kubeconfigs are written")
        parser.add_argument("--heartbeat", type=float, default=40.0, help="seconds between node heartbeats (0: none)")
        parser.add_argument("--node-ready-delay", type=float, default=2.0, help="seconds a replaced node stays NotReady")
        parser.add_argument("--pod-start-delay", type=float, default=0.2, help="seconds a new pod takes to become Ready")
        parser.add_argument("--plain-http", action="store_true",
                            help="serve plain HTTP instead of HTTPS (clients that refuse tokens over HTTP, kubectl among them, "
                                 "will not authenticate)")

    def handle(self, *args: Any, **opts: Any) -> None:
        versions = [v.strip() for v in opts["versions"].split(",") if v.strip()]
        bad = [v for v in versions if not VERSION.match(v)]
        if bad or not versions:
            raise CommandError(f"--versions takes versions like 1.30.4,1.31.2; not {', '.join(bad) or 'nothing'}")
        if opts["clusters"] < 1 or opts["nodes"] < 1 or opts["control_planes"] < 1 or opts["pods_per_node"] < 0:
            raise CommandError("--clusters, --nodes and --control-planes must be at least 1; --pods-per-node at least 0")
        if opts["control_planes"] > opts["nodes"]:
            raise CommandError("--control-planes cannot exceed --nodes")
        sandbox = Sandbox(opts["host"], opts["port"], seed=opts["seed"], heartbeat_seconds=opts["heartbeat"],
                          tls=not opts["plain_http"])
        for i in range(1, opts["clusters"] + 1):
            sandbox.add_cluster(f"{opts['prefix']}-{i}", version=versions[(i - 1) % len(versions)], nodes=opts["nodes"],
                                control_planes=opts["control_planes"], pods_per_node=opts["pods_per_node"],
                                node_ready_delay=opts["node_ready_delay"], pod_start_delay=opts["pod_start_delay"])
        try:
            sandbox.start()
        except OSError as error:
            raise CommandError(f"the sandbox cannot listen on {opts['host']}:{opts['port']}: {error.strerror or error}") from None
        written = sandbox.write_kubeconfigs(Path(opts["out"]))
        self.stdout.write(f"sandbox serving {len(written)} clusters on {sandbox.url}/c/<name>; "
                          f"kubeconfigs in {Path(opts['out']).resolve()}")
        self.stdout.write("ready", ending="\n")
        self.stdout.flush()
        try:
            sandbox.wait()
        except KeyboardInterrupt:
            self.stdout.write("stopping sandbox")
        finally:
            sandbox.stop()
