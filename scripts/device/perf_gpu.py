"""Measure `bench perf` (float32 and bfloat16) and the default grid on a GPU and write the results
into BENCHMARKS.md between its `gpu-perf` markers. Run by scripts/device/perf_gpu.sh on a machine
with a GPU; `python scripts/device/perf_gpu.py --from-json REPORT.json` only rewrites the section."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- gpu-perf:start -->", "<!-- gpu-perf:end -->"


def measure(device: str) -> dict:
    reports = {}
    for dtype in ("float32", "bfloat16"):
        command = [sys.executable, "-m", "bench.cli", "--quiet", "perf", "--device", device, "--dtype", dtype, "--json"]
        if dtype == "float32":
            command += ["--grid", "grids/default.yaml"]
        reports[dtype] = json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True,
                                                   text=True).stdout)
    return reports


def section(reports: dict) -> str:
    float32, bfloat16 = reports["float32"], reports["bfloat16"]
    half = {row["case"]: row for row in bfloat16["results"]}
    lines = [START, f"Measured by `bash scripts/device/perf_gpu.sh` on {float32['machine']}.", "",
             "| case | batch | images / s (float32) | images / s (bfloat16) |", "|---|---|---|---|"]
    for row in float32["results"]:
        lines.append(f"| {row['case']} | {row['batch']} | {row['images_per_second']} | "
                     f"{half.get(row['case'], {}).get('images_per_second', '-')} |")
    for row in float32.get("attacks", []):
        lines.append(f"| {row['attack']}: batched vs per-image loop, {row['steps']} steps | {row['images']} | "
                     f"{row['speedup']}x | - |")
    if "grid" in float32:
        grid = float32["grid"]
        lines += ["", f"`{grid['grid']}`: cold {grid['cold_s']} s, warm {grid['warm_s']} s, "
                  f"peak RSS {grid['peak_rss_mb']} MB."]
    return "\n".join([*lines, END])


def write_section(benchmarks: Path, text: str) -> None:
    content = benchmarks.read_text()
    if START in content and END in content:
        before, rest = content.split(START, 1)
        content = before + text + rest.split(END, 1)[1]
    else:
        content = content.rstrip("\n") + "\n\n## GPU\n\n" + text + "\n"
    benchmarks.write_text(content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--from-json", help="a saved report: only rewrite BENCHMARKS.md")
    parser.add_argument("--save-json", help="also keep the raw report here")
    args = parser.parse_args()
    reports = json.loads(Path(args.from_json).read_text()) if args.from_json else measure(args.device)
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(reports, indent=2))
    write_section(ROOT / "BENCHMARKS.md", section(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
