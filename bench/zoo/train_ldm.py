"""Train the zoo's ``ldm-t2i``: a diffusers UNet2DConditionModel denoising ``vae-kl`` latents
(4x8x8, times the VAE's ``scaling_factor``), cross-attending to the frozen MiniLM's token states.

Stable Diffusion's recipe at toy scale: DDPM noise prediction over 1000 steps with SD's
``scaled_linear`` betas (0.00085 to 0.012), 10% of captions replaced by "" so classifier-free guidance
works, and an EMA of the weights, which is what gets saved. The VAE and the text encoder stay frozen;
since the captions are only "a photo of a {class}" and "", their 11 token-state tensors and the
train-split latents are computed once (of the first ``train_images`` of the split's seeded order, to
fit a 2-core CPU budget), so a step costs only the UNet.

``ldm-t2i-v2`` turns on three fields whose defaults keep the ``ldm-t2i`` recipe bit for bit:
``captions="varied"`` draws each example's caption (every step, from the training generator) among
``bench.zoo.captions``' training captions of its class, whose token states are again computed once;
``ema_warmup`` applies diffusers' ``EMAModel`` decay warm-up ``min(decay, (1 + t) / (10 + t))``, so
the saved EMA no longer holds a share of the random initialisation (``decay ** steps``, 8% for
``ldm-t2i``); ``checkpoint_every`` saves a resumable checkpoint (``bench.training``) that a
restarted training of the same config continues from. The loop is ``bench.training.TrainingLoop``.

Issue 13's ``ldm-<tokenizer>`` models keep the ``ldm-t2i`` recipe and change only the data: the
``autoencoder`` whose latents are denoised, and ``latents="sample"``, posterior samples (one per image,
seeded) rather than means, as the VE-loss paper's baseline pipeline extracts them; both are scaled by
that autoencoder's ``scaling_factor``, measured on its own sampled latents.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.errors import BenchError
from bench.training import EMA, STATE, TrainingLoop
from bench.zoo.training import checkpoint_folder, publish_folder

SCHEDULER_KWARGS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                    "beta_schedule": "scaled_linear"}
DDIM_KWARGS = {**SCHEDULER_KWARGS, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


@dataclass(frozen=True)
class LDMTrainConfig:
    seed: int = 0
    steps: int = 2500
    train_images: int = 16000
    batch_size: int = 64
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4
    warmup_steps: int = 200
    caption_dropout: float = 0.1
    ema_decay: float = 0.999
    block_out_channels: tuple[int, ...] = (32, 64)
    attention_heads: int = 4
    log_every: int = 250
    captions: str = "class"
    ema_warmup: bool = False
    checkpoint_every: int = 0
    autoencoder: str = "vae-kl"
    latents: str = "mean"


LDM_T2I_V2 = LDMTrainConfig(steps=2000, train_images=55000, captions="varied", ema_warmup=True, checkpoint_every=250)


def build_unet(config: LDMTrainConfig):
    from diffusers import UNet2DConditionModel

    levels = len(config.block_out_channels)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=config.block_out_channels,
                                down_block_types=("CrossAttnDownBlock2D",) * levels,
                                up_block_types=("CrossAttnUpBlock2D",) * levels,
                                cross_attention_dim=384, attention_head_dim=config.attention_heads,
                                norm_num_groups=32)


LATENT_SHAPE = (4, 8, 8)


@torch.no_grad()
def encode_latents(images: torch.Tensor, batch_size: int = 500, autoencoder: str = "vae-kl",
                   latents: str = "mean", seed: int = 0) -> torch.Tensor:
    """Scaled latents of images in [0, 1], the diffusion model's data: the ``autoencoder``'s posterior
    means, or (``latents="sample"``) one posterior sample per image drawn with ``seed``."""
    from defenses.vae import load_autoencoder

    if latents not in ("mean", "sample"):
        raise BenchError(f"ldm training: latents={latents!r} is unknown; use 'mean' or 'sample'")
    vae, _ = load_autoencoder(autoencoder)
    vae.eval()
    generator = torch.Generator().manual_seed(seed)
    posteriors = (vae.encode(chunk * 2 - 1).latent_dist for chunk in images.split(batch_size))
    encoded = torch.cat([p.mean if latents == "mean" else p.sample(generator=generator) for p in posteriors])
    if tuple(encoded.shape[1:]) != LATENT_SHAPE:
        raise BenchError(f"autoencoder {autoencoder!r} gives latents of shape {tuple(encoded.shape[1:])}; the "
                         f"ldm-t2i UNet denoises {LATENT_SHAPE}: use a tokenizer with 4 latent channels at 1/4 "
                         "of the 32x32 input")
    return encoded * float(vae.config.scaling_factor)


def caption_states(captions: str = "class") -> torch.Tensor:
    """The token states (K + 1, 16, 384) of the K training captions, then of the empty caption: the
    10 class captions, or (``"varied"``) every caption of ``bench.zoo.captions.training_captions``."""
    from bench.text_encoder import token_states
    from bench.zoo.captions import training_captions

    texts = training_captions() if captions == "varied" else [caption(c) for c in range(len(FASHION_MNIST_CLASSES))]
    texts.append("")
    return torch.cat([token_states(texts[i:i + 64]) for i in range(0, len(texts), 64)])


def _latents(config: LDMTrainConfig, checkpoints: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded train latents and labels, kept beside the checkpoint (when checkpointing) for a resume."""
    from safetensors.torch import load_file, save_file

    cached = checkpoints / "latents.safetensors"
    if config.checkpoint_every and cached.exists():
        tensors = load_file(str(cached))
        return tensors["latents"].clone(), tensors["labels"].clone()
    train = load_fashion_mnist("train", config.train_images)
    latents = encode_latents(train.images, autoencoder=config.autoencoder, latents=config.latents, seed=config.seed)
    if config.checkpoint_every:
        checkpoints.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents.contiguous(), "labels": train.labels.contiguous()}, str(cached) + ".tmp")
        Path(str(cached) + ".tmp").rename(cached)
    return latents, train.labels


