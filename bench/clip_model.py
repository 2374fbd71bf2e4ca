"""Image-text models behind one interface: ``encode_image(images, normalize=True)``,
``encode_text(texts, normalize=True)`` and ``logit_scale``, as open_clip models expose them, except
that ``encode_text`` takes strings (open_clip's takes token ids from its tokenizer; the adapter
tokenizes inside) and ``encode_image`` takes our images, float (N, 3, H, W) in [0, 1], resized and
normalised inside the adapter.

``model`` is ``clip-proxy`` (the zoo's Fashion-MNIST proxy, ``bench.zoo.clip_proxy``) or
``open_clip:MODEL_NAME/PRETRAINED``, where PRETRAINED is an open_clip pretrained tag (e.g.
``open_clip:ViT-B-32/laion2b_s34b_b79k``) or a checkpoint path (``open_clip:ViT-B-32//data/ckpt.safetensors``).
Pickled checkpoints (.pt/.pth/.bin/.ckpt) run code when loaded and are refused unless ``trust_pickle``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError

OPEN_CLIP_PREFIX = "open_clip:"
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl"}
CHECKPOINT_SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}


class OpenClipAdapter:
    """An open_clip model with its tokenizer and preprocessing (resize to the model's input size,
    bicubic as open_clip's default, then its mean/std), differentiable in the images."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, weights: dict[str, str] | None = None):
        from open_clip import get_model_preprocess_cfg

        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.weights = weights or {}
        config = get_model_preprocess_cfg(model)
        size = config.get("size", 224)
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(config.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1)
        self.std = torch.tensor(config.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1)

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.detach()

    def to(self, device: torch.device | str) -> OpenClipAdapter:
        self.model.to(device)
        return self

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        images = images.to(device=self.device, dtype=torch.float32)
        if tuple(images.shape[-2:]) != self.image_size:
            images = torch.nn.functional.interpolate(images, size=self.image_size, mode="bicubic",
                                                     antialias=True, align_corners=False).clamp(0, 1)
        images = (images - self.mean.to(images.device)) / self.std.to(images.device)
        return self.model.encode_image(images, normalize=normalize)

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.no_grad():
            return self.model.encode_text(tokens, normalize=normalize)


def parse_open_clip(model: str) -> tuple[str, str]:
    spec = model[len(OPEN_CLIP_PREFIX):]
    name, _, pretrained = spec.partition("/")
    if not name or not pretrained:
        raise BenchError(f"image-text model {model!r}: write open_clip:MODEL_NAME/PRETRAINED_TAG_OR_CHECKPOINT "
                         "(e.g. open_clip:ViT-B-32/laion2b_s34b_b79k)")
    return name, pretrained


def load_open_clip(model: str, trust_pickle: bool = False) -> OpenClipAdapter:
    import open_clip

    from bench.leaderboard.safety import refuse_pickle, safetensors_only

    refuse_pickle(trust_pickle, f"image-text model {model!r}")
    name, pretrained = parse_open_clip(model)
    if safetensors_only() and not (Path(pretrained).suffix.lower() == ".safetensors" and Path(pretrained).is_file()):
        raise BenchError(f"image-text model {model!r}: while verifying a leaderboard entry only a local "
                         ".safetensors checkpoint is loaded, not an open_clip pretrained tag or pickle")
    if name not in open_clip.list_models():
        raise BenchError(f"image-text model {model!r}: open_clip knows no model {name!r}; see "
                         "open_clip.list_models() or register a config with open_clip.add_model_config")
    weights: dict[str, str] = {}
    suffix = Path(pretrained).suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES or Path(pretrained).exists():
        from bench.assets import sha256_file

        path = Path(pretrained)
        if not path.is_file():
            raise BenchError(f"image-text model {model!r}: checkpoint {path} does not exist; check the path")
        if suffix != ".safetensors" and not trust_pickle:
            raise BenchError(f"image-text model {model!r}: {path.name} is a pickled checkpoint, which can run "
                             "code when loaded; convert it to .safetensors or pass trust_pickle=True")
        weights[str(path)] = sha256_file(path)
    logging.disable(logging.ERROR)  # open_clip logs a failed download itself; the error below says it once
    try:
        network, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained,
                                                              weights_only=not trust_pickle)
        tokenizer = open_clip.get_tokenizer(name)
    except (OSError, RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BenchError(f"image-text model {model!r} could not be loaded ({reason}); download it while "
                         "online (unset HF_HUB_OFFLINE) or give a local checkpoint: "
                         f"open_clip:{name}//path/to/model.safetensors") from None
    finally:
        logging.disable(logging.NOTSET)
    return OpenClipAdapter(network, tokenizer, weights)


def load_image_text_model(model: str, trust_pickle: bool = False) -> Any:
    """The model behind ``encode_image`` / ``encode_text`` / ``logit_scale``; see the module docstring."""
    if model.startswith(OPEN_CLIP_PREFIX):
        return load_open_clip(model, trust_pickle)
    from bench.zoo import manifest
    from bench.zoo.clip_proxy import MANIFEST_CLASS, load_clip_proxy

    if manifest().get(model, {}).get("class") != MANIFEST_CLASS:
        raise BenchError(f"unknown image-text model {model!r}; use clip-proxy or "
                         "open_clip:MODEL_NAME/PRETRAINED_TAG_OR_CHECKPOINT")
    return load_clip_proxy(model)


@lru_cache(maxsize=4)
def shared_image_text_model(model: str, trust_pickle: bool = False) -> Any:
    """One loaded copy per model, shared by every CLIP metric of a run."""
    return load_image_text_model(model, trust_pickle)


def zero_shot_predict(model: Any, images: torch.Tensor, class_names: tuple[str, ...],
                      batch_size: int = 250) -> torch.Tensor:
    """(N,) the index of the class whose prompt "a photo of a {name}" is nearest to each image."""
    with torch.no_grad():
        texts = model.encode_text([f"a photo of a {name}" for name in class_names])
        return torch.cat([(model.encode_image(chunk) @ texts.T).argmax(-1).cpu() for chunk in images.split(batch_size)])


def zero_shot_correct(model: Any, images: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...],
                      batch_size: int = 250) -> torch.Tensor:
    """(N,) 1.0 where the zero-shot prediction is the label, else 0.0."""
    return (zero_shot_predict(model, images, class_names, batch_size) == labels.cpu()).float()
