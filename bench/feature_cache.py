"""Values that depend only on images and a metric's network, cached across runs in the asset cache
(``$BENCH_CACHE/features``), so a second grid over the same data does not recompute them: the FID
Inception and clip-proxy features of the real images, and a defense's clean fidelity (LPIPS, PSNR,
SSIM of its clean reconstructions against the images, the Inception features of those reconstructions).

An entry is keyed by the sha256 of the images' bytes (and, for a paired value, of the references'
bytes), the metric (name, version, config, the sha256 of its network's weights, the content hash of
every file its config names), dtype, device type and torch version. A value of reconstructions is
keyed by the reconstructions' bytes, so the defense's weights, its code and the run's dtype enter the
key through what they produced: another model, or the same one computing different bits, misses.
Beside each ``<key>.safetensors`` lies ``<key>.json`` with the file's sha256; an entry whose file does
not hash to it (damaged, or edited by hand) is recomputed and rewritten, never trusted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.assets import cache_dir, sha256_file
from bench.base import Metric
from bench.store import DamagedFile, atomic_save_tensors, atomic_write_json, load_tensors

log = logging.getLogger(__name__)


def images_digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def feature_key(metric: Metric, images: torch.Tensor, metric_inputs: dict[str, str], dtype: str, device: str,
                references: torch.Tensor | None = None) -> str:
    """The key of ``metric``'s features of ``images``, or, with ``references``, of its per-sample
    values of ``images`` against them."""
    keyed = {"metric": {"name": metric.name, "version": metric.version, "config": dataclasses.asdict(metric.config),
                        "space": metric.feature_space, "inputs": metric_inputs, "network": metric.network_digests()},
             "images": images_digest(images), "shape": list(images.shape), "dtype": dtype, "device": device,
             "torch": torch.__version__}
    if references is not None:
        keyed["references"] = {"digest": images_digest(references), "shape": list(references.shape)}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


def cached_features(key: str, compute: Callable[[], dict[str, torch.Tensor]],
                    folder: Path | None = None) -> dict[str, torch.Tensor]:
    folder = folder or cache_dir() / "features"
    path, record = folder / f"{key}.safetensors", folder / f"{key}.json"
    if path.exists() and record.exists():
        try:
            expected: Any = json.loads(record.read_text()).get("sha256")
            if expected == sha256_file(path):
                return load_tensors(path)
            log.warning("feature cache %s does not match its recorded sha256; recomputing it", path)
        except (OSError, json.JSONDecodeError, AttributeError, DamagedFile) as err:
            log.warning("feature cache %s cannot be read (%s); recomputing it", path, err)
    tensors = compute()
    atomic_save_tensors(path, tensors)
    atomic_write_json(record, {"sha256": sha256_file(path), "key": key})
    return load_tensors(path)
