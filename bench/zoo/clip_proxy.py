"""The zoo's ``clip-proxy``: an image-text model for the embedded Fashion-MNIST world.

A LiT-style pair (Zhai et al. 2022, "LiT: Zero-Shot Transfer with Locked-image text Tuning",
arXiv:2111.07991, here with the *text* tower locked): the frozen all-MiniLM-L6-v2 sentence encoder
(384-d, ``bench.text_encoder``) and a small CNN image tower trained to map 32x32 RGB images into
its embedding space, with CLIP's learnable logit scale (Radford et al. 2021, arXiv:2103.00020).

The image tower is a plain ``torch.nn.Module`` stored as ``config.json`` (its constructor
arguments) + ``model.safetensors`` (its state dict and the logit scale); no pickles.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bench.errors import BenchError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_CLASS = "bench.zoo.clip_proxy.ImageTower"


class ImageTower(torch.nn.Module):
    """Conv3x3-BatchNorm-ReLU-MaxPool stages on (x - 0.5) / 0.5, then a linear projection to the
    text embedding size; input (N, 3, image_size, image_size) in [0, 1]."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), embed_dim: int = 384, image_size: int = 32):
        super().__init__()
        self.config = {"channels": list(channels), "embed_dim": embed_dim, "image_size": image_size}
        layers: list[torch.nn.Module] = []
        previous = 3
        for width in channels:
            layers += [torch.nn.Conv2d(previous, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width),
                       torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)]
            previous = width
        self.features = torch.nn.Sequential(*layers)
        side = image_size // 2 ** len(channels)
        self.projection = torch.nn.Linear(previous * side * side, embed_dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features((images - 0.5) / 0.5).flatten(1))


def save_image_tower(tower: ImageTower, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps({"class": "ImageTower", **tower.config}, indent=2) + "\n")
    state = {key: value.detach().contiguous() for key, value in tower.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def load_image_tower(folder: Path) -> ImageTower:
    config = json.loads((folder / CONFIG_FILE).read_text())
    if config.pop("class", None) != "ImageTower":
        raise BenchError(f"{folder / CONFIG_FILE} does not describe an ImageTower; rebuild it with "
                         "`bench zoo train clip-proxy`")
    tower = ImageTower(tuple(config["channels"]), config["embed_dim"], config["image_size"])
    tower.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return tower.eval().requires_grad_(False)


class ClipProxy:
    """The open_clip-like interface: ``encode_image``, ``encode_text``, ``logit_scale``.

    open_clip's ``encode_text`` takes token ids from its tokenizer; this one takes the strings and
    tokenizes inside (MiniLM's BERT tokenizer, 16 tokens). The text tower's output is by definition
    the L2-normalised mean-pooled embedding (as sentence-transformers computes it), so
    ``normalize=False`` returns it unchanged. ``encode_image`` is differentiable in the images.
    """

    def __init__(self, tower: ImageTower, weights: dict[str, str] | None = None):
        self.tower = tower
        self.weights = weights or {}
        self.image_size = tower.config["image_size"]

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.tower.logit_scale.detach().clamp(max=math.log(100))

    def to(self, device: torch.device | str) -> ClipProxy:
        self.tower.to(device)
        return self

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        device = self.tower.logit_scale.device
        images = images.to(device=device, dtype=torch.float32)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = torch.nn.functional.interpolate(images, size=(self.image_size, self.image_size),
                                                     mode="bilinear", antialias=True, align_corners=False)
        features = self.tower(images)
        return torch.nn.functional.normalize(features, dim=-1) if normalize else features

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        from bench.text_encoder import sentence_embeddings

        return sentence_embeddings(list(texts)).to(self.tower.logit_scale.device)


def load_clip_proxy(name: str = "clip-proxy") -> ClipProxy:
    """The shipped model, its files checked against the zoo manifest."""
    from bench.assets import sha256_file
    from bench.zoo import model_dir

    folder = model_dir(name)
    return ClipProxy(load_image_tower(folder), {str(p): sha256_file(p) for p in sorted(folder.iterdir())})

