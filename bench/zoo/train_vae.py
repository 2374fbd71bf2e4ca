"""Train the zoo's ``vae-kl``: a diffusers AutoencoderKL (32x32 RGB -> 4x8x8 latents) on Fashion-MNIST.

The objective is Stable Diffusion's first-stage recipe without the GAN term: pixel MSE (in [-1, 1])
plus LPIPS plus a small KL weight, on posterior samples. LPIPS uses the AlexNet backbone rather than
SD's VGG16 to fit a 2-core CPU budget.

The config's later fields are knobs for the fragility study (``docs/zoo.md``, "Fragility study"):
``resolution`` (Fashion-MNIST is resized, bilinear and antialiased, to it; with one more level in
``block_out_channels`` a 64x64 input keeps 4x8x8 latents), ``layers_per_block`` and
``colour_augment`` (the probability that an image is given a random linear colour map, background
to one random RGB colour and full intensity to another: the data is grey). Their defaults are the
shipped ``vae-kl`` recipe's. ``regulariser`` and the ``ve_*`` fields swap the KL term for the VE loss
(``bench.zoo.latent_regularisers``, issue 13's tokenizers), and ``scale_on`` says which latents the
``scaling_factor`` is measured on: the posterior ``mean`` (``vae-kl``) or posterior ``sample``s, which
is what a diffusion model trained on sampled latents sees; they differ once the variance is not
collapsed. The loop is ``bench.training.TrainingLoop``; ``train_vae(...,
checkpoint=FOLDER)`` saves the model, optimiser, schedule and batch generator there every
``checkpoint_every`` steps (safetensors + JSON) and resumes from it when it exists.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.data import load_fashion_mnist
from bench.metrics.lpips import lpips_distance
from bench.training import STATE, TrainingLoop
from bench.zoo.latent_regularisers import check_config, regulariser_terms
from bench.zoo.training import publish_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VAETrainConfig:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4
    lpips_weight: float = 1.0
    kl_weight: float = 1e-6
    lpips_net: str = "alex"
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 4
    resolution: int = 32
    layers_per_block: int = 1
    colour_augment: float = 0.0
    regulariser: str = "kl"
    ve_lambda_variance: float = 0.1
    ve_lambda_magnitude: float = 1e-6
    ve_tau: float = 1.0
    ve_delta: float = 1e-4
    ve_reduction: str = "sum"
    ve_clamp: bool = True
    scale_on: str = "mean"


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] resized (bilinear, antialiased) to ``resolution`` square."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="bilinear",
                                           antialias=True, align_corners=False).clamp(0, 1)


def colour_augment(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """With ``probability`` per image, map grey level g to (1 - g) * background + g * foreground for two
    uniform random RGB colours; the other images stay grey."""
    if probability <= 0:
        return images
    n = len(images)
    background, foreground = torch.rand(2, n, 3, 1, 1, generator=generator)
    chosen = (torch.rand(n, 1, 1, 1, generator=generator) < probability).float()
    grey = images.mean(1, keepdim=True)
    coloured = (1 - grey) * background + grey * foreground
    return chosen * coloured + (1 - chosen) * images


def build_vae(config: VAETrainConfig):
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels,
                         block_out_channels=config.block_out_channels,
                         layers_per_block=config.layers_per_block, latent_channels=config.latent_channels,
                         norm_num_groups=32, sample_size=config.resolution)


def train_vae(output: Path, config: VAETrainConfig = VAETrainConfig(), quiet: bool = False,
              checkpoint: Path | None = None, checkpoint_every: int = 50) -> dict:
    check_config(config)
    if config.scale_on not in ("mean", "sample"):
        raise ValueError(f"scale_on must be 'mean' or 'sample', not {config.scale_on!r}")
    torch.manual_seed(config.seed)
    train = load_fashion_mnist("train").images
    vae = build_vae(config)
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.learning_rate)
    ratio = config.final_learning_rate / config.learning_rate
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * step / config.steps)))

    def step(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        batch = colour_augment(resize(train[indices], config.resolution), config.colour_augment, generator)
        posterior = vae.encode(batch * 2 - 1).latent_dist
        z = posterior.sample(generator=generator)
        reconstruction = vae.decode(z).sample
        mse = torch.mean((reconstruction - (batch * 2 - 1)) ** 2)
        perceptual = lpips_distance((reconstruction + 1) / 2, batch, config.lpips_net).mean()
        regulariser = regulariser_terms(posterior, z, config)
        return {"loss": mse + config.lpips_weight * perceptual + regulariser.pop("reg"),
                "mse": mse, "lpips": perceptual, "variance": posterior.var.mean().detach(), **regulariser}

    progress = tqdm(total=config.steps, desc=f"train {output.name}", disable=quiet)

    def advance(completed: int, means: list[float], seconds: float) -> None:
        progress.update(completed - progress.n)
        progress.set_postfix(mse=f"{means[1]:.4f}", lpips=f"{means[2]:.3f}")

    if checkpoint is not None and (Path(checkpoint) / STATE).exists():
        log.info("resuming %s", checkpoint)
    result = TrainingLoop(vae, optimizer, config.steps, config.seed, len(train), config.batch_size, schedule=schedule,
                          clip=1.0, log_every=1, digits=8, checkpoint=None if checkpoint is None else Path(checkpoint),
                          checkpoint_every=checkpoint_every, on_log=advance).run(step)
    progress.close()
    losses = [row[1] for row in result.curve]

    vae.eval()
    with torch.no_grad():
        sample = resize(load_fashion_mnist("val", 2000).images, config.resolution)
        generator = torch.Generator().manual_seed(config.seed)
        posteriors = [vae.encode(chunk * 2 - 1).latent_dist for chunk in sample.split(250)]
        means = torch.cat([posterior.mean for posterior in posteriors])
        samples = torch.cat([posterior.sample(generator=generator) for posterior in posteriors])
        variance = torch.cat([posterior.var for posterior in posteriors])
    latents = samples if config.scale_on == "sample" else means
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    publish_folder(output, lambda folder: vae.save_pretrained(folder, safe_serialization=True))
    info = asdict(config)
    info["latent_std_on_val"] = float(latents.std())
    info["latent_variance_on_val"] = {"mean": float(variance.mean()), "median": float(variance.median()),
                                      "mean_std": float(means.std()), "sample_std": float(samples.std())}
    if config.steps >= 50:
        info["loss_per_50_steps"] = [round(sum(losses[i:i + 50]) / len(losses[i:i + 50]), 4)
                                     for i in range(0, len(losses), 50)]
        variances = [row[4] for row in result.curve]
        info["variance_per_50_steps"] = [float(f"{sum(variances[i:i + 50]) / len(variances[i:i + 50]):.3g}")
                                         for i in range(0, len(variances), 50)]
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return info
