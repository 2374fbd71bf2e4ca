"""Quality bars of zoo models, measured by ``bench zoo eval NAME [--n N] [--json]``.

- autoencoders (``vae-kl``, ``srl-vae*``, issue 13's tokenizers): test-split reconstruction PSNR,
  SSIM, LPIPS, rFID, KID (decoding the posterior mean), and the latent variance sigma^2 (the mean
  posterior variance over latent elements, per image);
- ``clip-proxy``: zero-shot accuracy on the test split (bar: 85%);
- ``ldm-t2i``: the fraction of generations for "a photo of a {class}" that ``clip-proxy`` assigns to
  that class (bar: 80%), and generation FID / KID against test images;
- ``ldm-t2i-v2``: the same accuracy for captions drawn from its training templates and names (bar:
  90%), and separately for held-out captions (bar: 80%), split into held-out templates, held-out
  names, and both; FID / KID of the training-caption generations;
- ``ddpm-pixel``, ``ddpm``: sample FID / KID against test images, and the class mix of the samples by
  ``clip-proxy`` (a mode-coverage check).
"""

from __future__ import annotations

from typing import Any

import torch

from bench.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from bench.errors import BenchError
from bench.stats import mean_interval, set_interval
from bench.zoo.train_ddpm import VARIANTS


def _fid_kid(images: torch.Tensor, reference: torch.Tensor, prefix: str = "") -> dict[str, Any]:
    from bench.metrics.fid import FID
    from bench.metrics.kid import KID

    fid, kid = FID(), KID()
    features, reference_features = fid.features(images), fid.features(reference)
    result = {}
    for metric in (fid, kid):
        interval = set_interval(metric.statistic, features.numpy(), reference_features.numpy())
        result[f"{prefix}{metric.name}"] = {**interval.as_dict(),
                                            "value": metric.from_features(features, reference_features)}
    return result


@torch.no_grad()
def _latent_variance(name: str, images: torch.Tensor, batch_size: int = 250) -> dict[str, Any]:
    """Each image's mean posterior variance over its latent elements, raw and in the diffusion model's
    units (times ``scaling_factor`` squared: relative to the spread of the latents it denoises)."""
    from defenses.vae import load_autoencoder

    vae, _ = load_autoencoder(name)
    variance = torch.cat([vae.eval().encode(chunk * 2 - 1).latent_dist.var.flatten(1).mean(1)
                          for chunk in images.split(batch_size)])
    scaled = variance * float(vae.config.scaling_factor) ** 2
    return {"latent_variance": mean_interval(variance.numpy()).as_dict(),
            "latent_variance_scaled": mean_interval(scaled.numpy()).as_dict()}


def evaluate_autoencoder(name: str, n: int = 500, batch_size: int = 50) -> dict[str, Any]:
    """Test-split reconstruction quality: PSNR, SSIM, LPIPS (alex) with intervals, rFID and KID."""
    from bench.metrics.lpips import LPIPS
    from bench.metrics.psnr import PSNR
    from bench.metrics.ssim import SSIM
    from defenses.vae import AutoencoderKLDefense

    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": name}))
    images = load_fashion_mnist("test", n).images
    with torch.no_grad():
        reconstructions = torch.cat([defense.reconstruct(chunk) for chunk in images.split(batch_size)])
    result: dict[str, Any] = {"model": name, "split": "test", "n": n, **_latent_variance(name, images)}
    for metric in (PSNR(), SSIM(), LPIPS()):
        result[metric.name] = mean_interval(metric.per_sample(reconstructions, images).numpy()).as_dict()
    return {**result, **_fid_kid(reconstructions, images, prefix="r")}


