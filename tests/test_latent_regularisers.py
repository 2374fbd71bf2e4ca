"""The KL / VE latent regularisers of issue 13's tokenizers (bench.zoo.latent_regularisers)."""

import json
from dataclasses import replace

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from bench.zoo.latent_regularisers import (
    check_config,
    magnitude_penalty,
    reduce_elements,
    regulariser_terms,
    variance_expansion,
)
from bench.zoo.train_vae import VAETrainConfig

VE = VAETrainConfig(regulariser="ve", scale_on="sample")


def posterior(mean: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussianDistribution:
    return DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))


def test_sum_reduction_is_the_mean_times_the_latent_elements():
    values = torch.rand(3, 4, 8, 8)
    assert torch.allclose(reduce_elements(values, "sum"), reduce_elements(values, "mean") * 256)
    with pytest.raises(ValueError, match="reduction"):
        reduce_elements(values, "max")


def test_variance_expansion_is_largest_where_the_variance_collapses():
    collapsed, moderate = torch.full((1, 4, 2, 2), 1e-8), torch.full((1, 4, 2, 2), 0.06)
    assert variance_expansion(collapsed, 1e-4, "mean") == pytest.approx(1 / (1e-8 + 1e-4), rel=1e-5)
    assert variance_expansion(moderate, 1e-4, "mean") < variance_expansion(collapsed, 1e-4, "mean") / 100


def test_a_gradient_step_on_the_ve_term_raises_a_small_variance():
    logvar = torch.full((2, 4, 2, 2), -10.0, requires_grad=True)
    dist = posterior(torch.zeros(2, 4, 2, 2), logvar)
    regulariser_terms(dist, dist.sample(), VE)["reg"].backward()
    assert (logvar.grad < 0).all()  # descending the loss raises logvar


def test_the_kl_term_pulls_a_large_variance_down_and_is_weighted_by_beta():
    logvar = torch.full((2, 4, 2, 2), 2.0, requires_grad=True)
    dist = posterior(torch.zeros(2, 4, 2, 2), logvar)
    terms = regulariser_terms(dist, dist.sample(), VAETrainConfig(kl_weight=8.0))
    assert torch.allclose(terms["reg"], 8.0 * dist.kl().mean())
    terms["reg"].backward()
    assert (logvar.grad > 0).all()


def test_the_clamped_magnitude_term_acts_only_above_tau():
    z = torch.tensor([[-3.0, -0.5, 0.0, 0.9, 2.0]]).view(1, 5, 1, 1).requires_grad_()
    magnitude_penalty(z, tau=1.0, reduction="sum", clamp=True).backward()
    assert z.grad.flatten()[1:4].abs().max() == 0 and z.grad.flatten()[0] < 0 < z.grad.flatten()[4]
    z.grad = None
    magnitude_penalty(z, tau=1.0, reduction="sum", clamp=False).backward()
    assert z.grad.flatten()[1] != 0  # the bare exp(|z| - tau) is nonzero everywhere


@pytest.mark.parametrize("change, field", [({"regulariser": "l2"}, "regulariser"), ({"ve_reduction": "max"}, "ve_reduction"),
                                           ({"kl_weight": -1.0}, "kl_weight"), ({"ve_delta": float("nan")}, "ve_delta"),
                                           ({"regulariser": "ve", "ve_delta": 0.0}, "ve_delta")])
def test_a_config_that_cannot_train_is_refused_by_name(change, field):
    with pytest.raises(ValueError, match=field):
        check_config(replace(VAETrainConfig(), **change))


def test_a_ve_training_records_the_variance_and_scales_on_sampled_latents(tmp_path):
    from bench.zoo.train_vae import train_vae

    config = replace(VE, steps=2, batch_size=2, block_out_channels=(32, 32))
    info = train_vae(tmp_path / "ve", config, quiet=True)
    variance = info["latent_variance_on_val"]
    saved = json.loads((tmp_path / "ve" / "config.json").read_text())
    assert saved["scaling_factor"] == pytest.approx(1 / variance["sample_std"], rel=1e-5)
    assert variance["mean"] > 0 and info["regulariser"] == "ve"


def test_ldm_latents_are_seeded_posterior_samples_of_the_named_tokenizer(tmp_path):
    from bench.zoo.train_ldm import encode_latents
    from bench.zoo.train_vae import build_vae

    vae = build_vae(replace(VAETrainConfig(), block_out_channels=(32, 32, 32)))
    vae.save_pretrained(tmp_path / "tok", safe_serialization=True)
    images = torch.rand(4, 3, 32, 32)
    means = encode_latents(images, autoencoder=str(tmp_path / "tok"))
    first = encode_latents(images, autoencoder=str(tmp_path / "tok"), latents="sample", seed=1)
    again = encode_latents(images, autoencoder=str(tmp_path / "tok"), latents="sample", seed=1)
    assert means.shape == (4, 4, 8, 8) and torch.equal(first, again) and not torch.allclose(first, means)


def test_a_tokenizer_whose_latents_do_not_fit_the_unet_is_refused(tiny_vae_dir):
    from bench.errors import BenchError
    from bench.zoo.train_ldm import encode_latents

    with pytest.raises(BenchError, match="latents of shape"):
        encode_latents(torch.rand(2, 3, 32, 32), autoencoder=str(tiny_vae_dir))
