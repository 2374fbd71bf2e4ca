"""The FID Inception-v3 (TF 2015-12-05 weights, as pytorch-fid) used by FID and KID, and their
common base: a set metric on its 2048-d pool features."""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F

from bench.metrics.kinds import SetMetric

FEATURE_DIM = 2048
INPUT_SIZE = 299


@lru_cache(maxsize=1)
def inception_network() -> torch.jit.ScriptModule:
    from bench.assets import inception_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(inception_path()), map_location="cpu")
    return model.eval()


@torch.no_grad()
def inception_features(images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """2048-d pool features of images in [0, 1], resized bilinearly to 299x299 as pytorch-fid does."""
    model = inception_network().to(images.device)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].float()
        batch = F.interpolate(batch, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        chunks.append(model(batch * 2 - 1).reshape(len(batch), -1).double().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0, FEATURE_DIM, dtype=torch.float64)


class InceptionSetMetric(SetMetric):
    """A set metric on FID Inception features (FID, KID): one feature space, computed once per image
    set and shared by every metric on it. Subclasses give ``from_features`` and ``statistic``."""

    feature_space = "fid-inception"
    higher_is_better = False

    def prepare(self, device: torch.device) -> InceptionSetMetric:
        inception_network().to(device)
        return self

    def network_digests(self) -> dict[str, str]:
        from bench.assets import INCEPTION_SHA256

        return {"fid-inception": INCEPTION_SHA256}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return inception_features(images)
