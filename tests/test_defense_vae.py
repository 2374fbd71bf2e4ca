"""The VAE defense loads any diffusers AutoencoderKL from a folder (as it would sd-vae-ft-mse)."""

import shutil

import pytest
import torch

from bench.errors import BenchError
from defenses.vae import AutoencoderKLDefense


def make(**params):
    return AutoencoderKLDefense(AutoencoderKLDefense.make_config(params))


def test_folder_loads_and_matches_diffusers(tiny_vae_dir, images):
    from diffusers import AutoencoderKL

    defense = make(model=str(tiny_vae_dir))
    direct = AutoencoderKL.from_pretrained(tiny_vae_dir).eval()
    with torch.no_grad():
        expected = direct.encode(images * 2 - 1).latent_dist.mean
        assert torch.allclose(defense.encode(images), expected, atol=1e-6)
        decoded = ((direct.decode(expected).sample + 1) / 2).clamp(0, 1)
        assert torch.allclose(defense.reconstruct(images), decoded, atol=1e-6)
    assert defense.encode(images).shape == (4, 4, 16, 16)
    assert all(len(sha) == 64 for sha in defense.weights().values())


def test_encode_is_differentiable(tiny_vae_dir, images):
    x = images.clone().requires_grad_(True)
    make(model=str(tiny_vae_dir)).reconstruct(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_pickled_weights_are_refused_without_trust(tiny_vae_dir, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_vae_dir / "config.json", folder)
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(BenchError, match="trust_pickle"):
        make(model=str(folder))


def test_absent_hub_model_fails_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(BenchError, match="huggingface-cli download"):
        make(model="stabilityai/sd-vae-ft-mse")


def test_nonsense_model_name_is_refused():
    with pytest.raises(BenchError, match="neither a zoo model"):
        make(model="no-such-model")


def test_zoo_weights_with_a_wrong_sha256_are_refused(monkeypatch, tmp_path, tiny_vae_dir):
    from bench import zoo

    folder = tmp_path / "weights" / "fake"
    shutil.copytree(tiny_vae_dir, folder)
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "manifest", lambda: {"fake": {"path": "weights/fake", "files": {
        "config.json": zoo.sha256_file(folder / "config.json"),
        "diffusion_pytorch_model.safetensors": "0" * 64}}})
    with pytest.raises(BenchError, match="sha256 .* the manifest says"):
        make(model="fake")
