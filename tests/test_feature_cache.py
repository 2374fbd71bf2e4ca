"""Reference features cached across runs by content hash: reused, and recomputed when tampered with."""

from __future__ import annotations

import logging

import torch
import yaml

from bench import feature_cache
from bench.metrics.clip_fd import ClipFD
from bench.runner import Runner, RunOptions


def test_an_entry_is_reused_and_a_tampered_one_is_recomputed(tmp_path, caplog):
    calls = []

    def compute():
        calls.append(1)
        return {"features": torch.arange(6.0).reshape(2, 3)}

    first = {k: v.clone() for k, v in feature_cache.cached_features("k", compute, tmp_path).items()}
    again = feature_cache.cached_features("k", compute, tmp_path)
    assert len(calls) == 1 and torch.equal(first["features"], again["features"])
    path = tmp_path / "k.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one bit of a value: still valid safetensors, no longer the recorded bytes
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        repaired = feature_cache.cached_features("k", compute, tmp_path)
    assert len(calls) == 2 and "does not match its recorded sha256" in caplog.text
    assert torch.equal(repaired["features"], first["features"])


def test_the_key_names_the_images_bytes_and_the_metric():
    metric = ClipFD()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    key = feature_cache.feature_key(metric, images, {}, "float32", "cpu")
    assert key == feature_cache.feature_key(metric, images.clone(), {}, "float32", "cpu")
    changed = images.clone()
    changed[0, 0, 0, 0] += 1e-6
    assert key != feature_cache.feature_key(metric, changed, {}, "float32", "cpu")
    assert key != feature_cache.feature_key(metric, images, {"clip-proxy": "other"}, "float32", "cpu")
    assert key != feature_cache.feature_key(metric, images, {}, "bfloat16", "cpu")


def test_a_second_grid_over_the_same_data_reuses_the_reference_features(tmp_path, tiny_vae_dir, monkeypatch):
    monkeypatch.setattr(feature_cache, "cache_dir", lambda: tmp_path / "cache")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"name": "features", "seed": 0, "batch_size": 4, "data": {"split": "test", "n": 8},
                                    "metrics": ["clip-fd"], "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
                                    "attacks": ["none"], "eps": [0.0]}))
    [first] = Runner(tmp_path / "a", RunOptions(quiet=True)).run_grid(grid)
    [entry] = (tmp_path / "cache" / "features").glob("*.safetensors")
    written = entry.stat().st_mtime_ns
    computed = []
    original = ClipFD.features
    monkeypatch.setattr(ClipFD, "features", lambda self, images: computed.append(len(images)) or original(self, images))
    [second] = Runner(tmp_path / "b", RunOptions(quiet=True)).run_grid(grid)
    assert computed == [8]  # the reconstructions only; the 8 real images' features came from the cache
    assert entry.stat().st_mtime_ns == written
    assert second["metrics"] == first["metrics"]


def test_a_paired_value_is_keyed_by_both_tensors_the_metric_its_network_and_the_run(monkeypatch):
    from bench import assets
    from bench.metrics.lpips import LPIPS, LPIPSConfig
    from bench.metrics.psnr import PSNR

    generator = torch.Generator().manual_seed(0)
    images, references = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)

    def key(metric=None, i=images, r=references, dtype="float32", device="cpu"):
        return feature_cache.feature_key(metric or LPIPS(), i, {}, dtype, device, r)

    base = key()
    assert base == key(i=images.clone(), r=references.clone())
    other_model = images.clone()
    other_model[1, 2, 3, 4] += 1e-6  # reconstructions by other weights: one value one ulp-ish away
    variants = [key(i=other_model), key(r=other_model), key(i=references, r=images), key(r=None),
                key(metric=LPIPS(LPIPSConfig(net="vgg"))), key(metric=PSNR()), key(dtype="bfloat16"),
                key(device="cuda")]
    monkeypatch.setitem(assets.LPIPS_SHA256, "alex", "0" * 64)  # other LPIPS weights under the same name
    variants.append(key())
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "0.0")
    variants.append(key())
    assert base not in variants and len(set(variants)) == len(variants)


def _edit_grid(path, tiny_sd_dir, vae_dir):
    path.write_text(yaml.safe_dump({
        "name": "fidelity", "seed": 0, "batch_size": 2, "data": {"split": "test", "n": 4}, "metrics": ["psnr"],
        "scenario": {"name": "img2img-edit", "pipeline": str(tiny_sd_dir), "steps": 2},
        "defenses": [{"name": "vae", "model": str(vae_dir)}], "attacks": ["none"], "eps": [0.0]}))
    return path


def test_a_second_run_reuses_the_clean_fidelity_and_another_model_misses_it(tmp_path, tiny_sd_dir, tiny_vae_dir,
                                                                            monkeypatch):
    from conftest import build_tiny_vae

    from bench.metrics.fid import FID
    from bench.metrics.lpips import LPIPS

    monkeypatch.setattr(feature_cache, "cache_dir", lambda: tmp_path / "cache")
    lpips_calls, inception_calls = [], []
    per_sample, features = LPIPS.per_sample, FID.features
    monkeypatch.setattr(LPIPS, "per_sample", lambda self, a, b: lpips_calls.append(len(a)) or per_sample(self, a, b))
    monkeypatch.setattr(FID, "features", lambda self, images: inception_calls.append(len(images)) or features(self, images))
    grid = _edit_grid(tmp_path / "grid.yaml", tiny_sd_dir, tiny_vae_dir)
    [first] = Runner(tmp_path / "a", RunOptions(quiet=True)).run_grid(grid)
    assert lpips_calls == [4] and inception_calls == [4, 4]  # the reconstructions', then the images' features
    entries = sorted((tmp_path / "cache" / "features").glob("*.safetensors"))
    assert len(entries) == 5  # LPIPS, PSNR, SSIM of the clean reconstructions; two feature sets
    lpips_calls.clear(), inception_calls.clear()
    [second] = Runner(tmp_path / "b", RunOptions(quiet=True)).run_grid(grid)
    assert lpips_calls == [] and inception_calls == []
    assert second["metrics"] == first["metrics"]
    assert sorted((tmp_path / "cache" / "features").glob("*.safetensors")) == entries

    other = tmp_path / "other-vae"
    build_tiny_vae(seed=1).save_pretrained(other, safe_serialization=True)
    [third] = Runner(tmp_path / "c", RunOptions(quiet=True)).run_grid(
        _edit_grid(tmp_path / "other.yaml", tiny_sd_dir, other))
    assert lpips_calls == [4] and inception_calls == [4]  # its reconstructions miss; the images' features hit
    assert third["metrics"]["clean_rec_lpips"]["value"] != first["metrics"]["clean_rec_lpips"]["value"]
