"""Each benchmark runs with tiny sizes, so the suite notices when one rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.stack import ROOT, require_services


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
    require_services()
    result = run_bench("fleet.py", "--clusters", "4", "--nodes", "2", "--faulty", "0.5", "--runs", "1", "--page-requests", "2",
                       out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "fleet.json").read_text())
    assert data["statuses"] == {"healthy": 2, "unreachable": 2}
    assert data["requests_per_cluster"]["readyz"] == 1 and "pod_list_cluster_wide" not in data["requests_per_cluster"]
    queries = next(f for f in data["figures"] if f["name"].startswith("fleet page queries"))
    assert queries["ok"] is True


def test_rollout_smoke(tmp_path):
    require_services()
    result = run_bench("rollout.py", "--clusters", "2", "--nodes", "3", "--concurrency", "2", "--fleet", "0", out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "rollout.json").read_text())["figures"]
    assert figures[0]["value"] == "2/2" and figures[0]["ok"] is True


def test_make_bench_table(tmp_path):
    figures = [{"name": "fleet page p95", "value": 60.0, "unit": "ms", "target": "<= 150 ms", "ok": True},
               {"name": "web process RSS", "value": 400, "unit": "MiB", "target": "<= 300 MiB", "ok": False}]
    (tmp_path / "fleet.json").write_text(json.dumps({"figures": figures}))
    code = "import sys; sys.path.insert(0, 'bench'); from run_all import table; print('\\n'.join(table(['fleet', 'rollout'], set())))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PKSWEB_BENCH_OUT": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert any(line.startswith("fleet") and "fleet page p95" in line and line.endswith("pass") for line in lines)
    assert any("web process RSS" in line and line.endswith("short") for line in lines)
    assert any(line.startswith("rollout") and "did not finish" in line for line in lines)


def test_live_smoke(tmp_path):
    require_services()
    result = run_bench("live.py", "--sockets", "8", "--rate", "5", "--seconds", "2", "--fanout-rates", "5", "--fanout-seconds", "2",
                       "--storm", "30", out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "live.json").read_text())
    assert data["connected"] == 8 and not data["connect_errors"]
    assert data["latency"]["expected"] == 10 and data["latency"]["lost"] == 0 and data["latency"]["duplicated"] == 0
    assert data["storm"]["ends_on_latest"] is True and data["storm"]["lost"] == 0


def test_cluster_page_smoke(tmp_path):
    require_services()
    result = run_bench("cluster_page.py", "--nodes", "4", "--pods-per-node", "3", "--requests", "3", out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "cluster_page.json").read_text())
    assert data["nodes"] == 4 and data["pods"] > 0 and len(data["page_ms"]) == 3 and len(data["live_ms"]) == 3


def test_soak_smoke(tmp_path):
    require_services()
    result = run_bench("soak.py", "--clusters", "2", "--nodes", "3", "--kill-every", "3", "--redis-restarts", "1", "--deadline", "100",
                       out=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "soak.json").read_text())
    assert data["states"] == ["succeeded", "succeeded"] and data["replaced_once"] == data["nodes"] == 6
    assert data["redis_restarts"] == 1 and data["kills"] >= 1 and data["cordoned"] == []


def test_segmentation_smoke(tmp_path):
    result = run_bench("segmentation.py", "--namespaces", "6", "--pods", "2", "--runs", "1", out=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "segmentation.json").read_text())
    assert data["pods"] == 12 and sum(data["reach"].values()) == 36
    assert all(f["ok"] is not False for f in data["figures"]), data["figures"]
