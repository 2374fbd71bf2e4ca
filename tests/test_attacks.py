"""Every registered attack, on a tiny seeded VAE (and, for attacks on the diffusion model, the tiny
SD pipeline around it): the eps-ball holds after quantisation, outputs are 8-bit images in [0, 1],
and the same seed gives the same output."""

import pytest
import torch

from bench.base import PIXEL_LEVELS, quantise_into_ball
from bench.plugins import ATTACKS

EPS = 8 / 255
PIXEL_ATTACKS = [n for n in ATTACKS.names() if ATTACKS.get(n).surface == "pixels"]
"""Prompt and training-data attacks: tests/test_surfaces.py."""


def build(name, **params):
    cls = ATTACKS.get(name)
    extra = {"steps": 2} if "steps" in cls.Config.__dataclass_fields__ else {}
    eps = {} if name == "none" else {"eps": EPS}
    return cls(cls.make_config({**ATTACKS.preset(name), **eps, **extra, **params}))


def target_for(attack, tiny_defense, tiny_editor):
    return tiny_editor if attack.differentiates() == "text-to-image" else tiny_defense


@pytest.mark.parametrize("name", PIXEL_ATTACKS)
def test_attack_stays_in_the_quantised_eps_ball(name, tiny_defense, tiny_editor, images):
    attack = build(name)
    adversarial = attack(target_for(attack, tiny_defense, tiny_editor), images, seed=0)
    assert adversarial.shape == images.shape
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    levels = adversarial * PIXEL_LEVELS
    assert torch.allclose(levels, levels.round(), atol=1e-4)


@pytest.mark.parametrize("name", PIXEL_ATTACKS)
def test_same_seed_same_output(name, tiny_defense, tiny_editor, images):
    attack = build(name)
    model = target_for(attack, tiny_defense, tiny_editor)
    first, again = attack(model, images, seed=3), attack(model, images, seed=3)
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", [n for n in PIXEL_ATTACKS if ATTACKS.get(n).uses_model])
def test_the_attack_improves_its_own_objective_over_noise(name, tiny_defense, tiny_editor, images):
    """What adaptive selection relies on: ``objective`` is higher for the attack's own output than
    for uniform noise of the same budget."""
    attack = build(name, steps=10)
    model = target_for(attack, tiny_defense, tiny_editor)
    with torch.no_grad():
        crafted = attack.objective(model, attack(model, images, seed=0), images, seed=0)
        noise = attack.objective(model, build("noise")(model, images, seed=0), images, seed=0)
    assert crafted.shape == (len(images),)
    assert crafted.mean() > noise.mean()


def test_noise_differs_across_seeds(tiny_defense, images):
    attack = build("noise")
    assert not torch.equal(attack(tiny_defense, images, seed=0), attack(tiny_defense, images, seed=1))


def test_quantisation_never_leaves_the_ball():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 8, 8)
    eps = 0.0123
    wild = clean + (torch.rand_like(clean) * 2 - 1) * (eps + 0.01)
    projected = quantise_into_ball(wild.clamp(0, 1), clean, eps)
    assert (projected - clean).abs().max() <= eps + 1e-6


def test_pgd_damages_more_than_noise(tiny_defense, images):
    from attacks.pgd_encoder import reconstruction_loss

    pgd, noise = build("pgd-encoder", steps=5), build("noise")
    with torch.no_grad():
        loss = {name: reconstruction_loss(tiny_defense, attack(tiny_defense, images, seed=0), images, 1.0,
                                          "vgg").mean().item()
                for name, attack in (("pgd", pgd), ("noise", noise))}
    assert loss["pgd"] > loss["noise"]


@pytest.mark.parametrize("name", ["photoguard", "photoguard-diffusion", "mist"])
def test_a_target_image_moves_the_attack_toward_it(name, tmp_path, tiny_defense, tiny_editor, images):
    """A target image file is read, resized to the batch and pulls the attack's objective: crafting
    toward a black target does better on the black-target objective than crafting toward a white one."""
    from PIL import Image

    for shade in ("black", "white"):
        Image.new("RGB", (64, 64), shade).save(tmp_path / f"{shade}.png")
    toward_black = build(name, steps=10, target=str(tmp_path / "black.png"))
    toward_white = build(name, steps=10, target=str(tmp_path / "white.png"))
    model = target_for(toward_black, tiny_defense, tiny_editor)
    with torch.no_grad():
        own = toward_black.objective(model, toward_black(model, images, seed=0), images, seed=0)
        other = toward_black.objective(model, toward_white(model, images, seed=0), images, seed=0)
    assert own.mean() > other.mean()


def test_an_unreadable_target_image_names_the_fix(tmp_path, tiny_defense, images):
    from bench.errors import BenchError

    broken = tmp_path / "target.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(BenchError, match="photoguard: cannot read target image .* re-save it as PNG"):
        build("photoguard", target=str(broken))(tiny_defense, images, seed=0)


def test_pgd_encoder_with_cached_clean_features_takes_the_uncached_step(tiny_defense):
    """The clean images' LPIPS features are computed once per attack; the step must stay the one of
    the plain loss (SRL-VAE eq. 5) against those same clean images."""
    from attacks.pgd_encoder import reconstruction_loss
    from bench.base import signed_step

    torch.manual_seed(0)
    images = torch.rand(3, 3, 32, 32)
    attack = build("pgd-encoder", steps=1, random_start=False, lpips_net="alex")
    adversarial = attack.perturb(tiny_defense, images, torch.Generator().manual_seed(0))
    delta = torch.zeros_like(images, requires_grad=True)
    loss = reconstruction_loss(tiny_defense, images + delta, images, attack.config.lpips_weight, "alex").sum()
    (grad,) = torch.autograd.grad(loss, delta)
    expected = images + signed_step(delta.detach(), grad, attack.config.step_size, images, attack.config.eps)
    assert torch.equal(adversarial, expected)
