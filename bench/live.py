"""Events to browsers: 500 open pages on one ASGI process, events published by a Celery worker.

Production shape: PostgreSQL, Redis (channels_redis pub/sub layer), one `uvicorn` process,
one `celery worker` process publishing through pksweb's publish path. The pages are real
websocket connections to the activity page's stream, signed in with a session cookie.

1. burst: all sockets connect at once (target: no connection errors);
2. latency: events on distinct subjects at a steady rate; each socket reports the ids in
   every message (``data-events``), so loss and duplication are counted per socket
   (targets: p99 publish → receipt <= 250 ms, zero lost, zero duplicated);
3. fan-out: rising event rates; deliveries per second the one ASGI process sustains with
   zero drops and bounded latency (target >= 4,000/s);
4. storm: hundreds of events on a few subjects within a second; each page must get at most
   one batch per subject per second, ending on the latest event, every id accounted for.

    python bench/live.py --sockets 500 --rate 4 --seconds 15 --fanout-rates 6,8,10,12 --storm 300
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, print_figures, rss_mib, write  # noqa: E402

from tests.support.stack import REDIS_URL, Stack  # noqa: E402

EVENTS = re.compile(r'data-events="([\d ]*)"')


class Page:
    """One open page: every message's receipt time and the event ids it accounts for."""

    def __init__(self) -> None:
        self.received: list[tuple[float, list[int]]] = []
        self.errors: list[str] = []
        self.socket = None

    async def open(self, url: str, cookie: str, origin: str) -> float:
        from websockets.asyncio.client import connect

        began = time.perf_counter()
        try:
            self.socket = await connect(url, additional_headers={"Cookie": cookie}, origin=origin, open_timeout=30,
                                        max_queue=None)
        except Exception as exc:  # every kind of failure counts as a connection error
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return float("nan")
        return time.perf_counter() - began

    async def listen(self) -> None:
        try:
            async for message in self.socket:
                now = time.time()
                found = EVENTS.search(message)
                if found:
                    self.received.append((now, [int(i) for i in found.group(1).split()]))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def account(pages: list[Page], created: dict[int, float], since: int) -> dict:
    """Per socket: each expected id seen once? latencies of the ids delivered."""
    expected = {i for i in created if i > since}
    lost = dup = 0
    latencies = []
    for page in pages:
        seen: dict[int, int] = defaultdict(int)
        for at, ids in page.received:
            for i in ids:
                if i in expected:
                    seen[i] += 1
            if ids and ids[-1] in expected:
                latencies.append(at - created[ids[-1]])
        lost += len(expected - set(seen))
        dup += sum(n - 1 for n in seen.values() if n > 1)
    return {"expected": len(expected), "lost": lost, "duplicated": dup, "latencies": latencies}


