"""Image sets: the embedded Fashion-MNIST world, or the user's own images.

Every image set is a float tensor (N, 3, H, W) in [0, 1] on the 8-bit grid, with a class label and
a caption per image. Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``; its
28x28 grayscale images are padded to 32x32 and repeated to three channels.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from bench.errors import BenchError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
SPLIT_SEED = 20260101
VALIDATION_SIZE = 5000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
MIN_SIDE = 32


@dataclass(frozen=True)
class DataSpec:
    """Which images a cell uses: ``dataset`` is fashion-mnist, folder (PNG/JPEG files, in name order,
    with optional captions in ``captions.json``) or tensors (a safetensors file with an ``images``
    tensor in [0, 1]); the first ``n`` images of a fixed seeded order of the split are taken, so
    every cell of a grid sees the same images."""

    dataset: str = "fashion-mnist"
    split: str = "test"
    n: int = 64
    path: str = ""

    def __post_init__(self):
        for key in ("dataset", "split", "path"):
            if not isinstance(getattr(self, key), str):
                raise BenchError(f"data: {key} must be a string, got {getattr(self, key)!r}; quote it in the YAML")
        if self.dataset not in ("fashion-mnist", "folder", "tensors"):
            raise BenchError(f"data: unknown dataset {self.dataset!r}; use fashion-mnist, folder or tensors")
        if self.dataset == "fashion-mnist" and self.split not in ("train", "val", "test"):
            raise BenchError(f"data: unknown split {self.split!r}; use train, val or test")
        if self.dataset != "fashion-mnist" and not self.path:
            raise BenchError(f"data: dataset {self.dataset!r} needs a path: to its images")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise BenchError(f"data: n must be a positive whole number, got {self.n!r}")


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor
    labels: torch.Tensor
    captions: tuple[str, ...]


def caption(label: int) -> str:
    return f"a photo of a {FASHION_MNIST_CLASSES[label]}"


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("BENCH_FASHION_MNIST", FASHION_MNIST_DIR))


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


@lru_cache(maxsize=2)
def _fashion_mnist_file(kind: str) -> tuple[np.ndarray, np.ndarray]:
    root = fashion_mnist_dir()
    images_path = root / f"{kind}-images-idx3-ubyte.gz"
    labels_path = root / f"{kind}-labels-idx1-ubyte.gz"
    if not images_path.exists() or not labels_path.exists():
        raise BenchError(f"Fashion-MNIST not found in {root}; install it with "
                         "`apt-get update && apt-get install -y dataset-fashion-mnist` "
                         "or set BENCH_FASHION_MNIST to a folder holding the four idx .gz files")
    images = _read_idx(images_path, 16).reshape(-1, 28, 28)
    labels = _read_idx(labels_path, 8)
    if len(images) != len(labels):
        raise BenchError(f"Fashion-MNIST in {root} is corrupt (images and labels differ in count); reinstall it")
    return images, labels


def _to_rgb32(images: np.ndarray) -> torch.Tensor:
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    tensor = torch.from_numpy(padded).float().div_(255.0)
    return tensor.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def fashion_mnist_indices(split: str) -> tuple[str, np.ndarray]:
    """The file and a fixed, seeded order of the images of a split (train/val are disjoint)."""
    if split == "test":
        images, _ = _fashion_mnist_file("t10k")
        return "t10k", np.random.default_rng(SPLIT_SEED).permutation(len(images))
    images, _ = _fashion_mnist_file("train")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    return "train", order[:VALIDATION_SIZE] if split == "val" else order[VALIDATION_SIZE:]


def load_fashion_mnist(split: str, n: int | None = None) -> ImageSet:
    kind, order = fashion_mnist_indices(split)
    if n is not None and n > len(order):
        raise BenchError(f"data: n={n} exceeds the {len(order)} images of split {split!r}")
    chosen = order[:n] if n is not None else order
    images, labels = _fashion_mnist_file(kind)
    label_tensor = torch.from_numpy(labels[chosen].astype(np.int64))
    return ImageSet(_to_rgb32(images[chosen]), label_tensor, tuple(caption(int(c)) for c in label_tensor))


def _check_images(images: torch.Tensor, source: str) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise BenchError(f"{source}: images must be (N, 3, H, W), got {tuple(images.shape)}; "
                         "convert them to RGB of one size")
    if len(images) == 0:
        raise BenchError(f"{source}: holds no images; save at least n of them")
    if not torch.isfinite(images).all():
        raise BenchError(f"{source}: images contain NaN or infinite values; fix or drop those images")
    if images.min() < 0 or images.max() > 1:
        raise BenchError(f"{source}: pixel values must lie in [0, 1], got [{images.min():.3g}, "
                         f"{images.max():.3g}]; divide 8-bit images by 255")
    if min(images.shape[-2:]) < MIN_SIDE:
        raise BenchError(f"{source}: images are {images.shape[-1]}x{images.shape[-2]} pixels; every scenario "
                         f"measures the budget with LPIPS's AlexNet, which needs sides of at least {MIN_SIDE}: "
                         "resize them")
    return torch.round(images.float() * 255) / 255


HIGH_DEPTH_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


def _rgb8(image, file: Path) -> np.ndarray:
    """(H, W, 3) uint8 of an opened image. 16-bit grayscale (mode I;16) is scaled by its depth, not
    clipped at 255 as ``convert("RGB")`` does; 16-bit RGB(A) PNGs already open as 8-bit modes."""
    if image.mode in HIGH_DEPTH_MODES:
        gray = np.asarray(image).astype(np.float64) / HIGH_DEPTH_MODES[image.mode]
        return np.repeat(np.round(gray * 255).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode in ("I", "F"):
        raise BenchError(f"data: {file} has {'32-bit integer' if image.mode == 'I' else 'floating-point'} pixels "
                         f"(mode {image.mode}) of no known range; save it as an 8-bit or 16-bit PNG")
    return np.asarray(image.convert("RGB"))


def load_folder(path: str, n: int) -> ImageSet:
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise BenchError(f"data: image folder {root} {'is not a folder' if root.exists() else 'does not exist'}; "
                         "check data.path")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if len(files) < n:
        raise BenchError(f"data: {root} holds {len(files)} images, fewer than n={n}; lower n or add images")
    arrays = []
    for file in files:
        try:
            with Image.open(file) as image:
                arrays.append(_rgb8(image, file))
        except (OSError, Image.DecompressionBombError) as err:
            raise BenchError(f"data: cannot read image {file}: {err}; remove or re-save it") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise BenchError(f"data: images in {root} differ in size {sorted(shapes)}; resize them to one size")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return ImageSet(_check_images(images, str(root)), torch.full((n,), -1), _folder_captions(root, files))


def _folder_captions(root: Path, files: list[Path]) -> tuple[str, ...]:
    """Captions from ``captions.json`` in the folder ({"file name": "caption"}), or none."""
    import json

    path = root / "captions.json"
    if not path.exists():
        return ("",) * len(files)
    try:
        captions = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchError(f"data: cannot read {path} ({err}); write a JSON object of file name -> caption") from None
    if not isinstance(captions, dict) or not all(isinstance(v, str) for v in captions.values()):
        raise BenchError(f"data: {path} must be a JSON object of file name -> caption string")
    missing = [f.name for f in files if f.name not in captions]
    if missing:
        raise BenchError(f"data: {path} has no caption for {missing[0]} (and {len(missing) - 1} more); add them")
    return tuple(captions[f.name] for f in files)


def load_tensors(path: str, n: int) -> ImageSet:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except (OSError, SafetensorError) as err:
        raise BenchError(f"data: cannot read {path} as safetensors ({err}); save an `images` tensor "
                         "with safetensors.torch.save_file") from None
    if "images" not in tensors:
        raise BenchError(f"data: {path} has no `images` tensor; save one of shape (N, 3, H, W) in [0, 1]")
    images = _check_images(tensors["images"], path)
    if len(images) < n:
        raise BenchError(f"data: {path} holds {len(images)} images, fewer than n={n}; lower n")
    labels = tensors.get("labels", torch.full((len(images),), -1))[:n].long()
    return ImageSet(images[:n], labels, ("",) * n)


def load_target_image(path: str, like: torch.Tensor, owner: str) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: an attack's target image, resized (bicubic) to the batch ``like``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = Image.fromarray(_rgb8(image, Path(path)))  # 16-bit grayscale scaled, not clipped
    except (OSError, Image.DecompressionBombError) as err:
        raise BenchError(f"{owner}: cannot read target image {path}: {err}; re-save it as PNG") from None
    array = np.asarray(rgb.resize(tuple(like.shape[-2:][::-1]), Image.BICUBIC))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0).to(like.device)


def load(spec: DataSpec) -> ImageSet:
    if spec.dataset == "fashion-mnist":
        return load_fashion_mnist(spec.split, spec.n)
    if spec.dataset == "folder":
        return load_folder(spec.path, spec.n)
    return load_tensors(spec.path, spec.n)
