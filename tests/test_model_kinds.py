"""Model kinds (issue 10, item 2): every defended model declares its kind (autoencoder, text-to-image,
denoiser) and derives from that kind's base; a tiny seeded model of each kind runs end to end through
the toy scenario, deterministically; the grid refuses a defense of a kind the scenario does not
evaluate, and an attack on a kind the scenario cannot hand it, with one line."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from bench.base import MODEL_KINDS, Defense, Denoiser, LatentTextToImage, TextToImage
from bench.plugins import ATTACKS, DEFENSES

BASE_OF = {"autoencoder": Defense, "text-to-image": TextToImage, "denoiser": Denoiser}


@pytest.fixture
def tiny_models(tiny_vae_dir, tiny_sd_dir, tiny_ddpm_dir):
    return {"autoencoder": {"name": "vae", "model": str(tiny_vae_dir)},
            "text-to-image": {"name": "t2i", "pipeline": str(tiny_sd_dir), "steps": 4},
            "denoiser": {"name": "ddpm", "model": str(tiny_ddpm_dir), "steps": 4}}


def build(entry: dict):
    cls = DEFENSES.get(entry["name"])
    return cls(cls.make_config({k: v for k, v in entry.items() if k != "name"}))


def test_every_defense_declares_a_kind_and_derives_from_its_base():
    kinds = {name: DEFENSES.get(name).kind for name in DEFENSES.names()}
    assert set(kinds.values()) == set(MODEL_KINDS)
    for name, kind in kinds.items():
        assert issubclass(DEFENSES.get(name), BASE_OF[kind]), name


def test_attacks_declare_the_kind_they_differentiate():
    for name in ATTACKS.names():
        attack = ATTACKS.get(name)(ATTACKS.get(name).make_config(ATTACKS.preset(name)))
        assert attack.differentiates() in (*MODEL_KINDS, None)
        # a sampling attack uses the model through the sampler's hook, not by differentiating a kind
        assert (attack.differentiates() is None) == (not attack.uses_model or attack.surface == "sampling"), name
    diffusion = {n for n in ATTACKS.names() if ATTACKS.get(n)(ATTACKS.get(n).make_config(ATTACKS.preset(n)))
                 .differentiates() == "text-to-image"}
    assert diffusion == {"mist", "glaze-like", "photoguard-diffusion", "nightshade"}


def test_the_editor_is_a_latent_text_to_image_model(tiny_editor, images):
    assert isinstance(tiny_editor, LatentTextToImage) and tiny_editor.kind == "text-to-image"
    generated = tiny_editor.generate(["a photo of a bag", "a photo of a shirt"], seed=1)
    assert generated.shape[:2] == (2, 3)
    assert torch.equal(generated, tiny_editor.generate(["a photo of a bag", "a photo of a shirt"], seed=1))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_each_kind_keeps_its_contract(kind, tiny_models, images):
    model = build(tiny_models[kind])
    assert model.kind == kind and model.weights()
    with torch.no_grad():
        if kind == "autoencoder":
            out, again = model.reconstruct(images), model.reconstruct(images)
        elif kind == "text-to-image":
            out, again = model.generate(["a photo of a bag"] * 2, seed=3), model.generate(["a photo of a bag"] * 2, seed=3)
            edited = model.edit(images, ["a photo of a bag"] * len(images), seed=3)
            assert edited.shape == images.shape
        else:
            out, again = model.sample(2, seed=3), model.sample(2, seed=3)
            assert torch.equal(model.denoise(images, 0.3, seed=1), model.denoise(images, 0.3, seed=1))
    assert torch.equal(out, again) and out.shape[1] == 3 and 0 <= out.min() and out.max() <= 1
    if kind == "denoiser":  # the training loss: per image, seeded, differentiable in the images
        x = images.clone().requires_grad_(True)
        loss = model.training_loss(x, torch.Generator().manual_seed(0))
        assert loss.shape == (len(images),)
        assert torch.equal(loss.detach(), model.training_loss(images, torch.Generator().manual_seed(0)))
        loss.sum().backward()
        assert x.grad.abs().sum() > 0


def _toy_grid(tmp_path, entry: dict, **extra) -> str:
    grid = {"name": "kinds", "seed": 1, "batch_size": 4, "data": {"split": "test", "n": 8}, "scenario": "toy",
            "metrics": ["psnr"], "defenses": [entry], "attacks": [{"name": "noise", "eps": 0.05}], **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_each_kind_runs_through_the_toy_scenario_deterministically(kind, tiny_models, tmp_path):
    from bench.runner import Runner, RunOptions

    grid = _toy_grid(tmp_path, tiny_models[kind])
    first = Runner(tmp_path / "a", RunOptions(quiet=True)).run_grid(grid)
    second = Runner(tmp_path / "b", RunOptions(quiet=True)).run_grid(grid)
    assert [s["metrics"] for s in first] == [s["metrics"] for s in second]
    [summary] = first
    assert {"correct", "psnr", "linf"} <= set(summary["metrics"]) and summary["n"] == 8
    csv = [(tmp_path / d / "cells" / summary["key"] / "samples.csv").read_text() for d in ("a", "b")]
    assert csv[0] == csv[1]


@pytest.mark.parametrize("scenario, defense, attack, message", [
    ("reconstruction", "ddpm", "none", "defense 'ddpm' is a denoiser model, but scenario 'reconstruction' evaluates "
                                       "only autoencoder models"),
    ("img2img-edit", "t2i", "none", "defense 't2i' is a text-to-image model, but scenario 'img2img-edit'"),
    ("toy", "ddpm", "pgd-encoder", "attack 'pgd-encoder' differentiates an autoencoder model, which scenario 'toy' "
                                   "does not provide for the denoiser 'ddpm'"),
    ("reconstruction", "vae-kl", "mist", "attack 'mist' differentiates a text-to-image model"),
])
def test_a_kind_mismatch_is_refused_with_one_line(tmp_path, capsys, scenario, defense, attack, message):
    from bench.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"defenses": [defense], "attacks": [attack], "scenario": scenario, "metrics": []}))
    code = main(["--quiet", "run", str(grid), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "run").exists()


def test_scenarios_declare_the_kinds_they_evaluate():
    from bench.plugins import SCENARIOS

    kinds = {name: SCENARIOS.get(name).model_kinds for name in SCENARIOS.names()}
    assert kinds["reconstruction"] == kinds["img2img-edit"] == {"autoencoder"}
    assert kinds["toy"] == set(MODEL_KINDS)
    assert json.dumps(sorted(SCENARIOS.get("img2img-edit").provides("autoencoder"))) == \
        '["autoencoder", "text-to-image"]'
