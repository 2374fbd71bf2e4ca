"""Quality bars of zoo models, measured by ``bench zoo eval NAME [--json]``."""

from __future__ import annotations

from typing import Any

import torch

from bench.data import load_fashion_mnist
from bench.errors import BenchError
from bench.stats import mean_interval, set_interval


def evaluate_autoencoder(name: str, n: int = 500, batch_size: int = 50) -> dict[str, Any]:
    """Test-split reconstruction quality: PSNR, SSIM, LPIPS (alex) with intervals, rFID and KID."""
    from bench.metrics.fid import FID
    from bench.metrics.kid import KID
    from bench.metrics.lpips import LPIPS
    from bench.metrics.psnr import PSNR
    from bench.metrics.ssim import SSIM
    from defenses.vae import AutoencoderKLDefense

    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": name}))
    images = load_fashion_mnist("test", n).images
    with torch.no_grad():
        reconstructions = torch.cat([defense.reconstruct(chunk) for chunk in images.split(batch_size)])
    result: dict[str, Any] = {"model": name, "split": "test", "n": n}
    for metric in (PSNR(), SSIM(), LPIPS()):
        result[metric.name] = mean_interval(metric.per_sample(reconstructions, images).numpy()).as_dict()
    fid, kid = FID(), KID()
    features, reference = fid.features(reconstructions), fid.features(images)
    for metric in (fid, kid):
        interval = set_interval(metric.statistic, features.numpy(), reference.numpy())
        result[f"r{metric.name}"] = {**interval.as_dict(), "value": metric.from_features(features, reference)}
    return result


def evaluate_text_to_image(name: str, n: int = 200, batch_size: int = 50) -> dict[str, Any]:
    """Recognisability without an image-text model: each generation for "a photo of a {class}" (n/10
    per class, default DDIM steps and guidance, seed 0) is assigned the class whose mean validation
    image is nearest in pixel space. The same classifier on n real test images gives its ceiling."""
    from bench.data import FASHION_MNIST_CLASSES, caption
    from bench.t2i import DEFAULT_GUIDANCE, DEFAULT_STEPS, generate, load_t2i_pipeline

    classes = len(FASHION_MNIST_CLASSES)
    per_class = max(1, n // classes)
    validation = load_fashion_mnist("val")
    means = torch.stack([validation.images[validation.labels == c].mean(0) for c in range(classes)])

    def nearest(images: torch.Tensor) -> torch.Tensor:
        return torch.cdist(images.flatten(1), means.flatten(1)).argmin(1)

    pipe = load_t2i_pipeline(name)
    labels = torch.arange(classes).repeat_interleave(per_class)
    generated = torch.cat([generate(pipe, [caption(int(c)) for c in chunk], seed=index)
                           for index, chunk in enumerate(labels.split(batch_size))])
    real = load_fashion_mnist("test", len(labels))
    generated_means = torch.stack([generated[labels == c].mean(0) for c in range(classes)])
    return {"model": name, "per_class": per_class, "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE,
            "nearest_class_mean_accuracy": mean_interval((nearest(generated) == labels).float().numpy()).as_dict(),
            "real_test_accuracy": mean_interval((nearest(real.images) == real.labels).float().numpy()).as_dict(),
            "class_means_matched": int((nearest(generated_means) == torch.arange(classes)).sum()),
            "class_mean_rmse": float((generated_means - means).pow(2).mean().sqrt())}


EVALUATORS = {"vae-kl": evaluate_autoencoder, "ldm-t2i": evaluate_text_to_image}


def evaluate(name: str, n: int) -> dict[str, Any]:
    if name not in EVALUATORS:
        raise BenchError(f"no quality bar defined for {name!r}; evaluable: {', '.join(EVALUATORS)}")
    return EVALUATORS[name](name, n)
