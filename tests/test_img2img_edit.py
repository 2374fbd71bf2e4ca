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


def test_an_sd_layout_folder_serves_the_defense_and_the_editor(tiny_sd_dir, images):
    """The SD 1.5 code path on tiny saved components: the VAE defense from the pipeline folder's
    ``vae`` subfolder, the editor from the folder itself; one attack step, one img2img edit."""
    from bench.editing import EditConfig, Editor
    from bench.plugins import ATTACKS
    from defenses.vae import AutoencoderKLDefense

    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": str(tiny_sd_dir), "subfolder": "vae"}))
    editor = Editor.for_defense(defense, EditConfig(pipeline=str(tiny_sd_dir), steps=2), torch.device("cpu"))
    for name in ("pgd-encoder", "photoguard-diffusion"):
        cls = ATTACKS.get(name)
        attack = cls(cls.make_config({**ATTACKS.preset(name), "steps": 1, "eps": 8 / 255}))
        protected = attack(editor, images, seed=0)
        assert (protected - images).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(protected, images)
    edited = editor.edit(protected, ["a bag"] * len(images), seed=0)
    assert edited.shape == images.shape


def test_the_sd15_paper_grid_validates_offline_and_fails_cleanly_without_weights(tmp_path, images):
    from PIL import Image

    from bench.grid import load_grid

    raw, cells = load_grid("grids/paper/srl-table2-sd15.yaml")
    assert len(cells) == 6 * 3 * 2 and {c.threat_model for c in cells} == {"transfer", "adaptive"}
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "captions.json").write_text('{"0.png": "a", "1.png": "b", "2.png": "c", "3.png": "d"}')
    raw["data"] = {"dataset": "folder", "path": str(folder), "n": 4}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(BenchError, match="could not be loaded|cannot load") as error:
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(path)
    assert "\n" not in str(error.value) and ("download" in str(error.value))
    assert not (tmp_path / "run" / "run.json").exists()