def _classified(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    from bench.clip_model import load_image_text_model, zero_shot_correct

    return zero_shot_correct(load_image_text_model("clip-proxy"), images, labels, FASHION_MNIST_CLASSES)


def evaluate_clip_proxy(name: str = "clip-proxy", n: int = 2000, batch_size: int = 250) -> dict[str, Any]:
    """Zero-shot accuracy on the first ``n`` test images with captions "a photo of a {class}"."""
    from bench.clip_model import zero_shot_correct
    from bench.zoo.clip_proxy import load_clip_proxy

    data = load_fashion_mnist("test", n)
    correct = zero_shot_correct(load_clip_proxy(name), data.images, data.labels, FASHION_MNIST_CLASSES, batch_size)
    return {"model": name, "split": "test", "n": n,
            "zero_shot_accuracy": mean_interval(correct.numpy()).as_dict(),
            "per_class": {c: round(float(correct[data.labels == i].mean()), 4)
                          for i, c in enumerate(FASHION_MNIST_CLASSES)}}


def evaluate_text_to_image(name: str, n: int = 200, batch_size: int = 50) -> dict[str, Any]:
    """n/10 generations per class caption (default DDIM steps and guidance, seed = chunk index),
    classified by clip-proxy; FID / KID of the generations against n test images. The same
    classifier on the test images gives its ceiling."""
    from bench.data import caption
    from bench.t2i import DEFAULT_GUIDANCE, DEFAULT_STEPS, generate, load_t2i_pipeline

    per_class = max(1, n // len(FASHION_MNIST_CLASSES))
    labels = torch.arange(len(FASHION_MNIST_CLASSES)).repeat_interleave(per_class)
    pipe = load_t2i_pipeline(name)
    generated = torch.cat([generate(pipe, [caption(int(c)) for c in chunk], seed=index)
                           for index, chunk in enumerate(labels.split(batch_size))])
    generated = (generated * 255).round() / 255
    real = load_fashion_mnist("test", len(labels))
    correct = _classified(generated, labels)
    return {"model": name, "generations": len(labels), "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE,
            "clip_proxy_accuracy": mean_interval(correct.numpy()).as_dict(),
            "clip_proxy_accuracy_per_class": {FASHION_MNIST_CLASSES[c]: float(correct[labels == c].mean())
                                              for c in range(len(FASHION_MNIST_CLASSES))},
            "clip_proxy_accuracy_on_test_images": mean_interval(_classified(real.images, real.labels).numpy()).as_dict(),
            **_fid_kid(generated, real.images)}


def evaluate_unconditional(name: str, n: int = 500, batch_size: int = 250) -> dict[str, Any]:
    """n DDIM samples (seed 0) against n test images: FID, KID, and the class mix by clip-proxy."""
    from bench.clip_model import load_image_text_model, zero_shot_predict
    from bench.zoo import model_dir
    from bench.zoo.train_ddpm import SAMPLER, load_ddpm_pipeline, sample

    samples = sample(load_ddpm_pipeline(model_dir(name)), n, seed=0, batch_size=batch_size)
    real = load_fashion_mnist("test", n)
    predicted = zero_shot_predict(load_image_text_model("clip-proxy"), samples, FASHION_MNIST_CLASSES)
    mix = torch.bincount(predicted, minlength=len(FASHION_MNIST_CLASSES)).float() / n
    return {"model": name, "samples": n, "sampler": SAMPLER, "seed": 0,
            **_fid_kid(samples, real.images),
            "class_mix_by_clip_proxy": {c: round(float(f), 4) for c, f in zip(FASHION_MNIST_CLASSES, mix, strict=True)}}


def _held_out_captions(labels: torch.Tensor) -> tuple[list[str], list[str]]:
    """Generation i's caption from held-out split i mod 3 (templates, names, both), seed 0."""
    from bench.zoo.captions import draw_captions

    splits = ("held_out_templates", "held_out_names", "held_out_both")
    drawn = {split: draw_captions(labels, split, seed=0) for split in splits}
    which = [splits[i % len(splits)] for i in range(len(labels))]
    return [drawn[split][i] for i, split in enumerate(which)], which


def evaluate_caption_splits(name: str, n: int = 200, batch_size: int = 50) -> dict[str, Any]:
    """n/10 generations per class with captions drawn (seed 0) from the training templates and names,
    and as many from the held-out ones (a third each: held-out templates with training names,
    held-out names with training templates, both held out); each classified by clip-proxy. FID / KID
    of the training-caption generations against n test images."""
    import numpy as np

    from bench.t2i import DEFAULT_GUIDANCE, DEFAULT_STEPS, generate, load_t2i_pipeline
    from bench.zoo.captions import draw_captions

    per_class = max(1, n // len(FASHION_MNIST_CLASSES))
    labels = torch.arange(len(FASHION_MNIST_CLASSES)).repeat_interleave(per_class)
    pipe = load_t2i_pipeline(name)
    result: dict[str, Any] = {"model": name, "generations_per_split": len(labels), "steps": DEFAULT_STEPS,
                              "guidance": DEFAULT_GUIDANCE, "caption_seed": 0}
    held_out, which = _held_out_captions(labels)
    for split, captions in (("train", draw_captions(labels, "train", seed=0)), ("held_out", held_out)):
        generated = torch.cat([generate(pipe, captions[start:start + batch_size], seed=index) for index, start
                               in enumerate(range(0, len(captions), batch_size))])
        generated = (generated * 255).round() / 255
        correct = _classified(generated, labels).numpy()
        result[f"clip_proxy_accuracy_{split}"] = mean_interval(correct).as_dict()
        result[f"clip_proxy_accuracy_{split}_per_class"] = {
            c: float(correct[(labels == i).numpy()].mean()) for i, c in enumerate(FASHION_MNIST_CLASSES)}
        if split == "held_out":
            for part in sorted(set(which)):
                result[f"clip_proxy_accuracy_{part}"] = mean_interval(correct[np.array(which) == part]).as_dict()
        else:
            real = load_fashion_mnist("test", len(labels))
            result["clip_proxy_accuracy_on_test_images"] = mean_interval(
                _classified(real.images, real.labels).numpy()).as_dict()
            result.update(_fid_kid(generated, real.images))
    return result


EVALUATORS = {"vae-kl": evaluate_autoencoder, "srl-vae": evaluate_autoencoder, "srl-vae-a0.1": evaluate_autoencoder,
              "srl-vae-a0.001": evaluate_autoencoder, "clip-proxy": evaluate_clip_proxy,
              "ldm-t2i": evaluate_text_to_image, "ldm-t2i-v2": evaluate_caption_splits,
              "ddpm-pixel": evaluate_unconditional,
              **{tokenizer: evaluate_autoencoder for tokenizer in ("vae-kl-b1e-2", "vae-kl-b1", "vae-kl-b8", "ve-vae")},
              **{f"ldm-{tokenizer}": evaluate_text_to_image
                 for tokenizer in ("vae-kl-b1e-2", "vae-kl-b1", "vae-kl-b8", "ve-vae")}}

EVALUATORS.update({name: evaluate_unconditional for name in ("ddpm", *VARIANTS)})


def evaluate(name: str, n: int | None) -> dict[str, Any]:
    if name not in EVALUATORS:
        raise BenchError(f"no quality bar defined for {name!r}; evaluable: {', '.join(EVALUATORS)}")
    return EVALUATORS[name](name) if n is None else EVALUATORS[name](name, n)
