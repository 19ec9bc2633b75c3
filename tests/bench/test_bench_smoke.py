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
