"""Robustadv's objective (``bench.zoo.robustadv``) against models whose equivariance is known exactly."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from bench.errors import BenchError
from bench.zoo.robustadv import RegulariserConfig, adversarial_step, check, objective
from bench.zoo.train_ddpm import SCHEDULER_KWARGS, noise_prediction_loss


@pytest.fixture(scope="module")
def alphas():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_KWARGS).alphas_cumprod


class ShiftEquivariant(torch.nn.Module):
    """eps(x, t) = x / sqrt(1 - abar_t) + c: moving x by sqrt(1 - abar_t) w moves eps by exactly w."""

    def __init__(self, alphas):
        super().__init__()
        self.alphas = alphas
        self.c = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return SimpleNamespace(sample=x / (1 - self.alphas[t]).sqrt().view(-1, 1, 1, 1) + self.c)


def tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 8),
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)


def clean(n=4):
    return torch.rand((n, 1, 8, 8), generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize("perturbation", ["random", "adversarial"])
def test_the_equivariant_term_is_zero_for_an_exactly_equivariant_model_and_the_invariant_one_is_not(alphas, perturbation):
    model = ShiftEquivariant(alphas)
    config = RegulariserConfig(kind="equivariant", perturbation=perturbation, radius_scale=0.5)
    equivariant = objective(model, alphas, clean(), torch.Generator().manual_seed(0), config)
    invariant = objective(model, alphas, clean(), torch.Generator().manual_seed(0),
                          dataclasses.replace(config, kind="invariant"))
    assert float(equivariant["regulariser"]) < 1e-8
    assert float(invariant["regulariser"]) > 1e-3
    assert torch.equal(equivariant["ddpm"], invariant["ddpm"])


def test_without_a_regulariser_the_objective_is_ddpms_loss_with_the_same_draws(alphas):
    unet = tiny_unet()
    plain = objective(unet, alphas, clean(), torch.Generator().manual_seed(3), RegulariserConfig())
    assert set(plain) == {"loss"}
    assert torch.allclose(plain["loss"], noise_prediction_loss(unet, alphas, clean(), torch.Generator().manual_seed(3)))


def test_the_adversarial_perturbation_stays_in_the_radius_and_leaves_the_weights_alone(alphas):
    unet = tiny_unet()
    t = torch.tensor([10, 500, 900, 999])
    a = alphas[t].view(-1, 1, 1, 1)
    noisy = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(2))
    r = torch.tensor([0.01, 0.2, 0.5, 1.0]).view(-1, 1, 1, 1)
    start = (torch.rand(noisy.shape, generator=torch.Generator().manual_seed(4)) * 2 - 1) * r
    w = adversarial_step(unet, noisy, t, a, unet(noisy, t).sample.detach(), start, r, step_size=1.5)
    assert (w.abs() <= r + 1e-7).all()
    assert not torch.equal(w, start)
    assert all(p.grad is None for p in unet.parameters())


def test_on_a_linear_model_the_fgsm_step_reaches_the_corners_of_the_box(alphas):
    """There the gap is ||w||^2, so the ascent step is sign(w) and a full step lands on |w| = r."""
    t = torch.tensor([100, 700])
    r = torch.tensor([0.1, 0.8]).view(-1, 1, 1, 1)
    start = (torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(5)) * 2 - 1) * r
    noisy = torch.randn((2, 1, 8, 8))
    model = ShiftEquivariant(alphas)
    w = adversarial_step(model, noisy, t, alphas[t].view(-1, 1, 1, 1), model(noisy, t).sample, start, r, 1.0)
    assert torch.allclose(w.abs(), r.expand_as(w))
    assert torch.equal(w.sign(), start.sign())


def test_the_regularised_loss_trains_the_weights_through_both_branches(alphas):
    unet = tiny_unet()
    values = objective(unet, alphas, clean(), torch.Generator().manual_seed(0),
                       RegulariserConfig(kind="equivariant", weight=0.3))
    values["loss"].backward()
    assert torch.allclose(values["loss"].detach(), values["ddpm"] + 0.3 * values["regulariser"])
    assert all(p.grad is not None for p in unet.parameters())


@pytest.mark.parametrize(("changes", "message"), [
    ({"radius_scale": -1.0, "bias_min": 0.0, "bias_max": 0.0}, r"makes r\(t\) negative"),
    ({"bias_min": -0.1, "bias_max": 0.0}, r"makes r\(t\) negative"),
    ({"bias_min": 0.2, "bias_max": 0.1}, "below bias_min"),
    ({"weight": -0.3}, "must be >= 0"),
    ({"kind": "equivariance"}, "unknown"),
    ({"perturbation": "pgd"}, "unknown"),
])
def test_bad_regulariser_settings_are_refused(alphas, changes, message):
    with pytest.raises(BenchError, match=message):
        check(RegulariserConfig(**{"kind": "equivariant", **changes}), alphas)


def test_a_negative_scale_that_the_bias_keeps_above_zero_is_allowed(alphas):
    check(RegulariserConfig(kind="equivariant", radius_scale=-0.01, bias_min=0.02, bias_max=0.02), alphas)
