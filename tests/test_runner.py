import json

import numpy as np
import torch
import yaml
from PIL import Image

from bench.runner import Runner, RunOptions


def test_save_images_writes_the_exact_attacked_pngs(tmp_path, tiny_vae_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"batch_size": 4, "data": {"n": 4}, "metrics": ["psnr"],
                                    "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
                                    "attacks": ["noise"], "eps": [0.05]}))
    runner = Runner(tmp_path / "run", RunOptions(quiet=True, save_images=True))
    [summary] = runner.run_grid(grid)
    cell = runner.run.cell(summary["key"]).folder
    for kind in ("clean", "attacked", "reconstructed", "clean_reconstructed"):
        assert len(list((cell / "images" / kind).glob("*.png"))) == 4
    from safetensors.torch import load_file

    attacked = load_file(cell / "batches" / "batch_00000.safetensors")["adversarial"]
    png = np.asarray(Image.open(cell / "images" / "attacked" / "0000.png"))
    assert torch.equal(torch.from_numpy(png).permute(2, 0, 1).float() / 255, attacked[0])
    assert summary["metrics"]["linf"]["value"] <= 0.05 + 1e-6
    provenance = json.loads((cell / "summary.json").read_text())["provenance"]
    assert {"git", "packages", "device", "dtype", "seed", "date"} <= set(provenance)


def test_committed_smoke_baseline_shows_pgd_beating_noise():
    """The CI regression pins these numbers to the code; here, that they show what the suite claims."""
    numbers = json.loads(open("grids/baselines/smoke.json").read())["numbers"]
    fields = ("defense", "attack", "threat_model", "scenario", "eps", "metric")
    rows = [dict(zip(fields, key.split("|"), strict=True), value=entry["value"]) for key, entry in numbers.items()]
    value = {row["attack"] + ":" + row["metric"]: row["value"] for row in rows}
    assert value["pgd-encoder:latent_shift"] > 3 * value["noise:latent_shift"]
    assert value["pgd-encoder:psnr_vs_clean_rec"] < value["noise:psnr_vs_clean_rec"] - 10
    assert value["pgd-encoder:psnr"] < value["noise:psnr"]
