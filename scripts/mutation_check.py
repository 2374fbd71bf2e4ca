#!/usr/bin/env python
"""Mutation check: break the code on purpose, one semantic mutation at a time, in a scratch copy of
the repository, and require the tests (or ``bench regress``) to fail on each. Prints a table
mutation -> caught by; exits 1 if any mutation survives, 2 if a mutation no longer applies (the code
it edits changed: update its text here).

    .venv/bin/python scripts/mutation_check.py [--only SUBSTRING] [--keep]

The copy is the tracked and untracked-but-not-ignored files (``git ls-files -co --exclude-standard``)
in a temporary folder; this checkout's .venv runs there with the copy first on sys.path (checked:
``bench`` must import from the copy). Each mutation runs only the test files that should catch it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]          # pytest arguments (files, -k expressions)
    regress: tuple[str, str] | None = None   # (grid, baseline), run when the tests miss it


def attack_strength(name: str) -> tuple[str, ...]:
    return ("tests/test_attack_strength.py", "-k", name)


STEP = "delta = signed_step(delta, -grad, cfg.step_size, images, cfg.eps)"
MUTATIONS = [
    # metrics: shifted or scaled
    Mutation("psnr: +0.5 dB", "bench/metrics/psnr.py", "dim=(1, 2, 3))", "dim=(1, 2, 3)) + 0.5",
             ("tests/test_metric_references.py", "-k", "psnr")),
    Mutation("psnr: x1.01", "bench/metrics/psnr.py", "dim=(1, 2, 3))", "dim=(1, 2, 3)) * 1.01",
             ("tests/test_metric_references.py", "-k", "psnr")),
    Mutation("ssim: x0.99", "bench/metrics/ssim.py", 'reduction="none")', 'reduction="none") * 0.99',
             ("tests/test_metric_references.py", "-k", "ssim")),
    Mutation("lpips: x1.05", "bench/metrics/lpips.py", "return lpips_distance(images, references, self.config.net)",
             "return lpips_distance(images, references, self.config.net) * 1.05",
             ("tests/test_metric_references.py", "-k", "lpips")),
    Mutation("fid: +1 (torchmetrics value)", "bench/metrics/fid.py", "return float(fid.compute())",
             "return float(fid.compute()) + 1.0", ("tests/test_metric_references.py", "-k", "fid")),
    Mutation("fid: bootstrap statistic x1.01", "bench/metrics/fid.py",
             "return mean_term + trace_a + trace_b - 2 * float(cross)",
             "return 1.01 * (mean_term + trace_a + trace_b - 2 * float(cross))",
             ("tests/test_metric_references.py", "-k", "fid")),
    Mutation("inception features x1.001", "bench/metrics/inception.py", "chunks.append(model(batch * 2 - 1)",
             "chunks.append(1.001 * model(batch * 2 - 1)", ("tests/test_metric_references.py", "-k", "inception")),
    Mutation("kid: x1.01", "bench/metrics/kid.py", "degree=3, coef=1.0))", "degree=3, coef=1.0)) * 1.01",
             ("tests/test_metric_references.py", "-k", "kid")),
    Mutation("clip-sim: -0.001", "bench/metrics/clip_sim.py", "return (self.embed(images) * self.embed(references)).sum(-1)",
             "return (self.embed(images) * self.embed(references)).sum(-1) - 0.001",
             ("tests/test_metric_references.py", "-k", "clip_sim")),
    Mutation("clip-w1: x1.01", "bench/metrics/clip_w1.py", "return torch.tensor([wasserstein_distance(x, y)",
             "return 1.01 * torch.tensor([wasserstein_distance(x, y)", ("tests/test_metric_references.py", "-k", "w1")),
    Mutation("clip-fd: x1.01", "bench/metrics/clip_fd.py",
             "return frechet_distance(features.double().numpy(), reference_features.double().numpy())",
             "return 1.01 * frechet_distance(features.double().numpy(), reference_features.double().numpy())",
             ("tests/test_metric_references.py", "-k", "clip_fd")),
    Mutation("clip-score: +1", "bench/metrics/clip_score.py", "* text_embeddings).sum(-1)).clamp(min=0)",
             "* text_embeddings).sum(-1)).clamp(min=0) + 1",
             ("tests/test_metric_references.py", "-k", "clip_score")),
    Mutation("zero-shot: off by one class", "bench/metrics/zero_shot.py",
             "return zero_shot_correct(self.clip_model, images, labels, tuple(class_names))",
             "return zero_shot_correct(self.clip_model, images, (labels + 1) % len(class_names), tuple(class_names))",
             ("tests/test_metric_references.py", "-k", "zero_shot")),
    # statistics
    Mutation("mean interval collapsed to the estimate", "bench/stats.py",
             "return Estimate(mean, float(result.confidence_interval.low), float(result.confidence_interval.high),",
             "return Estimate(mean, mean, mean,", ("tests/test_stats.py", "-k", "mean_interval")),
    Mutation("set interval collapsed to the estimate", "bench/stats.py",
             "return Estimate(value, float(low), float(high), len(features))",
             "return Estimate(value, value, value, len(features))", ("tests/test_stats.py", "-k", "set_interval")),
    Mutation("NaN dropped silently", "bench/stats.py", "nan_count = int(nan.sum())", "nan_count = 0",
             ("tests/test_stats.py", "-k", "nan")),
    # threat models, cell keys, the regression check itself
    Mutation("adaptive selection inverted (keeps the weaker candidate)", "bench/threats.py",
             "keep = results[1][SELECTION_COLUMN] > results[0][SELECTION_COLUMN]",
             "keep = results[1][SELECTION_COLUMN] < results[0][SELECTION_COLUMN]",
             ("tests/test_threats.py", "-k", "never_weaker")),
    *[Mutation(f"cell key ignores {field}", "bench/grid.py", text, "", ("tests/test_cell_key.py",))
      for field, text in [("seed", '"seed": self.seed, '), ("batch_size", ', "batch_size": self.batch_size'),
                          ("threat_model", '"threat_model": self.threat_model,'),
                          ("metrics", '"metrics": [m.as_dict() for m in self.metrics],')]],
    Mutation("regress: one-sided again (improvements pass)", "bench/regress.py",
             'return [c for c in self.changes if c.status != "same"]',
             'return [c for c in self.changes if c.status == "regressed"]', ("tests/test_regress.py", "-k", "direction")),
    # attacks: the step's sign (ascend <-> descend) and its size
    Mutation("pgd-encoder: step sign flipped", "attacks/pgd_encoder.py",
             "signed_step(delta, grad, cfg.step_size", "signed_step(delta, -grad, cfg.step_size",
             attack_strength("pgd")),
    Mutation("pgd-encoder: step size halved", "attacks/pgd_encoder.py",
             "signed_step(delta, grad, cfg.step_size", "signed_step(delta, grad, cfg.step_size / 2",
             attack_strength("pgd")),
    Mutation("photoguard: step sign flipped", "attacks/photoguard.py",
             "signed_step(delta, -grad, step_size", "signed_step(delta, grad, step_size",
             attack_strength("photoguard")),
    Mutation("photoguard: step size halved", "attacks/photoguard.py",
             "signed_step(delta, -grad, step_size", "signed_step(delta, -grad, step_size / 2",
             attack_strength("photoguard")),
    Mutation("mist: step sign flipped", "attacks/mist.py", STEP, STEP.replace("-grad", "grad"),
             attack_strength("mist")),
    Mutation("mist: step size halved", "attacks/mist.py", STEP, STEP.replace("cfg.step_size", "cfg.step_size / 2"),
             attack_strength("mist")),
    Mutation("glaze-like: gradient ascent instead of descent", "attacks/glaze_like.py",
             "loss = self._loss(model, (images + delta).clamp(0, 1), images, target).sum()",
             "loss = -self._loss(model, (images + delta).clamp(0, 1), images, target).sum()",
             attack_strength("glaze")),
    Mutation("glaze-like: learning rate halved", "attacks/glaze_like.py",
             "torch.optim.Adam([delta], lr=cfg.lr)", "torch.optim.Adam([delta], lr=cfg.lr / 2)",
             attack_strength("glaze")),
    Mutation("noise: amplitude halved", "attacks/noise.py",
             "* 2 - 1) * self.config.eps", "* 2 - 1) * self.config.eps / 2", attack_strength("noise")),
]


def scratch_copy() -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix="mutation-check-"))
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def environment(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy), "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def check_imports(copy: Path) -> None:
    where = subprocess.run([sys.executable, "-c", "import bench, attacks; print(bench.__file__, attacks.__file__)"],
                           cwd=copy, env=environment(copy), capture_output=True, text=True, check=True).stdout
    if any(not Path(p).resolve().is_relative_to(copy.resolve()) for p in where.split()):
        raise SystemExit(f"error: the scratch copy's code is not what gets imported ({where.strip()})")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                            cwd=copy, env=environment(copy), capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if result.returncode == 5:
        raise SystemExit(f"error: no test selected by {' '.join(tests)}")
    last = result.stdout.strip().splitlines()[-1:] or [""]
    return result.returncode != 0, failed[0] if failed else last[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutations whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args()
    copy = scratch_copy()
    check_imports(copy)
    selected = [m for m in MUTATIONS if not args.only or args.only in m.name]
    # pre-flight: the unmutated copy passes every selected test (else "caught" would mean nothing)
    files = sorted({t for m in selected for t in m.tests if t.startswith("tests/")})
    names = sorted({m.tests[i + 1] for m in selected for i, t in enumerate(m.tests) if t == "-k"}
                   | {"every_field"})
    passed, detail = run_tests(copy, (*files, "-k", " or ".join(f"({n})" for n in names)))
    if passed:  # run_tests answers "failed?" first
        raise SystemExit(f"error: the unmutated copy fails {detail}; fix that first")
    rows, survivors, stale = [], 0, 0
    started = time.time()
    try:
        for mutation in selected:
            path = copy / mutation.path
            original = path.read_text()
            if original.count(mutation.old) != 1:
                rows.append((mutation.name, "STALE: its text no longer occurs once in " + mutation.path, 0.0))
                stale += 1
                continue
            path.write_text(original.replace(mutation.old, mutation.new))
            began = time.time()
            try:
                caught, by = run_tests(copy, mutation.tests)
                if not caught and mutation.regress:
                    grid, baseline = mutation.regress
                    result = subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", "regress", grid,
                                             "--baseline", baseline], cwd=copy, env=environment(copy),
                                            capture_output=True, text=True)
                    caught, by = result.returncode != 0, f"bench regress {grid}"
            finally:
                path.write_text(original)
            rows.append((mutation.name, by if caught else "NOT CAUGHT", time.time() - began))
            survivors += not caught
            print(f"{mutation.name:<55} {rows[-1][1]}  ({rows[-1][2]:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(copy, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"| {'mutation':<{width}} | caught by | s |\n|{'-' * (width + 2)}|---|---|")
    for name, by, seconds in rows:
        print(f"| {name:<{width}} | {by} | {seconds:.0f} |")
    print(f"{len(rows) - survivors - stale} of {len(rows)} caught, {survivors} not caught, {stale} stale; "
          f"{time.time() - started:.0f} s")
    return 2 if stale else 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
