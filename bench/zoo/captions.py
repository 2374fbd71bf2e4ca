"""Varied captions for ``ldm-t2i-v2``: several templates and several names per Fashion-MNIST class,
with some templates and some names held out of training so evaluation can test generalisation.

The first training name of each class is its ``FASHION_MNIST_CLASSES`` name and the first training
template is ``bench.data.caption``'s, so every prompt the suite already uses is a training caption.
Training captions are indexed class-major: class ``c`` owns indices ``c * PER_CLASS`` to
``(c + 1) * PER_CLASS - 1`` of ``training_captions()``.
"""

from __future__ import annotations

import torch

from bench.data import FASHION_MNIST_CLASSES

TRAIN_NAMES: tuple[tuple[str, ...], ...] = (
    ("T-shirt", "tee", "top"),
    ("trouser", "pants", "pair of trousers"),
    ("pullover", "sweater", "jumper"),
    ("dress", "gown", "summer dress"),
    ("coat", "jacket", "overcoat"),
    ("sandal", "sandals", "flip-flop"),
    ("shirt", "blouse", "button-up shirt"),
    ("sneaker", "trainer", "running shoe"),
    ("bag", "handbag", "purse"),
    ("ankle boot", "boot", "bootie"),
)
HELD_OUT_NAMES: tuple[tuple[str, ...], ...] = (
    ("tee shirt",), ("jeans",), ("sweatshirt",), ("sundress",), ("raincoat",),
    ("beach sandal",), ("collared shirt",), ("athletic shoe",), ("tote bag",), ("leather boot",),
)
TRAIN_TEMPLATES = (
    "a photo of a {name}",
    "a {name}",
    "a picture of the {name}",
    "{name} on a black background",
    "an image of a {name}",
    "a photo of the {name}",
    "a grayscale photo of a {name}",
    "{name}",
)
HELD_OUT_TEMPLATES = (
    "a close-up photo of a {name}",
    "a product shot of the {name}",
    "there is a {name} in this picture",
)
PER_CLASS = len(TRAIN_NAMES[0]) * len(TRAIN_TEMPLATES)
# Which names and templates each evaluation split combines.
SPLITS = {
    "train": (TRAIN_NAMES, TRAIN_TEMPLATES),
    "held_out_templates": (TRAIN_NAMES, HELD_OUT_TEMPLATES),
    "held_out_names": (HELD_OUT_NAMES, TRAIN_TEMPLATES),
    "held_out_both": (HELD_OUT_NAMES, HELD_OUT_TEMPLATES),
}


def class_captions(label: int, names=TRAIN_NAMES, templates=TRAIN_TEMPLATES) -> list[str]:
    return [template.format(name=name) for name in names[label] for template in templates]


def training_captions() -> list[str]:
    """All training captions, class-major (``PER_CLASS`` per class)."""
    return [text for label in range(len(FASHION_MNIST_CLASSES)) for text in class_captions(label)]


def draw_training_index(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn training caption of each label's class, as an index into ``training_captions()``."""
    return labels * PER_CLASS + torch.randint(0, PER_CLASS, labels.shape, generator=generator)


def draw_captions(labels: torch.Tensor, split: str = "train", seed: int = 0) -> list[str]:
    """One caption per label from ``split``'s names and templates, drawn uniformly with ``seed``."""
    names, templates = SPLITS[split]
    generator = torch.Generator().manual_seed(seed)
    captions = []
    for label in labels.tolist():
        options = class_captions(label, names, templates)
        captions.append(options[int(torch.randint(0, len(options), (1,), generator=generator))])
    return captions
