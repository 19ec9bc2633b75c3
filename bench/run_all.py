"""`make bench`: run every benchmark with its default sizes and print one table.

Each benchmark also runs alone (`python bench/<name>.py --help` lists its sizes) and
writes its raw numbers as JSON under var/bench/ (PKSWEB_BENCH_OUT to change).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, ROOT, machine  # noqa: E402

BENCHMARKS = ["sandbox_scale", "fleet", "cluster_page", "segmentation", "live", "rollout"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        result = subprocess.run([sys.executable, f"bench/{name}.py", *sys.argv[1:]], cwd=ROOT)
        if result.returncode != 0:
            failed.append(name)
    print("\n" + "\n".join(table(BENCHMARKS, set(failed))))
    return 1 if failed else 0


def table(names: list[str], failed: set[str]) -> list[str]:
    """One line per figure: benchmark, figure, value, unit, target, pass/short."""
    m = machine()
    lines = [f"machine: {m['cores']} cores, Python {m['python']}, {m['platform']}",
             f"{'benchmark':<14} {'figure':<56} {'value':>10} {'unit':<6} {'target':<26} verdict"]
    for name in names:
        path = OUT / f"{name}.json"
        if name in failed or not path.exists():
            lines.append(f"{name:<14} (did not finish: see its output above)")
            continue
        for f in json.loads(path.read_text()).get("figures", []):
            verdict = "" if f["ok"] is None else ("pass" if f["ok"] else "short")
            lines.append(f"{name:<14} {f['name'][:56]:<56} {str(f['value']):>10} {f['unit']:<6} {f['target']:<26} {verdict}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