def train_ldm_t2i(output: Path, config: LDMTrainConfig = LDMTrainConfig(), quiet: bool = False) -> dict:
    from diffusers import DDIMScheduler, DDPMScheduler

    from bench.zoo.captions import draw_training_index

    if config.captions not in ("class", "varied"):
        raise BenchError(f"ldm training: captions={config.captions!r} is unknown; use 'class' or 'varied'")
    torch.manual_seed(config.seed)
    start = time.time()
    checkpoints = checkpoint_folder(output, config)
    latents, labels = _latents(config, checkpoints)
    states = caption_states(config.captions)
    encode_seconds = time.time() - start
    if not quiet:
        print(f"encoded {len(latents)} latents in {encode_seconds:.0f}s", flush=True)
    unconditional = len(states) - 1

    unet = build_unet(config)
    ema = EMA(unet, config.ema_decay, warmup=config.ema_warmup)
    noise_scheduler = DDPMScheduler(**SCHEDULER_KWARGS)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=1e-2)
    ratio = config.final_learning_rate / config.learning_rate

    def lr_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)

    def step(index: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        clean = latents[index]
        dropped = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        captioned = draw_training_index(labels[index], generator) if config.captions == "varied" else labels[index]
        context = states[torch.where(dropped, unconditional, captioned)]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (config.batch_size,),
                                  generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        return {"loss": torch.nn.functional.mse_loss(unet(noisy, timesteps, context).sample, noise)}

    def progress(completed: int, means: list[float], seconds: float) -> None:
        if not quiet:
            print(f"step {completed}/{config.steps} loss {means[0]:.4f} {seconds:.0f}s", flush=True)

    latest = checkpoints / "latest" if config.checkpoint_every else None
    if latest is not None and (latest / STATE).exists() and not quiet:
        print(f"resuming from {checkpoints}", flush=True)
    result = TrainingLoop(unet, optimizer, config.steps, config.seed, len(latents), config.batch_size,
                          schedule=schedule, clip=1.0, ema=ema, log_every=config.log_every, digits=4,
                          checkpoint=latest, checkpoint_every=config.checkpoint_every, started=start,
                          on_log=progress, name="unet").run(step)
    average = ema.result(result.steps_completed)

    def write(folder: Path) -> None:
        average.save_pretrained(folder / "unet", safe_serialization=True)
        DDIMScheduler(**DDIM_KWARGS).save_pretrained(folder / "scheduler")

    publish_folder(output, write)
    if config.checkpoint_every:
        shutil.rmtree(checkpoints, ignore_errors=True)
    info = asdict(config)
    info.update(unet_parameters=sum(p.numel() for p in unet.parameters()), scheduler=SCHEDULER_KWARGS,
                prediction_type="epsilon", saved_weights="ema", latent_encode_seconds=round(encode_seconds),
                step_seconds=round(result.seconds), loss_curve=result.curve)
    return info
