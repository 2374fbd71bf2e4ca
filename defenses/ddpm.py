"""A pixel-space DDPM as a defended model of kind ``denoiser``: the zoo's ``ddpm-pixel`` (the
undefended baseline of the Robustadv track) or any folder in its layout (``unet/`` with a diffusers
``UNet2DModel``, ``scheduler/`` with its DDIM scheduler, safetensors only).

``training_loss`` is the recipe's epsilon-prediction loss (``bench.zoo.train_ddpm``), per image;
``sample`` draws with the recipe's DDIM sampler (``steps`` steps, x0 clipped, 8-bit output);
``denoise`` noises images to ``strength`` of the schedule and samples them back (SDEdit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.assets import sha256_file
from bench.base import Denoiser, check_unit_interval
from bench.errors import BenchError


@dataclass(frozen=True)
class DDPMConfig:
    model: str = "ddpm-pixel"
    steps: int = 100

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")


def resolve_denoiser_folder(model: str) -> Path:
    from bench import zoo

    if zoo.is_zoo_model(model):
        return zoo.model_dir(model)
    folder = Path(model).expanduser()
    if not (folder / "unet" / "config.json").exists() or not (folder / "scheduler").is_dir():
        raise BenchError(f"model {model!r} is neither a zoo model nor a folder with unet/ and scheduler/ "
                         "(as `bench zoo train ddpm-pixel` writes); fix the model: entry")
    return folder


class PixelDDPM(Denoiser):
    name = "ddpm"
    Config = DDPMConfig

    def __init__(self, config: DDPMConfig | None = None):
        from bench.zoo.train_ddpm import load_ddpm_pipeline

        super().__init__(config)
        self.folder = resolve_denoiser_folder(self.config.model)
        self.pipe = load_ddpm_pipeline(self.folder)

    @property
    def unet(self):
        return self.pipe.unet

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> PixelDDPM:
        self.pipe = self.pipe.to(device=torch.device(device), dtype=dtype)
        return self

    def weights(self) -> dict[str, str]:
        return {str(p): sha256_file(p) for p in sorted(self.folder.rglob("*.safetensors"))}

    def training_loss(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from bench.zoo.train_ddpm import noise_prediction_loss

        alphas = self.pipe.scheduler.alphas_cumprod.to(self.unet.device)
        return noise_prediction_loss(self.unet, alphas, clean.to(self.unet.device) * 2 - 1, generator, "none")

    def sample(self, n: int, seed: int) -> torch.Tensor:
        from bench.zoo.train_ddpm import sample

        return sample(self.pipe, n, steps=self.config.steps, seed=seed)

    @torch.no_grad()
    def denoise(self, images: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
        from diffusers import DDIMScheduler

        check_unit_interval("ddpm", "strength", strength)
        scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(self.config.steps)
        timesteps = scheduler.timesteps[self.config.steps - min(int(self.config.steps * strength), self.config.steps):]
        if not len(timesteps):
            return images
        generator = torch.Generator().manual_seed(seed)
        x = images.to(self.unet.device, self.unet.dtype) * 2 - 1
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x = scheduler.add_noise(x, noise, timesteps[:1].repeat(len(x)))
        for t in timesteps:
            x = scheduler.step(self.unet(x, t).sample, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        return ((x.float() + 1) / 2).clamp(0, 1)

