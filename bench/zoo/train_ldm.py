"""Train the zoo's ``ldm-t2i``: a diffusers UNet2DConditionModel denoising ``vae-kl`` latents
(4x8x8, times the VAE's ``scaling_factor``), cross-attending to the frozen MiniLM's token states.

Stable Diffusion's recipe at toy scale: DDPM noise prediction over 1000 steps with SD's
``scaled_linear`` betas (0.00085 to 0.012), 10% of captions replaced by "" so classifier-free guidance
works, and an EMA of the weights, which is what gets saved. The VAE and the text encoder stay frozen;
since the captions are only "a photo of a {class}" and "", their 11 token-state tensors and the
train-split latents are computed once (of the first ``train_images`` of the split's seeded order, to
fit a 2-core CPU budget), so a step costs only the UNet.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.zoo.training import ema_update, publish_folder

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


def build_unet(config: LDMTrainConfig):
    from diffusers import UNet2DConditionModel

    levels = len(config.block_out_channels)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=config.block_out_channels,
                                down_block_types=("CrossAttnDownBlock2D",) * levels,
                                up_block_types=("CrossAttnUpBlock2D",) * levels,
                                cross_attention_dim=384, attention_head_dim=config.attention_heads,
                                norm_num_groups=32)


@torch.no_grad()
def encode_latents(images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Scaled ``vae-kl`` latent means of images in [0, 1]: the diffusion model's data."""
    from defenses.vae import load_autoencoder

    vae, _ = load_autoencoder("vae-kl")
    vae.eval()
    means = [vae.encode(chunk * 2 - 1).latent_dist.mean for chunk in images.split(batch_size)]
    return torch.cat(means) * float(vae.config.scaling_factor)


def caption_states() -> torch.Tensor:
    """(11, 16, 384): the token states of the 10 class captions, then of the empty caption."""
    from bench.text_encoder import token_states

    return token_states([caption(c) for c in range(len(FASHION_MNIST_CLASSES))] + [""])


def train_ldm_t2i(output: Path, config: LDMTrainConfig = LDMTrainConfig(), quiet: bool = False) -> dict:
    from diffusers import DDIMScheduler, DDPMScheduler

    torch.manual_seed(config.seed)
    start = time.time()
    train = load_fashion_mnist("train", config.train_images)
    latents, labels = encode_latents(train.images), train.labels
    states = caption_states()
    encode_seconds = time.time() - start
    if not quiet:
        print(f"encoded {len(latents)} latents in {encode_seconds:.0f}s", flush=True)
    unconditional = len(states) - 1

    unet = build_unet(config)
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_scheduler = DDPMScheduler(**SCHEDULER_KWARGS)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=1e-2)
    ratio = config.final_learning_rate / config.learning_rate

    def lr_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(config.seed)
    curve, window = [], []
    for step in range(config.steps):
        index = torch.randint(0, len(latents), (config.batch_size,), generator=generator)
        clean = latents[index]
        dropped = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        context = states[torch.where(dropped, unconditional, labels[index])]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (config.batch_size,),
                                  generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        loss = torch.nn.functional.mse_loss(unet(noisy, timesteps, context).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        ema_update(ema, unet, config.ema_decay)
        window.append(loss.item())
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            curve.append([step + 1, round(sum(window) / len(window), 4)])
            window = []
            if not quiet:
                print(f"step {step + 1}/{config.steps} loss {curve[-1][1]:.4f} "
                      f"{time.time() - start:.0f}s", flush=True)

    def write(folder: Path) -> None:
        ema.save_pretrained(folder / "unet", safe_serialization=True)
        DDIMScheduler(**DDIM_KWARGS).save_pretrained(folder / "scheduler")

    publish_folder(output, write)
    info = asdict(config)
    info.update(unet_parameters=sum(p.numel() for p in unet.parameters()), scheduler=SCHEDULER_KWARGS,
                prediction_type="epsilon", saved_weights="ema", latent_encode_seconds=round(encode_seconds),
                loss_curve=curve)
    return info
