"""Train the zoo's ``ddpm-pixel``: a pixel-space DDPM (Ho et al. 2020, "Denoising Diffusion
Probabilistic Models", arXiv:2006.11239) on Fashion-MNIST, 32x32 RGB, as a diffusers
``UNet2DModel`` + ``DDPMScheduler``: the undefended baseline that the Robustadv work defends.

The recipe is DDPM's CIFAR-10 one at toy scale: epsilon prediction over 1,000 steps with linear betas
1e-4 to 0.02, images in [-1, 1], Adam with a warm-up, gradient clipping at 1 and an EMA of the weights.
What is saved is the EMA *bias-corrected* for its start: an EMA started at the random initial
weights still holds decay^steps of them (9% after 4,774 steps at decay 0.9995, enough to ruin the
samples), so the saved weights are (EMA - decay^steps * initial) / (1 - decay^steps), the
exponentially weighted average of the trained weights alone, as Adam corrects its moments.
Samples are drawn with DDIM (``sample``), deterministic for a seed. The scheduler clips its x0
estimate to [-1, 1], and each step re-derives epsilon from the clipped x0
(``use_clipped_model_output``). Without that, the step mixes a clipped x0 with the unclipped epsilon,
and early steps (alpha_bar near 0, where x0 = (x - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)
magnifies any epsilon error about 150-fold) turn the samples into speckle: with leg 2's weights
that sampler gave FID 252, this one gives the figure in docs/zoo.md. Unclipped DDIM diverges outright.

The ``ddpm`` recipe is the same loop redesigned for one CPU thread (issue 14): a grey model
(``channels`` 1: Fashion-MNIST is grey, and three output channels had to learn to agree, which gave
``ddpm-pixel`` its colour casts) at the data's own 28x28 (``resolution``: the suite's 2-pixel black
border is cropped off on the way in and put back on the way out), with a smaller UNet. Its samples
and denoised images come back as the suite's 32x32 RGB (``to_model_space`` / ``to_suite_images``).
``regulariser`` adds Robustadv's equivariance term (``bench.zoo.robustadv``), ``corruption`` trains
on a corrupted copy of the data (``bench.corrupted_data``).

``init_from`` continues an earlier run from the UNet in that zoo folder; the optimiser (and its
warm-up) and the EMA start afresh there, so the saved weights average this leg's iterates only.
The loop is ``bench.training.TrainingLoop``; ``checkpoint_every`` saves a checkpoint that a killed
training of the same config resumes from (``bench.training``).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from bench.corrupted_data import CorruptionConfig, corrupt
from bench.data import load_fashion_mnist
from bench.zoo.robustadv import RegulariserConfig, check, objective
from bench.zoo.training import checkpoint_folder, publish_folder

Perturb = Callable[[torch.Tensor, int, int, object], torch.Tensor]
"""A sampling attack's hook: (x_t, position, steps, ``bench.base.SamplerStep``) -> the x_t to step from."""

SCHEDULER_KWARGS = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}
DEFAULT_SAMPLING_STEPS = 100
NATIVE_SIDE, SUITE_SIDE = 28, 32
"""Fashion-MNIST's side, and the suite's (``bench.data`` pads it by 2 black pixels)."""
SAMPLER = f"DDIM eta 0, {DEFAULT_SAMPLING_STEPS} steps, x0 clipped to [-1, 1] and epsilon re-derived from it"


@dataclass(frozen=True)
class DDPMTrainConfig:
    seed: int = 0
    steps: int = 12000
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup_steps: int = 500
    ema_decay: float = 0.9995
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 2
    log_every: int = 500
    max_seconds: float = 0.0
    init_from: str = ""
    checkpoint_every: int = 0
    channels: int = 3
    resolution: int = 32
    attention_level: int = 1
    norm_groups: int = 32
    regulariser: RegulariserConfig = RegulariserConfig()
    corruption: CorruptionConfig = CorruptionConfig()


DDPM_CPU = DDPMTrainConfig(steps=14000, batch_size=64, learning_rate=5e-4, ema_decay=0.999,
                           block_out_channels=(16, 32, 64), layers_per_block=1, channels=1, resolution=28,
                           attention_level=2, norm_groups=8, max_seconds=4200, checkpoint_every=500)
"""The ``ddpm`` recipe: 0.69 M parameters, 0.28-0.44 s a step at batch 64 on one thread; 12,136 steps
in its 70 minutes on the shared 2-core machine (docs/zoo.md)."""

