"""Short trainings of candidate autoencoders for the fragility study (issue 18), one after another.

    nice -n 5 .venv/bin/python scripts/fragility_study/train_candidates.py STEPS NAME [NAME ...]

Each candidate goes to $FRAGILITY_STUDY/models/NAME-STEPS/ (default /work/scratch/fragility-study;
keep it outside bench/zoo/weights) with info.json (config, the training's wall-clock seconds, loss
per 50 steps); a killed run resumes from its checkpoint. docs/zoo.md, "Fragility study", has the
results.
"""
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

torch.set_num_threads(1)

from bench.zoo.train_vae import VAETrainConfig, train_vae  # noqa: E402

ROOT = Path(os.environ.get("FRAGILITY_STUDY", "/work/scratch/fragility-study")) / "models"
CANDIDATES = {
    "base32": {},
    "res64": {"resolution": 64, "block_out_channels": (32, 64, 64, 64)},
    "colour32": {"colour_augment": 0.5},
    "res64-colour": {"resolution": 64, "block_out_channels": (32, 64, 64, 64), "colour_augment": 0.5},
    "kl1e-3": {"kl_weight": 1e-3},
    "ch8": {"latent_channels": 8},
    "wide32": {"block_out_channels": (64, 128, 128)},
    "narrow32": {"block_out_channels": (32, 32, 32)},
    "deep32": {"layers_per_block": 2},
}

steps = int(sys.argv[1])
for name in sys.argv[2:]:
    out = ROOT / f"{name}-{steps}"
    if (out / "info.json").exists():
        print(f"{name}: done already", flush=True)
        continue
    config = replace(VAETrainConfig(), steps=steps, **CANDIDATES[name])
    ckpt = ROOT / f".{name}-{steps}.ckpt"
    timing = ROOT / f".{name}-{steps}.seconds"
    before = float(timing.read_text()) if timing.exists() and ckpt.exists() else 0.0
    start = time.time()
    # the seconds already spent are kept beside the checkpoint, so a resumed run reports the total
    import threading

    stop = threading.Event()

    def tick(stop=stop, timing=timing, before=before, start=start):
        while not stop.wait(30):
            timing.write_text(str(before + time.time() - start))
    threading.Thread(target=tick, daemon=True).start()
    info = train_vae(out, config, quiet=True, checkpoint=ckpt, checkpoint_every=25)
    stop.set()
    info["train_seconds"] = round(before + time.time() - start, 1)
    info["config_name"] = name
    (out / "info.json").write_text(json.dumps(info, indent=2, default=list) + "\n")
    timing.unlink(missing_ok=True)
    print(f"{name}: {info['train_seconds']} s", flush=True)
