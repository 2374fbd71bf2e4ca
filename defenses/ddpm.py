"""A pixel-space DDPM as a defended model of kind ``denoiser``: the zoo's ``ddpm-pixel``, ``ddpm`` (the
undefended baseline of the Robustadv track, grey at 28x28) or any folder in their layout (``unet/`` with a diffusers
``UNet2DModel``, ``scheduler/`` with its DDIM scheduler, safetensors only).

Images go in and come out as the suite's (N, 3, 32, 32) in [0, 1]; a grey 28x28 model sees their
channel mean without the 2-pixel border (``bench.zoo.train_ddpm.to_model_space``), and its outputs are
replicated to RGB inside the input's border (``to_suite_images``).
``training_loss`` is the recipe's epsilon-prediction loss (``bench.zoo.train_ddpm``), per image;
``sample`` draws with the recipe's DDIM sampler (``steps`` steps, x0 clipped, 8-bit output);
``denoise`` noises images to ``strength`` of the schedule and samples them back (SDEdit).
``DDPMFineTune`` fine-tunes one inside a cell (``bench.finetune``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.assets import sha256_file
from bench.base import Denoiser, check_unit_interval
from bench.errors import BenchError
from bench.finetune import CPU, FineTuneConfig, FineTuneRecipe, Training


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
        from bench.zoo.train_ddpm import noise_prediction_loss, to_model_space

        alphas = self.pipe.scheduler.alphas_cumprod.to(self.unet.device)
        return noise_prediction_loss(self.unet, alphas, to_model_space(clean.to(self.unet.device), self.unet),
                                     generator, "none")

    def sample(self, n: int, seed: int, perturb=None) -> torch.Tensor:
        from bench.zoo.train_ddpm import sample

        return sample(self.pipe, n, steps=self.config.steps, seed=seed, perturb=perturb)

    @torch.no_grad()
    def denoise(self, images: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
        from diffusers import DDIMScheduler

        from bench.zoo.train_ddpm import to_model_space, to_suite_images

        check_unit_interval("ddpm", "strength", strength)
        scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(self.config.steps)
        timesteps = scheduler.timesteps[self.config.steps - min(int(self.config.steps * strength), self.config.steps):]
        if not len(timesteps):
            return images
        generator = torch.Generator().manual_seed(seed)
        x = to_model_space(images.to(self.unet.device, self.unet.dtype), self.unet)
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        x = scheduler.add_noise(x, noise, timesteps[:1].repeat(len(x)))
        for t in timesteps:
            x = scheduler.step(self.unet(x, t).sample, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        return to_suite_images(((x.float() + 1) / 2).clamp(0, 1), like=images.to(x.device))


@dataclass(frozen=True)
class DDPMFineTuneConfig(FineTuneConfig):
    model: str = "ddpm-pixel"
    learning_rate: float = 1e-4
    clip: float = 1.0


class DDPMFineTune(FineTuneRecipe):
    """A pixel DDPM fine-tuned on ``data["images"]`` (N, 3, H, W) in [0, 1] with its own training loss
    (Adam, gradient norm clipped): the denoiser track's fine-tunes (e.g. on a corrupted training set).
    It trains on the cell's device (the noise and timesteps are drawn on the CPU, so the draws are the
    same on any device)."""

    name = "ddpm"
    version = "1"
    trains_on_device = True

    def base(self) -> dict[str, str]:
        folder = resolve_denoiser_folder(self.config.model)
        return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}

    def setup(self, data: dict[str, torch.Tensor | list[str]], device: torch.device = CPU) -> Training:
        from diffusers import DDIMScheduler

        from bench.zoo.train_ddpm import load_unet, noise_prediction_loss, to_model_space

        folder = resolve_denoiser_folder(self.config.model)
        unet = load_unet(folder).to(device).train().requires_grad_(True)
        images = to_model_space(data["images"].float(), unet).to(device)
        scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
        alphas = scheduler.alphas_cumprod.to(device)
        optimizer = torch.optim.Adam(unet.parameters(), lr=self.config.learning_rate)

        def step(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
            return {"loss": noise_prediction_loss(unet, alphas, images[indices.to(device)], generator)}

        def save(output: Path) -> None:
            unet.to("cpu").save_pretrained(output / "unet", safe_serialization=True)
            unet.to(device)
            scheduler.save_pretrained(output / "scheduler")

        return Training(unet, optimizer, step, len(images), save, clip=self.config.clip)