ROBUSTADV = RegulariserConfig(kind="equivariant", perturbation="adversarial")
SAME_STEPS = replace(DDPM_CPU, steps=12136, max_seconds=0)
"""The track's other trainings: ``ddpm``'s config and seed, and the 12,136 steps its time limit let it
take (the loop is seeded and deterministic, so this config should rebuild ``ddpm``'s weights at one CPU
thread; not checked)."""
VARIANTS = {
    "ddpm-c90-s0.05": replace(SAME_STEPS, corruption=CorruptionConfig(90, 0.05)),
    "robustadv": replace(SAME_STEPS, regulariser=ROBUSTADV),
    "robustadv-c90-s0.05": replace(SAME_STEPS, regulariser=ROBUSTADV, corruption=CorruptionConfig(90, 0.05)),
    "robustadv-inv-c90-s0.05": replace(SAME_STEPS, regulariser=replace(ROBUSTADV, kind="invariant"),
                                       corruption=CorruptionConfig(90, 0.05)),
    "robustadv-ran-c90-s0.05": replace(SAME_STEPS, regulariser=replace(ROBUSTADV, perturbation="random"),
                                       corruption=CorruptionConfig(90, 0.05)),
    "ddpm-c90-s0.1": replace(SAME_STEPS, corruption=CorruptionConfig(90, 0.1)),
    "robustadv-c90-s0.1": replace(SAME_STEPS, regulariser=ROBUSTADV, corruption=CorruptionConfig(90, 0.1)),
}
"""Corruption 90% at sigma 0.05 / 0.1 in [0, 1] units: the paper's 0.1 / 0.2 read in its [-1, 1] range
(``bench.corrupted_data``)."""


def build_unet(config: DDPMTrainConfig):
    from diffusers import UNet2DModel

    levels = len(config.block_out_channels)
    down = tuple("AttnDownBlock2D" if i == config.attention_level else "DownBlock2D" for i in range(levels))
    up = tuple(block.replace("Down", "Up") for block in reversed(down))
    return UNet2DModel(sample_size=config.resolution, in_channels=config.channels, out_channels=config.channels,
                       layers_per_block=config.layers_per_block, block_out_channels=config.block_out_channels,
                       down_block_types=down, up_block_types=up, norm_num_groups=config.norm_groups)


def to_model_space(images: torch.Tensor, unet) -> torch.Tensor:
    """Suite images (N, 3, 32, 32) in [0, 1] -> the model's input in [-1, 1]: centre-cropped to its size,
    channels averaged for a grey model."""
    size = unet.config.sample_size
    border = (images.shape[-1] - size) // 2
    x = images[..., border:border + size, border:border + size]
    return (x.mean(1, keepdim=True) if unet.config.in_channels == 1 else x) * 2 - 1


def to_suite_images(x: torch.Tensor, like: torch.Tensor | None = None, side: int = SUITE_SIDE) -> torch.Tensor:
    """A model's output in [0, 1] -> (N, 3, side, side): grey replicated to RGB, and the border around it
    taken from ``like`` (the images it came from) or black."""
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if x.shape[-1] == side:
        return x
    out = like.clone().to(x) if like is not None else x.new_zeros((len(x), 3, side, side))
    border = (side - x.shape[-1]) // 2
    out[..., border:border + x.shape[-1], border:border + x.shape[-1]] = x
    return out


