"""Every registered defense, on the tiny seeded VAE where it takes a model: latents and
reconstructions of the right shape, deterministic, and an attack view that passes gradients."""

import pytest
import torch

from bench.plugins import DEFENSES

PURIFIERS = ["jpeg", "gaussian-noise", "rescale", "impress"]
AUTOENCODERS = [name for name in DEFENSES.names() if DEFENSES.get(name).kind == "autoencoder"]


def build(name, tiny_vae_dir, **params):
    cls = DEFENSES.get(name)
    fields = cls.Config.__dataclass_fields__
    model = {"model": str(tiny_vae_dir)} if "model" in fields and not DEFENSES.preset(name) else {}
    extra = {"steps": 3} if "steps" in fields else {}
    defense = cls(cls.make_config({**DEFENSES.preset(name), **model, **extra, **params}))
    defense.name = name
    return defense


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_defense_round_trip_is_deterministic(name, tiny_vae_dir, images):
    defense = build(name, tiny_vae_dir)
    with torch.no_grad():
        latents, again = defense.encode(images), defense.encode(images)
        reconstruction = defense.decode(latents)
    assert torch.equal(latents, again)
    assert reconstruction.shape == images.shape
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    assert defense.weights() and all(len(sha) == 64 for sha in defense.weights().values())


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_the_attack_view_passes_gradients(name, tiny_vae_dir, images):
    x = images.clone().requires_grad_(True)
    build(name, tiny_vae_dir).attack_view().encode(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", PURIFIERS)
def test_purifiers_change_the_input_before_the_wrapped_vae(name, tiny_vae_dir, images):
    from defenses.vae import AutoencoderKLDefense

    purifier = build(name, tiny_vae_dir)
    plain = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": str(tiny_vae_dir)}))
    with torch.enable_grad():
        purified = purifier.purify(images).detach()
    assert purified.shape == images.shape and 0 <= purified.min() and purified.max() <= 1
    assert not torch.equal(purified, images)
    with torch.no_grad():
        assert torch.allclose(purifier.encode(images), plain.encode(purified), atol=1e-5)


def test_jpeg_gradient_is_the_identity_bpda(tiny_vae_dir, images):
    from defenses.purifier import straight_through

    x = images.clone().requires_grad_(True)
    straight_through(x, x.detach() * 0.5).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_gaussian_noise_follows_the_image_not_the_call_order(tiny_vae_dir, images):
    purifier = build("gaussian-noise", tiny_vae_dir)
    first = purifier.purify(images)
    purifier.purify(images.flip(0))
    assert torch.equal(purifier.purify(images), first)
    assert not torch.equal(purifier.purify(images[:1]), purifier.purify(images[1:2]))


def test_impress_moves_toward_consistency(tiny_vae_dir, images):
    purifier = build("impress", tiny_vae_dir, steps=20, lr=0.01)
    inner = purifier.inner
    with torch.no_grad():
        before = (images - inner.reconstruct(images)).pow(2).mean()
    purified = purifier.purify(images)
    with torch.no_grad():
        after = (purified - inner.reconstruct(purified)).pow(2).mean()
    assert after < before


def test_bad_purifier_settings_are_refused():
    from bench.errors import BenchError

    for name, params, message in [("jpeg", {"quality": 0}, "quality"), ("rescale", {"factor": 1}, "factor"),
                                  ("rescale", {"mode": "nearest-ish"}, "mode"),
                                  ("gaussian-noise", {"sigma": 2.0}, "outside")]:
        with pytest.raises(BenchError, match=message):
            DEFENSES.get(name).make_config(params)
