"""``bench zoo fragility``: the Nightshade fraction and PhotoGuard shift against encoders whose answer is known."""

import json

import pytest
import torch

from bench.base import Defense
from bench.zoo.fragility import FragilityConfig, fragility, image_pairs, measure, nightshade_perturb


class Identity(Defense):
    """E(x) = x: Nightshade's best poison is clip(anchor, x - eps, x + eps), known in closed form."""

    name = "identity"

    def encode(self, images):
        return images * 1.0

    def decode(self, latents):
        return latents


class Blind(Defense):
    """A latent that does not depend differentiably on the input: the gradient is zero, nothing moves."""

    name = "blind"

    def encode(self, images):
        return torch.nn.functional.avg_pool2d(images.detach(), 4) + 0 * images.sum((1, 2, 3), keepdim=True)

    def decode(self, latents):
        return latents


def test_pairs_are_seeded_and_of_different_classes():
    sources, anchors, labels = image_pairs(8, seed=3)
    again = image_pairs(8, seed=3)
    assert torch.equal(sources, again[0]) and torch.equal(anchors, again[1])
    assert (labels[:, 0] != labels[:, 1]).all()
    assert not torch.equal(sources, image_pairs(8, seed=4)[0])


def test_identity_encoder_closes_the_closed_form_fraction():
    config = FragilityConfig(pairs=4, steps=100, photoguard=False)
    result = measure(Identity(), config)
    sources, anchors, _ = image_pairs(4)
    start = (sources - anchors).flatten(1).norm(dim=1)
    fractions = [row["nightshade_fraction"]["value"] for row in result["per_eps"]]
    for eps, measured in zip(config.eps, fractions, strict=True):
        best = torch.maximum(torch.minimum(anchors, sources + eps), sources - eps)
        expected = float(((start - (best - anchors).flatten(1).norm(dim=1)) / start).mean())
        assert measured == pytest.approx(expected, abs=0.01), (eps, measured, expected)
    assert 0 < fractions[0] < fractions[1] < fractions[2] < 1


def test_schedule_starts_at_the_full_budget_and_stays_in_the_ball():
    images = torch.full((1, 3, 4, 4), 0.5)
    anchor = torch.ones(1, 3, 4, 4)
    one_step = nightshade_perturb(Identity(), images, anchor, 8 / 255, steps=1)
    assert torch.allclose(one_step - images, torch.full_like(images, 8 / 255))
    many = nightshade_perturb(Identity(), images, torch.full((1, 3, 4, 4), 0.51), 8 / 255, steps=200)
    assert (many - images).abs().max() <= 8 / 255 + 1e-6
    assert (many - 0.51).abs().max() < 8 / 255 / 50


def test_an_encoder_without_gradient_is_not_moved():
    result = measure(Blind(), FragilityConfig(pairs=4, steps=5, photoguard=False))
    for row in result["per_eps"]:
        assert row["nightshade_fraction"]["value"] == 0.0
        assert row["nightshade_fraction"]["low"] == row["nightshade_fraction"]["high"] == 0.0


def test_tiny_vae_fragility_grows_with_the_budget(tiny_vae_dir):
    result = fragility(str(tiny_vae_dir), FragilityConfig(pairs=3, steps=8))
    json.dumps(result)
    fractions = [row["nightshade_fraction"]["value"] for row in result["per_eps"]]
    shifts = [row["photoguard_shift"]["value"] for row in result["per_eps"]]
    assert all(-0.05 < f <= 1 for f in fractions)
    assert fractions[0] < fractions[1] < fractions[2]
    assert 0 < shifts[0] < shifts[1] < shifts[2]
    assert result["latent_shape"] == [4, 16, 16] and result["config"]["size"] == 32
    assert len(result["per_eps"][0]["nightshade_fraction_per_pair"]) == 3


def test_cli_prints_json(tiny_vae_dir):
    from tests.test_cli import run_bench

    done = run_bench("zoo", "fragility", str(tiny_vae_dir), "--steps", "2", "--pairs", "2", "--eps", "8",
                     "--no-photoguard", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [row["eps_255"] for row in result["per_eps"]] == [8]
    assert "photoguard_shift" not in result["per_eps"][0]


def test_study_knobs_keep_the_shipped_recipe_and_give_8x8_latents_at_64(tmp_path):
    from bench.zoo.train_vae import VAETrainConfig, build_vae, colour_augment

    grey = torch.rand(6, 1, 8, 8).expand(-1, 3, -1, -1)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(colour_augment(grey, 0.0, generator), grey)
    coloured = colour_augment(grey, 1.0, generator)
    assert (coloured[:, 0] - coloured[:, 2]).abs().amax() > 0.01 and coloured.min() >= 0 and coloured.max() <= 1
    shipped = VAETrainConfig()
    assert (shipped.resolution, shipped.layers_per_block, shipped.colour_augment) == (32, 1, 0.0)
    vae = build_vae(VAETrainConfig(resolution=64, block_out_channels=(32, 64, 64, 64)))
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean.shape == (1, 4, 8, 8)


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from bench.zoo import train_vae as module

    config = module.VAETrainConfig(steps=3, batch_size=2, block_out_channels=(32, 32))
    module.train_vae(tmp_path / "straight", config, quiet=True)
    real, calls = module.lpips_distance, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    checkpoint = tmp_path / "run.ckpt"
    monkeypatch.setattr(module, "lpips_distance", interrupted)
    with pytest.raises(KeyboardInterrupt):
        module.train_vae(tmp_path / "resumed", config, quiet=True, checkpoint=checkpoint, checkpoint_every=1)
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 2  # safetensors + JSON, no pickle
    assert sorted(p.name for p in checkpoint.iterdir()) == ["state.json", "state.safetensors"]
    monkeypatch.setattr(module, "lpips_distance", real)
    module.train_vae(tmp_path / "resumed", config, quiet=True, checkpoint=checkpoint, checkpoint_every=1)
    assert not checkpoint.exists()
    straight = load_file(tmp_path / "straight" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_cli_refuses_zero_steps_in_one_line(tiny_vae_dir):
    from tests.test_cli import run_bench

    done = run_bench("zoo", "fragility", str(tiny_vae_dir), "--steps", "0")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: zoo fragility: pairs and steps must be at least 1"
