"""The img2img-edit scenario and its editor, on the tiny SD-1.5-layout pipeline saved locally."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from bench.errors import BenchError
from bench.runner import Runner, RunOptions


def test_the_differentiable_edit_reproduces_the_pipeline_edit(tiny_editor, images):
    prompts = ["a bag"] * len(images)
    edited = tiny_editor.edit(images, prompts, seed=5)
    with torch.no_grad():
        repeated = tiny_editor.denoise(images, prompts, torch.Generator().manual_seed(5))
    assert edited.shape == images.shape
    assert torch.allclose(edited, repeated, atol=1e-5)
    x = images.clone().requires_grad_(True)
    tiny_editor.denoise(x, prompts, torch.Generator().manual_seed(5), steps=2).sum().backward()
    assert x.grad.abs().sum() > 0


def test_the_edit_of_a_defense_uses_its_encoder(tiny_sd_dir, tiny_vae_dir, images):
    from bench.editing import EditConfig, Editor
    from defenses.jpeg import JPEGPurifier

    jpeg = JPEGPurifier(JPEGPurifier.make_config({"model": str(tiny_vae_dir), "quality": 10}))
    plain = jpeg.inner
    config = EditConfig(pipeline=str(tiny_sd_dir), steps=4)
    prompts = ["a coat"] * len(images)
    a = Editor.for_defense(jpeg, config, torch.device("cpu")).edit(images, prompts, seed=0)
    b = Editor.for_defense(plain, config, torch.device("cpu")).edit(images, prompts, seed=0)
    assert not torch.allclose(a, b)


def grid(tmp_path, tiny_sd_dir, tiny_vae_dir, **extra):
    spec = {"batch_size": 2, "data": {"n": 4}, "metrics": ["lpips", "clip-sim", "kid", "zero-shot"],
            "scenario": {"name": "img2img-edit", "pipeline": str(tiny_sd_dir), "steps": 4},
            "defenses": [{"name": "vae", "model": str(tiny_vae_dir), "label": "tiny"}],
            "attacks": ["none", {"name": "photoguard", "steps": 3}, {"name": "mist", "steps": 2}],
            "eps": [0.06], **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_edits_of_clean_and_protected_images_are_compared(tmp_path, tiny_sd_dir, tiny_vae_dir):
    runner = Runner(tmp_path / "run", RunOptions(quiet=True))
    summaries = {s["attack"]: s for s in runner.run_grid(grid(tmp_path, tiny_sd_dir, tiny_vae_dir))}
    clean = summaries["none"]["metrics"]
    assert clean["lpips"]["value"] == pytest.approx(0, abs=1e-6)
    assert clean["clip-sim"]["value"] == pytest.approx(1, abs=1e-5)
    protected = summaries["photoguard"]["metrics"]
    assert protected["lpips"]["value"] > 0 and protected["latent_shift"]["value"] > 0
    for column in ("clean_rec_psnr", "clean_rec_ssim", "clean_rec_lpips", "clean_rec_fid", "kid", "zero-shot",
                   "linf", "lpips_input"):
        assert column in protected, column
    assert protected["clean_rec_lpips"]["higher_is_better"] is False
    assert protected["linf"]["value"] <= 0.06 + 1e-6
    same = [pd.read_csv(runner.run.cell(s["key"]).folder / "samples.csv")["clean_rec_psnr"] for s in summaries.values()]
    assert all(np.array_equal(same[0], other) for other in same[1:])


def test_images_without_captions_need_a_prompt(tmp_path, tiny_sd_dir, tiny_vae_dir, images):
    from safetensors.torch import save_file

    save_file({"images": images}, str(tmp_path / "images.safetensors"))
    path = grid(tmp_path, tiny_sd_dir, tiny_vae_dir, metrics=["lpips"], attacks=["none"],
                data={"dataset": "tensors", "path": str(tmp_path / "images.safetensors"), "n": 4})
    with pytest.raises(BenchError, match="set the scenario's prompt"):
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(path)
    assert not (tmp_path / "run" / "run.json").exists()
