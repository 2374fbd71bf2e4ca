"""What every CLIP metric shares: the ``model`` config and the loaded image-text model
(``bench.clip_model``), one copy per model for a whole run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.base import Metric


@dataclass(frozen=True)
class ClipMetricConfig:
    """``model``: ``clip-proxy`` or ``open_clip:MODEL_NAME/PRETRAINED_TAG_OR_CHECKPOINT``;
    ``trust_pickle`` admits a pickled open_clip checkpoint (.pt/.pth/.bin)."""

    model: str = "clip-proxy"
    trust_pickle: bool = False


class ClipMetric(Metric):
    Config = ClipMetricConfig

    def prepare(self, device: torch.device) -> ClipMetric:
        self.clip_model.to(device)
        return self

    @property
    def clip_model(self) -> Any:
        from bench.clip_model import shared_image_text_model

        return shared_image_text_model(self.config.model, self.config.trust_pickle)

    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, D) L2-normalised image embeddings, on the CPU."""
        with torch.no_grad():
            return torch.cat([self.clip_model.encode_image(chunk).float().cpu()
                              for chunk in images.split(batch_size)])