def train_ddpm_pixel(output: Path, config: DDPMTrainConfig = DDPMTrainConfig(), quiet: bool = False,
                     device: str = "cpu") -> dict:
    from diffusers import DDIMScheduler, DDPMScheduler

    from bench.training import EMA, TrainingLoop

    torch.manual_seed(config.seed)
    start = time.time()
    unet = build_unet(config)
    corrupted = corrupt(load_fashion_mnist("train").images, config.corruption)
    train = to_model_space(corrupted.images, unet).to(device)
    if config.init_from:
        unet.load_state_dict(load_unet(Path(config.init_from)).state_dict())
    unet.to(device)
    ema = EMA(unet, config.ema_decay, debias=True)
    alphas = DDPMScheduler(**SCHEDULER_KWARGS).alphas_cumprod.to(device)
    check(config.regulariser, alphas)
    optimizer = torch.optim.Adam(unet.parameters(), lr=config.learning_rate)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / config.warmup_steps))

    def step(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return objective(unet, alphas, train[indices.to(device)], generator, config.regulariser)

    def progress(completed: int, means: list[float], seconds: float) -> None:
        if not quiet:
            terms = " ".join(f"{value:.4f}" for value in means)
            print(f"ddpm step {completed}/{config.steps} loss {terms} {seconds:.0f}s", flush=True)

    result = TrainingLoop(unet, optimizer, config.steps, config.seed, len(train), config.batch_size, schedule=warmup,
                          clip=1.0, ema=ema, log_every=config.log_every, max_seconds=config.max_seconds,
                          started=start, on_log=progress, checkpoint_every=config.checkpoint_every,
                          checkpoint=checkpoint_folder(output, config) if config.checkpoint_every else None).run(step)
    average = ema.result(result.steps_completed).to("cpu")

    def write(folder: Path) -> None:
        average.save_pretrained(folder / "unet", safe_serialization=True)
        DDIMScheduler(**SCHEDULER_KWARGS, clip_sample=True).save_pretrained(folder / "scheduler")

    publish_folder(output, write)
    if config.checkpoint_every:
        shutil.rmtree(checkpoint_folder(output, config), ignore_errors=True)
    info = asdict(config)
    info.update(unet_parameters=sum(p.numel() for p in unet.parameters()), scheduler=SCHEDULER_KWARGS,
                prediction_type="epsilon", saved_weights="EMA, bias-corrected for its initialisation",
                loss_curve=result.curve, curve_columns=["step", *(["loss", "ddpm", "regulariser"]
                                                                 if config.regulariser.kind != "none" else ["loss"])],
                training_data=corrupted.describe(), device=str(device), steps_completed=result.steps_completed,
                train_seconds=round(result.seconds))  # the loop's time over every leg, resumed ones included
    return info


def noise_prediction_loss(unet, alphas_cumprod: torch.Tensor, clean: torch.Tensor, generator: torch.Generator,
                          reduction: str = "mean") -> torch.Tensor:
    """DDPM's loss ||eps - eps_theta(sqrt(a) x0 + sqrt(1 - a) eps, t)||^2 for clean images in [-1, 1], the
    noise and then the timesteps drawn from ``generator``: the mean (training), or per image (``"none"``)."""
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, len(alphas_cumprod), (len(clean),), generator=generator).to(clean.device)
    a = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
    error = torch.nn.functional.mse_loss(unet(noisy, timesteps).sample, noise, reduction=reduction)
    return error if reduction == "mean" else error.flatten(1).mean(1)


def load_unet(folder: Path):
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(folder / "unet", use_safetensors=True)


def load_ddpm_pipeline(folder: Path, device: str | torch.device = "cpu"):
    """A diffusers ``DDIMPipeline`` over the saved UNet and scheduler, frozen."""
    from diffusers import DDIMPipeline, DDIMScheduler

    unet = load_unet(folder).eval().requires_grad_(False)
    pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(torch.device(device))


def sample(pipe, n: int, steps: int = DEFAULT_SAMPLING_STEPS, seed: int = 0, batch_size: int = 500,
           perturb: Perturb | None = None) -> torch.Tensor:
    """(n, 3, 32, 32) DDIM samples (eta 0) in [0, 1], on the 8-bit grid, deterministic for a seed; a grey
    model's replicated to RGB, a 28x28 model's given the suite's black border back. ``perturb`` (a
    ``SamplingAttack.hook``) may change each step's input x_t (``ddim_loop``)."""
    chunks = []
    for index in range(math.ceil(n / batch_size)):
        size = min(batch_size, n - index * batch_size)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        images = ddim_loop(pipe.unet, pipe.scheduler, size, generator, steps, perturb)
        chunks.append(to_suite_images(images, side=SUITE_SIDE if images.shape[-1] == NATIVE_SIDE else images.shape[-1]))
    return (torch.cat(chunks).clamp(0, 1) * 255).round() / 255


def ddim_loop(unet, scheduler, size: int, generator: torch.Generator, steps: int,
              perturb: Perturb | None = None) -> torch.Tensor:
    """diffusers' ``DDIMPipeline`` loop (eta 0, clipped x0 with epsilon re-derived from it; the same
    draws, so the same images), with ``perturb`` called on each step's input x_t. The attack sees x_t
    in the suite's [0, 1] pixel units (half the model's [-1, 1] units: x_t / 2, with the noise it carries
    of std sqrt(1 - alpha_bar_t) / 2), so a sampling attack's ``scale`` on a pixel model is a pixel
    budget, as everywhere else. Returns (size, C, side, side) in [0, 1]."""
    from diffusers.utils.torch_utils import randn_tensor

    from bench.base import SamplerStep

    x = randn_tensor((size, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                     generator=generator, device=unet.device, dtype=unet.dtype)
    scheduler.set_timesteps(steps)
    for position, t in enumerate(scheduler.timesteps):
        if perturb is not None:
            noise_std = float((1 - scheduler.alphas_cumprod[t]).sqrt()) / 2
            step = SamplerStep(lambda half, t=t: unet(half * 2, t).sample, noise_std)
            x = perturb(x / 2, position, len(scheduler.timesteps), step) * 2
        with torch.no_grad():
            x = scheduler.step(unet(x, t).sample, t, x, eta=0.0, use_clipped_model_output=True,
                               generator=generator).prev_sample
    return (x / 2 + 0.5).clamp(0, 1).float().cpu()
