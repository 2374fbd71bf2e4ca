"""``bench zoo show NAME``: a labelled PNG grid of a zoo model's samples, one row per class.

- ``ldm-t2i``, ``ldm-t2i-v2``: generations for "a photo of a {class}";
- ``ddpm``, ``ddpm-pixel`` and any denoiser folder (``bench train-denoiser``): unconditional samples,
  grouped by the class clip-proxy assigns them;
- autoencoders: test images of each class next to their reconstructions;
- ``clip-proxy``: test images grouped by the class it predicts (mistakes included).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.errors import BenchError

LABEL_WIDTH = 80


def save_labelled_grid(rows: list[tuple[str, torch.Tensor]], out_png: str | Path) -> Path:
    """One labelled row per (label, images (k, 3, H, W) in [0, 1]); rows may differ in length."""
    from PIL import Image, ImageDraw

    size = max(images.shape[-1] for _, images in rows if len(images)) if rows else 32
    columns = max(len(images) for _, images in rows)
    grid = Image.new("RGB", (LABEL_WIDTH + columns * (size + 2), len(rows) * (size + 2)), "white")
    draw = ImageDraw.Draw(grid)
    for row, (label, images) in enumerate(rows):
        draw.text((2, row * (size + 2) + size // 2 - 5), label, fill="black")
        pixels = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")
        for column, array in enumerate(pixels):
            grid.paste(Image.fromarray(array), (LABEL_WIDTH + column * (size + 2), row * (size + 2)))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out_png)
    return out_png


def _denoiser_samples(folder: Path, per_class: int) -> list[tuple[str, torch.Tensor]]:
    from bench.zoo.train_ddpm import load_ddpm_pipeline, sample

    return _by_predicted_class(sample(load_ddpm_pipeline(folder), 20 * per_class, seed=0), per_class)


def _by_predicted_class(images: torch.Tensor, per_class: int) -> list[tuple[str, torch.Tensor]]:
    from bench.clip_model import load_image_text_model, zero_shot_predict

    predicted = zero_shot_predict(load_image_text_model("clip-proxy"), images, FASHION_MNIST_CLASSES)
    return [(name, images[predicted == c][:per_class]) for c, name in enumerate(FASHION_MNIST_CLASSES)]


def show(name: str, out_png: str | Path, per_class: int = 8) -> Path:
    from bench import zoo

    entry = zoo.manifest().get(name)
    if entry is None and (Path(name).expanduser() / "unet" / "config.json").is_file():
        return save_labelled_grid(_denoiser_samples(Path(name).expanduser(), per_class), out_png)
    if entry is None:
        raise BenchError(f"{name!r} is neither in the model zoo (see `bench zoo ls`) nor a denoiser folder with unet/ "
                         "and scheduler/ (as `bench train-denoiser` writes)")
    kind = entry.get("class", "")
    if name in ("ldm-t2i", "ldm-t2i-v2"):
        from bench.t2i import generate, load_t2i_pipeline

        pipe = load_t2i_pipeline(name)
        rows = [(label, generate(pipe, [caption(c)] * per_class, seed=c)) for c, label in enumerate(FASHION_MNIST_CLASSES)]
    elif kind.startswith("diffusers.UNet2DModel"):
        rows = _denoiser_samples(zoo.model_dir(name), per_class)
    elif kind == "diffusers.AutoencoderKL":
        from defenses.vae import AutoencoderKLDefense

        defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": name}))
        data = load_fashion_mnist("test", 500)
        rows = []
        for c, label in enumerate(FASHION_MNIST_CLASSES):
            images = data.images[data.labels == c][: per_class // 2]
            with torch.no_grad():
                pairs = torch.stack([images, defense.reconstruct(images)], 1).flatten(0, 1)
            rows.append((f"{label} (x, D(E(x)))", pairs))
    elif name == "clip-proxy":
        rows = _by_predicted_class(load_fashion_mnist("test", 20 * per_class).images, per_class)
    else:
        raise BenchError(f"no sample grid defined for {name!r}")
    return save_labelled_grid(rows, out_png)
