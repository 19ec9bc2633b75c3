"""Each benchmark runs with tiny sizes, so the suite notices when one rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PKSWEB_BENCH_OUT": str(out)}  # never overwrite real figures in var/bench
    return subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_sandbox_scale_smoke(tmp_path):
    result = run_bench("sandbox_scale.py", "--clusters", "3", "--nodes", "2", "--runs", "1", out=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "readyz+nodes sweep" in result.stdout and "failures 0" in result.stdout
    figures = json.loads((tmp_path / "sandbox_scale.json").read_text())
    assert figures["clusters"] == 3 and figures["failures"] == 0 and figures["machine"]["cores"]


def test_fleet_smoke(tmp_path):
    import psycopg
    import redis

    from tests.conftest import require_service
    from tests.integration.conftest import PG_URL, REDIS_URL

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as exc:
        require_service("PostgreSQL and Redis", f"start them on 127.0.0.1 ({exc})")
    result = run_bench("fleet.py", "--clusters", "3", "--nodes", "2", "--runs", "1", "--page-requests", "2", out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "fleet.json").read_text())
    assert figures["last_sweep"]["probed"] == 3 and figures["page_queries"] == figures["page_queries_at_10"]
