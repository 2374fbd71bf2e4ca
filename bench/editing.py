"""Text-guided img2img editing around a defense: the defense encodes and decodes, a Stable Diffusion
pipeline (the embedded ``ldm-t2i`` or a real SD 1.5, ``bench.t2i``) denoises.

An ``Editor`` is a ``text-to-image`` model (``bench.base.LatentTextToImage``: ``generate``,
``edit``) around an ``autoencoder`` defense, whose ``encode``, ``decode`` and ``reconstruct`` it
offers, plus what attacks on the diffusion part need: ``text_states``, ``diffusion_loss`` (the noise-prediction loss
AdvDM/MIST maximise) and ``denoise`` (a differentiable img2img, for PhotoGuard's diffusion attack).
``edit`` runs the diffusers img2img pipeline itself, handing it the defense's latents (a pipeline
given 4-channel latents skips its own VAE) and decoding its output latents with the defense, so a
defended VAE, a purifier or SRL-VAE plugs into a genuine SD pipeline unchanged. ``denoise`` repeats
the same DDIM steps with autograd on; a test shows it matches ``edit`` at the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from bench.base import Defense, LatentTextToImage, check_unit_interval
from bench.t2i import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH, load_t2i_pipeline


@dataclass(frozen=True)
class EditConfig:
    """``pipeline``: an embedded model (``ldm-t2i-v2``, the default since issue 12: it read varied captions
    of all 55k images; results before it name ``ldm-t2i``), a hub id (``runwayml/stable-diffusion-v1-5``)
    or a local folder in SD 1.5 layout; ``prompt``: the edit prompt, or "" for each image's own caption; img2img ``strength``,
    DDIM ``steps`` and classifier-free ``guidance`` as in Stable Diffusion."""

    pipeline: str = "ldm-t2i-v2"
    strength: float = DEFAULT_STRENGTH
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    prompt: str = ""
    trust_pickle: bool = False

    def __post_init__(self):
        check_unit_interval("img2img-edit", "strength", self.strength)
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")


@lru_cache(maxsize=2)
def shared_pipeline(model: str, device: str, dtype: torch.dtype, trust_pickle: bool):
    """One img2img pipeline per model, device and dtype for a whole run."""
    return load_t2i_pipeline(model, kind="img2img", device=device, dtype=dtype, trust_pickle=trust_pickle)


class Editor(LatentTextToImage):
    name = "editor"
    Config = EditConfig

    def __init__(self, defense: Defense, pipe, config: EditConfig = EditConfig()):
        super().__init__(config)
        self.defense, self.pipe = defense, pipe
        self._states: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def for_defense(cls, defense: Defense, config: EditConfig, device: torch.device,
                    dtype: torch.dtype = torch.float32) -> Editor:
        return cls(defense, shared_pipeline(config.pipeline, str(device), dtype, config.trust_pickle), config)

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def scaling_factor(self) -> float:
        return float(self.pipe.vae.config.scaling_factor)

    def weights(self) -> dict[str, str]:
        return self.defense.weights()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.defense.encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.defense.decode(latents)

    def text_states(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) token states of the prompts, computed once per prompt list."""
        key = tuple(prompts)
        if key not in self._states:
            with torch.no_grad():
                cond, uncond = self.pipe.encode_prompt(list(prompts), self.device, 1, True)
            self._states[key] = (cond, uncond)
        return self._states[key]

    @torch.no_grad()
    def generate(self, prompts: list[str], seed: int) -> torch.Tensor:
        """Text-to-image with the edit's steps and guidance, decoded by the defense; (N, 3, H, W) in [0, 1]."""
        from diffusers import StableDiffusionPipeline

        text_to_image = StableDiffusionPipeline(**self.pipe.components)
        text_to_image.set_progress_bar_config(disable=True)
        output = text_to_image(prompt=list(prompts), num_inference_steps=self.config.steps,
                               guidance_scale=self.config.guidance, generator=torch.Generator().manual_seed(seed),
                               output_type="latent").images
        return self.decode(output / self.scaling_factor).float()

    @torch.no_grad()
    def edit(self, images: torch.Tensor | None, prompts: list[str], seed: int, strength: float | None = None,
             latents: torch.Tensor | None = None) -> torch.Tensor:
        """img2img of ``images`` (or of their ``latents``, ``encode(images)``, when already computed)
        toward ``prompts`` through the diffusers pipeline; (N, 3, H, W) in [0, 1]."""
        if latents is None:
            latents = self.encode(images.to(self.device))
        latents = latents.to(self.device, self.pipe.unet.dtype) * self.scaling_factor
        generator = torch.Generator().manual_seed(seed)
        output = self.pipe(prompt=list(prompts), image=latents, strength=self.config.strength if strength is None
                           else strength, num_inference_steps=self.config.steps, guidance_scale=self.config.guidance,
                           generator=generator, output_type="latent").images
        return self.decode(output / self.scaling_factor).float()

    def denoise(self, images: torch.Tensor, prompts: list[str], generator: torch.Generator,
                steps: int | None = None) -> torch.Tensor:
        """A differentiable img2img with ``steps`` DDIM steps (default the edit's), same strength and
        guidance as ``edit``; with the same seed and steps it reproduces ``edit``."""
        from diffusers import DDIMScheduler
        from diffusers.utils.torch_utils import randn_tensor

        steps = steps or self.config.steps
        scheduler = DDIMScheduler.from_config(self.pipe.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        start = steps - min(int(steps * self.config.strength), steps)
        timesteps = scheduler.timesteps[start:]
        latents = self.encode(images.to(self.device)).to(self.pipe.unet.dtype) * self.scaling_factor
        noise = randn_tensor(latents.shape, generator=generator, device=self.device, dtype=latents.dtype)
        latents = scheduler.add_noise(latents, noise, timesteps[:1].repeat(len(latents)))
        cond, uncond = self.text_states(prompts)
        states = torch.cat([uncond, cond])
        for t in timesteps:
            prediction = self.pipe.unet(torch.cat([latents] * 2), t, encoder_hidden_states=states).sample
            unconditional, conditional = prediction.chunk(2)
            guided = unconditional + self.config.guidance * (conditional - unconditional)
            latents = scheduler.step(guided, t, latents, eta=0.0).prev_sample
        return self.decode(latents / self.scaling_factor)

    def diffusion_loss(self, images: torch.Tensor, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        """(N,) the DDPM noise-prediction error ||eps - eps_theta(z_t, t, c)||^2 (mean over latent
        elements) at one random timestep and noise per image: the loss AdvDM and MIST maximise."""
        latents = self.encode(images.to(self.device)).to(self.pipe.unet.dtype) * self.scaling_factor
        train_steps = self.pipe.scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, train_steps, (len(latents),), generator=generator).to(self.device)
        noise = torch.randn(latents.shape, generator=generator).to(self.device, latents.dtype)
        noisy = self.pipe.scheduler.add_noise(latents, noise, timesteps)
        cond, _ = self.text_states(prompts)
        prediction = self.pipe.unet(noisy, timesteps, encoder_hidden_states=cond).sample
        return (prediction.float() - noise.float()).pow(2).flatten(1).mean(1)