async def run(args: argparse.Namespace, stack: Stack, cookie: str) -> dict:
    from asgiref.sync import sync_to_async
    from celery import Celery

    from pksweb.models import Event

    app = Celery(broker=REDIS_URL)
    url = stack.url.replace("http://", "ws://") + "/ws/activity/"
    pages = [Page() for _ in range(args.sockets)]
    began = time.perf_counter()
    connect_times = await asyncio.gather(*(p.open(url, cookie, stack.url) for p in pages))
    burst_seconds = time.perf_counter() - began
    connect_errors = sorted({e for p in pages for e in p.errors})
    live = [p for p in pages if p.socket is not None]
    listeners = [asyncio.create_task(p.listen()) for p in live]

    def last_id() -> int:
        return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0

    async def phase(tag: str, count: int, rate: float, subjects: list[int], grace: float = 30.0) -> dict:
        since = await sync_to_async(last_id)()
        for p in live:
            p.received.clear()
        app.send_task("bench.publish_paced", kwargs={"count": count, "rate": rate, "subjects": subjects, "tag": tag},
                      queue=stack.queue)
        deadline = time.monotonic() + count / rate + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if await sync_to_async(lambda: Event.objects.filter(id__gt=since, payload__bench=tag).count())() >= count:
                break
        rows = await sync_to_async(lambda: list(Event.objects.filter(id__gt=since, payload__bench=tag)
                                                .values_list("id", "created_at", "subject_id")))()
        created = {i: at.timestamp() for i, at, _ in rows}
        # Late is not lost: wait (up to a limit) until every page accounted for every id.
        settle = time.monotonic() + grace
        while time.monotonic() < settle:
            if all(len({i for _, ids in p.received for i in ids if i in created}) >= len(created) for p in live):
                break
            await asyncio.sleep(0.2)
        result = account(live, created, since)
        first = min(created.values()) if created else 0
        last = max(created.values()) if created else 0
        result["publish_seconds"] = last - first
        result["subjects"] = {i: int(s) for i, _, s in rows}
        return result

    # 2. latency: distinct subjects, so nothing is coalesced
    latency = await phase("latency", int(args.rate * args.seconds), args.rate, list(range(1, 100001)))
    # 3. fan-out: rising rates, distinct subjects
    fanout = []
    for rate in args.fanout_rates:
        result = await phase(f"fanout-{rate}", int(rate * args.fanout_seconds), rate, list(range(1, 100001)))
        delivered = sum(len(p.received) for p in live)
        fanout.append({"rate": rate, "deliveries_per_s": delivered / max(result["publish_seconds"], 1e-9),
                       "lost": result["lost"], "duplicated": result["duplicated"],
                       "p99_ms": percentile(result["latencies"], 99) * 1000})
    # 4. storm: many events on a few subjects within about a second
    storm = await phase("storm", args.storm, args.storm / 1.0, [900001, 900002, 900003])
    per_subject_gaps = []
    ends_on_latest = True
    latest = {}
    for i, subject in storm["subjects"].items():
        latest[subject] = max(latest.get(subject, 0), i)
    batches = []
    rates: list[float] = []
    for page in live:
        times: dict[int, list[float]] = defaultdict(list)
        last_seen: dict[int, int] = {}
        for at, ids in page.received:
            subject = storm["subjects"].get(ids[-1]) if ids else None
            if subject is None:
                continue
            times[subject].append(at)
            last_seen[subject] = max(last_seen.get(subject, 0), ids[-1])
        for stamps in times.values():
            batches.append(len(stamps))
            per_subject_gaps += [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            if len(stamps) > 2:  # after the first (immediate) one, batches a second apart however long the burst lasts
                rates.append((len(stamps) - 2) / (stamps[-1] - stamps[1]))
        ends_on_latest &= last_seen == latest
    for task in listeners:
        task.cancel()
    for p in live:
        await p.socket.close()
    return {"sockets": args.sockets, "connected": len(live), "burst_seconds": burst_seconds, "connect_errors": connect_errors,
            "connect_p95_ms": percentile([t for t in connect_times if t == t], 95) * 1000,
            "latency": {k: v for k, v in latency.items() if k != "subjects"}, "fanout": fanout,
            "storm": {"events": args.storm, "seconds": storm["publish_seconds"], "lost": storm["lost"], "duplicated": storm["duplicated"], "ends_on_latest": ends_on_latest,
                      "batches_per_subject_max": max(batches, default=0), "batches_per_second_max": max(rates, default=0.0),
                      "min_gap_between_batches_s": min(per_subject_gaps, default=float("nan"))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--rate", type=float, default=4, help="events per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--fanout-rates", default="6,8,10,12", help="events per second, each reaching every socket")
    parser.add_argument("--fanout-seconds", type=float, default=10)
    parser.add_argument("--storm", type=int, default=300, help="events on three subjects within a second")
    args = parser.parse_args()
    args.fanout_rates = [float(r) for r in args.fanout_rates.split(",") if r]

    with Stack("live") as stack:
        stack.migrate(static=True)
        stack.manage("createuser", "bench", "--role", "viewer", "--password-stdin", stdin="bench-passphrase-1\n")
        stack.worker(include="bench.bench_tasks")
        web = stack.web()
        stack.wait_web()
        stack.django()
        client = stack.login("bench", "bench-passphrase-1")
        cookie = f"sessionid={client.cookies['sessionid']}"
        data = asyncio.run(run(args, stack, cookie))
        data["web_rss_mib"] = rss_mib(web.pid)

    latency = data["latency"]
    p50, p99 = percentile(latency["latencies"], 50) * 1000, percentile(latency["latencies"], 99) * 1000
    sustained = [f for f in data["fanout"] if f["lost"] == 0 and f["duplicated"] == 0 and f["p99_ms"] <= 1000]
    best = max((f["deliveries_per_s"] for f in sustained), default=0.0)
    storm = data["storm"]
    figures = [
        figure(f"burst of {args.sockets} connects: errors", len(data["connect_errors"]), "", "0", not data["connect_errors"]),
        figure("burst: all connected in", round(data["burst_seconds"], 2), "s", "", None),
        figure(f"event to browser p50 ({args.sockets} pages, {args.rate:g}/s)", round(p50, 1), "ms", "", None),
        figure("event to browser p99", round(p99, 1), "ms", "<= 250 ms", p99 <= 250),
        figure("events lost / duplicated (per page)", f"{latency['lost']}/{latency['duplicated']}", "", "0/0",
               latency["lost"] == 0 and latency["duplicated"] == 0),
        figure("fan-out sustained, one ASGI process", round(best), "msg/s", ">= 4000/s, no drops", best >= 4000),
        figure(f"storm of {args.storm} events in {storm['seconds']:.1f} s: batches per subject per page", storm["batches_per_subject_max"],
               "", "", None),
        # Measured at the browser, so delivery jitter blurs the server's 1 s spacing a little either way.
        figure("storm: batches per subject per second, per page (max)", round(storm["batches_per_second_max"], 2), "/s", "<= 1/s (+jitter)",
               storm["batches_per_second_max"] <= 1.1),
        figure("storm: shortest gap between batches at the browser", round(storm["min_gap_between_batches_s"], 2), "s", "", None),
        figure("storm: pages end on the latest, nothing lost", f"{storm['ends_on_latest']}/{storm['lost']}", "", "True/0",
               storm["ends_on_latest"] and storm["lost"] == 0 and storm["duplicated"] == 0),
        figure("web process RSS", round(data["web_rss_mib"], 1), "MiB", "<= 300 MiB", data["web_rss_mib"] <= 300),
    ]
    latency_raw = [round(x * 1000, 1) for x in latency.pop("latencies")]
    path = write("live", {**data, "latency_ms": latency_raw}, figures)
    print_figures(f"live: {args.sockets} websocket pages on one uvicorn process, events from a celery worker", figures)
    for f in data["fanout"]:
        print(f"  fan-out at {f['rate']:g} events/s: {f['deliveries_per_s']:.0f} deliveries/s, lost {f['lost']}, "
              f"duplicated {f['duplicated']}, p99 {f['p99_ms']:.0f} ms")
    if data["connect_errors"]:
        print(f"  connection errors: {data['connect_errors'][:3]}")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
