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
